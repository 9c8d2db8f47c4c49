//! The OpenAPI 3.1 document of [`AxumUsers::router`] (feature `openapi`): exactly the routes
//! it mounts for this configuration, its backends' security schemes, the user schemas with the
//! application's fields, and every error code each route can answer, from [`ErrorCode`].

mod explorer;
mod schemas;
mod table;

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::{Value, json};
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, Paths};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Flow, OAuth2, Password, Scopes, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
    Response, ResponseBuilder,
};

use crate::app::{AxumUsers, RouterStore};
use crate::auth::{AuthBackend, Transport};
use crate::error_code::ErrorCode;
use crate::hooks::UserHooks;
use crate::model::UserFields;
use table::{Auth, Body, Mount, Param, ROUTES, RouteDoc, Success};

/// One of the application's own user fields, for the document's user schemas.
///
/// Return them from [`UserFields::openapi_fields`]; [`FieldSchema::of`] reads them off a type
/// that derives `utoipa::ToSchema`.
#[derive(Clone)]
pub struct FieldSchema {
    /// The JSON name of the field.
    pub name: String,
    /// Its schema.
    pub schema: RefOr<Schema>,
    /// Whether users always have it (required in `UserRead` and `UserCreate`; `UserUpdate`
    /// fields are always optional).
    pub required: bool,
}

impl std::fmt::Debug for FieldSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let schema = serde_json::to_string(&self.schema).unwrap_or_default();
        f.debug_struct("FieldSchema")
            .field("name", &self.name)
            .field("schema", &schema)
            .field("required", &self.required)
            .finish()
    }
}

impl FieldSchema {
    /// A field from its parts.
    pub fn new(name: impl Into<String>, schema: impl Into<RefOr<Schema>>, required: bool) -> Self {
        Self {
            name: name.into(),
            schema: schema.into(),
            required,
        }
    }

    /// The properties of `T`'s object schema (its fields, as the user schemas flatten them).
    /// A `T` whose schema is not an inline object has none.
    pub fn of<T: utoipa::ToSchema>() -> Vec<FieldSchema> {
        let RefOr::T(Schema::Object(object)) = T::schema() else {
            return Vec::new();
        };
        object
            .properties
            .into_iter()
            .map(|(name, schema)| {
                let required = object.required.contains(&name);
                FieldSchema {
                    name,
                    schema,
                    required,
                }
            })
            .collect()
    }
}

impl<S: RouterStore, H: UserHooks<S::Id, S::Fields>> AxumUsers<S, H> {
    /// The OpenAPI 3.1 document of [`AxumUsers::router`] as configured: the login and logout
    /// of each backend by name, the OAuth routes of each provider, the security scheme of each
    /// backend (OAuth2 password flow for Bearer, API key for cookie), the user schemas with
    /// the fields of [`UserFields::openapi_fields`], and each route's error codes with
    /// `{"detail": CODE}` examples. Merge your own paths into it with [`OpenApi::merge`].
    pub fn openapi(&self) -> OpenApi {
        let inner = &self.inner;
        let backends = self.backends();
        let context = Context {
            schemes: security_schemes(backends),
            requires_verification: inner.requires_verification(),
            origin_checked: !inner.auth.origins.disabled && backends.iter().any(is_cookie),
        };
        let mut paths = Paths::new();
        let mut bodies = Vec::new();
        for route in ROUTES {
            for mounted in context.mount(route, self) {
                let operation_id = operation_id(&mounted.name, &mounted.path, route.method);
                let body = request_body(route, &operation_id, &mut bodies);
                let mut operation = OperationBuilder::new()
                    .tag(route.tag)
                    .summary(Some(summary(&mounted.name)))
                    .operation_id(Some(operation_id))
                    .request_body(body)
                    .parameters(
                        (!route.params.is_empty())
                            .then(|| route.params.iter().map(parameter::<S::Id>)),
                    );
                if route.auth != Auth::Public {
                    operation = operation.securities(Some(context.security()));
                }
                for (status, response) in responses(route, &mounted, context.codes(route)) {
                    operation = operation.response(status, response);
                }
                paths.add_path_operation(&mounted.path, vec![method(route.method)], operation);
            }
        }
        let fields = S::Fields::openapi_fields();
        let mut components = ComponentsBuilder::new()
            .schemas_from_iter(schemas::components::<S::Id>(fields.as_deref()))
            .schemas_from_iter(bodies);
        for (name, scheme) in &context.schemes {
            components = components.security_scheme(name, scheme.clone());
        }
        OpenApiBuilder::new()
            .info(
                InfoBuilder::new()
                    .title("axum-users")
                    .version(env!("CARGO_PKG_VERSION"))
                    .description(Some(
                        "User management API, wire-compatible with FastAPI Users v15.",
                    )),
            )
            .paths(paths)
            .components(Some(components.build()))
            .build()
    }
}

