//! `connect` writes the agent's files, and a failed re-authorization leaves
//! the previous ones untouched.

mod common;

use std::sync::Arc;

use mcp_auth_core::HermesExporter;
use mcp_auth_core::{MemoryBackend, Vault};
use mcp_auth_core::{connect, find_oauth_server};
use mcp_auth_test_support::{Behaviour, FakeServer, IssMode};

#[tokio::test]
async fn failed_reauthorization_keeps_the_old_files() {
    let server = FakeServer::start(Behaviour::default()).await.expect("server");
    let (_home, snapshot) = common::home_with(&server.mcp_url(), &["s"]);
    let target = find_oauth_server(&snapshot, "s", None).expect("found");
    let (engine, listener, _http) = common::engine().await;

    let backend = Arc::new(MemoryBackend::default());
    let vault = Vault::new(backend.clone());
    let done =
        connect(&engine, &vault, &HermesExporter, &target, &listener.redirect_uri(), &|_| {}).await.expect("connected");
    let record = vault.load(&target.vault_key()).expect("vault").expect("record");
    assert_eq!(record.issuer.as_deref(), Some(server.base_url()));
    assert!(server.is_valid_access_token(record.tokens.access_token.expose()));
    assert!(done.registered);
    let before: Vec<Vec<u8>> = [&done.paths.tokens, &done.paths.client, &done.paths.meta]
        .iter()
        .map(|p| std::fs::read(p).expect("file"))
        .collect();

    server.set_behaviour(|b| b.iss = IssMode::Wrong);
    connect(&engine, &vault, &HermesExporter, &target, &listener.redirect_uri(), &|_| {}).await.expect_err("refused");
    assert_eq!(
        vault.load(&target.vault_key()).expect("vault"),
        Some(record),
        "a failed sign-in must not touch the vault"
    );
    let after: Vec<Vec<u8>> = [&done.paths.tokens, &done.paths.client, &done.paths.meta]
        .iter()
        .map(|p| std::fs::read(p).expect("file"))
        .collect();
    assert_eq!(before, after, "a failed sign-in must not touch the agent's files");
}

#[tokio::test]
async fn clashing_names_are_refused_before_signing_in() {
    let server = FakeServer::start(Behaviour::default()).await.expect("server");
    let (_home, snapshot) = common::home_with(&server.mcp_url(), &["my server", "my_server"]);
    let target = find_oauth_server(&snapshot, "my server", None).expect("found");
    let (engine, listener, _http) = common::engine().await;
    let vault = Vault::new(Arc::new(MemoryBackend::default()));
    let err =
        connect(&engine, &vault, &HermesExporter, &target, &listener.redirect_uri(), &|_| {}).await.expect_err("clash");
    let text = mcp_auth_core::error_text(&err);
    assert!(text.contains("would share the token file `my_server.json`"), "{text}");
    assert!(
        server.log().requests.is_empty(),
        "no sign-in may start for a server whose tokens could not be handed over"
    );
}
