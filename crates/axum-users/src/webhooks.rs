//! Webhooks: chosen audit events, as JSON signed per the Standard Webhooks scheme, queued in a
//! database outbox in the same transaction as their audit row and delivered by a worker.
//!
//! A queued delivery is an [`OutboxMessage`] of its own queue (the same claim, lease and retry
//! rules as mail, and the same conformance suite): `recipient` is the endpoint's name, `kind`
//! the event type, `sealed` the JSON body, kept in clear because it holds no secret (an audit
//! record holds none: see `audit.rs`). The signature is made at each attempt, with the time of
//! the attempt.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::audit::{AUDIT_EVENT_TYPES, AuditRecord};
use crate::outbox::{NewOutboxMessage, OutboxMessage};

/// Longest endpoint name: the `webhook-id` is `msg_<event id>_<endpoint>`.
pub const MAX_ENDPOINT_NAME: usize = 40;

/// Why a webhook secret or endpoint was refused at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookConfigError {
    /// The secret is not `whsec_` followed by base64 of 24 to 64 bytes.
    #[error("a webhook secret is `whsec_` followed by the base64 of 24 to 64 random bytes")]
    InvalidSecret,
    /// The endpoint name is empty, too long, or not made of `a-z`, `0-9`, `-` and `_`.
    #[error(
        "a webhook name is 1 to {MAX_ENDPOINT_NAME} characters of a-z, 0-9, `-` and `_`: `{0}`"
    )]
    InvalidName(String),
    /// An event type that is not an audit event type (nor `*`).
    #[error("unknown webhook event type `{0}` (see AUDIT_EVENT_TYPES, or `*` for all)")]
    UnknownEvent(String),
    /// No event type at all.
    #[error("a webhook needs at least one event type (or `*` for all)")]
    NoEvents,
    /// Two endpoints with one name.
    #[error("two webhooks are named `{0}`")]
    DuplicateName(String),
}

/// An endpoint's signing key (`whsec_<base64>`): `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl std::str::FromStr for WebhookSecret {
    type Err = WebhookConfigError;

    /// Reads `whsec_<base64>` (standard alphabet, padding optional), 24 to 64 bytes of key.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        use base64::Engine;
        let encoded = text
            .strip_prefix("whsec_")
            .ok_or(WebhookConfigError::InvalidSecret)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
            .map_err(|_| WebhookConfigError::InvalidSecret)?;
        if !(24..=64).contains(&key.len()) {
            return Err(WebhookConfigError::InvalidSecret);
        }
        Ok(Self(key))
    }
}

impl WebhookSecret {
    /// A fresh random secret, for `whsec_` generation and tests.
    pub fn generate() -> Self {
        let mut key = vec![0u8; 32];
        crate::secret::fill_random(&mut key);
        Self(key)
    }

    /// The `whsec_<base64>` text of the secret (for the receiver's configuration).
    pub fn expose(&self) -> String {
        use base64::Engine;
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(&self.0)
        )
    }

    fn mac(&self, id: &str, timestamp: i64, body: &str) -> Hmac<Sha256> {
        #[allow(clippy::expect_used)]
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        mac
    }

    /// The `webhook-signature` header: `v1,<base64 of HMAC-SHA256("{id}.{timestamp}.{body}")>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        use base64::Engine;
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        )
    }

    /// Whether one of the space-separated signatures of `header` is this key's for the
    /// message (compared in constant time). The receiver's side, for tests and examples; a
    /// receiver also refuses a `timestamp` far from its clock.
    pub fn verify(&self, id: &str, timestamp: i64, body: &str, header: &str) -> bool {
        use base64::Engine;
        header.split(' ').any(|signature| {
            let Some(encoded) = signature.strip_prefix("v1,") else {
                return false;
            };
            let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
                return false;
            };
            self.mac(id, timestamp, body).verify_slice(&tag).is_ok()
        })
    }
}

/// Which event types an endpoint receives: some, or all (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    /// Every audit event.
    All,
    /// Only these type strings (checked against [`AUDIT_EVENT_TYPES`]).
    Only(Vec<String>),
}

impl EventFilter {
    /// The filter of a list of type strings; `*` alone is every type.
    ///
    /// # Errors
    /// An unknown type, or an empty list.
    pub fn parse<S: AsRef<str>>(types: &[S]) -> Result<Self, WebhookConfigError> {
        if types.is_empty() {
            return Err(WebhookConfigError::NoEvents);
        }
        if types.iter().any(|t| t.as_ref() == "*") {
            return Ok(Self::All);
        }
        let mut only = Vec::with_capacity(types.len());
        for kind in types {
            let kind = kind.as_ref().trim();
            if !AUDIT_EVENT_TYPES.contains(&kind) {
                return Err(WebhookConfigError::UnknownEvent(kind.to_owned()));
            }
            only.push(kind.to_owned());
        }
        Ok(Self::Only(only))
    }

