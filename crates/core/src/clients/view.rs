//! The clients' remote servers as every front end shows them: grouped by
//! client, each with our sign-in state for its URL (through the grant that
//! serves the URL, [`super::grant`]) and whether the client routes it
//! through us. URLs are redacted as in the agent's status; header values
//! never appear.

use std::path::Path;

use serde::Serialize;

use super::grant::{GrantServer, GrantSource, grant_candidates};
use super::own::OwnList;
use super::{ClientFile, Transport};
use crate::hermes::snapshot::Snapshot;
use crate::vault::VaultKey;
use crate::view::activity::ServerRef;
use crate::view::status::{AuthLabel, AuthState, ServerStatus, StatusReport, VaultView, redact_url};

/// The client id of our own list's entries.
pub const OWN_CLIENT: &str = "mcp-auth";

/// One remote server of one client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientServerStatus {
    /// `claude-code`, `cursor`, ... or `mcp-auth` for our own list.
    pub client: String,
    /// The config file (`null` for our list).
    pub config: Option<String>,
    /// A Claude Code project the entry belongs to.
    pub project: Option<String>,
    pub name: String,
    /// Redacted as in the agent's status.
    pub url: Option<String>,
    pub transport: Option<Transport>,
    pub enabled: bool,
    /// The client reaches it through `mcp-auth proxy` or `mcp-auth headers`.
    pub routed: bool,
    /// `proxy`, `headers`, or `null`.
    pub via: Option<&'static str>,
    /// Our sign-in state for its URL.
    pub state: AuthState,
    pub expires_at: Option<i64>,
    /// Whose vault record holds the grant (`name`, `profile/name`), when signed in.
    pub grant: Option<String>,
    /// The grant a sign-in from this line goes to: the one holding the
    /// tokens, else the first that could ([`grant_candidates`], as
    /// `mcp-auth connect` picks). Not in `status --json` (`grant` says it
    /// for people).
    #[serde(skip)]
    pub sign_in: Option<ServerRef>,
}

/// A config file (or part of one) we could not use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientProblem {
    pub client: String,
    pub config: String,
    pub message: String,
}

/// Every client's remote servers, in file order, and the problems.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClientsReport {
    pub servers: Vec<ClientServerStatus>,
    pub problems: Vec<ClientProblem>,
}

/// Builds the report. `report` is the agent's status (from which the state
/// of a Hermes grant is taken, so both views agree); `vault` answers for
/// grants of our own (list entries and bare URLs).
pub fn clients_status(
    files: &[ClientFile],
    own: &OwnList,
    own_home: &Path,
    snapshot: &Snapshot,
    report: &StatusReport,
    vault: &dyn Fn(&VaultKey) -> VaultView,
) -> ClientsReport {
    let mut out = ClientsReport::default();
    let state_for = |target: &str| -> Grant {
        let Ok(candidates) = grant_candidates(snapshot, own, own_home, target) else {
            return Grant::default();
        };
        let sign_in = |c: &GrantServer| Some(ServerRef::new(c.server.home.profile.as_deref(), &c.server.name));
        candidates
            .iter()
            .map(|c| (state_of(c, report, vault, report.computed_at), c))
            .find(|((state, _), _)| *state != AuthState::NotConnected)
            .map_or_else(
                || Grant { sign_in: candidates.first().and_then(sign_in), ..Grant::default() },
                |((state, expires_at), c)| Grant { state, expires_at, label: Some(c.label()), sign_in: sign_in(c) },
            )
    };
    for file in files {
        let client = file.location.client.id().to_owned();
        for message in &file.problems {
            out.problems.push(ClientProblem {
                client: client.clone(),
                config: file.location.path.display().to_string(),
                message: message.clone(),
            });
        }
        for s in file.servers.iter().filter(|s| s.is_remote()) {
            let target = s.url.as_ref().map(url::Url::to_string).or_else(|| s.routed_target().map(str::to_owned));
            let grant = target.as_deref().map(state_for).unwrap_or_default();
            out.servers.push(ClientServerStatus {
                client: client.clone(),
                config: Some(s.config.display().to_string()),
                project: s.project.as_ref().map(|p| p.display().to_string()),
                name: s.name.clone(),
                url: s.url.as_ref().map(|u| redact_url(u.as_str())).or_else(|| s.routed_target().map(str::to_owned)),
                transport: Some(s.transport),
                enabled: s.enabled,
                routed: s.routing.is_ours(),
                via: s.routing.via(),
                state: grant.state,
                expires_at: grant.expires_at,
                grant: grant.label,
                sign_in: grant.sign_in,
            });
        }
    }
    for (name, url) in own.servers() {
        let grant = state_for(name);
        out.servers.push(ClientServerStatus {
            client: OWN_CLIENT.to_owned(),
            config: None,
            project: None,
            name: name.to_owned(),
            url: Some(redact_url(url)),
            transport: None,
            enabled: true,
            routed: true,
            via: None,
            state: grant.state,
            expires_at: grant.expires_at,
            grant: grant.label,
            sign_in: grant.sign_in,
        });
    }
    out
}

