//! Two server processes on one PostgreSQL and one Redis: tokens and logouts are shared at once.

use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn two_nodes_share_logins_and_logouts() {
    let Some(redis) = axum_users::testing::service_url("TEST_REDIS_URL", "Redis (two nodes)")
    else {
        return;
    };
    let db = databases()
        .await
        .into_iter()
        .find(|db| db.name == "PostgreSQL");
    let Some(db) = db else {
        println!("SKIPPED: two nodes on PostgreSQL (set TEST_POSTGRES_URL)");
        return;
    };
    let mut env = db.env();
    env.push(("AXUM_USERS_DB_TOKENS", "true".into()));
    env.push(("AXUM_USERS_REDIS_URL", redis));
    env.push((
        "AXUM_USERS_REDIS_KEY_PREFIX",
        format!("e2e_{}:", uuid::Uuid::new_v4().simple()),
    ));
    let a = start_env(&env);
    let b = start_env(&env);
    register(&a, "nora@example.com", "norapass").await;

    // A JWT of one node is accepted by the other (the shared secret).
    let jwt = login(&a, "nora@example.com", "norapass").await;
    assert_eq!(get_me(&b, &jwt).await.0, StatusCode::OK);

    for backend in ["db", "redis"] {
        let token = login_via(&a, backend, "nora@example.com", "norapass").await;
        assert_eq!(
            get_me(&b, &token).await.0,
            StatusCode::OK,
            "{backend}: B accepts A's token"
        );
        let on_b = login_via(&b, backend, "nora@example.com", "norapass").await;
        assert_eq!(
            get_me(&a, &on_b).await.0,
            StatusCode::OK,
            "{backend}: A accepts B's token"
        );

        assert_eq!(
            logout_via(&b, backend, &token).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            get_me(&a, &token).await.0,
            StatusCode::UNAUTHORIZED,
            "{backend}: a logout on B is seen at once on A"
        );
        assert_eq!(logout_via(&a, backend, &on_b).await, StatusCode::NO_CONTENT);
        assert_eq!(
            get_me(&b, &on_b).await.0,
            StatusCode::UNAUTHORIZED,
            "{backend}: a logout on A is seen at once on B"
        );
    }
    drop(a);
    drop(b);
    db.finish().await;
}
