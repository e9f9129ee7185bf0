//! Deep links to the app's scheme: the end of a sign-in with a custom-scheme
//! redirect (handed over by the deep-link plugin, or by a second launch
//! through the single-instance plugin). The core's sign-ins check and route
//! them; this module only logs what happened.

use mcp_auth_core::Delivery;
use tauri::{AppHandle, Manager};

use crate::state::AppState;

/// Hands `url` to the running sign-ins.
pub fn handle(app: &AppHandle, url: &str) {
    match app.state::<AppState>().service.deliver_redirect(url) {
        Ok(Delivery::Completed) => tracing::info!("sign-in redirect received"),
        // The waiting flow reports the refusal itself.
        Ok(Delivery::Refused(reason)) => tracing::warn!(%reason, "sign-in redirect refused"),
        Ok(Delivery::UnknownState) => tracing::warn!("a sign-in redirect that belongs to no running sign-in; ignored"),
        Ok(Delivery::Malformed(reason)) => tracing::warn!(%reason, "not a sign-in redirect; ignored"),
        Err(e) => tracing::warn!(error = %e, "a sign-in redirect arrived while signing in is not possible; ignored"),
    }
}
