//! The component schemas, under the reference document's names (`UserRead`, `UserCreate`,
//! `UserUpdate`, `BearerResponse`, `ErrorModel`, `HTTPValidationError`, ...).

use std::any::TypeId;

use serde_json::json;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, Required};

use super::FieldSchema;

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn formatted(format: &str) -> ObjectBuilder {
    let format = match format {
        "" => return string(),
        "password" => SchemaFormat::KnownFormat(KnownFormat::Password),
        other => SchemaFormat::Custom(other.to_owned()),
    };
    string().format(Some(format))
}

fn nullable(kind: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
        kind,
        Type::Null,
    ]))
}

fn boolean(default: Option<bool>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .default(default.map(Into::into))
}

fn nullable_boolean(default: Option<bool>) -> ObjectBuilder {
    nullable(Type::Boolean).default(default.map(Into::into))
}

/// The schema of a user or account id: a UUID, an integer, or (another type) a string.
pub(super) fn id_schema<Id: 'static>() -> ObjectBuilder {
    if TypeId::of::<Id>() == TypeId::of::<uuid::Uuid>() {
        formatted("uuid")
    } else if TypeId::of::<Id>() == TypeId::of::<i64>() {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
    } else {
        string()
    }
}

/// Adds the application's fields: its own schemas, or any additional property.
fn with_fields(
    mut object: ObjectBuilder,
    fields: Option<&[FieldSchema]>,
    required: bool,
) -> ObjectBuilder {
    let Some(fields) = fields else {
        return object.additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(true)));
    };
    for field in fields {
        object = object.property(field.name.clone(), field.schema.clone());
        if required && field.required {
            object = object.required(field.name.clone());
        }
    }
    object
}

fn user_read<Id: 'static>(fields: Option<&[FieldSchema]>) -> ObjectBuilder {
    let object = ObjectBuilder::new()
        .title(Some("UserRead"))
        .property("id", id_schema::<Id>())
        .property("email", formatted("email"))
        .property("is_active", boolean(Some(true)))
        .property("is_superuser", boolean(Some(false)))
        .property("is_verified", boolean(Some(false)))
        .required("id")
        .required("email");
    with_fields(object, fields, true)
}

fn user_create(fields: Option<&[FieldSchema]>) -> ObjectBuilder {
    let object = ObjectBuilder::new()
        .title(Some("UserCreate"))
        .property("email", formatted("email"))
        .property("password", string())
        .property("is_active", nullable_boolean(Some(true)))
        .property("is_superuser", nullable_boolean(Some(false)))
        .property("is_verified", nullable_boolean(Some(false)))
        .required("email")
        .required("password");
    with_fields(object, fields, true)
}

fn user_update(fields: Option<&[FieldSchema]>) -> ObjectBuilder {
    let object = ObjectBuilder::new()
        .title(Some("UserUpdate"))
        .property("password", nullable(Type::String))
        .property(
            "current_password",
            nullable(Type::String).description(Some(
                "Your current password, required to change your own e-mail or password \
                 (unless the server runs in strict compatibility).",
            )),
        )
        .property("email", formatted("email"))
        .property("is_active", boolean(None))
        .property("is_superuser", boolean(None))
        .property("is_verified", boolean(None));
    with_fields(object, fields, false)
}

fn login_form(title: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some(title))
        .property(
            "grant_type",
            nullable(Type::String).pattern(Some("^password$")),
        )
        .property("username", string())
        .property("password", formatted("password"))
        .property("scope", string().default(Some(json!(""))))
        .property("client_id", nullable(Type::String))
        .property(
            "client_secret",
            nullable(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Password))),
        )
        .required("username")
        .required("password")
}

/// A login form schema, named as FastAPI names it.
pub(super) fn login_body(title: &str) -> RefOr<Schema> {
    login_form(title).into()
}

/// An object of required string fields `(name, format)`.
pub(super) fn object_body(title: &str, fields: &[(&str, &str)]) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new().title(Some(title));
    for (name, format) in fields {
        object = object.property(*name, formatted(format)).required(*name);
    }
    object.into()
}

fn bearer_response() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("BearerResponse"))
        .property("access_token", string())
        .property("token_type", string())
        // With refresh tokens on (additive to the reference).
        .property("refresh_token", string())
        .property(
            "expires_in",
            ObjectBuilder::new().schema_type(Type::Integer),
        )
        .required("access_token")
        .required("token_type")
}

fn session_read() -> ObjectBuilder {
    let time = || formatted("date-time");
    ObjectBuilder::new()
        .title(Some("SessionRead"))
        .description(Some(
            "A signed-in device; `current` marks the one making the request. No token material.",
        ))
        .property("id", string())
        .property("created_at", time())
        .property("last_seen_at", time())
        .property("expires_at", time())
        .property("ip", nullable(Type::String))
        .property("user_agent", nullable(Type::String))
        .property("method", string())
        .property("current", boolean(None))
        .required("id")
        .required("created_at")
        .required("last_seen_at")
        .required("expires_at")
        .required("method")
        .required("current")
}

