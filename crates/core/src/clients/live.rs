//! The clients' views read from this machine now, and "Use in <client>":
//! what every front end (the tray, `mcp-auth status`, `setup`) shares, so
//! none of them composes the readers, our list and the vault itself.
//!
//! Reading is bounded (each config file is read capped) and never fails as
//! a whole: what cannot be read becomes a problem line.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::grant::OWN_PROFILE;
use super::own::{OwnList, OwnListFile};
use super::paths::{LocationEnv, Platform};
use super::read::read_all;
use super::setup::{SetupAction, SetupError, SetupRequest, apply, plan, setup_location};
use super::view::{ClientsReport, clients_status, own_grant_keys, own_grant_state, own_grants};
use super::{ClientFile, ClientKind};
use crate::hermes::snapshot::Snapshot;
use crate::sign_in::connect::OAuthServer;
use crate::vault::{Vault, VaultError, VaultKey};
use crate::view::activity::{NeedsSignIn, ServerRef};
use crate::view::status::{AuthState, StatusReport, VaultView};

/// The folder of our list (the pseudo-home of its servers; never written).
pub fn own_home(file: &OwnListFile) -> PathBuf {
    file.path().parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Every client's config on this machine, as read now.
pub fn read_client_files() -> Vec<ClientFile> {
    LocationEnv::from_process().map(|env| read_all(Platform::current(), &env)).unwrap_or_default()
}

/// Our list as saved, and its folder; a problem line when the file is broken.
pub fn load_own_list() -> (OwnList, PathBuf, Option<String>) {
    match OwnListFile::default_location() {
        Some(file) => {
            let home = own_home(&file);
            match file.load() {
                Ok(list) => (list, home, None),
                Err(e) => (OwnList::default(), home, Some(crate::util::text::error_text(&e))),
            }
        }
        None => (OwnList::default(), PathBuf::new(), None),
    }
}

/// The other clients' servers and our list, with our sign-in state for each
/// (the agent's from `report`, ours from `vault`), and the problems of our
/// list. Blocking (config files, keychain): call on `spawn_blocking`.
pub fn load_clients_report(
    snapshot: &Snapshot,
    report: &StatusReport,
    vault: &Result<Vault, VaultError>,
) -> (ClientsReport, Vec<String>) {
    let files = read_client_files();
    let (own, home, problem) = load_own_list();
    let keys = own_grant_keys(&files, &own, &home, snapshot);
    let views = crate::vault::open::vault_views(vault, keys);
    let lookup = |k: &VaultKey| views.get(k).cloned().unwrap_or(VaultView::Missing);
    (clients_status(&files, &own, &home, snapshot, report, &lookup), problem.into_iter().collect())
}

/// Our grants (list entries, bare URLs the clients name) whose record says
/// a new sign-in is needed (a proxy or `mcp-auth headers` found the refresh
/// refused and noted it in the vault), with why: what the tray and the
/// daemon announce as for the agent's servers. Blocking (files, keychain).
pub fn own_grants_needing_sign_in(snapshot: &Snapshot, vault: &Vault, now: f64) -> Vec<NeedsSignIn> {
    let grants = own_grants_now(snapshot);
    let views = crate::vault::open::vault_views(&Ok(vault.clone()), grants.iter().map(|g| g.server.vault_key()));
    grants
        .iter()
        .filter_map(|g| {
            let view = views.get(&g.server.vault_key())?;
            let row = own_grant_state(view, &g.server.name, now);
            (row.state == AuthState::NeedsReauth)
                .then(|| NeedsSignIn { server: ServerRef::new(Some(OWN_PROFILE), &g.server.name), reason: row.detail })
        })
        .collect()
}

/// Our grant named `name` (an entry of our list, or the host a bare URL is
/// kept under), as the sign-in code sees it: what a notice's "Sign in"
/// for one of ours signs in to. Blocking (files).
pub fn own_grant_named(snapshot: &Snapshot, name: &str) -> Option<OAuthServer> {
    own_grants_now(snapshot).into_iter().map(|g| g.server).find(|s| s.name == name)
}

/// Our grants as the clients' files and our list name them now. Blocking (files).
fn own_grants_now(snapshot: &Snapshot) -> Vec<super::GrantServer> {
    let (own, home, _) = load_own_list();
    own_grants(&read_client_files(), &own, &home, snapshot)
}

/// The URL of a server a client's file does not have, named for `setup`:
/// the agent's server of that name, else our list's.
pub fn named_server_url(snapshot: &Snapshot, own: &OwnList, name: &str) -> Option<url::Url> {
    crate::sign_in::connect::find_oauth_server(snapshot, name, None)
        .ok()
        .map(|s| s.url)
        .or_else(|| own.url_of(name).and_then(|u| url::Url::parse(u).ok()))
}

/// The distinct remote URLs the other clients' configs give a server named
/// `name` (user-wide entries and projects alike; the same URL named by
/// several clients counts once): what `mcp-auth connect <name>` signs in to
/// when neither the agent nor our list has that name. A bridge's target
/// (`mcp-remote <url>`) counts; an entry routed through us by name does not
/// (that name is ours or the agent's).
pub fn urls_named(files: &[ClientFile], name: &str) -> Vec<url::Url> {
    let mut urls: Vec<url::Url> = Vec::new();
    for url in files.iter().flat_map(|f| &f.servers).filter(|s| s.name == name).filter_map(|s| s.url.as_ref()) {
        if !urls.iter().any(|u| super::grant::normalize_url(u) == super::grant::normalize_url(url)) {
            urls.push(url.clone());
        }
    }
    urls
}

/// The command a client should start for us from an app whose executable
/// is `exe` (the tray): the `mcp-auth` installed beside it (GUI clients do
/// not see the shell's `PATH`), else the bare name.
pub fn program_beside(exe: Option<&Path>) -> String {
    let name = if cfg!(windows) { "mcp-auth.exe" } else { "mcp-auth" };
    exe.and_then(Path::parent)
        .map(|dir| dir.join(name))
        .filter(|p| p.is_file())
        .map_or_else(|| "mcp-auth".to_owned(), |p| p.display().to_string())
}

/// What "Use in <client>" did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseInDone {
    pub client: ClientKind,
    pub server: String,
    /// The file edited (or found already routed).
    pub path: PathBuf,
    /// The copy made before writing; `None` when nothing was written.
    pub backup: Option<PathBuf>,
}

