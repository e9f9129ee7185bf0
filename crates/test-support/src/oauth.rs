//! The authorization server half: metadata, registration, authorize, token,
//! revocation.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Access, Client, Grant, IssMode, Refresh, Shared, now};

pub async fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

pub async fn protected_resource(State(s): State<Shared>) -> Response {
    s.record("GET /.well-known/oauth-protected-resource".to_owned());
    let b = s.behaviour();
    if !b.serve_prm {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut prm = json!({
        "resource": b.prm_resource_override.clone().unwrap_or_else(|| s.mcp_url()),
        "authorization_servers": b.authorization_servers.clone().unwrap_or_else(|| vec![s.issuer()]),
        "bearer_methods_supported": ["header"],
    });
    if let Some(scopes) = &b.scopes_supported {
        prm["scopes_supported"] = json!(scopes);
    }
    Json(prm).into_response()
}

pub async fn authorization_server(State(s): State<Shared>) -> Response {
    s.record("GET /.well-known/oauth-authorization-server".to_owned());
    let b = s.behaviour();
    if let Some(delay) = b.metadata_delay {
        tokio::time::sleep(delay).await;
    }
    let base = &s.base;
    let mut meta = json!({
        "issuer": b.metadata_issuer_override.clone().unwrap_or_else(|| s.issuer()),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": b.token_endpoint_auth_methods,
    });
    if !b.code_challenge_methods.is_empty() {
        meta["code_challenge_methods_supported"] = json!(b.code_challenge_methods);
    }
    if b.registration {
        meta["registration_endpoint"] = json!(format!("{base}/register"));
    }
    if b.revocation {
        meta["revocation_endpoint"] = json!(format!("{base}/revoke"));
    }
    if b.device_flow {
        meta["device_authorization_endpoint"] = json!(format!("{base}/device_authorization"));
        if let Some(grants) = meta["grant_types_supported"].as_array_mut() {
            grants.push(json!(DEVICE_GRANT));
        }
    }
    if let Some(scopes) = &b.scopes_supported {
        meta["scopes_supported"] = json!(scopes);
    }
    if matches!(b.iss, IssMode::Correct | IssMode::Wrong | IssMode::Missing) {
        meta["authorization_response_iss_parameter_supported"] = json!(true);
    }
    if let Some(size) = b.pad_metadata_to {
        meta["padding"] = json!("x".repeat(size));
    }
    patch(&mut meta, &b.metadata_patch);
    Json(meta).into_response()
}

/// Merges `fields` into the object `value`; a `null` field removes the key.
fn patch(value: &mut Value, fields: &serde_json::Map<String, Value>) {
    let Some(map) = value.as_object_mut() else { return };
    for (k, v) in fields {
        if v.is_null() {
            map.remove(k);
        } else {
            map.insert(k.clone(), v.clone());
        }
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    oauth_error_text(status, error, description, None)
}

fn oauth_error_text(status: StatusCode, error: &str, description: &str, instead: Option<String>) -> Response {
    let description = instead.unwrap_or_else(|| description.to_owned());
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

pub async fn register(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
    s.record("POST /register".to_owned());
    s.with(|i| i.log.registrations.push(body.clone()));
    let b = s.behaviour();
    if !b.registration || b.refuse_registration {
        return oauth_error_text(StatusCode::FORBIDDEN, "access_denied", "registration is closed", b.error_description);
    }
    let redirect_uris: Vec<String> = body["redirect_uris"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if redirect_uris.is_empty() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", "redirect_uris is required");
    }
    let auth_method = body["token_endpoint_auth_method"].as_str().unwrap_or("client_secret_basic").to_owned();
    let client_id = s.token("client");
    let secret = (auth_method != "none").then(|| s.token("secret"));
    s.with(|i| {
        i.clients.insert(
            client_id.clone(),
            Client { redirect_uris: redirect_uris.clone(), secret: secret.clone(), auth_method: auth_method.clone() },
        )
    });
    let mut answer = body.clone();
    answer["client_id"] = json!(client_id);
    answer["client_id_issued_at"] = json!(now());
    answer["token_endpoint_auth_method"] = json!(auth_method);
    if let Some(secret) = secret {
        answer["client_secret"] = json!(secret);
        answer["client_secret_expires_at"] = json!(0);
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}

pub async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    s.record("GET /authorize".to_owned());
    s.with(|i| i.log.authorizations.push(q.clone()));
    let b = s.behaviour();
    let get = |k: &str| q.get(k).cloned();
    let (Some(client_id), Some(redirect_uri), Some(challenge), Some(state)) =
        (get("client_id"), get("redirect_uri"), get("code_challenge"), get("state"))
    else {
        return (StatusCode::BAD_REQUEST, "missing client_id, redirect_uri, code_challenge or state").into_response();
    };
    let client = s.with(|i| i.clients.get(&client_id).cloned());
    let Some(client) = client else {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    };
    if !client.redirect_uris.is_empty() && !client.redirect_uris.contains(&redirect_uri) {
        return (StatusCode::BAD_REQUEST, "redirect_uri mismatch").into_response();
    }
    if get("response_type").as_deref() != Some("code") || get("code_challenge_method").as_deref() != Some("S256") {
        return redirect_with(&redirect_uri, &[("error", "invalid_request"), ("state", &state)]);
    }
    let code = s.token("code");
    s.with(|i| {
        i.codes.insert(
            code.clone(),
            Grant {
                client_id,
                redirect_uri: redirect_uri.clone(),
                challenge,
                scope: get("scope"),
                resource: get("resource"),
                prompt: get("prompt"),
            },
        )
    });
    let issuer = s.issuer();
    let state = b.forged_state.clone().unwrap_or(state);
    let mut params = vec![("code", code.as_str()), ("state", state.as_str())];
    match b.iss {
        IssMode::Correct => params.push(("iss", issuer.as_str())),
        IssMode::Wrong => params.push(("iss", "https://attacker.example")),
        IssMode::Absent | IssMode::Missing => {}
    }
    redirect_with(&redirect_uri, &params)
}

fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response();
    };
    url.query_pairs_mut().extend_pairs(params);
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

/// The client authenticated as its registration says, or an error response.
#[expect(clippy::result_large_err, reason = "test double; the error is the HTTP answer itself")]
fn authenticate(s: &Shared, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<String, Response> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| pair.split_once(':').map(|(id, secret)| (decode(id), decode(secret))));
    let (client_id, secret) = match (&basic, form.get("client_id")) {
        (Some((id, secret)), _) => (id.clone(), Some(secret.clone())),
        (None, Some(id)) => (id.clone(), form.get("client_secret").cloned()),
        (None, None) => {
            return Err(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "no client authentication"));
        }
    };
    let client = s.with(|i| i.clients.get(&client_id).cloned());
    let Some(client) = client else {
        return Err(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client"));
    };
    let used = match (&basic, form.contains_key("client_secret")) {
        (Some(_), _) => "client_secret_basic",
        (None, true) => "client_secret_post",
        (None, false) => "none",
    };
    if client.secret.is_some() && used != client.auth_method {
        let message = format!("client registered for {} but used {used}", client.auth_method);
        return Err(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &message));
    }
    match (&client.secret, secret) {
        (None, _) => Ok(client_id),
        (Some(want), Some(got)) if *want == got => Ok(client_id),
        _ => Err(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "bad client secret")),
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

pub async fn token(
    State(s): State<Shared>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    s.record("POST /token".to_owned());
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    s.with(|i| {
        i.log.token_requests.push(form.clone());
        i.log.token_user_agents.push(user_agent);
    });
    let client_id = match authenticate(&s, &headers, &form) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => exchange_code(&s, &client_id, &form),
        Some("refresh_token") => {
            let response = refresh(&s, &client_id, &form);
            hold_if_asked(&s).await;
            response
        }
        Some("client_credentials") => issue(&s, &client_id, form.get("scope").cloned(), false),
        Some(DEVICE_GRANT) if s.behaviour().device_flow => device_token(&s, &client_id, &form),
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "unknown grant_type"),
    }
}

