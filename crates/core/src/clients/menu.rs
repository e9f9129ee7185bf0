//! The other clients in the tray menu: a pure model, like [`crate::tray_menu`],
//! that the shell appends to its menu.
//!
//! One submenu "Other MCP clients", a submenu per client (as `status` groups
//! them), a line per remote server with our sign-in state and its route, and
//! under it its actions: "Sign in" ("Sign in again") when its grant has no
//! tokens or needs a new sign-in ([`ClientMenuAction::SignIn`], the same
//! sign-in as the agent's Connect or `mcp-auth connect`), and for a server
//! not yet routed through us "Use in <client>" ([`ClientMenuAction::UseIn`],
//! carried out by [`super::live::use_in`]: `mcp-auth setup <client>
//! <server> --write` for that one server). The submenu goes after the
//! agent's servers ([`with_clients_menu`]). Ids of these items never collide
//! with [`crate::MenuAction`]'s (`client:`, `client-sign-in:`, `use-in:`
//! prefixes), nor with each other's: one grant may serve several clients.

use super::ClientKind;
use super::view::{ClientsReport, OWN_CLIENT};
use crate::util::text::shorten;
use crate::view::activity::ServerRef;
use crate::view::menu::{MenuLine, TrayMenu};
use crate::view::status::AuthState;

/// What clicking a client item asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMenuAction {
    /// Route `server` of `client`'s config through us (`mcp-auth setup`).
    UseIn { client: ClientKind, server: String },
    /// Sign in to the grant `server` (the line's
    /// [`super::view::ClientServerStatus::sign_in`]) from `client`'s submenu
    /// (`client` keeps the ids of one grant under two clients apart).
    SignIn { client: String, server: ServerRef },
}

impl ClientMenuAction {
    /// `use-in:<client id>:<server>` and
    /// `client-sign-in:<client id>:<profile>:<name>` (client and profile ids
    /// never contain `:`; the name, last, may).
    pub fn id(&self) -> String {
        match self {
            Self::UseIn { client, server } => format!("use-in:{}:{server}", client.id()),
            Self::SignIn { client, server } => {
                format!("client-sign-in:{client}:{}:{}", server.profile.as_deref().unwrap_or(""), server.name)
            }
        }
    }

    /// The action of an item id, `None` for other ids.
    pub fn parse(id: &str) -> Option<Self> {
        if let Some(rest) = id.strip_prefix("client-sign-in:") {
            let (client, rest) = rest.split_once(':')?;
            let (profile, name) = rest.split_once(':')?;
            let profile = Some(profile).filter(|p| !p.is_empty());
            return Some(Self::SignIn { client: client.to_owned(), server: ServerRef::new(profile, name) });
        }
        let rest = id.strip_prefix("use-in:")?;
        let (client, server) = rest.split_once(':')?;
        Some(Self::UseIn { client: ClientKind::parse(client)?, server: server.to_owned() })
    }
}

fn glyph(state: AuthState) -> &'static str {
    match state {
        AuthState::Connected => "●",
        AuthState::Expiring => "◐",
        AuthState::Expired => "◌",
        AuthState::NotConnected => "○",
        AuthState::NeedsReauth | AuthState::NeedsMoreAccess => "⚠",
        AuthState::Error => "✕",
        AuthState::NotApplicable => "·",
    }
}