impl UseInDone {
    /// What the user is told: a title and a line.
    pub fn message(&self) -> (String, String) {
        let label = self.client.label();
        let title = format!("{label} uses {} through mcp-auth", self.server);
        let body = match &self.backup {
            Some(backup) => format!(
                "Changed {} (backup: {}). Restart {label} to use it.",
                self.path.display(),
                backup.file_name().map_or_else(|| backup.display().to_string(), |n| n.to_string_lossy().into_owned())
            ),
            None => format!("{} already routes it through mcp-auth; nothing changed.", self.path.display()),
        };
        (title, body)
    }
}

/// "Use in <client>" for one server: exactly `mcp-auth setup <client>
/// <server> --write` (a timestamped backup, an atomic write, only if the
/// file is still what the change was planned from). Blocking (files).
pub fn use_in(
    client: ClientKind,
    server: &str,
    snapshot: &Snapshot,
    program: &str,
    now: SystemTime,
) -> Result<UseInDone, SetupError> {
    let env = LocationEnv::from_process().ok_or(SetupError::NoLocation { client: client.label() })?;
    let location =
        setup_location(Platform::current(), &env, client).ok_or(SetupError::NoLocation { client: client.label() })?;
    let (own, _, _) = load_own_list();
    let resolve = |name: &str| named_server_url(snapshot, &own, name);
    let request = SetupRequest { location, servers: vec![server.to_owned()], program: program.to_owned() };
    let planned = plan(&request, &resolve)?;
    let backup = apply(&planned, now)?;
    tracing::info!(
        client = client.id(),
        server = %server,
        routed = planned.actions.iter().any(|a| !matches!(a, SetupAction::AlreadyRouted { .. })),
        "use in client"
    );
    Ok(UseInDone { client, server: server.to_owned(), path: planned.path, backup })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn file(client: ClientKind, entries: &[(&str, &str)]) -> ClientFile {
        let path = PathBuf::from(format!("/h/{}", client.id()));
        ClientFile {
            location: super::super::paths::ConfigLocation {
                client,
                path: path.clone(),
                shape: super::super::paths::Shape::McpServers,
                project: None,
            },
            servers: entries
                .iter()
                .map(|(name, url)| super::super::ClientServer {
                    client,
                    config: path.clone(),
                    project: None,
                    name: (*name).to_owned(),
                    url: url::Url::parse(url).ok(),
                    transport: super::super::Transport::Http,
                    routing: super::super::Routing::Direct,
                    headers: Vec::new(),
                    env: Vec::new(),
                    enabled: true,
                })
                .collect(),
            problems: Vec::new(),
        }
    }

    #[rstest]
    #[case::one_client("linear", &["https://mcp.linear.app/mcp"])]
    #[case::same_url_twice_counts_once("notion", &["https://mcp.notion.com/mcp"])]
    #[case::different_urls("dup", &["https://a.example/mcp", "https://b.example/mcp"])]
    #[case::named_nowhere("nope", &[])]
    #[case::a_local_command("local", &[])]
    fn urls_named_by_the_clients(#[case] name: &str, #[case] want: &[&str]) {
        let files = vec![
            file(
                ClientKind::Cursor,
                &[
                    ("linear", "https://mcp.linear.app/mcp"),
                    ("notion", "https://mcp.notion.com/mcp"),
                    ("dup", "https://a.example/mcp"),
                    ("local", "not a url"),
                ],
            ),
            file(ClientKind::Codex, &[("notion", "https://MCP.notion.com/mcp/"), ("dup", "https://b.example/mcp")]),
        ];
        let got: Vec<String> = urls_named(&files, name).iter().map(url::Url::to_string).collect();
        assert_eq!(got, want);
    }

    /// "Sign in" on a client's line goes to the grant serving its URL: the
    /// agent's server of that URL, else ours, named by the host.
    #[test]
    fn a_lines_sign_in_goes_to_the_grant_of_its_url() -> Result<(), Box<dyn std::error::Error>> {
        use crate::view::activity::ServerRef;
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("config.yaml"),
            "mcp_servers:\n  lin:\n    url: https://mcp.linear.app/mcp\n    auth: oauth\n",
        )?;
        let snapshot =
            crate::hermes::snapshot::SnapshotLoader::new().load(&crate::hermes::home::HermesRoot::at(dir.path()));
        let report = crate::StatusReport::evaluate(&snapshot, SystemTime::now());
        let files = vec![file(
            ClientKind::Cursor,
            &[("linear", "https://MCP.linear.app/mcp/"), ("tracker", "https://tracker.example/mcp")],
        )];
        let own = OwnList::default();
        let missing = |_: &crate::vault::VaultKey| crate::view::status::VaultView::Missing;
        let got = super::super::view::clients_status(&files, &own, dir.path(), &snapshot, &report, &missing);
        let sign_ins: Vec<_> = got.servers.iter().map(|s| (s.name.as_str(), s.sign_in.clone())).collect();
        assert_eq!(
            sign_ins,
            vec![
                ("linear", Some(ServerRef::new(None, "lin"))),
                ("tracker", Some(ServerRef::new(Some(OWN_PROFILE), "tracker.example"))),
            ]
        );
        Ok(())
    }

    #[rstest]
    #[case::beside(true, "beside")]
    #[case::bare(false, "mcp-auth")]
    fn the_program_is_the_mcp_auth_beside_the_app(#[case] present: bool, #[case] want: &str) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let name = if cfg!(windows) { "mcp-auth.exe" } else { "mcp-auth" };
        if present {
            std::fs::write(dir.path().join(name), b"").unwrap_or_else(|e| panic!("{e}"));
        }
        let got = program_beside(Some(&dir.path().join("mcp-auth-tray")));
        let want = if want == "beside" { dir.path().join(name).display().to_string() } else { want.to_owned() };
        assert_eq!(got, want);
        assert_eq!(program_beside(None), "mcp-auth");
    }

    #[rstest]
    #[case::written(
        Some("/h/.cursor/mcp.json.mcp-auth-backup-1"),
        "Cursor uses linear through mcp-auth",
        "Changed /h/.cursor/mcp.json (backup: mcp.json.mcp-auth-backup-1). Restart Cursor to use it."
    )]
    #[case::already(
        None,
        "Cursor uses linear through mcp-auth",
        "/h/.cursor/mcp.json already routes it through mcp-auth; nothing changed."
    )]
    fn what_the_user_is_told(#[case] backup: Option<&str>, #[case] title: &str, #[case] body: &str) {
        let done = UseInDone {
            client: ClientKind::Cursor,
            server: "linear".to_owned(),
            path: PathBuf::from("/h/.cursor/mcp.json"),
            backup: backup.map(PathBuf::from),
        };
        assert_eq!(done.message(), (title.to_owned(), body.to_owned()));
    }
}
