//! The legacy HTTP+SSE client transport (MCP 2024-11-05) of `mcp-auth
//! proxy`, for servers that never moved to Streamable HTTP. rmcp 3.11 has
//! no client for it, so this is one, built the way rmcp builds its own
//! Streamable HTTP client: a [`Worker`] behind rmcp's [`WorkerTransport`],
//! with `sse-stream` (the parser rmcp uses) reading the event stream.
//!
//! The protocol: `GET <server URL>` opens an event stream whose first event,
//! `endpoint`, names the URL to POST JSON-RPC messages to; every response and
//! server message arrives as a `message` event on the stream. The rules here:
//! - **Same origin only.** The endpoint is resolved against the server URL
//!   and must have its scheme, host and port ([`endpoint_url`]): a server
//!   cannot make the proxy send the bearer token, or the client's messages,
//!   anywhere else. Anything else ends the connection with
//!   [`SseError::CrossOrigin`].
//! - **Bounded.** One event is at most [`SseConfig::max_event_bytes`]
//!   (counted on the raw bytes before the parser buffers them, by
//!   [`EventSizeLimit`]); the endpoint is at most [`MAX_ENDPOINT_BYTES`] and
//!   must come within [`SseConfig::endpoint_timeout`]; the stream's response
//!   headers within the HTTP client's timeout. POSTs go one at a time, in the
//!   client's order (a legacy server answers a POST at once with 202; the
//!   result comes on the stream), so at most one is in flight.
//! - **The vault's token** on the GET and on every POST, from
//!   [`Credentials`]; a 401 on either is handled as on the Streamable HTTP
//!   path: one renewal through the refresh transaction, the request once
//!   more, else [`Credentials::give_up`] (the "sign in again" error, noted
//!   for the tray).
//! - **Reconnects are bounded** ([`SseConfig::reconnects`], with doubling
//!   delays). A legacy session lives as long as its stream: a new stream is a
//!   new session, so after reconnecting the client's `initialize` and
//!   `notifications/initialized` are sent again (the answer is not relayed:
//!   the client already has one), and the requests that were waiting for an
//!   answer on the lost stream are answered with an error (their answers are
//!   gone with it). When every attempt fails, the transport ends and the
//!   relay answers the client with the reason.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage};
use rmcp::transport::worker::{Worker, WorkerContext, WorkerQuitReason, WorkerSendRequest, WorkerTransport};

use super::proxy::{Credentials, PROXY_ERROR_CODE, ProxyError};
use crate::oauth::http::Http;
use crate::util::secret::SecretString;

/// A parsed event stream.
pub type Events = BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>;

/// Longest `endpoint` event data accepted (a URL).
pub const MAX_ENDPOINT_BYTES: usize = 2048;

/// The limits and reconnect policy of one legacy SSE connection.
#[derive(Debug, Clone)]
pub struct SseConfig {
    /// Largest event (its raw lines, as received), bytes.
    pub max_event_bytes: usize,
    /// How long the server may take to send its `endpoint` event.
    pub endpoint_timeout: Duration,
    /// New streams tried after the stream is lost, before giving up.
    pub reconnects: usize,
    /// Wait before the first reconnect; doubled for each next one.
    pub reconnect_delay: Duration,
}

impl Default for SseConfig {
    fn default() -> Self {
        Self {
            // As rmcp's Streamable HTTP client (a tool result can be large).
            max_event_bytes: 16 * 1024 * 1024,
            endpoint_timeout: Duration::from_secs(30),
            reconnects: 3,
            reconnect_delay: Duration::from_secs(1),
        }
    }
}

/// How long one event stream may stay open. Our HTTP client's whole-request
/// timeout (30 s) would end every legacy session; a stream is instead ended
/// by the server, the network, or the client leaving.
const STREAM_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a legacy SSE connection failed.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The server is not a legacy SSE server (auto-detection tries the other transport).
    #[error("{url} is not a legacy SSE MCP server: {reason}")]
    NotSse { url: String, reason: String },
    #[error(
        "the legacy SSE server {url} named a messages endpoint on another origin ({endpoint}); refusing to send anything there"
    )]
    CrossOrigin { url: String, endpoint: String },
    #[error("the legacy SSE server {url} sent an unusable messages endpoint: {reason}")]
    BadEndpoint { url: String, reason: String },
    #[error("no `endpoint` event from {url} within {} s", timeout.as_secs())]
    NoEndpoint { url: String, timeout: Duration },
    #[error("an event from {url} is larger than {limit} bytes")]
    EventTooLarge { url: String, limit: usize },
    #[error("HTTP {status} from {url}")]
    Status { url: String, status: u16 },
    #[error("cannot reach {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server refused the token (401); retried once by [`with_token`].
    #[error("the server refused the access token")]
    Unauthorized,
    /// No token to send: not signed in, or only a new sign-in helps.
    #[error(transparent)]
    Token(ProxyError),
    #[error("the event stream from {url} was lost and could not be opened again")]
    Lost { url: String },
    #[error("the legacy SSE connection is closed")]
    Closed,
}

