//! What the tray menu shows, decided here so the shell only draws it.
//!
//! The model is plain data (labels, ids, enabled flags, which icon), derived
//! from a [`StatusReport`] by a pure function and covered by snapshot tests.

use serde::Serialize;

use crate::status::{StatusReport, menu_line};
use crate::text::shorten;

/// Which tray icon variant to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrayIcon {
    Normal,
    /// Something needs sign-in or is broken.
    Attention,
}

/// One line of the menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MenuLine {
    /// A line of text; `enabled: false` lines are information only.
    Item {
        id: String,
        label: String,
        enabled: bool,
    },
    Separator,
}

/// The whole tray menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrayMenu {
    pub icon: TrayIcon,
    /// Tooltip / title text: the one-line overview.
    pub title: String,
    pub lines: Vec<MenuLine>,
}

/// Id of the "Quit" item.
pub const QUIT_ID: &str = "quit";

/// Builds the menu for `report`: a summary line, the servers grouped by
/// profile (a heading per profile when there are several), config problems,
/// and "Quit".
pub fn tray_menu(report: &StatusReport) -> TrayMenu {
    let overview = report.overview();
    let info = |id: String, label: String| MenuLine::Item { id, label, enabled: false };
    let mut lines = vec![info("summary".to_owned(), overview.summary()), MenuLine::Separator];

    let mut profiles: Vec<Option<&str>> = Vec::new();
    for p in
        report.servers.iter().map(|s| s.profile.as_deref()).chain(report.problems.iter().map(|p| p.profile.as_deref()))
    {
        if !profiles.contains(&p) {
            profiles.push(p);
        }
    }
    let grouped = profiles.iter().any(Option::is_some);
    for profile in &profiles {
        let key = profile.unwrap_or("default");
        if grouped {
            lines.push(info(format!("profile:{key}"), format!("Profile {key}")));
        }
        for p in report.problems.iter().filter(|p| p.profile.as_deref() == *profile) {
            let note = if p.stale { " (showing the last good list)" } else { "" };
            lines.push(info(format!("problem:{key}"), format!("⚠ config error{note}: {}", shorten(&p.message, 80))));
        }
        for s in report.servers.iter().filter(|s| s.profile.as_deref() == *profile) {
            lines.push(info(format!("server:{key}:{}", s.name), menu_line(s, report.computed_at)));
        }
    }
    if profiles.is_empty() {
        lines.push(info("empty".to_owned(), "No MCP servers configured".to_owned()));
    }
    lines.push(MenuLine::Separator);
    lines.push(MenuLine::Item { id: QUIT_ID.to_owned(), label: "Quit".to_owned(), enabled: true });

    TrayMenu {
        icon: if overview.needs_attention() { TrayIcon::Attention } else { TrayIcon::Normal },
        title: format!("MCP Auth: {}", overview.summary()),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{AuthLabel, AuthState, ConfigProblem, ServerStatus};

    fn row(
        profile: Option<&str>,
        name: &str,
        auth: AuthLabel,
        state: AuthState,
        expires_at: Option<i64>,
    ) -> ServerStatus {
        ServerStatus {
            profile: profile.map(str::to_owned),
            name: name.to_owned(),
            url: None,
            auth,
            state,
            expires_at,
            detail: None,
            refresh_due_at: None,
        }
    }

    #[test]
    fn single_home_menu() {
        let report = StatusReport {
            servers: vec![
                row(None, "notion", AuthLabel::Oauth, AuthState::Connected, Some(1000 + 3120)),
                row(None, "linear", AuthLabel::Oauth, AuthState::NotConnected, None),
                row(None, "fs", AuthLabel::Stdio, AuthState::NotApplicable, None),
            ],
            computed_at: 1000.0,
            ..Default::default()
        };
        insta::assert_json_snapshot!(tray_menu(&report), @r#"
        {
          "icon": "normal",
          "title": "MCP Auth: 1 connected · 1 not connected",
          "lines": [
            {
              "kind": "item",
              "id": "summary",
              "label": "1 connected · 1 not connected",
              "enabled": false
            },
            {
              "kind": "separator"
            },
            {
              "kind": "item",
              "id": "server:default:notion",
              "label": "● notion — Connected, 52 min left",
              "enabled": false
            },
            {
              "kind": "item",
              "id": "server:default:linear",
              "label": "○ linear — Not connected",
              "enabled": false
            },
            {
              "kind": "item",
              "id": "server:default:fs",
              "label": "· fs — Local command",
              "enabled": false
            },
            {
              "kind": "separator"
            },
            {
              "kind": "item",
              "id": "quit",
              "label": "Quit",
              "enabled": true
            }
          ]
        }
        "#);
    }

    #[test]
    fn profiles_problems_and_attention() {
        let report = StatusReport {
            servers: vec![
                row(None, "a", AuthLabel::Oauth, AuthState::Connected, None),
                row(Some("work"), "b", AuthLabel::Oauth, AuthState::NeedsReauth, None),
            ],
            problems: vec![ConfigProblem {
                profile: Some("work".to_owned()),
                message: "config.yaml:3:1: bad".to_owned(),
                stale: true,
            }],
            computed_at: 1000.0,
            ..Default::default()
        };
        let menu = tray_menu(&report);
        assert_eq!(menu.icon, TrayIcon::Attention);
        let labels: Vec<&str> = menu
            .lines
            .iter()
            .map(|l| match l {
                MenuLine::Item { label, .. } => label.as_str(),
                MenuLine::Separator => "---",
            })
            .collect();
        assert_eq!(
            labels,
            vec![
                "1 connected · 1 needs sign-in · 1 error",
                "---",
                "Profile default",
                "● a — Connected",
                "Profile work",
                "⚠ config error (showing the last good list): config.yaml:3:1: bad",
                "⚠ b — Needs sign-in",
                "---",
                "Quit",
            ]
        );
    }

    #[test]
    fn empty_menu_says_so() {
        let menu = tray_menu(&StatusReport::default());
        assert!(
            menu.lines
                .iter()
                .any(|l| matches!(l, MenuLine::Item { label, .. } if label == "No MCP servers configured"))
        );
        assert_eq!(menu.icon, TrayIcon::Normal);
    }
}
