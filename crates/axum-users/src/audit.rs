//! The audit log: one append-only row per act that matters to an account's security, written by
//! the manager at its seams (never by a route), and handed typed to
//! [`crate::UserHooks::on_audit_event`] so an application can forward it.
//!
//! A record holds no secret: no password, token, token hash, code or session id; the e-mail
//! address a failed sign-in named is not kept either (only whose account it was, if any).

use http::request::Parts;
use serde::{Deserialize, Serialize};

use crate::hooks::UserHooks;
use crate::manager::{ManagerError, UserManager};
use crate::store::UserStore;

use crate::auth::BoxFuture;
use crate::sessions::RevokeReason;
use crate::store::StoreError;

/// Why a sign-in was refused, as the audit log records it (clients see only their error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginFailure {
    /// No user has the address (or the provider account).
    UnknownUser,
    /// The password was wrong.
    BadPassword,
    /// The user has no password (signed up through a provider) and tried one.
    NoPassword,
    /// The user is inactive.
    Inactive,
    /// Verification is required and the user is not verified.
    Unverified,
    /// The throttle or a rate limit refused the attempt before any check.
    Throttled,
    /// The second factor was wrong (emitted by the second-factor flow).
    SecondFactorFailed,
    /// A one-time login code was invalid or used.
    InvalidCode,
    /// A passkey assertion failed a check (signature, origin, user verification, unknown).
    BadPasskey,
    /// A passkey's signature counter did not move forward: the credential may be cloned.
    PasskeyCloneSuspected,
}

impl LoginFailure {
    const ALL: [Self; 10] = [
        Self::UnknownUser,
        Self::BadPassword,
        Self::NoPassword,
        Self::Inactive,
        Self::Unverified,
        Self::Throttled,
        Self::SecondFactorFailed,
        Self::InvalidCode,
        Self::BadPasskey,
        Self::PasskeyCloneSuspected,
    ];

    /// The reason code stored: `bad_password`, `inactive`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::BadPassword => "bad_password",
            Self::NoPassword => "no_password",
            Self::Inactive => "inactive",
            Self::Unverified => "unverified",
            Self::Throttled => "throttled",
            Self::SecondFactorFailed => "second_factor_failed",
            Self::InvalidCode => "invalid_code",
            Self::BadPasskey => "bad_passkey",
            Self::PasskeyCloneSuspected => "passkey_clone_suspected",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }
}

fn revoke_reason(text: &str) -> Option<RevokeReason> {
    use RevokeReason::*;
    [
        Logout,
        User,
        Admin,
        PasswordChange,
        Reset,
        ReuseDetected,
        Deactivated,
        Deleted,
        EmailChange,
        TooManySessions,
        SecondFactorAdded,
    ]
    .into_iter()
    .find(|r| r.as_str() == text)
}

/// What happened. The type string ([`AuditEvent::kind`]) is what `GET /audit-events?type=`
/// filters on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// A sign-in succeeded; `method` is `password` or `oauth:<provider>`.
    LoginSucceeded {
        /// How.
        method: String,
    },
    /// A sign-in was refused.
    LoginFailed {
        /// How it was tried.
        method: String,
        /// Why it was refused.
        reason: LoginFailure,
    },
    /// The user signed out.
    Logout,
    /// A user registered (or was created through a provider sign-up).
    Registered,
    /// The user changed their password (or a superuser set it).
    PasswordChanged,
    /// The password was reset with a reset token.
    PasswordReset,
    /// A change of address was requested (a confirmation was mailed to the new one).
    EmailChangeRequested,
    /// A change of address was confirmed (or made at once).
    EmailChangeConfirmed,
    /// The user verified their address.
    Verified,
    /// A second factor was enrolled (emitted by the second-factor flow).
    SecondFactorAdded,
    /// A second factor was removed.
    SecondFactorRemoved,
    /// A second factor finished a sign-in.
    SecondFactorUsed,
    /// A recovery code was spent.
    RecoveryCodeUsed,
    /// The user replaced their recovery codes with new ones.
    RecoveryCodesRegenerated,
    /// A passkey was registered.
    PasskeyAdded,
    /// A passkey was removed.
    PasskeyRemoved,
    /// A passkey signed the user in (passwordless, or as the second factor).
    PasskeyUsed,
    /// A provider account was linked.
    ProviderLinked {
        /// The provider's name.
        provider: String,
    },
    /// A provider account was unlinked.
    ProviderUnlinked {
        /// The provider's name.
        provider: String,
    },
    /// A session ended before its time.
    SessionRevoked {
        /// Why.
        reason: RevokeReason,
    },
    /// A refresh token was presented again after it had been rotated out: the session ends.
    RefreshReuseDetected,
    /// A superuser created the user.
    UserCreated,
    /// A superuser changed the user.
    UserUpdated,
    /// A superuser deleted the user.
    UserDeleted,
}