impl SseError {
    /// Whether the server answered, but not as a legacy SSE server (so
    /// auto-detection may try Streamable HTTP instead).
    pub fn is_wrong_transport(&self) -> bool {
        matches!(self, Self::NotSse { .. })
    }
}

/// Counts the raw bytes of the current event (and line) of an SSE byte
/// stream, so that a server cannot make the parser buffer without end: an
/// event ends at a blank line; comment lines (`:`) are not kept by the
/// parser, so only their own length is bounded.
#[derive(Debug, Clone)]
pub struct EventSizeLimit {
    max: usize,
    event: usize,
    line: usize,
    comment: bool,
    after_cr: bool,
}

impl EventSizeLimit {
    pub fn new(max: usize) -> Self {
        Self { max, event: 0, line: 0, comment: false, after_cr: false }
    }

    /// Takes in the next chunk; `false` once an event or line is over the limit.
    pub fn observe(&mut self, chunk: &[u8]) -> bool {
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    if self.line == 0 {
                        self.event = 0;
                    } else if !self.comment {
                        // The parser joins data lines with a newline.
                        self.event = self.event.saturating_add(self.line + 1);
                    }
                    self.line = 0;
                    self.comment = false;
                }
                _ => {
                    if self.line == 0 {
                        self.comment = byte == b':';
                    }
                    self.line += 1;
                }
            }
            if self.event.saturating_add(self.line) > self.max {
                return false;
            }
        }
        true
    }
}

/// The byte stream was cut because an event was too large.
#[derive(Debug, thiserror::Error)]
#[error("an event is larger than {limit} bytes")]
pub struct TooLarge {
    pub limit: usize,
}

/// Parses `bytes` as an event stream (`sse-stream`), refusing any event
/// larger than `max_event_bytes`: the stream ends with an error wrapping
/// [`TooLarge`] there.
pub fn bounded_events<S, E>(bytes: S, max_event_bytes: usize) -> Events
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut limit = EventSizeLimit::new(max_event_bytes);
    let checked = bytes.map(move |chunk| match chunk {
        Ok(chunk) if limit.observe(&chunk) => Ok(chunk),
        Ok(_) => Err(Cut::TooLarge(TooLarge { limit: max_event_bytes })),
        Err(e) => Err(Cut::Source(Box::new(e))),
    });
    // After the first error nothing more is read, and nothing more is
    // parsed: `sse-stream` goes on after a line that is not UTF-8, but a
    // stream that broke once is not to be trusted for what follows.
    until_first_error(sse_stream::SseStream::from_bytes_stream(until_first_error(checked))).boxed()
}

/// `stream` up to and including its first error.
fn until_first_error<S, T, E>(stream: S) -> impl futures_util::Stream<Item = Result<T, E>>
where
    S: futures_util::Stream<Item = Result<T, E>>,
{
    let mut stop = false;
    stream.take_while(move |item| {
        let go = !stop;
        stop = stop || item.is_err();
        std::future::ready(go)
    })
}

/// Why the byte stream ended early.
#[derive(Debug, thiserror::Error)]
enum Cut {
    #[error(transparent)]
    TooLarge(TooLarge),
    #[error("the body failed")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn is_too_large(error: &sse_stream::Error) -> bool {
    matches!(error, sse_stream::Error::Body(e) if matches!(e.downcast_ref::<Cut>(), Some(Cut::TooLarge(_))))
}

/// The messages endpoint named by an `endpoint` event of the server at
/// `server`: `data` resolved against the server URL, which must keep the
/// server's origin (scheme, host, port).
pub fn endpoint_url(server: &url::Url, data: &str) -> Result<url::Url, SseError> {
    let shown = crate::view::status::redact_url(server.as_str());
    let bad = |reason: &str| SseError::BadEndpoint { url: shown.clone(), reason: reason.to_owned() };
    let data = data.trim();
    if data.is_empty() {
        return Err(bad("it is empty"));
    }
    if data.len() > MAX_ENDPOINT_BYTES {
        return Err(bad(&format!("it is longer than {MAX_ENDPOINT_BYTES} bytes")));
    }
    let endpoint = server.join(data).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(endpoint.scheme(), "http" | "https") || endpoint.origin() != server.origin() {
        let endpoint = crate::util::text::shorten(&crate::view::status::redact_url(endpoint.as_str()), 200);
        return Err(SseError::CrossOrigin { url: shown, endpoint });
    }
    Ok(endpoint)
}

