//! `/openapi.json`, the library's OpenAPI document of the mounted routes plus the server's own
//! (`/health`, `/ready`, `/metrics`), and `/docs`, Swagger UI served from the binary: its assets are
//! compiled in (utoipa-swagger-ui's `vendored` feature), so the page works offline.

use axum::Router;
use axum_users::utoipa::openapi::path::{HttpMethod, OperationBuilder, Paths};
use axum_users::utoipa::openapi::{OpenApi, Response};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::app::Users;

/// The document: the library's, with the server's operational routes.
pub(crate) fn document(users: &Users) -> OpenApi {
    let mut document = users.openapi_for_explorer();
    let operation = |id: &str, summary: &str, responses: &[(&str, &str)]| {
        let mut operation = OperationBuilder::new()
            .tag("operations")
            .operation_id(Some(id))
            .summary(Some(summary));
        for (status, description) in responses {
            operation = operation.response(*status, Response::new(*description));
        }
        operation
    };
    let mut paths = Paths::new();
    paths.add_path_operation(
        "/health",
        vec![HttpMethod::Get],
        operation("health", "Liveness", &[("200", "The process is up.")]),
    );
    paths.add_path_operation(
        "/ready",
        vec![HttpMethod::Get],
        operation(
            "ready",
            "Readiness: the database (and Redis, when configured) answer",
            &[
                ("200", "Ready."),
                ("503", "The database or Redis does not answer."),
            ],
        ),
    );
    paths.add_path_operation(
        "/metrics",
        vec![HttpMethod::Get],
        operation(
            "metrics",
            "Prometheus metrics (text format), with AXUM_USERS_METRICS_TOKEN as a bearer token",
            &[
                ("200", "The metrics."),
                ("401", "No token, or not the configured one."),
                (
                    "404",
                    "Metrics are off, or served on AXUM_USERS_METRICS_BIND only.",
                ),
            ],
        ),
    );
    document.paths.merge(paths);
    document
}

/// `/openapi.json` and Swagger UI at `/docs`. No validator badge (it would call an outside
/// host); *Try it out* is on, since every operation is on this server.
pub(crate) fn routes(users: &Users) -> Router {
    let config = Config::new(["/openapi.json"])
        .validator_url("none")
        .try_it_out_enabled(true);
    SwaggerUi::new("/docs")
        .url("/openapi.json", document(users))
        .config(config)
        .into()
}