/// Every type string, for the documentation and the `type` filter's check.
pub const AUDIT_EVENT_TYPES: &[&str] = &[
    "login.succeeded",
    "login.failed",
    "logout",
    "user.registered",
    "password.changed",
    "password.reset",
    "email_change.requested",
    "email_change.confirmed",
    "user.verified",
    "second_factor.added",
    "second_factor.removed",
    "second_factor.used",
    "recovery_code.used",
    "recovery_codes.regenerated",
    "passkey.added",
    "passkey.removed",
    "passkey.used",
    "provider.linked",
    "provider.unlinked",
    "session.revoked",
    "refresh_token.reuse_detected",
    "admin.user_created",
    "admin.user_updated",
    "admin.user_deleted",
];

impl AuditEvent {
    /// The type string, e.g. `login.failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LoginSucceeded { .. } => "login.succeeded",
            Self::LoginFailed { .. } => "login.failed",
            Self::Logout => "logout",
            Self::Registered => "user.registered",
            Self::PasswordChanged => "password.changed",
            Self::PasswordReset => "password.reset",
            Self::EmailChangeRequested => "email_change.requested",
            Self::EmailChangeConfirmed => "email_change.confirmed",
            Self::Verified => "user.verified",
            Self::SecondFactorAdded => "second_factor.added",
            Self::SecondFactorRemoved => "second_factor.removed",
            Self::SecondFactorUsed => "second_factor.used",
            Self::RecoveryCodeUsed => "recovery_code.used",
            Self::RecoveryCodesRegenerated => "recovery_codes.regenerated",
            Self::PasskeyAdded => "passkey.added",
            Self::PasskeyRemoved => "passkey.removed",
            Self::PasskeyUsed => "passkey.used",
            Self::ProviderLinked { .. } => "provider.linked",
            Self::ProviderUnlinked { .. } => "provider.unlinked",
            Self::SessionRevoked { .. } => "session.revoked",
            Self::RefreshReuseDetected => "refresh_token.reuse_detected",
            Self::UserCreated => "admin.user_created",
            Self::UserUpdated => "admin.user_updated",
            Self::UserDeleted => "admin.user_deleted",
        }
    }

    /// `failure` for refused sign-ins and detected reuse, `success` for everything else.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::LoginFailed { .. } | Self::RefreshReuseDetected => "failure",
            _ => "success",
        }
    }

    /// The reason code: why a sign-in failed or a session ended.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::LoginFailed { reason, .. } => Some(reason.as_str()),
            Self::SessionRevoked { reason } => Some(reason.as_str()),
            _ => None,
        }
    }

    /// The detail: the sign-in method or the provider.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::LoginSucceeded { method } | Self::LoginFailed { method, .. } => Some(method),
            Self::ProviderLinked { provider } | Self::ProviderUnlinked { provider } => {
                Some(provider)
            }
            _ => None,
        }
    }

    /// Back from the stored type, reason and detail; `None` for a row this version cannot read.
    pub fn from_parts(kind: &str, reason: Option<&str>, detail: Option<&str>) -> Option<Self> {
        let detail = || detail.unwrap_or_default().to_owned();
        Some(match kind {
            "login.succeeded" => Self::LoginSucceeded { method: detail() },
            "login.failed" => Self::LoginFailed {
                method: detail(),
                reason: LoginFailure::parse(reason?)?,
            },
            "provider.linked" => Self::ProviderLinked { provider: detail() },
            "provider.unlinked" => Self::ProviderUnlinked { provider: detail() },
            "session.revoked" => Self::SessionRevoked {
                reason: revoke_reason(reason?)?,
            },
            "logout" => Self::Logout,
            "user.registered" => Self::Registered,
            "password.changed" => Self::PasswordChanged,
            "password.reset" => Self::PasswordReset,
            "email_change.requested" => Self::EmailChangeRequested,
            "email_change.confirmed" => Self::EmailChangeConfirmed,
            "user.verified" => Self::Verified,
            "second_factor.added" => Self::SecondFactorAdded,
            "second_factor.removed" => Self::SecondFactorRemoved,
            "second_factor.used" => Self::SecondFactorUsed,
            "recovery_code.used" => Self::RecoveryCodeUsed,
            "recovery_codes.regenerated" => Self::RecoveryCodesRegenerated,
            "passkey.added" => Self::PasskeyAdded,
            "passkey.removed" => Self::PasskeyRemoved,
            "passkey.used" => Self::PasskeyUsed,
            "refresh_token.reuse_detected" => Self::RefreshReuseDetected,
            "admin.user_created" => Self::UserCreated,
            "admin.user_updated" => Self::UserUpdated,
            "admin.user_deleted" => Self::UserDeleted,
            _ => return None,
        })
    }
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// A random id (32 hex characters).
    pub id: String,
    /// When, in Unix seconds.
    pub at: i64,
    /// What.
    pub event: AuditEvent,
    /// Whose account (as text); `None` for a failed sign-in of no known user.
    pub user_id: Option<String>,
    /// Who acted, when not the user themself (a superuser's id).
    pub actor_id: Option<String>,
    /// The client's address, as the client-IP policy reads it.
    pub ip: Option<String>,
    /// The client's `User-Agent`, cut to 256 characters.
    pub user_agent: Option<String>,
}

