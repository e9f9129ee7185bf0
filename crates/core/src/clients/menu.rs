//! The other clients in the tray menu: a pure model, like [`crate::tray_menu`],
//! that the shell appends to its menu.
//!
//! One submenu "Other MCP clients", a submenu per client (as `status` groups
//! them), a line per remote server with our sign-in state and its route, and
//! for a server not yet routed through us the action "Use in <client>"
//! ([`ClientMenuAction::UseIn`]: run [`super::setup::plan`] for that one
//! server and, once the user agrees to the diff, [`super::setup::apply`]).
//! Ids of these items never collide with [`crate::MenuAction`]'s (`client:`,
//! `use-in:` prefixes).

use super::ClientKind;
use super::view::{ClientsReport, OWN_CLIENT};
use crate::util::text::shorten;
use crate::view::menu::MenuLine;
use crate::view::status::AuthState;

/// What clicking a client item asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMenuAction {
    /// Route `server` of `client`'s config through us (`mcp-auth setup`).
    UseIn { client: ClientKind, server: String },
}

impl ClientMenuAction {
    /// `use-in:<client id>:<server>` (client ids never contain `:`).
    pub fn id(&self) -> String {
        match self {
            Self::UseIn { client, server } => format!("use-in:{}:{server}", client.id()),
        }
    }

    /// The action of an item id, `None` for other ids.
    pub fn parse(id: &str) -> Option<Self> {
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
                match kind {
                    Some(kind) if !s.routed && s.enabled && s.project.is_none() => {
                        let action = ClientMenuAction::UseIn { client: kind, server: s.name.clone() };
                        let use_in = MenuLine::Item {
                            id: action.id(),
                            label: format!("Use in {} through mcp-auth…", kind.label()),
                            enabled: true,
                        };
                        lines.push(MenuLine::Submenu { id, label: text, lines: vec![use_in] });
                    }
                    _ => lines.push(info(id, text)),
                }
            }
            MenuLine::Submenu { id: format!("client:{client}"), label: label.to_owned(), lines }
        })
        .collect();
    Some(MenuLine::Submenu { id: "clients".to_owned(), label: "Other MCP clients".to_owned(), lines })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::view::{ClientProblem, ClientServerStatus};
    use pretty_assertions::assert_eq;

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
        }
    }

    #[test]
    fn grouped_by_client_with_use_in_for_servers_not_routed() {
        let report = ClientsReport {
            servers: vec![
                row("cursor", "linear", AuthState::Connected, None),
                row("codex", "linear", AuthState::Connected, Some("proxy")),
                row(OWN_CLIENT, "solo", AuthState::NotConnected, None),
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
                        {"kind": "item", "id": "use-in:cursor:linear", "label": "Use in Cursor through mcp-auth…", "enabled": true}
                    ]}
                ]},
                {"kind": "submenu", "id": "client:codex", "label": "Codex", "lines": [
                    {"kind": "item", "id": "client:codex:linear", "label": "● linear — Connected · through mcp-auth", "enabled": false}
                ]},
                {"kind": "submenu", "id": "client:mcp-auth", "label": "Our list", "lines": [
                    {"kind": "item", "id": "client:mcp-auth:solo", "label": "○ solo — Not connected", "enabled": false}
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
        assert_eq!(clients_menu(&ClientsReport::default()), None);
    }
}
