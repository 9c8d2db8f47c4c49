//! The document as an API explorer page (Swagger UI) at a sub-path needs it.

use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{Flow, SecurityScheme};

use crate::app::{AxumUsers, RouterStore};
use crate::hooks::UserHooks;

impl<S: RouterStore, H: UserHooks<S::Id, S::Fields>> AxumUsers<S, H> {
    /// [`AxumUsers::openapi`] for Swagger UI served at a sub-path such as `/docs`: the Bearer
    /// backends' token URLs are made absolute (`/auth/jwt/login`). FastAPI Users writes them
    /// relative (`auth/jwt/login`), which Swagger UI resolves against its own page, so that
    /// *Authorize* would post to `/docs/auth/jwt/login`.
    pub fn openapi_for_explorer(&self) -> OpenApi {
        let mut document = self.openapi();
        root_token_urls(&mut document);
        document
    }
}

/// Makes relative token URLs of OAuth2 password flows absolute paths.
fn root_token_urls(document: &mut OpenApi) {
    let Some(components) = document.components.as_mut() else {
        return;
    };
    for scheme in components.security_schemes.values_mut() {
        let SecurityScheme::OAuth2(oauth2) = scheme else {
            continue;
        };
        for flow in oauth2.flows.values_mut() {
            if let Flow::Password(password) = flow
                && !password.token_url.starts_with('/')
                && !password.token_url.contains("://")
            {
                password.token_url.insert(0, '/');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{AxumUsers, MemoryStore};

    #[test]
    fn token_urls_become_absolute_paths_for_the_explorer() {
        let users = AxumUsers::builder(
            MemoryStore::<uuid::Uuid>::new(),
            "0123456789abcdef0123456789abcdef",
        )
        .build()
        .unwrap();
        let token_url = |document: utoipa::openapi::OpenApi| {
            let value = serde_json::to_value(document).unwrap();
            let schemes = &value["components"]["securitySchemes"];
            let bearer = schemes
                .as_object()
                .unwrap()
                .values()
                .find(|s| s["type"] == "oauth2")
                .unwrap();
            bearer["flows"]["password"]["tokenUrl"].clone()
        };
        assert_eq!(
            token_url(users.openapi()),
            "auth/jwt/login",
            "as the reference"
        );
        assert_eq!(token_url(users.openapi_for_explorer()), "/auth/jwt/login");
    }
}