fn mfa_status() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("MfaStatus"))
        .description(Some("The user's second factors."))
        .property("totp", boolean(None))
        .property(
            "recovery_codes_left",
            ObjectBuilder::new().schema_type(Type::Integer),
        )
        .property("passkeys", ObjectBuilder::new().schema_type(Type::Integer))
        .required("totp")
        .required("recovery_codes_left")
        .required("passkeys")
}

fn totp_enrolment() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("TotpEnrolment"))
        .description(Some(
            "A pending TOTP enrolment: the base32 secret, its otpauth:// URI and the URI as an \
             SVG QR code. Not active until confirmed.",
        ))
        .property("secret", string())
        .property("otpauth_uri", string())
        .property("qr_svg", string())
        .required("secret")
        .required("otpauth_uri")
        .required("qr_svg")
}

fn recovery_codes() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("RecoveryCodes"))
        .description(Some("Ten single-use recovery codes, shown this once."))
        .property(
            "recovery_codes",
            utoipa::openapi::schema::ArrayBuilder::new().items(string()),
        )
        .required("recovery_codes")
}

fn mfa_proof() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("MfaProof"))
        .description(Some(
            "`current_password` (enrolment: required unless the user has no password and \
             signed in in the last 10 minutes), or a current TOTP `code` (removal).",
        ))
        .property("current_password", string())
        .property("code", string())
}

fn mfa_login() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("MfaLogin"))
        .description(Some(
            "The second step of a sign-in: the `mfa_token` of `LOGIN_MFA_REQUIRED` with a TOTP \
             `code` or a `recovery_code` (JSON or form).",
        ))
        .property("mfa_token", string())
        .property("code", string())
        .property("recovery_code", string())
        .required("mfa_token")
}

fn passkey_read() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("PasskeyRead"))
        .description(Some("A registered passkey (RFC 3339 times)."))
        .property("id", string())
        .property("name", string())
        .property("created_at", formatted("date-time"))
        .property(
            "last_used_at",
            nullable(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .required("id")
        .required("name")
        .required("created_at")
        .required("last_used_at")
}

fn passkey_options() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("PasskeyOptions"))
        .description(Some(
            "The start of a WebAuthn ceremony: `publicKey` for \
             `PublicKeyCredential.parseCreationOptionsFromJSON` (registration) or \
             `parseRequestOptionsFromJSON` (sign-in; `mediation` is `conditional` for a \
             discoverable sign-in), and the `challenge_id` the finish must send back (single \
             use, 5 minutes).",
        ))
        .property("challenge_id", string())
        .property(
            "publicKey",
            ObjectBuilder::new().additional_properties(Some(AdditionalProperties::FreeForm(true))),
        )
        .property("mediation", string())
        .required("challenge_id")
        .required("publicKey")
}

fn credential() -> ObjectBuilder {
    ObjectBuilder::new()
        .description(Some("The browser's `PublicKeyCredential.toJSON()`."))
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
}

fn passkey_proof() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("PasskeyProof"))
        .description(Some(
            "`current_password`: required unless the user has no password and signed in in \
             the last 10 minutes.",
        ))
        .property("current_password", string())
}

fn passkey_register() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("PasskeyRegister"))
        .description(Some(
            "The end of a registration, with an optional name (default `Passkey`).",
        ))
        .property("challenge_id", string())
        .property("credential", credential())
        .property("name", string())
        .required("challenge_id")
        .required("credential")
}

fn passkey_login() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("PasskeyLogin"))
        .description(Some("The end of a passwordless sign-in."))
        .property("challenge_id", string())
        .property("credential", credential())
        .required("challenge_id")
        .required("credential")
}

fn passkey_mfa_login() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("PasskeyMfaLogin"))
        .description(Some(
            "The second step of a sign-in with a passkey: the `mfa_token` of \
             `LOGIN_MFA_REQUIRED`, the `challenge_id` of `mfa/passkey/start` and the assertion.",
        ))
        .property("mfa_token", string())
        .property("challenge_id", string())
        .property("credential", credential())
        .required("mfa_token")
        .required("challenge_id")
        .required("credential")
}

fn authorize_response() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("OAuth2AuthorizeResponse"))
        .property("authorization_url", string())
        .required("authorization_url")
}

/// A reference to a named schema.
fn named(name: &str) -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name))
}

/// `{"items": [schema], "next_cursor": string | null}`: a keyset page.
fn page(title: &str, item: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some(title))
        .property("items", ArrayBuilder::new().items(named(item)))
        .property(
            "next_cursor",
            nullable(Type::String).description(Some(
                "Pass it back as `cursor` for the next page; `null` on the last page.",
            )),
        )
        .required("items")
        .required("next_cursor")
}

/// The superuser's view of a user: `UserRead` and the times.
fn user_admin_read<Id: 'static>(fields: Option<&[FieldSchema]>) -> ObjectBuilder {
    let time = || nullable(Type::String).format(Some(SchemaFormat::Custom("date-time".into())));
    user_read::<Id>(fields)
        .title(Some("UserAdminRead"))
        .property("created_at", time())
        .property("updated_at", time())
        .property("last_login_at", time())
}

