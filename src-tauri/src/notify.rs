//! Desktop notifications (tauri-plugin-notification). When to notify is the
//! core service's decision (its [`Notice`]s: one "needs sign-in" per
//! transition); this module words and shows them, and hands a click on
//! "Sign in" (or on the notification itself) back as the core's Connect
//! action, to whatever `init` was given (the tray's action runner), so this
//! module depends on no other part of the shell.

use mcp_auth_core::{MenuAction, Notice, ServerRef, is_own_profile};
use tauri::AppHandle;
use tauri_plugin_notification::{Action, ActionType, NotificationExt as _};
use tokio::sync::broadcast;

/// The action type of "sign in again" notifications.
const REAUTH_TYPE: &str = "reauth";
/// The "Sign in" button of those.
const SIGN_IN_ACTION: &str = "sign-in";
/// The key, in a notification's extra data, of the menu action it stands for.
const ACTION_KEY: &str = "action";

/// Registers the "Sign in" button; a click on it runs `on_action`.
pub fn init(app: &AppHandle, on_action: fn(&AppHandle, MenuAction)) {
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
            ("tap" | SIGN_IN_ACTION, Some(action)) => on_action(&handle, action),
            (other, _) => tracing::debug!(action = other, "notification action without a task"),
        }
    });
    if let Err(e) = listening {
        tracing::warn!(error = %e, "cannot follow notification clicks");
    }
}

/// Shows each of the service's notices until the service stops.
pub fn follow(app: AppHandle, mut notices: broadcast::Receiver<Notice>) {
    tauri::async_runtime::spawn(async move {
        loop {
            match notices.recv().await {
                Ok(notice) => show_notice(&app, &notice),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "notifications fell behind; some were not shown")
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

fn show_notice(app: &AppHandle, notice: &Notice) {
    match notice {
        Notice::Connected { server } => {
            let who = if is_own_profile(server.profile.as_deref()) {
                "the clients that go through mcp-auth"
            } else {
                "the agent"
            };
            show(app, &format!("Connected to {}", server.name), &format!("Signed in; {who} can use it now."))
        }
        Notice::NeedsSignIn { server, reason } => needs_sign_in(app, server, reason.as_deref()),
        Notice::SignInFailed { server, reason } => {
            show(app, &format!("Sign-in to {} failed", server.name), &capitalised(reason))
        }
        Notice::Disconnected { server, revoked } => {
            let how = if *revoked { "tokens revoked and removed" } else { "tokens removed" };
            show(app, &format!("Disconnected from {}", server.name), &capitalised(how));
        }
    }
}

/// "Sign in again to <server>": refreshing is impossible or the agent's copy is dead.
fn needs_sign_in(app: &AppHandle, server: &ServerRef, reason: Option<&str>) {
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

/// Something the user asked for was done (a client's config changed).
pub fn info(app: &AppHandle, title: &str, body: &str) {
    show(app, title, body);
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