fn is_cookie<Id>(backend: &AuthBackend<Id>) -> bool {
    backend.transport.is_cookie()
}

/// One mounted copy of a route: its path and route name with the names filled in.
struct Mounted<'a> {
    path: String,
    name: String,
    /// The backend whose login answer it gives, for login-like routes.
    transport: Option<&'a Transport>,
    /// Whether a successful callback redirects to the front end.
    redirects: bool,
}

/// What the whole configuration says about every route.
struct Context {
    schemes: Vec<(String, SecurityScheme)>,
    requires_verification: bool,
    /// Whether a cookie backend checks the `Origin` of state-changing requests.
    origin_checked: bool,
}

impl Context {
    /// The copies of `route` that [`AxumUsers::router`] mounts.
    fn mount<'a, S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
        &self,
        route: &RouteDoc,
        users: &'a AxumUsers<S, H>,
    ) -> Vec<Mounted<'a>> {
        let fill = |template: &str, backend: &str, provider: &str| {
            template
                .replace("{backend}", backend)
                .replace("{provider}", provider)
        };
        match route.mount {
            Mount::Once => vec![Mounted {
                path: route.path.to_owned(),
                name: route.name.to_owned(),
                transport: None,
                redirects: false,
            }],
            Mount::PerBackend => users
                .backends()
                .iter()
                .map(|b| Mounted {
                    path: fill(route.path, &b.name, ""),
                    name: fill(route.name, &b.name, ""),
                    transport: Some(&b.transport),
                    redirects: false,
                })
                .collect(),
            #[cfg(feature = "oauth")]
            Mount::PerProvider => users
                .inner
                .oauth
                .clients
                .iter()
                .map(|c| Mounted {
                    path: fill(route.path, &c.backend, c.provider.name()),
                    name: fill(route.name, &c.backend, c.provider.name()),
                    transport: users
                        .backends()
                        .iter()
                        .find(|b| b.name == c.backend)
                        .map(|b| &b.transport),
                    redirects: c.after_login_redirect.is_some(),
                })
                .collect(),
            #[cfg(feature = "oauth")]
            Mount::OAuthAccounts => vec![Mounted {
                path: route.path.to_owned(),
                name: route.name.to_owned(),
                transport: None,
                redirects: false,
            }],
            #[cfg(not(feature = "oauth"))]
            Mount::PerProvider | Mount::OAuthAccounts => Vec::new(),
        }
    }

    /// Any one of the backends' schemes will do.
    fn security(&self) -> Vec<SecurityRequirement> {
        self.schemes
            .iter()
            .map(|(name, _)| SecurityRequirement::new(name, Vec::<String>::new()))
            .collect()
    }

    /// The route's own codes, and those of its authentication.
    fn codes(&self, route: &RouteDoc) -> Vec<ErrorCode> {
        let mut codes = Vec::new();
        if route.auth != Auth::Public {
            codes.push(ErrorCode::Unauthorized);
        }
        if route.auth == Auth::Superuser
            || (route.auth == Auth::Active && self.requires_verification)
        {
            codes.push(ErrorCode::Forbidden);
        }
        let changes_state = route.method != "get";
        if route.auth != Auth::Public && changes_state && self.origin_checked {
            codes.push(ErrorCode::CsrfOriginMismatch);
        }
        codes.extend(route.codes.iter().copied());
        codes
    }
}

/// The reference's scheme names for the first Bearer and the first cookie backend
/// (`OAuth2PasswordBearer`, `APIKeyCookie`), suffixed by the backend's name for the others.
fn security_schemes<Id>(backends: &[AuthBackend<Id>]) -> Vec<(String, SecurityScheme)> {
    let mut schemes: Vec<(String, SecurityScheme)> = Vec::new();
    for backend in backends {
        let (base, scheme) = match &backend.transport {
            Transport::Bearer { token_url } => (
                "OAuth2PasswordBearer",
                SecurityScheme::OAuth2(OAuth2::with_description(
                    [Flow::Password(Password::new(
                        token_url.clone(),
                        Scopes::new(),
                    ))],
                    format!("A Bearer token of the `{}` backend.", backend.name),
                )),
            ),
            Transport::Cookie(cookie) => (
                "APIKeyCookie",
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    cookie.name.clone(),
                    format!(
                        "The cookie of the `{}` backend, set by its login.",
                        backend.name
                    ),
                ))),
            ),
        };
        let taken = schemes.iter().any(|(n, _)| n == base);
        let name = match taken {
            true => format!("{base}_{}", backend.name),
            false => base.to_owned(),
        };
        schemes.push((name, scheme));
    }
    schemes
}

