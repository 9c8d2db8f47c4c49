//! OAuth providers from the configuration: `[oauth.<name>]` tables of the TOML file, with the
//! client secret from the file or from `AXUM_USERS_OAUTH_<NAME>_CLIENT_SECRET`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum_users::oauth::{
    Discord, Facebook, GitHub, GitLab, Google, LinkedIn, Microsoft, OAuthProvider,
    OpenIdConnectConfig,
};
use axum_users::{OAuthClient, OAuthPolicy};
use serde::Deserialize;

/// The kinds of provider a `[oauth.<name>]` table can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProviderKind {
    /// Google.
    Google,
    /// GitHub.
    GitHub,
    /// Microsoft (Entra ID), with a tenant.
    Microsoft,
    /// Discord.
    Discord,
    /// Facebook.
    Facebook,
    /// LinkedIn.
    LinkedIn,
    /// GitLab, or a self-hosted one at `base_url`.
    GitLab,
    /// Any OpenID Connect provider, discovered from its `issuer`.
    Oidc,
}

impl std::fmt::Display for ProviderKind {
    /// The name the TOML file uses.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Google => "google",
            Self::GitHub => "github",
            Self::Microsoft => "microsoft",
            Self::Discord => "discord",
            Self::Facebook => "facebook",
            Self::LinkedIn => "linkedin",
            Self::GitLab => "gitlab",
            Self::Oidc => "oidc",
        })
    }
}

/// One `[oauth.<name>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderConfig {
    /// Which provider this is.
    kind: ProviderKind,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    associate_by_email: bool,
    #[serde(default)]
    is_verified_by_default: bool,
    /// Trust the provider's "e-mail verified" signal (kind = "oidc" or a self-hosted "gitlab":
    /// only when the operator knows the issuer really verifies addresses).
    #[serde(default)]
    trust_email_verified: bool,
    /// OpenID Connect issuer (kind = "oidc").
    #[serde(default)]
    issuer: Option<String>,
    /// Microsoft tenant (default `common`).
    #[serde(default)]
    tenant: Option<String>,
    /// Self-hosted GitLab.
    #[serde(default)]
    base_url: Option<String>,
    /// The backend that logs the user in (default `jwt`).
    #[serde(default)]
    backend: Option<String>,
    /// Single-page apps: where to send the browser after a sign-in.
    #[serde(default)]
    after_login_redirect: Option<String>,
}

impl ProviderConfig {
    /// The backend the provider signs in through.
    pub(crate) fn backend_name(&self) -> &str {
        self.backend.as_deref().unwrap_or("jwt")
    }

    /// A redacted view for logs: the kind and client id only.
    pub(crate) fn describe(&self) -> String {
        format!("{} (client_id {})", self.kind, self.client_id)
    }
}

/// The environment variable that may carry a provider's client secret.
pub(crate) fn secret_var(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("AXUM_USERS_OAUTH_{upper}_CLIENT_SECRET")
}

/// Checks every provider table without touching the network.
///
/// # Errors
/// A message naming the provider and the key.
pub(crate) fn validate(
    providers: &BTreeMap<String, ProviderConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    for (name, p) in providers {
        let key = |k: &str| format!("oauth.{name}.{k}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "invalid provider name `oauth.{name}`: use letters, digits, - and _ (it becomes the path /auth/{name})"
            );
        }
        if p.client_id.trim().is_empty() {
            bail!(
                "invalid value for {}: it must not be empty",
                key("client_id")
            );
        }
        if p.client_secret.is_none() && env(&secret_var(name)).is_none() {
            bail!(
                "missing {} (or the environment variable {})",
                key("client_secret"),
                secret_var(name)
            );
        }
        if p.kind == ProviderKind::Oidc {
            let issuer = p.issuer.as_deref().with_context(|| {
                format!(
                    "missing {} (kind = \"oidc\" needs the issuer URL)",
                    key("issuer")
                )
            })?;
            check_url(issuer, &key("issuer"))?;
        }
        if let Some(url) = &p.base_url {
            check_url(url, &key("base_url"))?;
        }
        if let Some(url) = &p.after_login_redirect {
            check_url(url, &key("after_login_redirect"))?;
        }
    }
    Ok(())
}