fn exchange_code(s: &Shared, client_id: &str, form: &HashMap<String, String>) -> Response {
    let grant = form.get("code").and_then(|c| s.with(|i| i.codes.remove(c)));
    let Some(grant) = grant else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown or used code");
    };
    if grant.client_id != client_id || form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "client or redirect_uri mismatch");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed");
    }
    if grant.resource.is_some() && form.get("resource") != grant.resource.as_ref() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "resource differs from the authorization request",
        );
    }
    let b = s.behaviour();
    let offline = grant.scope.as_deref().is_some_and(|sc| sc.split(' ').any(|x| x == "offline_access"));
    let with_refresh = !b.oidc_offline_access || (offline && grant.prompt.as_deref() == Some("consent"));
    issue(s, client_id, grant.scope, with_refresh)
}

/// While refreshes are held, the answer (already computed: tokens issued,
/// the old refresh token spent) waits for the release, like a response still
/// in flight.
async fn hold_if_asked(s: &Shared) {
    let mut hold = s.hold.subscribe();
    if !*hold.borrow_and_update() {
        return;
    }
    s.held.send_modify(|h| *h += 1);
    let _ = hold.wait_for(|held| !*held).await;
    s.held.send_modify(|h| *h = h.saturating_sub(1));
}

fn refresh(s: &Shared, client_id: &str, form: &HashMap<String, String>) -> Response {
    let b = s.behaviour();
    let Some(presented) = form.get("refresh_token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token missing");
    };
    let note = |outcome: &'static str| {
        s.with(|i| i.log.refreshes.push(crate::RefreshResult { presented: presented.clone(), outcome }));
    };
    let known = s.with(|i| i.refresh.get(presented).cloned());
    let Some(known) = known.filter(|r| r.client_id == client_id) else {
        let reused = s.with(|i| i.spent.get(presented).copied());
        if let Some(family) = reused {
            s.with(|i| {
                i.log.reuse_events += 1;
                if b.reuse_detection {
                    // RFC 9700 §4.14.2: someone holds a stolen (or raced) copy; end the whole grant.
                    i.refresh.retain(|_, r| r.family != family);
                    i.access.retain(|_, a| a.family != family);
                }
            });
            note("reuse");
        } else {
            note("invalid_grant");
        }
        let description = b.error_description.clone();
        return oauth_error_text(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token unknown, spent or revoked",
            description,
        );
    };
    if b.rotate_refresh_tokens {
        s.with(|i| {
            i.refresh.remove(presented);
            i.spent.insert(presented.clone(), known.family);
        });
    }
    note("ok");
    let mut response = issue_in_family(
        s,
        client_id,
        known.scope,
        !b.omit_refresh_token_on_refresh && b.rotate_refresh_tokens,
        Some(known.family),
    );
    if !b.rotate_refresh_tokens && !b.omit_refresh_token_on_refresh {
        response["refresh_token"] = json!(presented);
    }
    Json(response).into_response()
}

