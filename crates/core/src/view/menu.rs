//! What the tray menu shows, decided here so the shell only draws it.
//!
//! The model is plain data (labels, ids, enabled flags, which icon), derived
//! from a [`StatusReport`] by a pure function and covered by snapshot tests.

use serde::Serialize;

use crate::util::text::shorten;
use crate::view::activity::{Activity, Busy, ServerRef};
use crate::view::status::{AuthLabel, AuthState, ServerStatus, StatusReport, menu_line};

/// Which tray icon variant to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrayIcon {
    Normal,
    /// Something needs sign-in or is broken.
    Attention,
    /// A sign-in or refresh is under way.
    Busy,
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
    /// A checkbox item.
    Check {
        id: String,
        label: String,
        checked: bool,
    },
    /// A line that opens a submenu.
    Submenu {
        id: String,
        label: String,
        lines: Vec<MenuLine>,
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

/// What clicking a menu item asks for. Item ids are the [`MenuAction::id`]
/// strings, so the shell maps a click back with [`MenuAction::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction {
    Connect(ServerRef),
    Disconnect(ServerRef),
    CancelSignIn(ServerRef),
    CopyUrl(ServerRef),
    ShowDetails(ServerRef),
    /// Sign in again asking for the union of the granted scope and the
    /// scope the server's last check asked for ([`crate::step_up_scope`]).
    StepUp(ServerRef),
    ConnectAllNeeding,
    /// Check every connected server now ([`crate::Checker::check_all`]).
    CheckNow,
    OpenWindow,
    ToggleAutostart,
    OpenConfig,
    OpenLogs,
    Quit,
}

/// Id of the "Quit" item.
pub const QUIT_ID: &str = "quit";

const SERVER_VERBS: [&str; 6] = ["connect", "disconnect", "cancel", "copy-url", "details", "step-up"];

impl MenuAction {
    /// The menu item id: `verb` or `verb:profile:name` (profile ids never
    /// contain `:`; the name, last, may).
    pub fn id(&self) -> String {
        let server = |verb: &str, r: &ServerRef| format!("{verb}:{}:{}", r.profile.as_deref().unwrap_or(""), r.name);
        match self {
            Self::Connect(r) => server(SERVER_VERBS[0], r),
            Self::Disconnect(r) => server(SERVER_VERBS[1], r),
            Self::CancelSignIn(r) => server(SERVER_VERBS[2], r),
            Self::CopyUrl(r) => server(SERVER_VERBS[3], r),
            Self::ShowDetails(r) => server(SERVER_VERBS[4], r),
            Self::StepUp(r) => server(SERVER_VERBS[5], r),
            Self::ConnectAllNeeding => "connect-all".to_owned(),
            Self::CheckNow => "check-now".to_owned(),
            Self::OpenWindow => "open-window".to_owned(),
            Self::ToggleAutostart => "autostart".to_owned(),
            Self::OpenConfig => "open-config".to_owned(),
            Self::OpenLogs => "open-logs".to_owned(),
            Self::Quit => QUIT_ID.to_owned(),
        }
    }

    /// The action of a menu item id; `None` for information-only items.
    pub fn parse(id: &str) -> Option<Self> {
        let simple = [
            Self::ConnectAllNeeding,
            Self::CheckNow,
            Self::OpenWindow,
            Self::ToggleAutostart,
            Self::OpenConfig,
            Self::OpenLogs,
            Self::Quit,
        ];
        if let Some(action) = simple.into_iter().find(|a| a.id() == id) {
            return Some(action);
        }
        let mut parts = id.splitn(3, ':');
        let (verb, profile, name) = (parts.next()?, parts.next()?, parts.next()?);
        let r = ServerRef { profile: (!profile.is_empty()).then(|| profile.to_owned()), name: name.to_owned() };
        Some(match verb {
            "connect" => Self::Connect(r),
            "disconnect" => Self::Disconnect(r),
            "cancel" => Self::CancelSignIn(r),
            "copy-url" => Self::CopyUrl(r),
            "details" => Self::ShowDetails(r),
            "step-up" => Self::StepUp(r),
            _ => return None,
        })
    }
}

/// What the menu shows besides the status report.
#[derive(Debug, Clone, Copy)]
pub struct MenuContext<'a> {
    pub activity: &'a Activity,
    /// The OS starts the app at login (as the OS reports it).
    pub autostart: bool,
}

