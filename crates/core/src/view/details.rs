//! The rows of the status window (and of "Show details"): everything the
//! user may want to know about a server, with the actions the menu offers,
//! as plain serialisable data. The window's script only renders it.

use std::collections::HashMap;

use serde::Serialize;

use crate::vault::VaultKey;
use crate::view::activity::{Activity, Busy, ServerRef};
use crate::view::menu::server_actions;
use crate::view::status::{AuthLabel, AuthState, StatusReport, VaultView, menu_line, time_left};

/// One server, as the status window shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerDetails {
    pub profile: Option<String>,
    pub name: String,
    pub url: Option<String>,
    pub auth: AuthLabel,
    pub state: AuthState,
    /// The menu's line for it ("● linear — Connected · 52 min").
    pub summary: String,
    pub busy: Option<Busy>,
    pub expires_at: Option<i64>,
    /// "52 min", when the expiry is known and ahead.
    pub time_left: Option<String>,
    pub scopes: Vec<String>,
    pub issuer: Option<String>,
    /// Why the state is what it is (a note, or the reason sign-in is needed).
    pub detail: Option<String>,
    /// The last failure the app saw (sign-in or refresh).
    pub last_error: Option<String>,
    /// What the last check against the server found (`ok`,
    /// `needs_sign_in`, `needs_more_access`, `unreachable`).
    pub check: Option<crate::mcp::check::CheckKind>,
    /// "checked 5 min ago", when the server was checked.
    pub checked: Option<String>,
    /// What the user can do: menu action ids and their labels.
    pub actions: Vec<ActionButton>,
}

/// An action the window offers; `id` is a [`crate::MenuAction`] id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionButton {
    pub id: String,
    pub label: String,
}

/// The window's rows for `report`, with what the vault holds (`views`, by
/// vault key) and what the app is doing (`activity`).
pub fn server_details(
    report: &StatusReport,
    views: &HashMap<VaultKey, VaultView>,
    activity: &Activity,
) -> Vec<ServerDetails> {
    report
        .servers
        .iter()
        .map(|s| {
            let r = ServerRef::of(s);
            let live = activity.get(&r);
            let kept =
                s.url.as_deref().map(|url| VaultKey::new(s.profile.as_deref(), &s.name, url)).and_then(
                    |key| match views.get(&key) {
                        Some(VaultView::Present(summary)) => Some(summary.clone()),
                        _ => None,
                    },
                );
            let left = s.expires_at.map(|e| e as f64 - report.computed_at).filter(|l| *l > 0.0).map(time_left);
            ServerDetails {
                profile: s.profile.clone(),
                name: s.name.clone(),
                // Shown in the window: query values (interpolated API keys) hidden.
                url: s.url.as_deref().map(crate::view::status::redact_url),
                auth: s.auth,
                state: s.state,
                summary: menu_line(s, report.computed_at),
                busy: live.busy,
                expires_at: s.expires_at,
                time_left: left,
                scopes: kept
                    .as_ref()
                    .and_then(|k| k.scope.as_deref())
                    .map(|scope| scope.split_whitespace().map(str::to_owned).collect())
                    .unwrap_or_default(),
                issuer: kept.and_then(|k| k.issuer),
                detail: s.detail.clone(),
                last_error: live.last_error,
                check: s.last_check.check,
                checked: s
                    .last_check
                    .checked_at
                    .map(|at| format!("checked {} ago", time_left(report.computed_at - at as f64))),
                actions: server_actions(s, live.busy, &r)
                    .into_iter()
                    .map(|(action, label)| ActionButton { id: action.id(), label: label.to_owned() })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hermes::token_file::TokenFileSummary;
    use crate::view::menu::MenuAction;
    use crate::view::status::ServerStatus;

    #[test]
    fn rows_carry_vault_facts_and_actions() {
        let url = "https://linear.example/mcp";
        let report = StatusReport {
            servers: vec![
                ServerStatus {
                    profile: None,
                    name: "linear".to_owned(),
                    url: Some(url.to_owned()),
                    auth: AuthLabel::Oauth,
                    state: AuthState::Connected,
                    expires_at: Some(1000 + 3120),
                    detail: None,
                    refresh_due_at: None,
                    last_error: None,
                    flow: None,
                    last_check: Default::default(),
                },
                ServerStatus {
                    profile: None,
                    name: "fs".to_owned(),
                    url: None,
                    auth: AuthLabel::Stdio,
                    state: AuthState::NotApplicable,
                    expires_at: None,
                    detail: None,
                    refresh_due_at: None,
                    last_error: None,
                    flow: None,
                    last_check: Default::default(),
                },
            ],
            computed_at: 1000.0,
            ..Default::default()
        };
        let views = HashMap::from([(
            VaultKey::new(None, "linear", url),
            VaultView::Present(TokenFileSummary {
                expires_at: Some(4120.0),
                scope: Some("read write".to_owned()),
                issuer: Some("https://auth.example".to_owned()),
                ..Default::default()
            }),
        )]);
        let mut activity = Activity::default();
        activity.update(&ServerRef::new(None, "linear"), |a| a.last_error = Some("network down".to_owned()));
        let rows = server_details(&report, &views, &activity);
        let linear = &rows[0];
        assert_eq!(linear.time_left.as_deref(), Some("52 min"));
        assert_eq!(linear.scopes, vec!["read", "write"]);
        assert_eq!(linear.issuer.as_deref(), Some("https://auth.example"));
        assert_eq!(linear.last_error.as_deref(), Some("network down"));
        let labels: Vec<&str> = linear.actions.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(labels, vec!["Reconnect", "Disconnect"]);
        assert_eq!(
            MenuAction::parse(&linear.actions[1].id),
            Some(MenuAction::Disconnect(ServerRef::new(None, "linear")))
        );
        assert!(rows[1].actions.is_empty(), "no actions for a local command");
    }

    #[test]
    fn the_window_shows_urls_redacted_but_finds_the_vault_record() {
        let url = "https://keyed.example/mcp?api_key=sk-live-99";
        let report = StatusReport {
            servers: vec![ServerStatus {
                profile: None,
                name: "keyed".to_owned(),
                url: Some(url.to_owned()),
                auth: AuthLabel::Oauth,
                flow: Some(crate::hermes::config::SignInFlow::Browser),
                last_check: Default::default(),
                state: AuthState::Connected,
                expires_at: None,
                detail: None,
                refresh_due_at: None,
                last_error: None,
            }],
            ..Default::default()
        };
        let views = HashMap::from([(
            VaultKey::new(None, "keyed", url),
            VaultView::Present(TokenFileSummary { scope: Some("read".to_owned()), ..Default::default() }),
        )]);
        let rows = server_details(&report, &views, &Activity::default());
        assert_eq!(rows[0].url.as_deref(), Some("https://keyed.example/mcp?api_key=[redacted]"));
        assert_eq!(rows[0].scopes, vec!["read"], "the vault record is found by the real URL");
    }
}