/// Runs `call` with the current token; on 401, once more with a renewed
/// one; a second 401 gives up (the "sign in again" error, noted for the tray).
async fn with_token<T, F, Fut>(credentials: &Credentials, call: F) -> Result<T, SseError>
where
    F: Fn(SecretString) -> Fut,
    Fut: Future<Output = Result<T, SseError>>,
{
    let token = credentials.bearer().await.map_err(SseError::Token)?;
    match call(token.clone()).await {
        Err(SseError::Unauthorized) => {
            tracing::info!(server = %credentials.server().name, "the server refused the token; renewing it once");
            let fresh = credentials.refused(&token).await.map_err(SseError::Token)?;
            match call(fresh).await {
                Err(SseError::Unauthorized) => Err(SseError::Token(credentials.give_up().await)),
                other => {
                    credentials.set_failure(None);
                    other
                }
            }
        }
        other => other,
    }
}

/// One legacy SSE connection's fixed parts.
#[derive(Clone)]
struct Link {
    http: reqwest::Client,
    credentials: Arc<Credentials>,
    url: url::Url,
    config: SseConfig,
}

impl Link {
    fn shown(&self) -> String {
        crate::view::status::redact_url(self.url.as_str())
    }

    /// Opens the event stream and reads its `endpoint` event.
    async fn open(&self) -> Result<(Events, url::Url), SseError> {
        let mut events = with_token(&self.credentials, |token| self.get(token)).await?;
        let wait = tokio::time::timeout(self.config.endpoint_timeout, async {
            loop {
                match events.next().await {
                    Some(Ok(event)) if event.event.as_deref() == Some("endpoint") => {
                        return endpoint_url(&self.url, event.data.as_deref().unwrap_or_default());
                    }
                    // A keep-alive (a comment, or an event with nothing in it).
                    Some(Ok(event)) if event.data.is_none() && event.event.is_none() => {}
                    Some(Ok(event)) => {
                        let name = event.event.unwrap_or_else(|| "message".to_owned());
                        let reason =
                            format!("its first event is `{}`, not `endpoint`", crate::util::text::shorten(&name, 40));
                        return Err(SseError::NotSse { url: self.shown(), reason });
                    }
                    Some(Err(e)) if is_too_large(&e) => {
                        return Err(SseError::EventTooLarge { url: self.shown(), limit: self.config.max_event_bytes });
                    }
                    Some(Err(e)) => {
                        let reason = format!("its event stream is malformed ({e})");
                        return Err(SseError::NotSse { url: self.shown(), reason });
                    }
                    None => {
                        let reason = "its event stream ended before an `endpoint` event".to_owned();
                        return Err(SseError::NotSse { url: self.shown(), reason });
                    }
                }
            }
        });
        let endpoint = wait
            .await
            .map_err(|_| SseError::NoEndpoint { url: self.shown(), timeout: self.config.endpoint_timeout })??;
        tracing::debug!(server = %self.credentials.server().name, "legacy SSE stream open");
        Ok((events, endpoint))
    }

    async fn get(&self, token: SecretString) -> Result<Events, SseError> {
        let request = self
            .http
            .get(self.url.clone())
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header(reqwest::header::CACHE_CONTROL, "no-cache")
            .timeout(STREAM_LIFETIME);
        let response = tokio::time::timeout(crate::oauth::http::DEFAULT_TIMEOUT, request.send())
            .await
            .map_err(|_| SseError::NoEndpoint { url: self.shown(), timeout: crate::oauth::http::DEFAULT_TIMEOUT })?
            .map_err(|source| SseError::Http { url: self.shown(), source })?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(SseError::Unauthorized);
        }
        if wrong_transport_status(status.as_u16()) {
            return Err(SseError::NotSse { url: self.shown(), reason: format!("GET answers HTTP {status}") });
        }
        if !status.is_success() {
            return Err(SseError::Status { url: self.shown(), status: status.as_u16() });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.split(';').next().is_none_or(|t| t.trim() != "text/event-stream") {
            let shown = crate::util::text::shorten(&content_type, 60);
            let reason = format!("GET answers `{shown}`, not an event stream");
            return Err(SseError::NotSse { url: self.shown(), reason });
        }
        Ok(bounded_events(response.bytes_stream(), self.config.max_event_bytes))
    }

