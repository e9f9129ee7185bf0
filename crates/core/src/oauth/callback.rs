//! Matching authorization responses to the flows waiting for them.
//!
//! Every sign-in registers its `state` here and waits. Whatever delivers the
//! browser's redirect — the loopback listener, or the tray handing over a
//! custom-scheme deep link — calls [`CallbackRouter::deliver`] with the query
//! string, so both paths get the same checks:
//! - the `state` is compared in constant time against every waiting flow (no
//!   early exit that would leak how much of a guess was right);
//! - a flow accepts exactly one response, then it is gone (a replayed or
//!   second redirect finds nothing);
//! - the RFC 9207 `iss` parameter is checked against the issuer the flow
//!   expects ([`IssCheck`]);
//! - `error` / `error_description` from the authorization server reach the
//!   waiting flow as a clear error, cut to a sane length.
//!
//! A flow that stops waiting (timeout, cancel, drop) unregisters itself.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use crate::util::secret::SecretString;
use crate::util::text::error_text;
use crate::util::text::server_text_max;

/// Longest query string we look at; real ones are a few hundred bytes.
pub const MAX_CALLBACK_QUERY: usize = 8 * 1024;
/// Longest `error_description` we pass on.
const MAX_DESCRIPTION: usize = 300;

/// What a flow expects of the `iss` parameter (RFC 9207).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssCheck {
    /// The issuer of the authorization server the flow talks to.
    pub issuer: String,
    /// The server advertises `authorization_response_iss_parameter_supported`,
    /// so `iss` must be present.
    pub required: bool,
}

impl IssCheck {
    /// Judges the received `iss`: when present it must equal the issuer
    /// (whether or not the server advertised support: a mix-up attack looks
    /// exactly like an unexpected `iss`); when required it must be present.
    pub fn verify(&self, received: Option<&str>) -> Result<(), CallbackError> {
        match received {
            Some(iss) if iss == self.issuer => Ok(()),
            Some(iss) => Err(CallbackError::IssuerMismatch {
                expected: self.issuer.clone(),
                received: server_text_max(iss, 200),
            }),
            None if self.required => Err(CallbackError::IssuerMissing { expected: self.issuer.clone() }),
            None => Ok(()),
        }
    }
}

/// A successful authorization response.
#[derive(Debug)]
pub struct AuthorizationCode {
    /// The code to exchange (secret: it is half of a token).
    pub code: SecretString,
    /// The `iss` parameter, when the server sent one (already verified).
    pub iss: Option<String>,
}

/// Why a flow did not get a usable authorization response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The authorization server answered with `error=...`.
    #[error("the authorization server refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied { error: String, description: Option<String> },
    /// No `code` in an otherwise matching response.
    #[error("the authorization response has no code")]
    MissingCode,
    /// RFC 9207: `iss` names another server (possible mix-up attack).
    #[error("the authorization response came from issuer `{received}`, expected `{expected}`; refusing it")]
    IssuerMismatch { expected: String, received: String },
    /// RFC 9207: the server promised `iss` but did not send it.
    #[error(
        "the authorization server advertises the `iss` response parameter but did not send it; refusing the response"
    )]
    IssuerMissing { expected: String },
    /// Nobody completed the sign-in in time.
    #[error("no answer from the browser within {} s", .0.as_secs())]
    TimedOut(Duration),
    /// The flow was cancelled (by the user, or the app shutting down).
    #[error("sign-in cancelled")]
    Cancelled,
}

/// What the deliverer should tell the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A waiting flow got its code.
    Completed,
    /// A waiting flow got a response it had to refuse; the reason is for the user.
    Refused(String),
    /// No waiting flow has this `state` (stale, replayed, or forged).
    UnknownState,
    /// Not an authorization response at all.
    Malformed(String),
}

struct Waiting {
    id: u64,
    state: SecretString,
    iss: Option<IssCheck>,
    reply: oneshot::Sender<Result<AuthorizationCode, CallbackError>>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    waiting: Vec<Waiting>,
}

