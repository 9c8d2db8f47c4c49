//! An application with its own user field, `display_name`, on SQLite.
//!
//! ```sh
//! APP_SECRET=$(head -c 48 /dev/urandom | base64) cargo run -p axum-users-sqlx --example custom_fields
//! curl -X POST localhost:3000/auth/register -H 'content-type: application/json' \
//!      -d '{"email":"ann@example.com","password":"a long password","display_name":"Ann"}'
//! ```

use axum::Router;
use axum_users::{AxumUsers, UserFields};
use axum_users_sqlx::SqlStore;
use serde::{Deserialize, Serialize};

/// The fields this application adds to every user: returned with the user, set at registration,
/// changed by `PATCH /users/me`, kept by the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Profile {
    #[serde(default)]
    display_name: Option<String>,
}

/// What a PATCH may change.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ProfileUpdate {
    #[serde(default)]
    display_name: Option<String>,
}

impl UserFields for Profile {
    type Update = ProfileUpdate;

    fn apply(&mut self, update: ProfileUpdate) {
        if update.display_name.is_some() {
            self.display_name = update.display_name;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let store: SqlStore<uuid::Uuid, Profile> =
        SqlStore::connect("sqlite://custom-fields.db").await?;
    store.migrate().await?;
    let secret = std::env::var("APP_SECRET")
        .map_err(|_| anyhow::anyhow!("set APP_SECRET (at least 32 bytes)"))?;
    let users = AxumUsers::builder(store, secret).build()?;
    let app: Router = users.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
