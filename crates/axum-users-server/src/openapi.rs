//! The OpenAPI 3.1 document of the server's API, and an offline page that renders it.

use serde_json::{Value, json};

fn error_response(description: &str, codes: &[&str]) -> Value {
    let examples: serde_json::Map<String, Value> = codes
        .iter()
        .map(|c| {
            (
                (*c).to_owned(),
                json!({"summary": c, "value": {"detail": c}}),
            )
        })
        .collect();
    let mut content = json!({"schema": {"$ref": "#/components/schemas/ErrorModel"}});
    if !examples.is_empty() {
        content["examples"] = Value::Object(examples);
    }
    json!({"description": description, "content": {"application/json": content}})
}

fn schema_response(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn json_body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn validation() -> Value {
    schema_response("Validation Error", "HTTPValidationError")
}

fn secured() -> Value {
    json!([{"OAuth2PasswordBearer": []}, {"APIKeyCookie": []}])
}

fn null_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"type": "null"}}}})
}

/// The document, with login and logout operations for each backend name.
pub(crate) fn document(backends: &[(String, bool)], providers: &[String]) -> Value {
    let mut paths = serde_json::Map::new();
    add_oauth(&mut paths, providers);
    for (name, is_cookie) in backends {
        let mut login_responses = json!({
            "400": error_response("Bad credentials or the user is inactive.", &["LOGIN_BAD_CREDENTIALS", "LOGIN_USER_NOT_VERIFIED"]),
            "422": validation(),
        });
        if *is_cookie {
            login_responses["204"] = json!({"description": "Logged in; the auth cookie is set."});
        } else {
            login_responses["200"] = schema_response("Logged in.", "BearerResponse");
        }
        paths.insert(format!("/auth/{name}/login"), json!({"post": {
            "tags": ["auth"], "summary": "Log in", "operationId": format!("auth_{name}_login"),
            "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/LoginForm"}}}},
            "responses": login_responses,
        }}));
        paths.insert(format!("/auth/{name}/logout"), json!({"post": {
            "tags": ["auth"], "summary": "Log out", "operationId": format!("auth_{name}_logout"),
            "security": secured(),
            "responses": {"204": {"description": "Logged out."}, "401": error_response("Missing token or inactive user.", &[])},
        }}));
    }
    paths.insert("/auth/register".into(), json!({"post": {
        "tags": ["auth"], "summary": "Register", "operationId": "register",
        "requestBody": json_body("UserCreate"),
        "responses": {
            "201": schema_response("The new user.", "UserRead"),
            "400": error_response("The e-mail is taken or the password refused.", &["REGISTER_USER_ALREADY_EXISTS", "REGISTER_INVALID_PASSWORD"]),
            "422": validation(),
        },
    }}));
    paths.insert("/auth/forgot-password".into(), json!({"post": {
        "tags": ["auth"], "summary": "Forgot password", "operationId": "forgot_password",
        "requestBody": json_body("EmailBody"),
        "responses": {"202": null_response("Accepted, whether or not the address has an account."), "422": validation()},
    }}));
    paths.insert("/auth/reset-password".into(), json!({"post": {
        "tags": ["auth"], "summary": "Reset password", "operationId": "reset_password",
        "requestBody": json_body("ResetPasswordBody"),
        "responses": {
            "200": null_response("The password was reset."),
            "400": error_response("Bad token or refused password.", &["RESET_PASSWORD_BAD_TOKEN", "RESET_PASSWORD_INVALID_PASSWORD"]),
            "422": validation(),
        },
    }}));
    paths.insert("/auth/request-verify-token".into(), json!({"post": {
        "tags": ["auth"], "summary": "Request a verification e-mail", "operationId": "request_verify_token",
        "requestBody": json_body("EmailBody"),
        "responses": {"202": null_response("Accepted, whether or not the address has an account."), "422": validation()},
    }}));
    paths.insert("/auth/verify".into(), json!({"post": {
        "tags": ["auth"], "summary": "Verify an e-mail address", "operationId": "verify",
        "requestBody": json_body("VerifyBody"),
        "responses": {
            "200": schema_response("The verified user.", "UserRead"),
            "400": error_response("Bad token or already verified.", &["VERIFY_USER_BAD_TOKEN", "VERIFY_USER_ALREADY_VERIFIED"]),
            "422": validation(),
        },
    }}));
    let update_errors = &[
        "UPDATE_USER_EMAIL_ALREADY_EXISTS",
        "UPDATE_USER_INVALID_PASSWORD",
    ];
    paths.insert("/users/me".into(), json!({
        "get": {"tags": ["users"], "summary": "The current user", "operationId": "users_current_user", "security": secured(),
            "responses": {"200": schema_response("The current user.", "UserRead"), "401": error_response("Missing token or inactive user.", &[])}},
        "patch": {"tags": ["users"], "summary": "Update the current user", "operationId": "users_patch_current_user", "security": secured(),
            "requestBody": json_body("UserUpdate"),
            "responses": {"200": schema_response("The updated user.", "UserRead"), "400": error_response("E-mail taken or password refused.", update_errors),
                "401": error_response("Missing token or inactive user.", &[]), "422": validation()}},
    }));
    let id_param =
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let superuser_errors = json!({
        "401": error_response("Missing token or inactive user.", &[]),
        "403": error_response("Not a superuser.", &[]),
        "404": error_response("No such user.", &[]),
    });
    let with = |mut base: Value, extra: Value| {
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    };
    paths.insert("/users/{id}".into(), json!({
        "get": {"tags": ["users"], "summary": "A user (superuser)", "operationId": "users_user", "security": secured(), "parameters": id_param,
            "responses": with(json!({"200": schema_response("The user.", "UserRead")}), superuser_errors.clone())},
        "patch": {"tags": ["users"], "summary": "Update a user (superuser)", "operationId": "users_patch_user", "security": secured(), "parameters": id_param,
            "requestBody": json_body("UserUpdate"),
            "responses": with(json!({"200": schema_response("The updated user.", "UserRead"), "400": error_response("E-mail taken or password refused.", update_errors), "422": validation()}), superuser_errors.clone())},
        "delete": {"tags": ["users"], "summary": "Delete a user (superuser)", "operationId": "users_delete_user", "security": secured(), "parameters": id_param,
            "responses": with(json!({"204": {"description": "Deleted."}}), superuser_errors)},
    }));
    paths.insert(
        "/health".into(),
        json!({"get": {"tags": ["operations"], "summary": "Liveness", "operationId": "health",
        "responses": {"200": {"description": "The process is up."}}}}),
    );
    paths.insert("/ready".into(), json!({"get": {"tags": ["operations"], "summary": "Readiness: the database answers", "operationId": "ready",
        "responses": {"200": {"description": "Ready."}, "503": {"description": "The database does not answer."}}}}));

    let bool_field = json!({"type": "boolean"});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "axum-users", "version": env!("CARGO_PKG_VERSION"),
                 "description": "User management API, wire-compatible with FastAPI Users v15."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "OAuth2PasswordBearer": {"type": "oauth2", "flows": {"password": {"scopes": {}, "tokenUrl": "auth/jwt/login"}}},
                "APIKeyCookie": {"type": "apiKey", "in": "cookie", "name": "fastapiusersauth"},
            },
            "schemas": {
                "UserRead": {"type": "object", "required": ["id", "email"], "properties": {
                    "id": {"type": "string", "format": "uuid"}, "email": {"type": "string", "format": "email"},
                    "is_active": bool_field, "is_superuser": bool_field, "is_verified": bool_field}},
                "UserCreate": {"type": "object", "required": ["email", "password"], "properties": {
                    "email": {"type": "string", "format": "email"}, "password": {"type": "string"},
                    "is_active": bool_field, "is_superuser": bool_field, "is_verified": bool_field}},
                "UserUpdate": {"type": "object", "properties": {
                    "email": {"type": "string", "format": "email"}, "password": {"type": ["string", "null"]},
                    "is_active": bool_field, "is_superuser": bool_field, "is_verified": bool_field}},
                "LoginForm": {"type": "object", "required": ["username", "password"], "properties": {
                    "grant_type": {"type": "string", "pattern": "^password$"}, "username": {"type": "string"},
                    "password": {"type": "string", "format": "password"}, "scope": {"type": "string", "default": ""},
                    "client_id": {"type": "string"}, "client_secret": {"type": "string", "format": "password"}}},
                "BearerResponse": {"type": "object", "required": ["access_token", "token_type"], "properties": {
                    "access_token": {"type": "string"}, "token_type": {"type": "string"}}},
                "EmailBody": {"type": "object", "required": ["email"], "properties": {"email": {"type": "string", "format": "email"}}},
                "ResetPasswordBody": {"type": "object", "required": ["token", "password"], "properties": {
                    "token": {"type": "string"}, "password": {"type": "string"}}},
                "VerifyBody": {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}},
                "ErrorModel": {"type": "object", "required": ["detail"], "properties": {"detail": {"anyOf": [
                    {"type": "string"}, {"type": "object", "properties": {"code": {"type": "string"}, "reason": {}}}]}}},
                "ValidationError": {"type": "object", "required": ["loc", "msg", "type"], "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"}, "type": {"type": "string"}, "input": {}, "ctx": {"type": "object"}}},
                "HTTPValidationError": {"type": "object", "properties": {"detail": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}}},
            },
        },
    })
}

