//! `/users/me` and the superuser routes `/users/{id}`.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn patch_me_rules() {
    // The reference's immediate change (the confirmed one: tests/it/email_change.rs).
    let s = Server::start_with(&[("AXUM_USERS_EMAIL_CHANGE", "immediate")]);
    register(&s, "alice@example.com", "alicepass1").await;
    register(&s, "bob@example.com", "bobpass1").await;
    let token = login(&s, "alice@example.com", "alicepass1").await;
    let taken = json!({"detail": "UPDATE_USER_EMAIL_ALREADY_EXISTS"});
    assert_eq!(
        patch(
            &s,
            "/users/me",
            &token,
            json!({"email": "bob@example.com", "current_password": "alicepass1"})
        )
        .await,
        (StatusCode::BAD_REQUEST, taken.clone())
    );
    assert_eq!(
        patch(
            &s,
            "/users/me",
            &token,
            json!({"email": "ALICE@example.com", "current_password": "alicepass1"})
        )
        .await,
        (StatusCode::BAD_REQUEST, taken)
    );
    let (status, body) = patch(
        &s,
        "/users/me",
        &token,
        json!({"password": "ab", "current_password": "alicepass1"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"detail": {"code": "UPDATE_USER_INVALID_PASSWORD", "reason": "Password should be at least 3 characters"}})
    );

    // Nulls: a no-op for the password, 422 for columns that cannot be null (the reference: 500).
    assert_eq!(
        patch(&s, "/users/me", &token, json!({"password": null}))
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = patch(&s, "/users/me", &token, json!({"email": null})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "email"]));
    let (status, _) = patch(&s, "/users/me", &token, json!({"email": "not-an-email"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Authentication comes before field validation, JSON syntax before both.
    let c = client();
    let (status, _) = read(
        c.patch(s.url("/users/me"))
            .json(&json!({"email": 5}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = read(
        c.patch(s.url("/users/me"))
            .header("content-type", "application/json")
            .body("{\"email\":")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["detail"][0]["type"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("json_invalid"))
    );

    // Changing the e-mail clears is_verified; the JWT still works (sub is the id).
    let (status, body) = patch(
        &s,
        "/users/me",
        &token,
        json!({"email": "alice2@example.com", "password": "newpass", "current_password": "alicepass1"}),
    )
    .await;
    assert_eq!(
        (status, body["email"].clone(), body["is_verified"].clone()),
        (StatusCode::OK, json!("alice2@example.com"), json!(false))
    );
    assert_eq!(get_me(&s, &token).await.1["email"], "alice2@example.com");
    login(&s, "alice2@example.com", "newpass").await;
}

#[tokio::test]
async fn superuser_routes() {
    let s = Server::start();
    let alice = register(&s, "alice@example.com", "alicepass1").await;
    register(&s, "bob@example.com", "bobpass1").await;
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    let alice_token = login(&s, "alice@example.com", "alicepass1").await;
    let root = superuser(&s, "root@example.com").await;
    let c = client();
    let path = format!("/users/{alice_id}");

    assert_eq!(
        read(
            c.get(s.url(&path))
                .bearer_auth(&alice_token)
                .send()
                .await
                .unwrap()
        )
        .await,
        (StatusCode::FORBIDDEN, json!({"detail": "Forbidden"}))
    );
    assert_eq!(
        read(c.get(s.url(&path)).send().await.unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        read(
            c.get(s.url("/users/00000000-0000-0000-0000-000000000000"))
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = read(c.get(s.url(&path)).bearer_auth(&root).send().await.unwrap()).await;
    // The superuser's view is the user's plus its times (additive, docs/admin.md).
    assert_eq!(status, StatusCode::OK);
    for (key, value) in alice.as_object().unwrap() {
        assert_eq!(&body[key], value, "{key}");
    }
    assert!(body["created_at"].is_string(), "{body}");
    for unknown in [
        "/users/00000000-0000-0000-0000-000000000000",
        "/users/not-a-uuid",
    ] {
        assert_eq!(
            read(
                c.get(s.url(unknown))
                    .bearer_auth(&root)
                    .send()
                    .await
                    .unwrap()
            )
            .await,
            (StatusCode::NOT_FOUND, json!({"detail": "Not Found"}))
        );
    }
    // The simple (unhyphenated) form of a UUID names the same user.
    let simple = format!("/users/{}", alice_id.replace('-', ""));
    assert_eq!(
        read(
            c.get(s.url(&simple))
                .bearer_auth(&root)
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        StatusCode::OK
    );

    let (status, body) = patch(
        &s,
        &path,
        &root,
        json!({"is_superuser": true, "is_verified": true, "id": "ignored"}),
    )
    .await;
    assert_eq!(
        (
            status,
            body["is_superuser"].clone(),
            body["is_verified"].clone(),
            body["id"].clone()
        ),
        (StatusCode::OK, json!(true), json!(true), json!(alice_id))
    );
    assert_eq!(
        patch(&s, &path, &root, json!({"email": "bob@example.com"})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "UPDATE_USER_EMAIL_ALREADY_EXISTS"})
        )
    );
    assert_eq!(
        patch(
            &s,
            "/users/00000000-0000-0000-0000-000000000000",
            &root,
            json!({})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        patch(&s, &path, &root, json!({"is_active": null})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // E-mail change with is_verified in the same request: the explicit flag wins.
    let (_, body) = patch(
        &s,
        &path,
        &root,
        json!({"email": "alice3@example.com", "is_verified": true}),
    )
    .await;
    assert_eq!(
        (body["email"].clone(), body["is_verified"].clone()),
        (json!("alice3@example.com"), json!(true))
    );

    // DELETE /users/me falls through to /users/{id} with id "me": 404 for a superuser.
    assert_eq!(
        read(
            c.delete(s.url("/users/me"))
                .bearer_auth(&root)
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let bob_token = login(&s, "bob@example.com", "bobpass1").await;
    assert_eq!(
        read(
            c.delete(s.url(&path))
                .bearer_auth(&bob_token)
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let r = c
        .delete(s.url(&path))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        read(
            c.delete(s.url(&path))
                .bearer_auth(&root)
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get_me(&s, &alice_token).await.0, StatusCode::UNAUTHORIZED);
}
