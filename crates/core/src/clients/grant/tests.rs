use std::sync::Arc;

use super::*;
use crate::oauth::client::ClientRecord;
use crate::util::secret::SecretString;
use crate::vault::{MemoryBackend, StoredTokens};
use pretty_assertions::assert_eq;
use rstest::rstest;

#[rstest]
#[case("https://MCP.Example.com:443/mcp/", "https://mcp.example.com/mcp")]
#[case("https://mcp.example.com/mcp#frag", "https://mcp.example.com/mcp")]
#[case("https://user:pw@mcp.example.com/mcp", "https://mcp.example.com/mcp")]
#[case("https://mcp.example.com/a/../mcp", "https://mcp.example.com/mcp")]
#[case("https://mcp.example.com", "https://mcp.example.com/")]
#[case("https://mcp.example.com/mcp?", "https://mcp.example.com/mcp")]
#[case("https://mcp.example.com/mcp?tenant=1", "https://mcp.example.com/mcp?tenant=1")]
#[case("http://localhost:8080/mcp", "http://localhost:8080/mcp")]
fn normalised_urls(#[case] url: &str, #[case] want: &str) {
    assert_eq!(normalize_url_text(url).as_deref(), Some(want));
}

#[test]
fn other_schemes_are_not_server_urls() {
    assert_eq!(normalize_url_text("file:///etc/passwd"), None);
    assert_eq!(normalize_url_text("linear"), None);
}

/// A Hermes root with `linear` in the default home and in profile `work`
/// (same URL, spelled differently), `notion` only in `work`.
fn hermes() -> Result<(tempfile::TempDir, Snapshot), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("hermes");
    std::fs::create_dir_all(root.join("profiles/work"))?;
    std::fs::write(
        root.join("config.yaml"),
        "mcp_servers:\n  linear:\n    url: https://mcp.linear.app/mcp\n    auth: oauth\n  local:\n    command: x\n",
    )?;
    std::fs::write(
        root.join("profiles/work/config.yaml"),
        "mcp_servers:\n  lin:\n    url: https://MCP.linear.app/mcp/\n    auth: oauth\n  notion:\n    url: https://mcp.notion.com/mcp\n    auth: oauth\n",
    )?;
    let snapshot = crate::hermes::snapshot::SnapshotLoader::new().load(&crate::hermes::home::HermesRoot::at(&root));
    Ok((dir, snapshot))
}

fn labels(list: &[GrantServer]) -> Vec<(String, GrantSource)> {
    list.iter().map(|g| (g.label(), g.source)).collect()
}

fn own_list(dir: &Path, entries: &[(&str, &str)]) -> Result<OwnList, Box<dyn std::error::Error>> {
    let file = super::super::own::OwnListFile::at(dir.join("servers.json"));
    for (n, u) in entries {
        file.add(n, u)?;
    }
    Ok(file.load()?)
}

#[test]
fn candidates_for_names_and_urls() -> Result<(), Box<dyn std::error::Error>> {
    let (dir, snapshot) = hermes()?;
    let own =
        own_list(dir.path(), &[("lin-ours", "https://mcp.linear.app/mcp"), ("solo", "https://solo.example/mcp")])?;
    let home = dir.path();
    let by_url = grant_candidates(&snapshot, &own, home, "https://mcp.linear.app/mcp")?;
    assert_eq!(
        labels(&by_url),
        vec![
            ("linear".to_owned(), GrantSource::Hermes),
            ("work/lin".to_owned(), GrantSource::Hermes),
            ("lin-ours".to_owned(), GrantSource::OwnList),
        ]
    );
    // A name: that server first, then the others with its URL.
    let by_name = grant_candidates(&snapshot, &own, home, "lin")?;
    assert_eq!(labels(&by_name)[0], ("work/lin".to_owned(), GrantSource::Hermes));
    assert_eq!(by_name.len(), 3);
    let ours = grant_candidates(&snapshot, &own, home, "solo")?;
    assert_eq!(labels(&ours), vec![("solo".to_owned(), GrantSource::OwnList)]);
    assert_eq!(ours[0].server.vault_key().account(), VaultKey_account("solo", "https://solo.example/mcp"));
    let bare = grant_candidates(&snapshot, &own, home, "https://elsewhere.example/mcp")?;
    assert_eq!(labels(&bare), vec![("elsewhere.example".to_owned(), GrantSource::Url)]);
    assert!(matches!(grant_candidates(&snapshot, &own, home, "nope"), Err(GrantError::NotFound { .. })));
    assert!(matches!(grant_candidates(&snapshot, &own, home, "local"), Err(GrantError::Config(_))));
    assert!(matches!(grant_candidates(&snapshot, &own, home, "ftp://x/"), Err(GrantError::BadUrl { .. })));
    Ok(())
}