/// The registry of flows waiting for their authorization response.
#[derive(Default, Clone)]
pub struct CallbackRouter {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for CallbackRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackRouter").field("waiting", &self.waiting_count()).finish()
    }
}

impl CallbackRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a flow by its `state`; `iss` is `None` only when the issuer is
    /// unknown (legacy servers without metadata).
    pub fn register(&self, state: &SecretString, iss: Option<IssCheck>) -> PendingCallback {
        let (reply, receiver) = oneshot::channel();
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.waiting.push(Waiting { id, state: state.clone(), iss, reply });
        PendingCallback { id, receiver, router: Arc::downgrade(&self.inner) }
    }

    /// How many flows are waiting.
    pub fn waiting_count(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Hands a redirect's query string (without `?`) to the flow it belongs to.
    pub fn deliver(&self, query: &str) -> Delivery {
        if query.len() > MAX_CALLBACK_QUERY {
            return Delivery::Malformed("the redirect is too long".to_owned());
        }
        let mut state = None;
        let mut code = None;
        let mut iss = None;
        let mut error = None;
        let mut description = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "state" => &mut state,
                "code" => &mut code,
                "iss" => &mut iss,
                "error" => &mut error,
                "error_description" => &mut description,
                _ => continue,
            };
            if slot.is_some() {
                // RFC 6749 §3.1: parameters must not repeat.
                return Delivery::Malformed(format!("the redirect repeats `{key}`"));
            }
            *slot = Some(value.into_owned());
        }
        let Some(state) = state else {
            return Delivery::Malformed("the redirect has no `state`".to_owned());
        };
        let Some(flow) = self.take(&state) else {
            return Delivery::UnknownState;
        };
        let result = match (error, code) {
            (Some(error), _) => Err(CallbackError::Denied {
                error: server_text_max(&error, 80),
                description: description.map(|d| server_text_max(&d, MAX_DESCRIPTION)),
            }),
            (None, None) => Err(CallbackError::MissingCode),
            (None, Some(code)) => match flow.iss.as_ref().map_or(Ok(()), |check| check.verify(iss.as_deref())) {
                Ok(()) => Ok(AuthorizationCode { code: SecretString::new(code), iss }),
                Err(e) => Err(e),
            },
        };
        let delivery = match &result {
            Ok(_) => Delivery::Completed,
            Err(e) => Delivery::Refused(error_text(&e)),
        };
        // The waiter may have just given up; then there is nobody to tell.
        let _ = flow.reply.send(result);
        delivery
    }

    /// Removes and returns the flow whose state matches, comparing every
    /// entry in constant time.
    fn take(&self, state: &str) -> Option<Waiting> {
        let mut inner = self.lock();
        let mut found = None;
        for (i, w) in inner.waiting.iter().enumerate() {
            let same: bool = w.state.expose().as_bytes().ct_eq(state.as_bytes()).into();
            if same && found.is_none() {
                found = Some(i);
            }
        }
        found.map(|i| inner.waiting.swap_remove(i))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves only plain data behind.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A flow waiting for its authorization response. Dropping it unregisters
/// the flow (that is how cancellation works).
#[derive(Debug)]
pub struct PendingCallback {
    id: u64,
    receiver: oneshot::Receiver<Result<AuthorizationCode, CallbackError>>,
    router: Weak<Mutex<Inner>>,
}

impl PendingCallback {
    /// Waits for the response, at most `timeout`.
    pub async fn wait(mut self, timeout: Duration) -> Result<AuthorizationCode, CallbackError> {
        match tokio::time::timeout(timeout, &mut self.receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(CallbackError::Cancelled),
            Err(_) => Err(CallbackError::TimedOut(timeout)),
        }
    }
}

impl Drop for PendingCallback {
    fn drop(&mut self) {
        if let Some(inner) = self.router.upgrade() {
            let mut inner = inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            inner.waiting.retain(|w| w.id != self.id);
        }
    }
}

#[cfg(test)]
mod tests;