/// The `actor_id` a user's own view shows for an act of someone else.
const OTHER_ACTOR: &str = "superuser";

impl AuditRecord {
    /// A record of `event` now, with a fresh id and no user, actor or client.
    pub fn new(event: AuditEvent) -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            at: crate::tokens::now_unix(),
            event,
            user_id: None,
            actor_id: None,
            ip: None,
            user_agent: None,
        }
    }

    /// The JSON the routes answer with.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "type": self.event.kind(),
            "created_at": crate::directory::format_time(self.at),
            "user_id": self.user_id,
            "actor_id": self.actor_id,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "outcome": self.event.outcome(),
            "reason": self.event.reason(),
            "detail": self.event.detail(),
        })
    }
}

/// Where a page of events ended (newest first): the time and id of its last record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCursor {
    /// `at` of the last record.
    pub at: i64,
    /// `id` of the last record.
    pub id: String,
}

impl AuditCursor {
    /// The opaque text clients pass back.
    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a cursor made by [`AuditCursor::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        use base64::Engine;
        if text.len() > 256 {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let cursor: Self = serde_json::from_slice(&bytes).ok()?;
        (cursor.id.len() <= 64).then_some(cursor)
    }
}

/// What a listing of the audit log asks for, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this user's events (the id as text).
    pub user_id: Option<String>,
    /// Only events of this type string.
    pub kind: Option<String>,
    /// Only events at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// At most this many, 1 to [`crate::directory::MAX_PAGE`].
    pub limit: u32,
    /// Older than this cursor.
    pub before: Option<AuditCursor>,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            user_id: None,
            kind: None,
            since: None,
            limit: crate::directory::DEFAULT_PAGE,
            before: None,
        }
    }
}

impl AuditQuery {
    /// The page size, clamped to 1..=[`crate::directory::MAX_PAGE`].
    pub fn page_size(&self) -> u32 {
        self.limit.clamp(1, crate::directory::MAX_PAGE)
    }

    /// Whether a record passes the filters and lies beyond the cursor.
    pub fn matches(&self, record: &AuditRecord) -> bool {
        self.user_id
            .as_ref()
            .is_none_or(|u| record.user_id.as_ref() == Some(u))
            && self
                .kind
                .as_deref()
                .is_none_or(|k| record.event.kind() == k)
            && self.since.is_none_or(|t| record.at >= t)
            && self
                .before
                .as_ref()
                .is_none_or(|c| (record.at, record.id.as_str()) < (c.at, c.id.as_str()))
    }
}

/// One page of the audit log.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// The records, newest first.
    pub items: Vec<AuditRecord>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next_cursor: Option<AuditCursor>,
}

/// A shared handle on an [`AuditStore`].
pub type AuditStoreRef = std::sync::Arc<dyn AuditStore>;

/// The `audit_events` table: appended to, read newest first, pruned by age; never updated.
pub trait AuditStore: Send + Sync + 'static {
    /// Appends one record (one insert).
    fn append<'a>(&'a self, record: &'a AuditRecord) -> BoxFuture<'a, Result<(), StoreError>>;

    /// One page of records passing the query, newest first, through an index.
    fn list_events<'a>(
        &'a self,
        query: &'a AuditQuery,
    ) -> BoxFuture<'a, Result<AuditPage, StoreError>>;

    /// Deletes records older than `before` (Unix seconds); returns how many.
    fn prune_events<'a>(&'a self, before: i64) -> BoxFuture<'a, Result<u64, StoreError>>;
}

/// Who acted on a user's account when it was not the user: the superuser of an admin route,
/// put in the request's extensions by the route that authenticated them.
#[derive(Debug, Clone)]
pub(crate) struct Actor(pub(crate) String);

impl<S, H> UserManager<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// Records an event: one insert into the store's audit log (a failure is logged, never
    /// fails the act it records), then [`UserHooks::on_audit_event`]. The client's address and
    /// agent come from `request`, the actor from its [`Actor`] extension.
    pub(crate) async fn audit(
        &self,
        event: AuditEvent,
        user_id: Option<&S::Id>,
        request: Option<&Parts>,
    ) {
        let mut record = AuditRecord::new(event);
        record.user_id = user_id.map(ToString::to_string);
        if let Some(parts) = request {
            record.actor_id = parts.extensions.get::<Actor>().map(|a| a.0.clone());
            record.ip = self
                .defences()
                .client_ip
                .client_ip(parts)
                .map(|ip| ip.to_string());
            record.user_agent = parts
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|agent| agent.chars().take(256).collect());
        }
        if let Some(log) = self.store().audit_store()
            && let Err(error) = log.append(&record).await
        {
            tracing::error!(%error, kind = record.event.kind(), "the audit event was not stored");
        }
        self.hooks().on_audit_event(&record).await;
    }

    /// One page of the audit log (a user's own, or any for a superuser); an empty page when the
    /// store keeps no log.
    ///
    /// # Errors
    /// A store failure.
    pub async fn audit_events(&self, query: &AuditQuery) -> Result<AuditPage, ManagerError> {
        match self.store().audit_store() {
            Some(log) => Ok(log.list_events(query).await?),
            None => Ok(AuditPage {
                items: Vec::new(),
                next_cursor: None,
            }),
        }
    }

    /// One page of `user_id`'s own security events, whatever the query names, as the user may
    /// see them: an act of someone else (a superuser) keeps its type and time, but not who
    /// acted nor from where (their id, address and browser are the operator's, not the user's).
    ///
    /// # Errors
    /// A store failure.
    pub async fn own_audit_events(
        &self,
        user_id: &S::Id,
        mut query: AuditQuery,
    ) -> Result<AuditPage, ManagerError> {
        let me = user_id.to_string();
        query.user_id = Some(me.clone());
        let mut page = self.audit_events(&query).await?;
        for record in &mut page.items {
            if record.actor_id.as_ref().is_some_and(|actor| *actor != me) {
                record.actor_id = Some(OTHER_ACTOR.to_owned());
                record.ip = None;
                record.user_agent = None;
            }
        }
        Ok(page)
    }

    /// Deletes audit records older than `retention`; returns how many.
    ///
    /// # Errors
    /// A store failure.
    pub async fn prune_audit(&self, retention: std::time::Duration) -> Result<u64, ManagerError> {
        let Some(log) = self.store().audit_store() else {
            return Ok(0);
        };
        let age = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        Ok(log
            .prune_events(crate::tokens::now_unix().saturating_sub(age))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_survives_its_stored_form() {
        let events = [
            AuditEvent::LoginSucceeded {
                method: "oauth:github".into(),
            },
            AuditEvent::LoginFailed {
                method: "password".into(),
                reason: LoginFailure::Throttled,
            },
            AuditEvent::ProviderUnlinked {
                provider: "google".into(),
            },
            AuditEvent::SessionRevoked {
                reason: RevokeReason::ReuseDetected,
            },
            AuditEvent::Logout,
            AuditEvent::SecondFactorUsed,
            AuditEvent::UserDeleted,
        ];
        for event in events {
            let back = AuditEvent::from_parts(event.kind(), event.reason(), event.detail());
            assert_eq!(back, Some(event));
        }
        for kind in AUDIT_EVENT_TYPES {
            let reason = match *kind {
                "login.failed" => Some("inactive"),
                "session.revoked" => Some("admin"),
                _ => None,
            };
            let event = AuditEvent::from_parts(kind, reason, Some("x")).expect(kind);
            assert_eq!(event.kind(), *kind, "the type table and the enum agree");
        }
        assert_eq!(
            AuditEvent::from_parts("login.failed", Some("?"), None),
            None
        );
        assert_eq!(AuditEvent::from_parts("nope", None, None), None);
    }

    #[test]
    fn records_hold_no_secret_shaped_field_and_cursors_round_trip() {
        let record = AuditRecord::new(AuditEvent::LoginFailed {
            method: "password".into(),
            reason: LoginFailure::BadPassword,
        });
        assert_eq!(record.id.len(), 32);
        let json = record.to_json();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(
            keys.len(),
            10,
            "id, type, created_at, user_id, actor_id, ip, user_agent, outcome, reason, detail: {keys:?}"
        );
        assert_eq!(json["outcome"], "failure");
        assert_eq!(json["reason"], "bad_password");
        let cursor = AuditCursor {
            at: 5,
            id: record.id.clone(),
        };
        assert_eq!(AuditCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(AuditCursor::decode("%%"), None);
    }
}