fn method(method: &str) -> HttpMethod {
    match method {
        "get" => HttpMethod::Get,
        "patch" => HttpMethod::Patch,
        "delete" => HttpMethod::Delete,
        _ => HttpMethod::Post,
    }
}

/// FastAPI's operation id: the route name and path with every non-word character as `_`,
/// then the method (`auth_jwt_login_auth_jwt_login_post`).
fn operation_id(name: &str, path: &str, method: &str) -> String {
    let word = |c: char| if c.is_alphanumeric() { c } else { '_' };
    let id: String = format!("{name}{path}").chars().map(word).collect();
    format!("{id}_{method}")
}

/// FastAPI's summary: the route name with `_` as spaces, in title case (`Auth:Jwt.Login`).
fn summary(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut after_letter = false;
    for c in name.replace('_', " ").chars() {
        match after_letter {
            true => out.extend(c.to_lowercase()),
            false => out.extend(c.to_uppercase()),
        }
        after_letter = c.is_alphabetic();
    }
    out
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn request_body(
    route: &RouteDoc,
    operation_id: &str,
    bodies: &mut Vec<(String, RefOr<Schema>)>,
) -> Option<utoipa::openapi::request_body::RequestBody> {
    let (content_type, schema) = match route.body {
        Body::Empty => return None,
        Body::Json(name) => ("application/json", schema_ref(name)),
        Body::LoginForm | Body::Object(_) => {
            let name = format!("Body_{operation_id}");
            let schema = match route.body {
                Body::Object(fields) => schemas::object_body(&name, fields),
                _ => schemas::login_body(&name),
            };
            bodies.push((name.clone(), schema));
            let content_type = match route.body {
                Body::LoginForm => "application/x-www-form-urlencoded",
                _ => "application/json",
            };
            (content_type, schema_ref(&name))
        }
    };
    Some(
        RequestBodyBuilder::new()
            .content(content_type, Content::new(Some(schema)))
            .required(schemas::required())
            .build(),
    )
}

fn parameter<Id: 'static>(param: &Param) -> utoipa::openapi::path::Parameter {
    let (name, place, required, schema): (_, _, _, RefOr<Schema>) = match *param {
        Param::Path(name) => (
            name,
            ParameterIn::Path,
            Required::True,
            schemas::id_schema::<Id>().into(),
        ),
        Param::Query(name) => (
            name,
            ParameterIn::Query,
            Required::False,
            ObjectBuilder::new().schema_type(Type::String).into(),
        ),
        Param::QueryList(name) => (
            name,
            ParameterIn::Query,
            Required::False,
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(Type::String))
                .into(),
        ),
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(required)
        .schema(Some(schema))
        .build()
}

fn json_response(description: &str, schema: RefOr<Schema>) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema)))
        .build()
}

fn login_responses(transport: Option<&Transport>) -> Vec<(String, Response)> {
    match transport {
        Some(Transport::Cookie(cookie)) => vec![(
            "204".into(),
            Response::new(format!("Signed in: the `{}` cookie is set.", cookie.name)),
        )],
        _ => vec![(
            "200".into(),
            json_response("Signed in.", schema_ref("BearerResponse")),
        )],
    }
}

fn success(route: &RouteDoc, mounted: &Mounted<'_>) -> Vec<(String, Response)> {
    match route.success {
        Success::Json(status, schema) => vec![(
            status.to_string(),
            json_response("Successful Response", schema_ref(schema)),
        )],
        Success::List(schema) => vec![(
            "200".into(),
            json_response(
                "Successful Response",
                ArrayBuilder::new().items(schema_ref(schema)).into(),
            ),
        )],
        Success::Null(status) => vec![(
            status.to_string(),
            json_response(
                "Successful Response",
                ObjectBuilder::new().schema_type(Type::Null).into(),
            ),
        )],
        Success::NoContent => vec![("204".into(), Response::new("No Content"))],
        Success::Login => login_responses(mounted.transport),
        Success::LoginOrRedirect if mounted.redirects => vec![(
            "303".into(),
            Response::new(
                "Signed in: redirect to the front end (with a one-time `code` to redeem at \
                 the provider's `token` route for a Bearer backend, with the cookie set for a \
                 cookie backend).",
            ),
        )],
        Success::LoginOrRedirect => login_responses(mounted.transport),
    }
}