/// What a line says of the grant serving it.
struct Grant {
    state: AuthState,
    expires_at: Option<i64>,
    /// [`GrantServer::label`] of the grant holding tokens.
    label: Option<String>,
    sign_in: Option<ServerRef>,
}

impl Default for Grant {
    fn default() -> Self {
        Self { state: AuthState::NotConnected, expires_at: None, label: None, sign_in: None }
    }
}

/// The sign-in state of one candidate's record.
fn state_of(
    candidate: &GrantServer,
    report: &StatusReport,
    vault: &dyn Fn(&VaultKey) -> VaultView,
    now: f64,
) -> (AuthState, Option<i64>) {
    if candidate.source == GrantSource::Hermes {
        return report
            .servers
            .iter()
            .find(|row| row.profile == candidate.server.home.profile && row.name == candidate.server.name)
            .map_or((AuthState::NotConnected, None), |row| (row.state, row.expires_at));
    }
    let row = own_grant_state(&vault(&candidate.server.vault_key()), &candidate.server.name, now);
    (row.state, row.expires_at)
}

/// Our own grants (list entries, and bare URLs the clients name) that
/// [`clients_status`] may ask about, each once, in file order.
pub fn own_grants(files: &[ClientFile], own: &OwnList, own_home: &Path, snapshot: &Snapshot) -> Vec<GrantServer> {
    let targets = files
        .iter()
        .flat_map(|f| f.servers.iter().filter(|s| s.is_remote()))
        .filter_map(|s| s.url.as_ref().map(url::Url::to_string).or_else(|| s.routed_target().map(str::to_owned)))
        .chain(own.servers().map(|(n, _)| n.to_owned()));
    let mut seen = std::collections::HashSet::new();
    targets
        .filter_map(|t| grant_candidates(snapshot, own, own_home, &t).ok())
        .flatten()
        .filter(|c| c.source != GrantSource::Hermes && seen.insert(c.server.vault_key()))
        .collect()
}

/// The vault keys of [`own_grants`] (to fetch them beforehand with
/// [`crate::vault_views`]).
pub fn own_grant_keys(files: &[ClientFile], own: &OwnList, own_home: &Path, snapshot: &Snapshot) -> Vec<VaultKey> {
    own_grants(files, own, own_home, snapshot).iter().map(|g| g.server.vault_key()).collect()
}

/// The state of one of our grants from its vault record, as `status` shows it.
pub fn own_grant_state(view: &VaultView, name: &str, now: f64) -> ServerStatus {
    let mut row = ServerStatus::bare(name, AuthLabel::Oauth, AuthState::NotConnected);
    match view {
        VaultView::Present(summary) => crate::view::status::apply_tokens(&mut row, summary, now),
        VaultView::Unreadable(_) => row.state = AuthState::Error,
        _ => {}
    }
    row
}