/// The OAuth routes of each provider, and the linked-accounts routes.
fn add_oauth(paths: &mut serde_json::Map<String, Value>, providers: &[String]) {
    let callback_errors = &[
        "OAUTH_INVALID_STATE",
        "ACCESS_TOKEN_DECODE_ERROR",
        "ACCESS_TOKEN_ALREADY_EXPIRED",
        "OAUTH_CODE_EXCHANGE_FAILED",
        "OAUTH_INVALID_ID_TOKEN",
        "OAUTH_NOT_AVAILABLE_EMAIL",
    ];
    let scopes = json!([{"name": "scopes", "in": "query", "required": false, "schema": {"type": "array", "items": {"type": "string"}}}]);
    let callback_params = json!([
        {"name": "code", "in": "query", "schema": {"type": "string"}},
        {"name": "state", "in": "query", "schema": {"type": "string"}},
        {"name": "error", "in": "query", "schema": {"type": "string"}},
    ]);
    let authorize_response = json!({"description": "The provider's authorization URL; sets the CSRF cookie.",
        "content": {"application/json": {"schema": {"type": "object", "properties": {"authorization_url": {"type": "string"}}}}}});
    for name in providers {
        let mut sign_in_errors: Vec<&str> = callback_errors.to_vec();
        sign_in_errors.extend(["OAUTH_USER_ALREADY_EXISTS", "LOGIN_BAD_CREDENTIALS"]);
        paths.insert(format!("/auth/{name}/authorize"), json!({"get": {
            "tags": ["oauth"], "summary": format!("Sign in with {name}"), "operationId": format!("oauth_{name}_authorize"),
            "parameters": scopes, "responses": {"200": authorize_response}}}));
        paths.insert(format!("/auth/{name}/callback"), json!({"get": {
            "tags": ["oauth"], "summary": format!("Callback of {name}: signs the user in"), "operationId": format!("oauth_{name}_callback"),
            "parameters": callback_params,
            "responses": {"200": schema_response("Signed in (Bearer backend).", "BearerResponse"),
                          "204": {"description": "Signed in (cookie backend)."},
                          "303": {"description": "Signed in; redirect to the front end."},
                          "400": error_response("The flow was refused.", &sign_in_errors),
                          "502": error_response("The provider cannot be reached.", &["OAUTH_PROVIDER_UNAVAILABLE"])}}}));
        paths.insert(format!("/auth/associate/{name}/authorize"), json!({"get": {
            "tags": ["oauth"], "summary": format!("Link a {name} account to the current user"), "operationId": format!("oauth_associate_{name}_authorize"),
            "security": secured(), "parameters": scopes,
            "responses": {"200": authorize_response, "401": error_response("Missing token or inactive user.", &[])}}}));
        let mut link_errors: Vec<&str> = callback_errors.to_vec();
        link_errors.push("OAUTH_ACCOUNT_ALREADY_LINKED");
        paths.insert(format!("/auth/associate/{name}/callback"), json!({"get": {
            "tags": ["oauth"], "summary": format!("Callback of {name}: links the account"), "operationId": format!("oauth_associate_{name}_callback"),
            "security": secured(), "parameters": callback_params,
            "responses": {"200": schema_response("The user.", "UserRead"), "400": error_response("The flow was refused.", &link_errors),
                          "401": error_response("Missing token or inactive user.", &[])}}}));
    }
    paths.insert("/users/me/oauth-accounts".into(), json!({"get": {
        "tags": ["users"], "summary": "The current user's linked accounts (no tokens)", "operationId": "users_oauth_accounts",
        "security": secured(),
        "responses": {"200": {"description": "The linked accounts.", "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "oauth_name": {"type": "string"}, "account_id": {"type": "string"},
            "account_email": {"type": "string"}, "expires_at": {"type": ["integer", "null"]}}}}}}},
            "401": error_response("Missing token or inactive user.", &[])}}}));
    paths.insert("/users/me/oauth-accounts/{id}".into(), json!({"delete": {
        "tags": ["users"], "summary": "Unlink an account", "operationId": "users_unlink_oauth_account", "security": secured(),
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"204": {"description": "Unlinked."}, "400": error_response("It is the last way to sign in.", &["OAUTH_LAST_SIGN_IN_METHOD"]),
                      "401": error_response("Missing token or inactive user.", &[]), "404": error_response("No such linked account.", &[])}}}));
}