    /// POSTs `message` to `endpoint`; the answer (if any) comes on the stream.
    async fn post(&self, endpoint: &url::Url, message: &ClientJsonRpcMessage) -> Result<(), SseError> {
        let body = serde_json::to_vec(message).map_err(|_| SseError::Closed)?;
        with_token(&self.credentials, |token| {
            let request = self
                .http
                .post(endpoint.clone())
                .bearer_auth(token.expose())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            async move {
                let response = request.send().await.map_err(|source| SseError::Http { url: self.shown(), source })?;
                match response.status() {
                    reqwest::StatusCode::UNAUTHORIZED => Err(SseError::Unauthorized),
                    // The body ("Accepted") is not read: nothing in it is needed.
                    status if status.is_success() => Ok(()),
                    status => Err(SseError::Status { url: self.shown(), status: status.as_u16() }),
                }
            }
        })
        .await
    }
}

/// A 4xx that says "not this transport" (not a refusal of the token, a
/// missing scope or a rate limit): the backwards-compatibility rule of the
/// MCP spec, in both directions.
pub fn wrong_transport_status(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 403 | 429)
}

/// The worker behind [`SseTransport`] (opaque: made by [`connect`]).
pub struct SseWorker {
    link: Link,
    events: Events,
    endpoint: url::Url,
}

/// The legacy HTTP+SSE client transport: rmcp's worker transport over [`SseWorker`].
pub type SseTransport = WorkerTransport<SseWorker>;

impl std::fmt::Debug for SseWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseWorker").field("server", &self.link.credentials.server().name).finish_non_exhaustive()
    }
}

/// Connects to the legacy SSE server at `credentials`' URL (the stream is
/// open and its endpoint known when this returns).
pub async fn connect(http: &Http, credentials: Arc<Credentials>, config: SseConfig) -> Result<SseTransport, SseError> {
    let url = credentials.server().url.clone();
    let link = Link { http: http.reqwest().clone(), credentials, url, config };
    let (events, endpoint) = link.open().await?;
    Ok(WorkerTransport::spawn(SseWorker { link, events, endpoint }))
}

/// What the worker remembers to start a new session after a reconnect.
#[derive(Default)]
struct Session {
    initialize: Option<ClientJsonRpcMessage>,
    initialized: Option<ClientJsonRpcMessage>,
    /// Requests sent whose answer has not come yet.
    waiting: HashSet<RequestId>,
}

impl Session {
    fn sent(&mut self, message: &ClientJsonRpcMessage) {
        match message {
            ClientJsonRpcMessage::Request(request) => {
                if matches!(request.request, ClientRequest::InitializeRequest(_)) {
                    self.initialize = Some(message.clone());
                }
                self.waiting.insert(request.id.clone());
            }
            ClientJsonRpcMessage::Notification(n)
                if matches!(n.notification, rmcp::model::ClientNotification::InitializedNotification(_)) =>
            {
                self.initialized = Some(message.clone());
            }
            _ => {}
        }
    }

    fn answered(&mut self, message: &ServerJsonRpcMessage) {
        match message {
            ServerJsonRpcMessage::Response(r) => {
                self.waiting.remove(&r.id);
            }
            ServerJsonRpcMessage::Error(e) => {
                if let Some(id) = &e.id {
                    self.waiting.remove(id);
                }
            }
            _ => {}
        }
    }
}

/// A JSON-RPC message of a `message` event; `None` for other events (and,
/// logged, for data that is not one).
pub(crate) fn message_of(event: sse_stream::Sse) -> Option<ServerJsonRpcMessage> {
    if !matches!(event.event.as_deref(), None | Some("message")) {
        return None;
    }
    let data = event.data?;
    match serde_json::from_str(&data) {
        Ok(message) => Some(message),
        Err(e) => {
            tracing::warn!(error = %e, "a legacy SSE server sent a message that is not JSON-RPC; skipped");
            None
        }
    }
}

type Quit = WorkerQuitReason<SseError>;

impl SseWorker {
    /// A new stream and session after the old one was lost, within the
    /// reconnect policy; the waiting requests are answered with an error.
    async fn reconnect(&mut self, context: &mut WorkerContext<Self>, session: &mut Session) -> Result<(), Quit> {
        let lost = std::mem::take(&mut session.waiting);
        for id in lost {
            let error = ErrorData::new(
                ErrorCode(PROXY_ERROR_CODE),
                "the connection to the remote MCP server was lost before it answered; try again".to_owned(),
                None,
            );
            context.send_to_handler(ServerJsonRpcMessage::error(error, Some(id))).await?;
        }
        let mut delay = self.link.config.reconnect_delay;
        for attempt in 1..=self.link.config.reconnects {
            tokio::select! {
                () = context.cancellation_token.cancelled() => return Err(Quit::Cancelled),
                () = tokio::time::sleep(delay) => {}
            }
            delay = delay.saturating_mul(2);
            match self.link.open().await {
                Ok((events, endpoint)) => {
                    tracing::info!(attempt, "legacy SSE stream open again");
                    self.events = events;
                    self.endpoint = endpoint;
                    return self.initialize_again(session).await;
                }
                Err(e @ (SseError::Token(_) | SseError::CrossOrigin { .. })) => {
                    return Err(Quit::fatal(e, "reconnect"));
                }
                Err(e) => tracing::warn!(attempt, error = %e, "cannot open the legacy SSE stream again"),
            }
        }
        Err(Quit::fatal(SseError::Lost { url: self.link.shown() }, "reconnect"))
    }