/// The "Other MCP clients" submenu, or `None` when no client has a remote
/// server and no file has a problem.
pub fn clients_menu(report: &ClientsReport) -> Option<MenuLine> {
    let mut clients: Vec<&str> = Vec::new();
    for c in report.servers.iter().map(|s| s.client.as_str()).chain(report.problems.iter().map(|p| p.client.as_str())) {
        if !clients.contains(&c) {
            clients.push(c);
        }
    }
    if clients.is_empty() {
        return None;
    }
    let info = |id: String, label: String| MenuLine::Item { id, label, enabled: false };
    let lines = clients
        .into_iter()
        .map(|client| {
            let kind = ClientKind::parse(client);
            let label = kind.map_or("Our list", ClientKind::label);
            let mut lines = Vec::new();
            for p in report.problems.iter().filter(|p| p.client == client) {
                lines.push(info(format!("client-problem:{client}"), format!("⚠ {}", shorten(&p.message, 80))));
            }
            for s in report.servers.iter().filter(|s| s.client == client) {
                let route = match (s.via, s.enabled) {
                    (_, false) => " · off",
                    (Some(_), _) => " · through mcp-auth",
                    (None, _) if client == OWN_CLIENT => "",
                    (None, _) => " · direct",
                };
                let state = match s.state {
                    AuthState::Connected => "Connected",
                    AuthState::Expiring => "Refresh due",
                    AuthState::Expired => "Expired, can refresh",
                    AuthState::NotConnected => "Not connected",
                    AuthState::NeedsReauth => "Needs sign-in",
                    AuthState::NeedsMoreAccess => "Needs more access",
                    AuthState::Error => "Error",
                    AuthState::NotApplicable => "-",
                };
                let id = format!("client:{client}:{}", s.name);
                let text = format!("{} {} — {state}{route}", glyph(s.state), s.name);
                let action =
                    |action: ClientMenuAction, label: String| MenuLine::Item { id: action.id(), label, enabled: true };
                let mut actions = Vec::new();
                let sign_in = match s.state {
                    AuthState::NotConnected => Some("Sign in"),
                    AuthState::NeedsReauth => Some("Sign in again"),
                    _ => None,
                };
                if let (Some(label), Some(server), true) = (sign_in, &s.sign_in, s.enabled) {
                    let sign_in = ClientMenuAction::SignIn { client: client.to_owned(), server: server.clone() };
                    actions.push(action(sign_in, label.to_owned()));
                }
                if let Some(kind) = kind.filter(|_| !s.routed && s.enabled && s.project.is_none()) {
                    let use_in = ClientMenuAction::UseIn { client: kind, server: s.name.clone() };
                    actions.push(action(use_in, format!("Use in {}", kind.label())));
                }
                if actions.is_empty() {
                    lines.push(info(id, text));
                } else {
                    lines.push(MenuLine::Submenu { id, label: text, lines: actions });
                }
            }
            MenuLine::Submenu { id: format!("client:{client}"), label: label.to_owned(), lines }
        })
        .collect();
    Some(MenuLine::Submenu { id: "clients".to_owned(), label: "Other MCP clients".to_owned(), lines })
}