/// `{"detail": CODE}`, or for a refused password `{"detail": {"code": CODE, "reason": ...}}`.
pub(crate) fn example_detail(code: ErrorCode) -> Value {
    match code {
        ErrorCode::RegisterInvalidPassword
        | ErrorCode::ResetPasswordInvalidPassword
        | ErrorCode::UpdateUserInvalidPassword => {
            json!({"code": code.as_str(), "reason": "Password should be at least 8 characters"})
        }
        _ => json!(code.as_str()),
    }
}

fn error_response(status: StatusCode, codes: &[ErrorCode]) -> Response {
    let examples = codes.iter().map(|code| {
        let example = ExampleBuilder::new()
            .summary(code.description())
            .value(Some(json!({"detail": example_detail(*code)})));
        (code.as_str(), example)
    });
    let content = utoipa::openapi::content::ContentBuilder::new()
        .schema(Some(schema_ref("ErrorModel")))
        .examples_from_iter(examples)
        .build();
    let description = match status {
        StatusCode::UNAUTHORIZED => "Missing token or inactive user.",
        other => other.canonical_reason().unwrap_or("Error"),
    };
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build()
}

fn responses(
    route: &RouteDoc,
    mounted: &Mounted<'_>,
    codes: Vec<ErrorCode>,
) -> Vec<(String, Response)> {
    let mut out = success(route, mounted);
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in codes {
        by_status
            .entry(code.status().as_u16())
            .or_default()
            .push(code);
    }
    if route.validates {
        by_status.entry(422).or_default();
    }
    for (status, codes) in by_status {
        let response = match status {
            422 => json_response("Validation Error", schema_ref("HTTPValidationError")),
            _ => error_response(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                &codes,
            ),
        };
        out.push((status.to_string(), response));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_as_fastapi_makes_them() {
        assert_eq!(
            operation_id("auth:jwt.login", "/auth/jwt/login", "post"),
            "auth_jwt_login_auth_jwt_login_post"
        );
        assert_eq!(
            operation_id("users:user", "/users/{id}", "get"),
            "users_user_users__id__get"
        );
        assert_eq!(summary("auth:jwt.login"), "Auth:Jwt.Login");
        assert_eq!(summary("reset:forgot_password"), "Reset:Forgot Password");
        assert_eq!(summary("verify:request-token"), "Verify:Request-Token");
        assert_eq!(summary("users:current_user"), "Users:Current User");
    }

    #[test]
    fn every_route_of_the_table_is_one_operation() {
        let mut seen = std::collections::HashSet::new();
        for route in ROUTES {
            assert!(
                seen.insert((route.method, route.path)),
                "{} twice",
                route.path
            );
            assert!(route.path.starts_with('/'));
            assert!(["get", "post", "patch", "delete"].contains(&route.method));
        }
    }

    struct Plan;

    impl utoipa::PartialSchema for Plan {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .property("plan", ObjectBuilder::new().schema_type(Type::String))
                .property("quota", ObjectBuilder::new().schema_type(Type::Integer))
                .required("plan")
                .into()
        }
    }

    impl utoipa::ToSchema for Plan {}

    #[test]
    fn fields_are_read_off_a_schema_type() {
        let fields = FieldSchema::of::<Plan>();
        let names: Vec<(&str, bool)> = fields
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect();
        assert_eq!(names, [("plan", true), ("quota", false)]);
        assert!(format!("{:?}", fields[1]).contains("integer"));
    }

    #[test]
    fn refused_passwords_are_documented_with_their_reason() {
        let detail = example_detail(ErrorCode::RegisterInvalidPassword);
        assert_eq!(detail["code"], ErrorCode::RegisterInvalidPassword.as_str());
        assert!(detail["reason"].is_string());
        assert_eq!(
            example_detail(ErrorCode::LoginBadCredentials),
            json!(ErrorCode::LoginBadCredentials.as_str())
        );
    }

    #[test]
    fn the_first_backend_of_each_kind_keeps_the_reference_scheme_name() {
        let strategy = || {
            crate::auth::JwtStrategy::<uuid::Uuid>::new(
                crate::tokens::JwtCodec::hs256(&crate::Secret::new(
                    "0123456789abcdef0123456789abcdef",
                ))
                .expect("a long secret"),
                std::time::Duration::from_secs(60),
            )
        };
        let bearer = |url: &str| Transport::Bearer {
            token_url: url.into(),
        };
        let backends = [
            AuthBackend::new("jwt", bearer("auth/jwt/login"), strategy()),
            AuthBackend::new(
                "cookie",
                Transport::Cookie(crate::CookieSettings::auth()),
                strategy(),
            ),
            AuthBackend::new("db", bearer("auth/db/login"), strategy()),
        ];
        let names: Vec<String> = security_schemes(&backends)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "OAuth2PasswordBearer",
                "APIKeyCookie",
                "OAuth2PasswordBearer_db"
            ]
        );
    }
}