    /// Whether events of `kind` pass.
    pub fn accepts(&self, kind: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.iter().any(|t| t == kind),
        }
    }
}

/// Which endpoint receives which events: what a store consults when it appends an audit record,
/// to queue the deliveries in the same transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookRoutes {
    routes: Vec<(String, EventFilter)>,
}

impl WebhookRoutes {
    /// No endpoint: nothing is queued.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the endpoint `name` for the events of `filter`.
    ///
    /// # Errors
    /// A name that is not 1 to [`MAX_ENDPOINT_NAME`] of `a-z0-9-_`, or one already added.
    pub fn with_endpoint(
        mut self,
        name: &str,
        filter: EventFilter,
    ) -> Result<Self, WebhookConfigError> {
        let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if name.is_empty() || name.len() > MAX_ENDPOINT_NAME || !name.chars().all(plain) {
            return Err(WebhookConfigError::InvalidName(name.to_owned()));
        }
        if self.routes.iter().any(|(n, _)| n == name) {
            return Err(WebhookConfigError::DuplicateName(name.to_owned()));
        }
        self.routes.push((name.to_owned(), filter));
        Ok(self)
    }

    /// Whether no endpoint is configured.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The deliveries of `record`: one per endpoint that wants its type, with the id
    /// `msg_<event id>_<endpoint>` (the `webhook-id`, the same at every attempt; a second
    /// queueing of one event for one endpoint is refused by the key).
    pub fn deliveries(&self, record: &AuditRecord) -> Vec<NewOutboxMessage> {
        let kind = record.event.kind();
        let matching: Vec<&String> = self
            .routes
            .iter()
            .filter(|(_, filter)| filter.accepts(kind))
            .map(|(name, _)| name)
            .collect();
        if matching.is_empty() {
            return Vec::new();
        }
        let body = webhook_payload(record);
        matching
            .into_iter()
            .map(|name| {
                let mut message = NewOutboxMessage::new(name.clone(), kind, body.clone());
                message.id = format!("msg_{}_{name}", record.id);
                message.created_at = record.at;
                message
            })
            .collect()
    }
}

/// The JSON body of an event, in the Standard Webhooks shape:
/// `{"type": ..., "timestamp": RFC 3339, "data": <the record as the audit routes show it>}`.
pub fn webhook_payload(record: &AuditRecord) -> String {
    serde_json::json!({
        "type": record.event.kind(),
        "timestamp": crate::directory::format_time(record.at),
        "data": record.to_json(),
    })
    .to_string()
}

/// A delivery's headers at one attempt made at `timestamp` (Unix seconds): `webhook-id`,
/// `webhook-timestamp`, `webhook-signature`.
pub fn webhook_headers(
    secret: &WebhookSecret,
    delivery: &OutboxMessage,
    timestamp: i64,
) -> [(&'static str, String); 3] {
    [
        ("webhook-id", delivery.id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            secret.sign(&delivery.id, timestamp, &delivery.sealed),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, LoginFailure};

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        let body = r#"{"test": 2432232314}"#;
        let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(secret.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &signature));
        let both = format!("v1,bm9wZQ== {signature}");
        assert!(secret.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &both));
        assert!(!secret.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, &signature));
        assert!(!secret.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "{}", &signature));
        assert!(!WebhookSecret::generate().verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &signature
        ));
    }

    #[test]
    fn secrets_are_checked_and_redacted() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_",
            "whsec_%%%",
            "whsec_c2hvcnQ=",
        ] {
            assert_eq!(
                bad.parse::<WebhookSecret>(),
                Err(WebhookConfigError::InvalidSecret),
                "{bad}"
            );
        }
        let secret = WebhookSecret::generate();
        assert_eq!(format!("{secret:?}"), "WebhookSecret([redacted])");
        assert_eq!(secret.expose().parse::<WebhookSecret>(), Ok(secret));
    }

    #[test]
    fn routes_pick_endpoints_by_type_and_bodies_hold_the_record() {
        assert_eq!(
            EventFilter::parse(&["login.nope"]),
            Err(WebhookConfigError::UnknownEvent("login.nope".into()))
        );
        assert_eq!(
            EventFilter::parse::<&str>(&[]),
            Err(WebhookConfigError::NoEvents)
        );
        let routes = WebhookRoutes::new()
            .with_endpoint("siem", EventFilter::All)
            .unwrap()
            .with_endpoint("alerts", EventFilter::parse(&["login.failed"]).unwrap())
            .unwrap();
        assert!(matches!(
            routes.clone().with_endpoint("siem", EventFilter::All),
            Err(WebhookConfigError::DuplicateName(_))
        ));
        assert!(matches!(
            routes.clone().with_endpoint("Bad Name", EventFilter::All),
            Err(WebhookConfigError::InvalidName(_))
        ));
        let mut failed = AuditRecord::new(AuditEvent::LoginFailed {
            method: "password".into(),
            reason: LoginFailure::BadPassword,
        });
        failed.user_id = Some("u1".into());
        let deliveries = routes.deliveries(&failed);
        let names: Vec<&str> = deliveries.iter().map(|d| d.recipient.as_str()).collect();
        assert_eq!(names, ["siem", "alerts"]);
        assert_eq!(deliveries[1].id, format!("msg_{}_alerts", failed.id));
        let body: serde_json::Value = serde_json::from_str(&deliveries[0].sealed).unwrap();
        assert_eq!(body["type"], "login.failed");
        assert_eq!(body["data"]["reason"], "bad_password");
        assert_eq!(body["data"]["user_id"], "u1");
        assert_eq!(body["data"], failed.to_json(), "the record, nothing more");
        let logout = AuditRecord::new(AuditEvent::Logout);
        assert_eq!(routes.deliveries(&logout).len(), 1, "only the `*` endpoint");
    }
}

