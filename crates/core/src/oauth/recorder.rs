//! Watching the engine's own requests: an [`OAuthHttpClient`] that passes
//! each request on and remembers what was asked and what came back, so
//! `doctor` can report every discovery step (URL, HTTP status, fields)
//! from the very code that signs in, rather than from a second discovery.
//!
//! Bodies are kept only for `GET`s (metadata documents) and for error
//! answers: successful token and registration answers carry secrets.

use std::sync::{Arc, Mutex, PoisonError};

use crate::util::text::error_text;
use rmcp::transport::auth::{OAuthHttpClient, OAuthHttpClientFuture, OAuthHttpRequest};

/// One request and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    /// The HTTP status, or why there was none (timeout, refused connection, …).
    pub outcome: Result<u16, String>,
    /// The JSON body, for `GET`s and error answers (see the module docs).
    pub body: Option<serde_json::Value>,
}

/// Records every request made through it (cheap to clone; clones share the log).
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<dyn OAuthHttpClient>,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("exchanges", &self.exchanges().len()).finish_non_exhaustive()
    }
}

impl Recorder {
    pub fn new(inner: Arc<dyn OAuthHttpClient>) -> Self {
        Self { inner, log: Arc::default() }
    }

    /// What was recorded so far, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl OAuthHttpClient for Recorder {
    fn execute(&self, request: OAuthHttpRequest) -> OAuthHttpClientFuture<'_> {
        let method = request.request.method().to_string();
        let url = request.request.uri().to_string();
        Box::pin(async move {
            let result = self.inner.execute(request).await;
            let (outcome, body) = match &result {
                Ok(response) => {
                    let status = response.status();
                    let keep = method == "GET" || !status.is_success();
                    (Ok(status.as_u16()), keep.then(|| serde_json::from_slice(response.body()).ok()).flatten())
                }
                Err(e) => (Err(error_text(&**e)), None),
            };
            self.log.lock().unwrap_or_else(PoisonError::into_inner).push(Exchange { method, url, outcome, body });
            result
        })
    }
}