fn issue(s: &Shared, client_id: &str, scope: Option<String>, with_refresh: bool) -> Response {
    Json(issue_tokens(s, client_id, scope, with_refresh)).into_response()
}

fn issue_tokens(s: &Shared, client_id: &str, scope: Option<String>, with_refresh: bool) -> Value {
    issue_in_family(s, client_id, scope, with_refresh, None)
}

/// Tokens descending from grant `family` (`None`: a new authorization), with
/// [`crate::Behaviour::token_response_patch`] applied.
fn issue_in_family(
    s: &Shared,
    client_id: &str,
    scope: Option<String>,
    with_refresh: bool,
    family: Option<u64>,
) -> Value {
    let lifetime = s.behaviour().access_token_lifetime;
    let family = family.unwrap_or_else(|| {
        s.with(|i| {
            i.counter += 1;
            i.counter
        })
    });
    let access = s.token("access");
    s.with(|i| i.access.insert(access.clone(), Access { expires_at: now() + lifetime, scope: scope.clone(), family }));
    let mut response = json!({"access_token": access, "token_type": "Bearer", "expires_in": lifetime});
    if let Some(scope) = &scope {
        response["scope"] = json!(scope);
    }
    if with_refresh {
        let refresh = s.token("refresh");
        s.with(|i| i.refresh.insert(refresh.clone(), Refresh { client_id: client_id.to_owned(), scope, family }));
        response["refresh_token"] = json!(refresh);
    }
    patch(&mut response, &s.behaviour().token_response_patch);
    response
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §3.1–3.2: a device code for the client, a user code for the person.
pub async fn device_authorization(
    State(s): State<Shared>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    s.record("POST /device_authorization".to_owned());
    let b = s.behaviour();
    if !b.device_flow {
        return StatusCode::NOT_FOUND.into_response();
    }
    let client_id = match authenticate(&s, &headers, &form) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let device_code = s.token("device");
    let n = s.with(|i| i.counter);
    let user_code = format!("WDJB-{n:04}");
    s.with(|i| {
        i.devices.insert(
            device_code.clone(),
            crate::DeviceGrant {
                client_id,
                user_code: user_code.clone(),
                scope: form.get("scope").cloned(),
                approved: false,
            },
        )
    });
    let page = format!("{}/device", s.base);
    Json(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": page,
        "verification_uri_complete": format!("{page}?user_code={user_code}"),
        "expires_in": 600,
        "interval": b.device_interval,
    }))
    .into_response()
}

/// RFC 8628 §3.4–3.5: pending until approved, then tokens, once.
fn device_token(s: &Shared, client_id: &str, form: &HashMap<String, String>) -> Response {
    let code = form.get("device_code").cloned().unwrap_or_default();
    let Some(grant) = s.with(|i| i.devices.get(&code).cloned()).filter(|g| g.client_id == client_id) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown or used device code");
    };
    if !grant.approved {
        return oauth_error(StatusCode::BAD_REQUEST, "authorization_pending", "the user has not approved yet");
    }
    s.with(|i| i.devices.remove(&code));
    issue(s, client_id, grant.scope, true)
}

pub async fn revoke(State(s): State<Shared>, axum::Form(form): axum::Form<HashMap<String, String>>) -> Response {
    s.record("POST /revoke".to_owned());
    let is_access = form.get("token").is_some_and(|t| s.with(|i| i.access.contains_key(t)));
    if is_access && s.behaviour().unsupported_access_token_revocation {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_token_type",
            "access tokens are JWTs; revoke the refresh token",
        );
    }
    if let Some(token) = form.get("token") {
        s.with(|i| {
            i.log.revocations.push(token.clone());
            i.refresh.remove(token);
            i.access.remove(token);
        });
    }
    StatusCode::OK.into_response()
}