/// Builds the menu for `report`: a summary line, the servers grouped by
/// profile (a heading per profile when there are several) each with its
/// actions, config problems, and the app's own items.
pub fn tray_menu(report: &StatusReport, context: MenuContext<'_>) -> TrayMenu {
    let overview = report.overview();
    let info = |id: String, label: String| MenuLine::Item { id, label, enabled: false };
    let action = |action: MenuAction, label: &str, enabled: bool| MenuLine::Item {
        id: action.id(),
        label: label.to_owned(),
        enabled,
    };
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
            lines.push(server_line(s, report.computed_at, context.activity));
        }
    }
    if profiles.is_empty() {
        lines.push(info("empty".to_owned(), "No MCP servers configured".to_owned()));
    }
    lines.push(MenuLine::Separator);
    let needing = report.servers.iter().filter(|s| s.state == AuthState::NeedsReauth).count();
    let connect_all = match needing {
        0 => "Connect all that need sign-in".to_owned(),
        n => format!("Connect all that need sign-in ({n})"),
    };
    lines.push(action(MenuAction::ConnectAllNeeding, &connect_all, needing > 0));
    // Only servers signed in here can be checked (the vault has their tokens).
    let checkable = report.servers.iter().any(|s| {
        s.auth == AuthLabel::Oauth
            && matches!(
                s.state,
                AuthState::Connected | AuthState::Expiring | AuthState::Expired | AuthState::NeedsMoreAccess
            )
    });
    lines.push(action(MenuAction::CheckNow, "Check now", checkable));
    lines.push(action(MenuAction::OpenWindow, "Open status window", true));
    lines.push(MenuLine::Check {
        id: MenuAction::ToggleAutostart.id(),
        label: "Start at login".to_owned(),
        checked: context.autostart,
    });
    lines.push(action(MenuAction::OpenConfig, "Open config file", true));
    lines.push(action(MenuAction::OpenLogs, "Open logs folder", true));
    lines.push(MenuLine::Separator);
    lines.push(action(MenuAction::Quit, "Quit", true));

    let icon = if context.activity.busy().next().is_some() {
        TrayIcon::Busy
    } else if overview.needs_attention() {
        TrayIcon::Attention
    } else {
        TrayIcon::Normal
    };
    TrayMenu { icon, title: format!("MCP Auth: {}", overview.summary()), lines }
}

/// The sign-in actions offered for a server, in the menu and the window
/// alike: none for servers without OAuth.
pub(crate) fn server_actions(s: &ServerStatus, busy: Option<Busy>, r: &ServerRef) -> Vec<(MenuAction, &'static str)> {
    if s.auth != AuthLabel::Oauth {
        Vec::new()
    } else if busy == Some(Busy::SigningIn) {
        vec![(MenuAction::CancelSignIn(r.clone()), "Cancel sign-in")]
    } else if s.state == AuthState::NotConnected {
        vec![(MenuAction::Connect(r.clone()), "Connect")]
    } else if s.state == AuthState::NeedsMoreAccess {
        vec![
            (MenuAction::StepUp(r.clone()), "Grant more access"),
            (MenuAction::Connect(r.clone()), "Reconnect"),
            (MenuAction::Disconnect(r.clone()), "Disconnect"),
        ]
    } else {
        vec![(MenuAction::Connect(r.clone()), "Reconnect"), (MenuAction::Disconnect(r.clone()), "Disconnect")]
    }
}