/// A self-contained page listing the operations of `/openapi.json`: no CDN, works offline.
pub(crate) const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>axum-users API</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem} details{border:1px solid #ddd;border-radius:6px;margin:.5rem 0;padding:.5rem}
summary{cursor:pointer;font-family:monospace;font-size:1rem}
.m{display:inline-block;min-width:4.5rem;font-weight:bold}
.get{color:#0a7}.post{color:#06c}.patch{color:#a60}.delete{color:#c33}
pre{background:#f6f6f6;padding:.5rem;overflow:auto;font-size:.8rem}
</style></head><body>
<h1>axum-users API</h1><p id="info">Loading <a href="/openapi.json">/openapi.json</a>...</p><div id="ops"></div>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  document.getElementById('info').textContent = doc.info.description + ' Version ' + doc.info.version + '.';
  const ops = document.getElementById('ops');
  const resolve = s => s && s.$ref ? doc.components.schemas[s.$ref.split('/').pop()] : s;
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const d = document.createElement('details');
      const s = document.createElement('summary');
      s.innerHTML = '<span class="m ' + method + '">' + method.toUpperCase() + '</span>';
      s.appendChild(document.createTextNode(path + ' — ' + (op.summary || '')));
      d.appendChild(s);
      const body = op.requestBody ? Object.entries(op.requestBody.content).map(([t, c]) => t + '\n' + JSON.stringify(resolve(c.schema), null, 2)).join('\n') : 'none';
      const responses = Object.entries(op.responses).map(([code, r]) => code + ' ' + r.description +
        (r.content && r.content['application/json'] && r.content['application/json'].examples ? '  ' + Object.keys(r.content['application/json'].examples).join(', ') : '')).join('\n');
      const pre = document.createElement('pre');
      pre.textContent = 'Request body: ' + body + '\n\nResponses:\n' + responses + (op.security ? '\n\nAuthentication: Bearer token or auth cookie' : '');
      d.appendChild(pre);
      ops.appendChild(d);
    }
  }
}).catch(e => { document.getElementById('info').textContent = 'Could not load /openapi.json: ' + e; });
</script></body></html>
"#;