fn admin_user_create(fields: Option<&[FieldSchema]>) -> ObjectBuilder {
    let object = ObjectBuilder::new()
        .title(Some("AdminUserCreate"))
        .description(Some(
            "Without `password` the user has none until they set one through the reset flow; \
             `send_set_password_link` mails them the link at once.",
        ))
        .property("email", formatted("email"))
        .property("password", nullable(Type::String))
        .property("is_active", nullable_boolean(Some(true)))
        .property("is_superuser", nullable_boolean(Some(false)))
        .property("is_verified", nullable_boolean(Some(false)))
        .property("send_set_password_link", nullable_boolean(Some(false)))
        .required("email");
    with_fields(object, fields, true)
}

fn audit_event_read() -> ObjectBuilder {
    let text = || nullable(Type::String);
    ObjectBuilder::new()
        .title(Some("AuditEventRead"))
        .description(Some(
            "One event of the audit log; it never holds a password, token or code.",
        ))
        .property("id", string())
        .property(
            "type",
            string().enum_values(Some(crate::audit::AUDIT_EVENT_TYPES.iter().copied())),
        )
        .property("created_at", formatted("date-time"))
        .property("user_id", text())
        .property("actor_id", text())
        .property("ip", text())
        .property("user_agent", text())
        .property(
            "outcome",
            string().enum_values(Some(["success", "failure"])),
        )
        .property("reason", text())
        .property("detail", text())
        .required("id")
        .required("type")
        .required("created_at")
        .required("outcome")
}

fn oauth_account_read<Id: 'static>() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("OAuthAccountRead"))
        .description(Some(
            "A linked provider account; its tokens are never shown.",
        ))
        .property("id", id_schema::<Id>())
        .property("oauth_name", string())
        .property("account_id", string())
        .property("account_email", string())
        .property("expires_at", nullable(Type::Integer))
        .required("id")
        .required("oauth_name")
        .required("account_id")
        .required("account_email")
}

fn error_model() -> ObjectBuilder {
    let detail = utoipa::openapi::schema::OneOfBuilder::new()
        .item(string())
        .item(
            ObjectBuilder::new()
                .property("code", string())
                .property("reason", ObjectBuilder::new())
                .required("code"),
        );
    ObjectBuilder::new()
        .title(Some("ErrorModel"))
        .property("detail", detail)
        .required("detail")
}

fn validation_error() -> ObjectBuilder {
    let location = utoipa::openapi::schema::OneOfBuilder::new()
        .item(string())
        .item(ObjectBuilder::new().schema_type(Type::Integer));
    ObjectBuilder::new()
        .title(Some("ValidationError"))
        .property("loc", ArrayBuilder::new().items(location))
        .property("msg", string())
        .property("type", string())
        .property("input", ObjectBuilder::new())
        .property("ctx", ObjectBuilder::new().schema_type(Type::Object))
        .required("loc")
        .required("msg")
        .required("type")
}

fn http_validation_error() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("HTTPValidationError"))
        .property(
            "detail",
            ArrayBuilder::new().items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                "ValidationError",
            ))),
        )
}

/// Every named schema but the per-operation bodies.
pub(super) fn components<Id: 'static>(
    fields: Option<&[FieldSchema]>,
) -> Vec<(&'static str, RefOr<Schema>)> {
    vec![
        ("BearerResponse", bearer_response().into()),
        ("ErrorModel", error_model().into()),
        ("HTTPValidationError", http_validation_error().into()),
        ("OAuth2AuthorizeResponse", authorize_response().into()),
        ("OAuthAccountRead", oauth_account_read::<Id>().into()),
        ("SessionRead", session_read().into()),
        ("AdminUserCreate", admin_user_create(fields).into()),
        (
            "AuditEventPage",
            page("AuditEventPage", "AuditEventRead").into(),
        ),
        ("AuditEventRead", audit_event_read().into()),
        ("UserAdminRead", user_admin_read::<Id>(fields).into()),
        ("UserPage", page("UserPage", "UserAdminRead").into()),
        ("MfaLogin", mfa_login().into()),
        ("MfaProof", mfa_proof().into()),
        ("MfaStatus", mfa_status().into()),
        ("PasskeyLogin", passkey_login().into()),
        ("PasskeyMfaLogin", passkey_mfa_login().into()),
        ("PasskeyOptions", passkey_options().into()),
        ("PasskeyProof", passkey_proof().into()),
        ("PasskeyRead", passkey_read().into()),
        ("PasskeyRegister", passkey_register().into()),
        ("RecoveryCodes", recovery_codes().into()),
        ("TotpEnrolment", totp_enrolment().into()),
        ("UserCreate", user_create(fields).into()),
        ("UserRead", user_read::<Id>(fields).into()),
        ("UserUpdate", user_update(fields).into()),
        ("ValidationError", validation_error().into()),
    ]
}

/// Whether the body is required (always, where there is one).
pub(super) fn required() -> Option<Required> {
    Some(Required::True)
}