fn check_url(value: &str, key: &str) -> Result<url::Url> {
    let url = url::Url::parse(value)
        .with_context(|| format!("invalid value for {key}: `{value}` is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("invalid value for {key}: `{value}` must be an http or https URL");
    }
    Ok(url)
}

/// Builds the clients; OpenID Connect providers are discovered (over the network) here.
///
/// # Errors
/// A message naming the provider when it cannot be built or discovered.
pub(crate) async fn clients(
    providers: &BTreeMap<String, ProviderConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<OAuthClient>> {
    let mut clients = Vec::new();
    for (name, p) in providers {
        let provider = build(name, p, env)
            .await
            .with_context(|| format!("OAuth provider `oauth.{name}` ({})", p.describe()))?;
        let mut client = OAuthClient::new(provider).with_policy(OAuthPolicy {
            associate_by_email: p.associate_by_email,
            is_verified_by_default: p.is_verified_by_default,
        });
        if let Some(backend) = &p.backend {
            client = client.with_backend(backend.clone());
        }
        if let Some(url) = &p.after_login_redirect {
            client = client.with_after_login_redirect(url.clone());
        }
        clients.push(client);
    }
    Ok(clients)
}

async fn build(
    name: &str,
    p: &ProviderConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn OAuthProvider>> {
    let secret = env(&secret_var(name))
        .or_else(|| p.client_secret.clone())
        .unwrap_or_default();
    let id = p.client_id.clone();
    macro_rules! plain {
        ($kind:ident) => {{
            let mut provider = $kind::new(id, secret)?.with_name(name);
            if let Some(scopes) = &p.scopes {
                provider = provider.with_default_scopes(scopes.clone());
            }
            if let Some(base) = &p.base_url {
                provider = provider.with_base_url(&check_url(base, "base_url")?);
            }
            Arc::new(provider) as Arc<dyn OAuthProvider>
        }};
    }
    Ok(match p.kind {
        ProviderKind::Google => plain!(Google),
        ProviderKind::GitHub => plain!(GitHub),
        ProviderKind::Discord => plain!(Discord),
        ProviderKind::Facebook => plain!(Facebook),
        ProviderKind::LinkedIn => plain!(LinkedIn),
        ProviderKind::GitLab => {
            let mut provider = GitLab::new(id, secret)?.with_name(name);
            if let Some(scopes) = &p.scopes {
                provider = provider.with_default_scopes(scopes.clone());
            }
            if let Some(base) = &p.base_url {
                provider = provider
                    .with_base_url(&check_url(base, "base_url")?)
                    .trust_email_verified(p.trust_email_verified);
            }
            Arc::new(provider)
        }
        ProviderKind::Microsoft => {
            let mut provider = Microsoft::new(id, secret)?
                .with_tenant(p.tenant.as_deref().unwrap_or("common"))?
                .with_name(name);
            if let Some(scopes) = &p.scopes {
                provider = provider.with_default_scopes(scopes.clone());
            }
            Arc::new(provider)
        }
        ProviderKind::Oidc => {
            let issuer = p.issuer.clone().unwrap_or_default();
            let mut config = OpenIdConnectConfig::new(issuer, id, secret)
                .with_name(name)
                .trust_email_verified(p.trust_email_verified);
            if let Some(scopes) = &p.scopes {
                config = config.with_default_scopes(scopes.clone());
            }
            Arc::new(config.discover().await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> BTreeMap<String, ProviderConfig> {
        #[derive(Deserialize)]
        struct File {
            oauth: BTreeMap<String, ProviderConfig>,
        }
        toml::from_str::<File>(text).unwrap().oauth
    }

    #[test]
    fn valid_tables_pass_and_secrets_may_come_from_the_environment() {
        let providers = parse(
            "[oauth.corp]\nkind = \"oidc\"\nissuer = \"https://login.example.com\"\nclient_id = \"x\"\nclient_secret = \"s\"\n\
             [oauth.gh]\nkind = \"github\"\nclient_id = \"y\"\n",
        );
        assert!(
            validate(&providers, &|_| None)
                .unwrap_err()
                .to_string()
                .contains("AXUM_USERS_OAUTH_GH_CLIENT_SECRET")
        );
        validate(&providers, &|k| {
            (k == "AXUM_USERS_OAUTH_GH_CLIENT_SECRET").then(|| "s".into())
        })
        .unwrap();
    }

    #[test]
    fn bad_tables_name_the_provider_and_key() {
        for (text, needle) in [
            (
                "[oauth.x]\nkind = \"oidc\"\nclient_id = \"a\"\nclient_secret = \"b\"\n",
                "oauth.x.issuer",
            ),
            (
                "[oauth.x]\nkind = \"oidc\"\nissuer = \"ftp://a\"\nclient_id = \"a\"\nclient_secret = \"b\"\n",
                "oauth.x.issuer",
            ),
            (
                "[oauth.x]\nkind = \"github\"\nclient_id = \"\"\nclient_secret = \"b\"\n",
                "oauth.x.client_id",
            ),
            (
                "[oauth.\"a b\"]\nkind = \"github\"\nclient_id = \"a\"\nclient_secret = \"b\"\n",
                "oauth.a b",
            ),
        ] {
            let err = validate(&parse(text), &|_| None).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct File {
            oauth: BTreeMap<String, ProviderConfig>,
        }
        assert!(
            toml::from_str::<File>(
                "[oauth.x]\nkind = \"github\"\nclient_id = \"a\"\nclinet_secret = \"b\"\n"
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn builtin_providers_build_offline() {
        let providers = parse(
            "[oauth.google]\nkind = \"google\"\nclient_id = \"a\"\nclient_secret = \"b\"\n\
             [oauth.ms]\nkind = \"microsoft\"\ntenant = \"organizations\"\nclient_id = \"a\"\nclient_secret = \"b\"\n\
             [oauth.lab]\nkind = \"gitlab\"\nbase_url = \"https://gitlab.example.com\"\nclient_id = \"a\"\nclient_secret = \"b\"\nassociate_by_email = true\n",
        );
        let clients = clients(&providers, &|_| None).await.unwrap();
        let names: Vec<&str> = clients.iter().map(|c| c.provider.name()).collect();
        assert_eq!(names, ["google", "lab", "ms"]);
        assert!(clients[1].policy.associate_by_email);
    }
}
