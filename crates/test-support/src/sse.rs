//! A legacy HTTP+SSE MCP endpoint (MCP 2024-11-05), with
//! [`crate::Behaviour::legacy_sse`]: `GET /mcp` opens an event stream whose
//! first event, `endpoint`, names `/messages?sessionId=<id>`; JSON-RPC
//! messages POSTed there are answered as `message` events on that stream
//! (the POST itself gets 202). The bearer token is required on the GET and
//! on every POST, checked as on the Streamable HTTP endpoint. Bounded: at
//! most [`MAX_SESSIONS`] streams, [`QUEUE`] answers waiting per stream.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::Shared;
use crate::mcp::{answer, authorized, method_not_allowed};

/// Streams open at once.
pub const MAX_SESSIONS: usize = 64;
/// Answers waiting to be written, per stream.
const QUEUE: usize = 64;

/// `GET /mcp`: the event stream, when the server speaks legacy SSE.
pub async fn stream(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if !s.behaviour().legacy_sse {
        return method_not_allowed().await;
    }
    s.record("GET /mcp".to_owned());
    if let Err(refused) = authorized(&s, &headers) {
        return refused;
    }
    if s.with(|i| i.sse_sessions.len()) >= MAX_SESSIONS {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let id = s.token("session");
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(QUEUE);
    s.with(|i| {
        i.sse_sessions.insert(id.clone(), tx);
        i.log.sse_streams += 1;
    });
    let endpoint = s.behaviour().sse_endpoint.unwrap_or_else(|| format!("/messages?sessionId={id}"));
    let first = Event::default().event("endpoint").data(endpoint);
    // When the stream ends (the client left), the session goes with it.
    let guard = SessionGuard { shared: s.clone(), id };
    let messages = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let data = rx.recv().await?;
        Some((Ok::<_, Infallible>(Event::default().event("message").data(data)), (rx, guard)))
    });
    let events = futures_util::stream::StreamExt::chain(futures_util::stream::once(async { Ok(first) }), messages);
    Sse::new(events).into_response()
}

struct SessionGuard {
    shared: Shared,
    id: String,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.shared.with(|i| i.sse_sessions.remove(&self.id));
    }
}

/// `POST /messages?sessionId=<id>`: one JSON-RPC message of a stream's session.
pub async fn message(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> Response {
    s.record("POST /messages".to_owned());
    let access = match authorized(&s, &headers) {
        Ok(access) => access,
        Err(refused) => return refused,
    };
    let session = q.get("sessionId").and_then(|id| s.with(|i| i.sse_sessions.get(id).cloned()));
    let Some(session) = session else { return StatusCode::NOT_FOUND.into_response() };
    match answer(&s, access, &request) {
        Ok(Some(answer)) => {
            if session.try_send(answer.to_string()).is_err() {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            StatusCode::ACCEPTED.into_response()
        }
        Ok(None) => StatusCode::ACCEPTED.into_response(),
        Err(refused) => refused,
    }
}