/// The webhook queueing check (feature `testing`), run by every store's tests.
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::unwrap_used, clippy::missing_panics_doc)]
pub(crate) mod conformance {
    use super::{EventFilter, WebhookRoutes};
    use crate::audit::{AuditEvent, AuditQuery, AuditRecord, AuditStore};
    use crate::outbox::{OutboxStatus, OutboxStore};

    /// The routes [`webhook_queueing`] expects the store to have: `all` for every event and
    /// `failures` for `login.failed`.
    pub fn conformance_routes() -> WebhookRoutes {
        WebhookRoutes::new()
            .with_endpoint("all", EventFilter::All)
            .unwrap()
            .with_endpoint("failures", EventFilter::parse(&["login.failed"]).unwrap())
            .unwrap()
    }

    /// An appended event is queued once per endpoint that wants it, with the record as its
    /// body; an event whose delivery cannot be stored is not stored either (one transaction;
    /// stores without transactions may skip that part with `atomic = false`). `log` appends
    /// with [`conformance_routes`]; `queue` is where its deliveries go.
    pub async fn webhook_queueing<A: AuditStore + ?Sized, Q: OutboxStore>(
        log: &A,
        queue: &Q,
        atomic: bool,
    ) {
        let mut record = AuditRecord::new(AuditEvent::Logout);
        record.user_id = Some(format!("u-{}", crate::secret::random_token(6)));
        log.append(&record).await.unwrap();
        let queued = queue.list_outbox(100_000).await.unwrap();
        let mine: Vec<_> = queued
            .iter()
            .filter(|m| m.id.contains(&record.id))
            .collect();
        assert_eq!(mine.len(), 1, "a logout goes to `all` only: {mine:?}");
        let delivery = mine[0];
        assert_eq!(delivery.id, format!("msg_{}_all", record.id));
        assert_eq!(
            (delivery.recipient.as_str(), delivery.kind.as_str()),
            ("all", "logout")
        );
        assert_eq!(
            (delivery.status, delivery.attempts),
            (OutboxStatus::Pending, 0)
        );
        let body: serde_json::Value = serde_json::from_str(&delivery.sealed).unwrap();
        assert_eq!(body["data"], record.to_json());

        let failed = AuditRecord::new(AuditEvent::LoginFailed {
            method: "password".into(),
            reason: crate::audit::LoginFailure::BadPassword,
        });
        log.append(&failed).await.unwrap();
        let queued = queue.list_outbox(100_000).await.unwrap();
        let mut names: Vec<&str> = queued
            .iter()
            .filter(|m| m.id.contains(&failed.id))
            .map(|m| m.recipient.as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["all", "failures"]);

        if atomic {
            // A delivery that cannot be stored (its id is taken) takes its event with it.
            let mut blocked = AuditRecord::new(AuditEvent::Verified);
            blocked.user_id = Some(format!("u-{}", crate::secret::random_token(6)));
            let mut squatter = crate::outbox::NewOutboxMessage::new("all", "x", "{}".into());
            squatter.id = format!("msg_{}_all", blocked.id);
            queue.enqueue(squatter).await.unwrap();
            assert!(
                log.append(&blocked).await.is_err(),
                "the delivery's key is taken"
            );
            let query = AuditQuery {
                user_id: blocked.user_id.clone(),
                ..AuditQuery::default()
            };
            let page = log.list_events(&query).await.unwrap();
            assert!(
                !page.items.iter().any(|r| r.id == blocked.id),
                "an event whose delivery failed is not stored"
            );
        }
    }
}