    /// Starts the new session as the client started the old one; the
    /// answer to `initialize` is not relayed (the client has one).
    async fn initialize_again(&mut self, session: &Session) -> Result<(), Quit> {
        let Some(initialize) = &session.initialize else { return Ok(()) };
        let ClientJsonRpcMessage::Request(request) = initialize else { return Ok(()) };
        let id = request.id.clone();
        self.link.post(&self.endpoint, initialize).await.map_err(Quit::fatal_context("initialize again"))?;
        let answered = tokio::time::timeout(self.link.config.endpoint_timeout, async {
            while let Some(event) = self.events.next().await {
                let message = event.ok().and_then(message_of);
                match message {
                    Some(ServerJsonRpcMessage::Response(r)) if r.id == id => return true,
                    Some(ServerJsonRpcMessage::Error(e)) if e.id.as_ref() == Some(&id) => return false,
                    _ => {}
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if !answered {
            return Err(Quit::fatal(SseError::Lost { url: self.link.shown() }, "initialize again"));
        }
        if let Some(initialized) = &session.initialized {
            self.link.post(&self.endpoint, initialized).await.map_err(Quit::fatal_context("initialized again"))?;
        }
        Ok(())
    }
}

impl Worker for SseWorker {
    type Error = SseError;
    type Role = RoleClient;

    fn err_closed() -> Self::Error {
        SseError::Closed
    }

    fn err_join(_: tokio::task::JoinError) -> Self::Error {
        SseError::Closed
    }

    async fn run(mut self, mut context: WorkerContext<Self>) -> Result<(), Quit> {
        let mut session = Session::default();
        let mut queue = std::collections::VecDeque::<WorkerSendRequest<Self>>::new();
        let mut posting: Option<futures_util::future::BoxFuture<'static, ()>> = None;
        let cancelled = context.cancellation_token.clone();
        loop {
            if posting.is_none()
                && let Some(request) = queue.pop_front()
            {
                let WorkerSendRequest { message, responder, .. } = request;
                session.sent(&message);
                let (link, endpoint) = (self.link.clone(), self.endpoint.clone());
                posting = Some(Box::pin(async move {
                    let result = link.post(&endpoint, &message).await;
                    let _ = responder.send(result);
                }));
            }
            tokio::select! {
                () = cancelled.cancelled() => return Err(Quit::Cancelled),
                () = async { if let Some(p) = posting.as_mut() { p.await } }, if posting.is_some() => posting = None,
                request = context.from_handler_rx.recv(), if queue.len() < 64 => match request {
                    Some(request) => queue.push_back(request),
                    None => return Err(Quit::HandlerTerminated),
                },
                event = self.events.next() => match event {
                    Some(Ok(event)) if event.event.as_deref() == Some("endpoint") => {
                        // A server may move its endpoint; never off its origin.
                        let data = event.data.unwrap_or_default();
                        self.endpoint = endpoint_url(&self.link.url, &data).map_err(Quit::fatal_context("endpoint"))?;
                    }
                    Some(Ok(event)) => {
                        if let Some(message) = message_of(event) {
                            session.answered(&message);
                            context.send_to_handler(message).await?;
                        }
                    }
                    Some(Err(e)) if is_too_large(&e) => {
                        let limit = self.link.config.max_event_bytes;
                        tracing::warn!(limit, "a legacy SSE server sent an event over the limit; reconnecting");
                        if let Some(p) = posting.take() { p.await }
                        self.reconnect(&mut context, &mut session).await?;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "the legacy SSE stream failed; reconnecting");
                        if let Some(p) = posting.take() { p.await }
                        self.reconnect(&mut context, &mut session).await?;
                    }
                    None => {
                        tracing::info!("the legacy SSE stream ended; reconnecting");
                        if let Some(p) = posting.take() { p.await }
                        self.reconnect(&mut context, &mut session).await?;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests;