#[expect(non_snake_case, reason = "reads as the type it mirrors")]
fn VaultKey_account(name: &str, url: &str) -> String {
    crate::vault::VaultKey::new(Some(OWN_PROFILE), name, url).account().to_owned()
}

fn record(server: &GrantServer) -> CredentialRecord {
    CredentialRecord {
        server: server.server.name.clone(),
        url: server.server.url.to_string(),
        profile: server.server.home.profile.clone(),
        tokens: StoredTokens {
            access_token: SecretString::new("at"),
            refresh_token: Some(SecretString::new("rt")),
            expires_in: Some(3600),
            expires_at: Some(4_000_000_000.0),
            scope: None,
        },
        issuer: Some("https://as.example".to_owned()),
        client: ClientRecord {
            client_id: "cid".to_owned(),
            client_secret: None,
            redirect_uris: vec!["http://127.0.0.1:4545/callback".to_owned()],
            token_endpoint_auth_method: "none".to_owned(),
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            response_types: vec!["code".to_owned()],
            scope: None,
            client_name: None,
            client_id_issued_at: None,
        },
        metadata: None,
        obtained_at: 1.0,
        last_error: None,
    }
}

#[test]
fn every_client_naming_the_url_shares_the_existing_record() -> Result<(), Box<dyn std::error::Error>> {
    let (dir, snapshot) = hermes()?;
    let own = own_list(dir.path(), &[("lin-ours", "https://mcp.linear.app/mcp/")])?;
    let vault = Vault::new(Arc::new(MemoryBackend::default()));
    // Nobody signed in: the first candidate is where a sign-in goes.
    let (grant, record_found) = find_grant(&snapshot, &own, dir.path(), &vault, "https://mcp.linear.app/mcp")?;
    assert_eq!((grant.label(), record_found.is_none()), ("linear".to_owned(), true));
    // The record of profile `work`, kept under its existing key, serves the
    // URL, the other names and our list's entry: no new sign-in.
    let candidates = grant_candidates(&snapshot, &own, dir.path(), "lin")?;
    let work = candidates[0].clone();
    vault.store(&work.server.vault_key(), &record(&work))?;
    assert!(vault.load(&work.server.vault_key())?.is_some(), "stored");
    for target in ["https://mcp.linear.app/mcp", "HTTPS://mcp.linear.app/mcp/", "linear", "lin", "lin-ours"] {
        let (grant, found) = find_grant(&snapshot, &own, dir.path(), &vault, target)?;
        assert_eq!(grant.label(), "work/lin", "{target}");
        assert!(grant.exports_to_agent(), "a Hermes grant still goes to the agent's files");
        assert_eq!(found.map(|r| r.server), Some("lin".to_owned()));
    }
    let (grant, _) = find_grant(&snapshot, &own, dir.path(), &vault, "https://other.example/mcp")?;
    assert!(!grant.exports_to_agent(), "a bare URL has nothing exported");
    assert_eq!(format!("{:?}", exporter_for(&grant)), "NoExport");
    Ok(())
}

/// The tray's exporter writes the agent's files for the agent's servers and
/// nothing anywhere for ours, though both live in one engine.
#[test]
fn the_services_exporter_skips_our_grants() -> Result<(), Box<dyn std::error::Error>> {
    let (dir, snapshot) = hermes()?;
    let own = OwnList::default();
    let exporter = AgentServersOnly(Arc::new(crate::hermes::export::HermesExporter));
    let agent = grant_candidates(&snapshot, &own, dir.path(), "linear")?.remove(0);
    let ours = grant_candidates(&snapshot, &own, dir.path(), "https://other.example/mcp")?.remove(0);
    assert!(is_own_home(&ours.server.home) && !is_own_home(&agent.server.home));
    exporter.export(&ours.server.export_target(), &record(&ours))?;
    assert!(!ours.server.home.tokens_dir().exists(), "a file was written for one of our grants");
    assert_eq!(exporter.agent_tokens(&ours.server.export_target()), None);
    exporter.export(&agent.server.export_target(), &record(&agent))?;
    assert!(exporter.agent_tokens(&agent.server.export_target()).is_some(), "the agent's server was not exported");
    Ok(())
}
