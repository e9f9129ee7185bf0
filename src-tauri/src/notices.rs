//! Desktop notifications (tauri-plugin-notification). When to notify is the
//! core's decision (one "needs sign-in" per transition: `AttentionTracker`);
//! this module words and shows them, and turns a click on "Sign in" (or on
//! the notification itself) into the core's Connect action.

use mcp_auth_core::MenuAction;
use mcp_auth_core::ServerRef;
use tauri::AppHandle;
use tauri_plugin_notification::{Action, ActionType, NotificationExt as _};

/// The action type of "sign in again" notifications.
const REAUTH_TYPE: &str = "reauth";
/// The "Sign in" button of those.
const SIGN_IN_ACTION: &str = "sign-in";
/// The key, in a notification's extra data, of the menu action it stands for.
const ACTION_KEY: &str = "action";

/// Registers the "Sign in" button and what a click on it does.
pub fn init(app: &AppHandle) {
    let notification = app.notification();
    let registered = notification.register_action_types(vec![
        ActionType::builder(REAUTH_TYPE).actions(vec![Action::builder(SIGN_IN_ACTION, "Sign in").build()]).build(),
    ]);
    if let Err(e) = registered {
        tracing::warn!(error = %e, "cannot register notification actions");
    }
    let handle = app.clone();
    let listening = notification.on_action(move |performed| {
        let action = performed
            .notification()
            .and_then(|n| n.extra().get(ACTION_KEY))
            .and_then(|v| v.as_str())
            .and_then(MenuAction::parse);
        match (performed.action_id(), action) {
            ("tap" | SIGN_IN_ACTION, Some(action)) => crate::actions::run(&handle, action),
            (other, _) => tracing::debug!(action = other, "notification action without a task"),
        }
    });
    if let Err(e) = listening {
        tracing::warn!(error = %e, "cannot follow notification clicks");
    }
}

/// "Sign in again to <server>": refreshing is impossible or the agent's copy is dead.
pub fn needs_sign_in(app: &AppHandle, server: &ServerRef, reason: Option<&str>) {
    let body = match reason {
        Some(reason) => format!("{}. Click to sign in.", capitalised(reason)),
        None => "Its tokens can no longer be renewed. Click to sign in.".to_owned(),
    };
    let shown = app
        .notification()
        .builder()
        .title(format!("Sign in again to {}", server.name))
        .body(body)
        .action_type_id(REAUTH_TYPE)
        .extra(ACTION_KEY, MenuAction::Connect(server.clone()).id())
        .show();
    log_failure(shown);
}

/// "Connected to <server>".
pub fn connected(app: &AppHandle, server: &ServerRef) {
    show(app, &format!("Connected to {}", server.name), "Signed in; the agent can use it now.");
}

/// A sign-in that failed, with the reason.
pub fn sign_in_failed(app: &AppHandle, server: &ServerRef, reason: &str) {
    show(app, &format!("Sign-in to {} failed", server.name), &capitalised(reason));
}

/// "Disconnected from <server>".
pub fn disconnected(app: &AppHandle, server: &ServerRef, how: &str) {
    show(app, &format!("Disconnected from {}", server.name), &capitalised(how));
}

/// Anything else the user asked for that did not work.
pub fn problem(app: &AppHandle, title: &str, reason: &str) {
    show(app, title, &capitalised(reason));
}

fn show(app: &AppHandle, title: &str, body: &str) {
    log_failure(app.notification().builder().title(title).body(body).show());
}

fn log_failure(result: tauri_plugin_notification::Result<()>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot show a notification");
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