/// One server: an OAuth server opens a submenu of actions; other kinds are
/// a line of information.
fn server_line(s: &ServerStatus, now: f64, activity: &Activity) -> MenuLine {
    let r = ServerRef::of(s);
    let id = format!("server:{}:{}", s.profile.as_deref().unwrap_or("default"), s.name);
    if s.auth != AuthLabel::Oauth {
        return MenuLine::Item { id, label: menu_line(s, now), enabled: false };
    }
    let live = activity.get(&r);
    let label = match live.busy {
        Some(Busy::SigningIn) => format!("⟳ {} — Signing in…", s.name),
        Some(Busy::Refreshing) => format!("⟳ {} — Refreshing…", s.name),
        None => menu_line(s, now),
    };
    let item =
        |action: MenuAction, label: &str| MenuLine::Item { id: action.id(), label: label.to_owned(), enabled: true };
    let mut lines: Vec<MenuLine> = server_actions(s, live.busy, &r).into_iter().map(|(a, l)| item(a, l)).collect();
    lines.push(MenuLine::Separator);
    if s.url.is_some() {
        lines.push(item(MenuAction::CopyUrl(r.clone()), "Copy server URL"));
    }
    lines.push(item(MenuAction::ShowDetails(r), "Show details"));
    MenuLine::Submenu { id, label, lines }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::status::{AuthLabel, AuthState, ConfigProblem, ServerStatus};

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
            url: (auth == AuthLabel::Oauth).then(|| format!("https://{name}.example/mcp")),
            auth,
            state,
            expires_at,
            detail: None,
            refresh_due_at: None,
            last_error: None,
            flow: None,
            last_check: Default::default(),
        }
    }

    fn idle() -> MenuContext<'static> {
        static NOTHING: std::sync::LazyLock<Activity> = std::sync::LazyLock::new(Activity::default);
        MenuContext { activity: &NOTHING, autostart: true }
    }

    /// The menu flattened to labels, submenus indented, for readable assertions.
    fn outline(lines: &[MenuLine], depth: usize, out: &mut Vec<String>) {
        for line in lines {
            let pad = "  ".repeat(depth);
            match line {
                MenuLine::Item { label, enabled, .. } => {
                    out.push(format!("{pad}{label}{}", if *enabled { "" } else { " (info)" }))
                }
                MenuLine::Check { label, checked, .. } => {
                    out.push(format!("{pad}[{}] {label}", if *checked { "x" } else { " " }))
                }
                MenuLine::Submenu { label, lines, .. } => {
                    out.push(format!("{pad}{label} >"));
                    outline(lines, depth + 1, out);
                }
                MenuLine::Separator => out.push(format!("{pad}---")),
            }
        }
    }

    fn labels(menu: &TrayMenu) -> Vec<String> {
        let mut out = Vec::new();
        outline(&menu.lines, 0, &mut out);
        out
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
        insta::assert_json_snapshot!("single_home_menu", tray_menu(&report, idle()));
        assert_eq!(
            labels(&tray_menu(&report, idle())),
            vec![
                "1 connected · 1 not connected (info)",
                "---",
                "● notion — Connected · 52 min >",
                "  Reconnect",
                "  Disconnect",
                "  ---",
                "  Copy server URL",
                "  Show details",
                "○ linear — Not connected >",
                "  Connect",
                "  ---",
                "  Copy server URL",
                "  Show details",
                "· fs — Local command (info)",
                "---",
                "Connect all that need sign-in (info)",
                "Check now",
                "Open status window",
                "[x] Start at login",
                "Open config file",
                "Open logs folder",
                "---",
                "Quit",
            ]
        );
    }

    #[test]
    fn profiles_problems_and_attention() {
        let report = StatusReport {
            servers: vec![
                row(None, "a", AuthLabel::Oauth, AuthState::Connected, None),
                row(Some("work"), "b", AuthLabel::Oauth, AuthState::NeedsReauth, None),
                row(Some("work"), "h", AuthLabel::Headers, AuthState::NotApplicable, None),
            ],
            problems: vec![ConfigProblem {
                profile: Some("work".to_owned()),
                message: "config.yaml:3:1: bad".to_owned(),
                stale: true,
            }],
            computed_at: 1000.0,
            ..Default::default()
        };
        let menu = tray_menu(&report, MenuContext { autostart: false, ..idle() });
        assert_eq!(menu.icon, TrayIcon::Attention);
        assert_eq!(menu.title, "MCP Auth: 1 connected · 1 needs sign-in · 1 error");
        let all = labels(&menu);
        let top: Vec<&str> = all.iter().filter(|l| !l.starts_with(' ')).map(String::as_str).collect();
        assert_eq!(
            top,
            vec![
                "1 connected · 1 needs sign-in · 1 error (info)",
                "---",
                "Profile default (info)",
                "● a — Connected >",
                "Profile work (info)",
                "⚠ config error (showing the last good list): config.yaml:3:1: bad (info)",
                "⚠ b — Needs sign-in >",
                "· h — Static headers (info)",
                "---",
                "Connect all that need sign-in (1)",
                "Check now",
                "Open status window",
                "[ ] Start at login",
                "Open config file",
                "Open logs folder",
                "---",
                "Quit",
            ]
        );
        let b = all.iter().position(|l| l == "⚠ b — Needs sign-in >").expect("b");
        assert_eq!(all[b + 1..b + 3], ["  Reconnect".to_owned(), "  Disconnect".to_owned()]);
    }

    #[test]
    fn a_sign_in_under_way_can_be_cancelled_and_shows_busy() {
        let report = StatusReport {
            servers: vec![row(Some("work"), "a:b", AuthLabel::Oauth, AuthState::NotConnected, None)],
            computed_at: 1000.0,
            ..Default::default()
        };
        let mut activity = Activity::default();
        let r = ServerRef::new(Some("work"), "a:b");
        activity.update(&r, |a| a.busy = Some(Busy::SigningIn));
        let menu = tray_menu(&report, MenuContext { activity: &activity, autostart: false });
        assert_eq!(menu.icon, TrayIcon::Busy);
        let MenuLine::Submenu { label, lines, .. } = &menu.lines[3] else { panic!("no submenu: {:?}", menu.lines) };
        assert_eq!(label, "⟳ a:b — Signing in…");
        let MenuLine::Item { id, label, .. } = &lines[0] else { panic!("no item") };
        assert_eq!(label, "Cancel sign-in");
        assert_eq!(MenuAction::parse(id), Some(MenuAction::CancelSignIn(r)));
    }

    #[test]
    fn action_ids_round_trip() {
        let servers = [ServerRef::new(None, "linear"), ServerRef::new(Some("work-2"), "name:with:colons")];
        for r in servers {
            for a in [
                MenuAction::Connect(r.clone()),
                MenuAction::Disconnect(r.clone()),
                MenuAction::CancelSignIn(r.clone()),
                MenuAction::CopyUrl(r.clone()),
                MenuAction::ShowDetails(r.clone()),
                MenuAction::StepUp(r.clone()),
            ] {
                assert_eq!(MenuAction::parse(&a.id()), Some(a));
            }
        }
        for a in [
            MenuAction::ConnectAllNeeding,
            MenuAction::CheckNow,
            MenuAction::OpenWindow,
            MenuAction::ToggleAutostart,
            MenuAction::OpenConfig,
            MenuAction::OpenLogs,
            MenuAction::Quit,
        ] {
            assert_eq!(MenuAction::parse(&a.id()), Some(a));
        }
        for info in ["summary", "server:default:x", "profile:work", "problem:default", "empty"] {
            assert_eq!(MenuAction::parse(info), None, "{info}");
        }
    }

    #[test]
    fn needing_more_access_offers_the_step_up_and_check_now_needs_a_signed_in_server() {
        let report = StatusReport {
            servers: vec![row(None, "a", AuthLabel::Oauth, AuthState::NeedsMoreAccess, None)],
            computed_at: 1000.0,
            ..Default::default()
        };
        let menu = tray_menu(&report, idle());
        assert_eq!(menu.icon, TrayIcon::Attention);
        let all = labels(&menu);
        let a = all.iter().position(|l| l == "⚠ a — Needs more access >").expect("a");
        assert_eq!(all[a + 1..a + 4], ["  Grant more access", "  Reconnect", "  Disconnect"].map(str::to_owned));
        let MenuLine::Submenu { lines, .. } = &menu.lines[2] else { panic!("no submenu") };
        let MenuLine::Item { id, .. } = &lines[0] else { panic!("no item") };
        assert_eq!(MenuAction::parse(id), Some(MenuAction::StepUp(ServerRef::new(None, "a"))));
        assert!(labels(&menu).contains(&"Check now".to_owned()));
        let nothing_to_check = StatusReport {
            servers: vec![row(None, "a", AuthLabel::Oauth, AuthState::NotConnected, None)],
            ..Default::default()
        };
        assert!(labels(&tray_menu(&nothing_to_check, idle())).contains(&"Check now (info)".to_owned()));
    }

    #[test]
    fn empty_menu_says_so() {
        let menu = tray_menu(&StatusReport::default(), idle());
        assert!(labels(&menu).contains(&"No MCP servers configured (info)".to_owned()));
        assert_eq!(menu.icon, TrayIcon::Normal);
    }
}
