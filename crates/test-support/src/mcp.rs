//! The MCP resource server half: a Streamable HTTP endpoint answering JSON,
//! guarded by bearer tokens from the authorization server half (and, with
//! [`crate::Behaviour::legacy_sse`], a legacy HTTP+SSE one: [`crate::sse`]).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{Access, Shared, ToolPaging, now};

pub async fn method_not_allowed() -> Response {
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}

fn challenge(s: &Shared, error: Option<(&str, &str)>, scope: Option<&str>) -> HeaderValue {
    let b = s.behaviour();
    let mut parts = vec![];
    if let Some((code, description)) = error {
        parts.push(format!("error=\"{code}\""));
        parts.push(format!("error_description=\"{description}\""));
    }
    if let Some(scope) = scope.map(str::to_owned).or(b.challenge_scope) {
        parts.push(format!("scope=\"{scope}\""));
    }
    if b.serve_prm {
        parts.push(format!("resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"", s.base));
    }
    let value = if parts.is_empty() { "Bearer".to_owned() } else { format!("Bearer {}", parts.join(", ")) };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"))
}

pub async fn handle(State(s): State<Shared>, headers: HeaderMap, Json(request): Json<Value>) -> Response {
    s.record("POST /mcp".to_owned());
    if let Some(status) = s.behaviour().mcp_status.and_then(|c| StatusCode::from_u16(c).ok()) {
        return status.into_response();
    }
    if s.behaviour().legacy_sse && s.behaviour().sse_post_unrouted {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let access = match authorized(&s, &headers) {
        Ok(access) => access,
        Err(refused) => return refused,
    };
    if s.behaviour().legacy_sse {
        // A legacy HTTP+SSE server behind the same auth gateway: POST is not
        // how this URL is spoken to (the messages go to its endpoint).
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    match answer(&s, access, &request) {
        Ok(Some(answer)) => Json(answer).into_response(),
        Ok(None) => StatusCode::ACCEPTED.into_response(),
        Err(refused) => refused,
    }
}

/// The valid, unexpired access token of `headers`, or the 401/403 answer.
#[expect(
    clippy::result_large_err,
    reason = "a test server answering once per request; the refusal is the response itself"
)]
pub(crate) fn authorized(s: &Shared, headers: &HeaderMap) -> Result<Access, Response> {
    let token =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let access = token.and_then(|t| s.with(|i| i.access.get(t).cloned()));
    let Some(access) = access else {
        let error = token.map(|_| ("invalid_token", "unknown token"));
        return Err((StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge(s, error, None))]).into_response());
    };
    if access.expires_at <= now() {
        let value = challenge(s, Some(("invalid_token", "token expired")), None);
        return Err((StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, value)]).into_response());
    }
    if let Some(needed) = s.behaviour().mcp_scope
        && !access.scope.as_deref().unwrap_or_default().split(' ').any(|g| g == needed)
    {
        let value = challenge(s, Some(("insufficient_scope", "this server now needs more access")), Some(&needed));
        return Err((StatusCode::FORBIDDEN, [(header::WWW_AUTHENTICATE, value)]).into_response());
    }
    Ok(access)
}

/// The JSON-RPC answer to `request` (`None` for a notification), or the
/// HTTP answer that refuses it.
#[expect(
    clippy::result_large_err,
    reason = "a test server answering once per request; the refusal is the response itself"
)]
pub(crate) fn answer(s: &Shared, access: Access, request: &Value) -> Result<Option<Value>, Response> {
    let method = request["method"].as_str().unwrap_or_default().to_owned();
    s.with(|i| i.log.mcp_calls.push(method.clone()));
    let id = request.get("id").cloned();
    let Some(id) = id else {
        // A notification.
        return Ok(None);
    };
    let result = match method.as_str() {
        "initialize" => {
            let asked = request["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18").to_owned();
            json!({
                "protocolVersion": asked,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "mcp-auth-test-server", "version": "1.0.0"}
            })
        }
        "tools/list" => {
            let tool = |name: String| json!({"name": name, "description": "Answers ok", "inputSchema": {"type": "object", "properties": {}}});
            let cursor = request["params"]["cursor"].as_str().map(str::to_owned);
            match (s.behaviour().tool_paging, cursor) {
                (ToolPaging::Single, _) => json!({"tools": [tool("test-tool".to_owned())]}),
                (ToolPaging::Endless, cursor) => {
                    let n = cursor.and_then(|c| c.strip_prefix("page-")?.parse::<u64>().ok()).unwrap_or(0) + 1;
                    json!({"tools": [tool(format!("tool-{n}"))], "nextCursor": format!("page-{n}")})
                }
                (ToolPaging::Repeated, _) => json!({"tools": [tool("test-tool".to_owned())], "nextCursor": "again"}),
            }
        }
        "tools/call" => {
            if let Some(needed) = s.behaviour().tool_scope {
                let granted = access.scope.unwrap_or_default();
                if !granted.split(' ').any(|g| g == needed) {
                    let value = challenge(s, Some(("insufficient_scope", "more scope needed")), Some(&needed));
                    return Err((StatusCode::FORBIDDEN, [(header::WWW_AUTHENTICATE, value)]).into_response());
                }
            }
            json!({"content": [{"type": "text", "text": "ok"}], "isError": false})
        }
        "ping" => json!({}),
        other => {
            return Ok(Some(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("no method {other}")}}),
            ));
        }
    };
    Ok(Some(json!({"jsonrpc": "2.0", "id": id, "result": result})))
}