/// `menu` with the "Other MCP clients" submenu of `report` after the
/// agent's servers (before the actions), when there is one.
pub fn with_clients_menu(mut menu: TrayMenu, report: &ClientsReport) -> TrayMenu {
    if let Some(clients) = clients_menu(report) {
        // The summary line, a separator, the servers, a separator, the actions.
        let at = menu
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == MenuLine::Separator)
            .nth(1)
            .map_or(menu.lines.len(), |(i, _)| i);
        menu.lines.insert(at, clients);
    }
    menu
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::view::{ClientProblem, ClientServerStatus};
    use pretty_assertions::assert_eq;

    /// A line whose grant is ours, under `name`.
    fn row(client: &str, name: &str, state: AuthState, via: Option<&'static str>) -> ClientServerStatus {
        ClientServerStatus {
            client: client.to_owned(),
            config: Some("/c".to_owned()),
            project: None,
            name: name.to_owned(),
            url: Some(format!("https://{name}.example/mcp")),
            transport: None,
            enabled: true,
            routed: via.is_some() || client == OWN_CLIENT,
            via,
            state,
            expires_at: None,
            grant: None,
            sign_in: Some(ServerRef::new(Some(crate::clients::OWN_PROFILE), name)),
        }
    }

    #[test]
    fn grouped_by_client_with_use_in_for_servers_not_routed() {
        let report = ClientsReport {
            servers: vec![
                row("cursor", "linear", AuthState::Connected, None),
                row("codex", "linear", AuthState::Connected, Some("proxy")),
                row(OWN_CLIENT, "solo", AuthState::NotConnected, None),
                row("claude-code", "solo", AuthState::NeedsReauth, Some("headers")),
                ClientServerStatus { sign_in: None, ..row("codex", "odd", AuthState::NotConnected, Some("proxy")) },
                ClientServerStatus { enabled: false, ..row("codex", "off", AuthState::NotConnected, None) },
            ],
            problems: vec![ClientProblem {
                client: "gemini".to_owned(),
                config: "/g".to_owned(),
                message: "cannot parse it".to_owned(),
            }],
        };
        let Some(MenuLine::Submenu { label, lines, .. }) = clients_menu(&report) else { panic!("no submenu") };
        assert_eq!(label, "Other MCP clients");
        let got = serde_json::to_value(&lines).unwrap_or_default();
        assert_eq!(
            got,
            serde_json::json!([
                {"kind": "submenu", "id": "client:cursor", "label": "Cursor", "lines": [
                    {"kind": "submenu", "id": "client:cursor:linear", "label": "● linear — Connected · direct", "lines": [
                        {"kind": "item", "id": "use-in:cursor:linear", "label": "Use in Cursor", "enabled": true}
                    ]}
                ]},
                {"kind": "submenu", "id": "client:codex", "label": "Codex", "lines": [
                    {"kind": "item", "id": "client:codex:linear", "label": "● linear — Connected · through mcp-auth", "enabled": false},
                    {"kind": "item", "id": "client:codex:odd", "label": "○ odd — Not connected · through mcp-auth", "enabled": false},
                    {"kind": "item", "id": "client:codex:off", "label": "○ off — Not connected · off", "enabled": false}
                ]},
                {"kind": "submenu", "id": "client:mcp-auth", "label": "Our list", "lines": [
                    {"kind": "submenu", "id": "client:mcp-auth:solo", "label": "○ solo — Not connected", "lines": [
                        {"kind": "item", "id": "client-sign-in:mcp-auth:+mcp-auth:solo", "label": "Sign in", "enabled": true}
                    ]}
                ]},
                {"kind": "submenu", "id": "client:claude-code", "label": "Claude Code", "lines": [
                    {"kind": "submenu", "id": "client:claude-code:solo", "label": "⚠ solo — Needs sign-in · through mcp-auth", "lines": [
                        {"kind": "item", "id": "client-sign-in:claude-code:+mcp-auth:solo", "label": "Sign in again", "enabled": true}
                    ]}
                ]},
                {"kind": "submenu", "id": "client:gemini", "label": "Gemini CLI", "lines": [
                    {"kind": "item", "id": "client-problem:gemini", "label": "⚠ cannot parse it", "enabled": false}
                ]}
            ])
        );
        assert_eq!(
            ClientMenuAction::parse("use-in:cursor:my:server"),
            Some(ClientMenuAction::UseIn { client: ClientKind::Cursor, server: "my:server".to_owned() })
        );
        assert_eq!(ClientMenuAction::parse("connect::linear"), None);
        for action in [
            ClientMenuAction::SignIn { client: "cursor".to_owned(), server: ServerRef::new(None, "my:server") },
            ClientMenuAction::SignIn { client: "mcp-auth".to_owned(), server: ServerRef::new(Some("work"), "a") },
        ] {
            assert_eq!(ClientMenuAction::parse(&action.id()), Some(action));
        }
        assert_eq!(clients_menu(&ClientsReport::default()), None);
    }

    #[rstest::rstest]
    #[case::after_the_servers(vec!["summary", "---", "a", "b", "---", "Quit"], true, vec!["summary", "---", "a", "b", "clients", "---", "Quit"])]
    #[case::no_clients(vec!["summary", "---", "a", "---", "Quit"], false, vec!["summary", "---", "a", "---", "Quit"])]
    #[case::no_second_separator(vec!["summary", "---", "a"], true, vec!["summary", "---", "a", "clients"])]
    fn the_submenu_goes_after_the_agents_servers(
        #[case] lines: Vec<&str>,
        #[case] clients: bool,
        #[case] want: Vec<&str>,
    ) {
        let line = |l: &str| match l {
            "---" => MenuLine::Separator,
            other => MenuLine::Item { id: other.to_owned(), label: other.to_owned(), enabled: true },
        };
        let menu = TrayMenu {
            icon: crate::view::menu::TrayIcon::Normal,
            title: String::new(),
            lines: lines.into_iter().map(line).collect(),
        };
        let report = ClientsReport {
            servers: if clients { vec![row("cursor", "linear", AuthState::Connected, None)] } else { Vec::new() },
            problems: Vec::new(),
        };
        let got: Vec<String> = with_clients_menu(menu, &report)
            .lines
            .iter()
            .map(|l| match l {
                MenuLine::Separator => "---".to_owned(),
                MenuLine::Submenu { id, .. } => id.clone(),
                MenuLine::Item { id, .. } | MenuLine::Check { id, .. } => id.clone(),
            })
            .collect();
        assert_eq!(got, want);
    }
}
