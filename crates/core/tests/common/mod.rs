//! Shared setup of the core's integration tests: a home whose config names
//! servers at a URL, and an engine with a loopback listener and a scripted
//! browser.

use std::sync::Arc;

use mcp_auth_core::CallbackRouter;
use mcp_auth_core::Engine;
use mcp_auth_core::HeadlessBrowser;
use mcp_auth_core::Http;
use mcp_auth_core::LoopbackListener;
use mcp_auth_core::{HermesRoot, Snapshot, SnapshotLoader};

/// A home whose config has OAuth servers `names`, all at `url`.
pub fn home_with(url: &str, names: &[&str]) -> (tempfile::TempDir, Snapshot) {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let entries: String = names.iter().map(|n| format!("  {n}:\n    url: {url}\n    auth: oauth\n")).collect();
    std::fs::write(home.path().join("config.yaml"), format!("mcp_servers:\n{entries}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let snapshot = SnapshotLoader::new().load(&HermesRoot::at(home.path()));
    (home, snapshot)
}

/// An engine whose browser follows redirects into a real loopback listener.
pub async fn engine() -> (Engine, LoopbackListener, Http) {
    let http = Http::new().unwrap_or_else(|e| panic!("{e}"));
    let router = CallbackRouter::new();
    let listener = LoopbackListener::bind(0, router.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::new(http.clone(), router, Arc::new(HeadlessBrowser::new(http.clone())));
    (engine, listener, http)
}
