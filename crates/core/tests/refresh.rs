//! The refresh transaction against the in-process authorization server, a
//! memory vault and real agent files: single flight, the agent's fence,
//! adopting the agent's own refresh, restoring a dropped refresh token.
#![expect(clippy::expect_used, reason = "a test fails loudly on broken setup")]

mod common;
mod faults;

use std::sync::Arc;
use std::time::Duration;

use mcp_auth_core::Http;
use mcp_auth_core::LoopbackListener;
use mcp_auth_core::{Exporter, HermesExporter};
use mcp_auth_core::{FenceError, KeptIn, ReauthReason, RefreshError, RefreshOutcome, Refresher, VaultError};
use mcp_auth_core::{MemoryBackend, SecretBackend, Vault};
use mcp_auth_core::{OAuthServer, connect, find_oauth_server};
use mcp_auth_core::{read_json, read_tokens};
use mcp_auth_test_support::{Behaviour, FakeServer};

struct Rig {
    server: FakeServer,
    _home: tempfile::TempDir,
    snapshot: mcp_auth_core::Snapshot,
    target: OAuthServer,
    vault: Vault,
    refresher: Refresher,
    engine: mcp_auth_core::Engine,
    http: Http,
    listener: LoopbackListener,
}

async fn connected(behaviour: Behaviour) -> Rig {
    connected_with(behaviour, Arc::new(MemoryBackend::default()), Arc::new(HermesExporter)).await
}

/// Signed in through `backend`'s vault; the refresher hands tokens to the
/// agent through `exporter`.
async fn connected_with(behaviour: Behaviour, backend: Arc<dyn SecretBackend>, exporter: Arc<dyn Exporter>) -> Rig {
    let server = FakeServer::start(behaviour).await.expect("server");
    let (home, snapshot) = common::home_with(&server.mcp_url(), &["s"]);
    let target = find_oauth_server(&snapshot, "s", None).expect("found");
    let (engine, listener, http) = common::engine().await;
    let vault = Vault::new(backend);
    connect(&engine, &vault, &HermesExporter, &target, &listener.redirect_uri(), &|_| {}).await.expect("connected");
    Rig {
        server,
        _home: home,
        snapshot,
        target,
        vault,
        refresher: Refresher::new(http.clone(), exporter),
        engine,
        http,
        listener,
    }
}

impl Rig {
    fn vault_access(&self) -> String {
        self.vault
            .load(&self.target.vault_key())
            .expect("vault")
            .expect("record")
            .tokens
            .access_token
            .expose()
            .to_owned()
    }

    fn file_access(&self) -> String {
        read_tokens(&self.target.paths()).expect("agent file").access_token.expose().to_owned()
    }

    fn vault_refresh(&self) -> String {
        let record = self.vault.load(&self.target.vault_key()).expect("vault").expect("record");
        record.tokens.refresh_token.expect("refresh token").expose().to_owned()
    }

    fn file_refresh(&self) -> String {
        read_tokens(&self.target.paths()).expect("agent file").refresh_token.expect("refresh token").expose().to_owned()
    }

    /// The status line's `last_error` for the server, as every front end shows it.
    fn status_last_error(&self) -> Option<String> {
        let report = mcp_auth_core::vault_status(&self.snapshot, &Ok(self.vault.clone()), std::time::SystemTime::now());
        report.servers.iter().find(|s| s.name == "s").expect("row").last_error.clone()
    }
}

/// A server that revokes the grant when a spent refresh token comes back
/// (RFC 9700), so presenting a lost rotation is a visible failure.
fn reuse_detecting() -> Behaviour {
    Behaviour { reuse_detection: true, ..Default::default() }
}

#[tokio::test]
async fn tokens_the_keychain_cannot_take_reach_the_agent_and_the_vault_later() {
    let backend = faults::FlakyBackend::new();
    let rig = connected_with(reuse_detecting(), backend.clone(), Arc::new(HermesExporter)).await;
    let old_refresh = rig.vault_refresh();
    backend.lock(true);
    let err = rig.refresher.refresh(&rig.vault, &rig.target).await.expect_err("the keychain refused");
    assert!(
        matches!(
            err,
            RefreshError::TokensKept { kept: KeptIn::AgentFileAndMemory, source: VaultError::Unavailable(_) }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(backend.refused.load(std::sync::atomic::Ordering::SeqCst) > 0, "the fault was injected");
    assert_eq!(rig.server.log().grants("refresh_token"), 1);
    assert_ne!(rig.file_refresh(), old_refresh, "the rotated pair reached the agent's file");
    assert!(rig.server.is_valid_access_token(&rig.file_access()));
    assert_eq!(rig.vault_refresh(), old_refresh, "the vault could not take it yet");

    backend.lock(false);
    let outcome = rig.refresher.refresh(&rig.vault, &rig.target).await.expect("stored now");
    assert!(matches!(outcome, RefreshOutcome::Refreshed { .. }), "{outcome:?}");
    assert_eq!(rig.server.log().grants("refresh_token"), 1, "the kept pair is stored, not refreshed again");
    assert_eq!(rig.vault_refresh(), rig.file_refresh(), "the vault has the new pair");

    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("the next refresh uses the new refresh token");
    let log = rig.server.log();
    assert_eq!(log.grants("refresh_token"), 2);
    assert_eq!(log.reuse_events, 0, "a spent refresh token was presented");
    assert_eq!(rig.status_last_error(), None);
}

#[tokio::test]
async fn a_new_process_takes_the_unstored_pair_back_from_the_agents_file() {
    let backend = faults::FlakyBackend::new();
    let rig = connected_with(reuse_detecting(), backend.clone(), Arc::new(HermesExporter)).await;
    backend.lock(true);
    rig.refresher.refresh(&rig.vault, &rig.target).await.expect_err("the keychain refused");
    backend.lock(false);
    // The tray restarted: nothing in memory, only the agent's file has the pair.
    let fresh = Refresher::new(rig.http.clone(), Arc::new(HermesExporter));
    use mcp_auth_core::SyncOutcome;
    assert_eq!(fresh.sync(&rig.vault, &rig.target).await.expect("sync"), SyncOutcome::Adopted);
    assert_eq!(rig.vault_refresh(), rig.file_refresh());
    fresh.refresh(&rig.vault, &rig.target).await.expect("refreshed with the new refresh token");
    assert_eq!(rig.server.log().reuse_events, 0, "a spent refresh token was presented");
}

#[tokio::test]
async fn tokens_the_agents_file_cannot_take_are_kept_and_written_again() {
    use mcp_auth_core::SyncOutcome;
    let exporter = faults::FailingExporter::new();
    let rig = connected_with(reuse_detecting(), Arc::new(MemoryBackend::default()), exporter.clone()).await;
    let old_refresh = rig.vault_refresh();
    exporter.fail(true);
    let err = rig.refresher.refresh(&rig.vault, &rig.target).await.expect_err("the disk is full");
    assert!(matches!(err, RefreshError::AgentFileBehind(_)) && err.is_transient(), "{err:?}");
    assert!(err.to_string().starts_with("cannot write the agent's token file"), "{err}");
    assert_ne!(rig.vault_refresh(), old_refresh, "the vault has the rotated pair");
    assert_eq!(rig.file_refresh(), old_refresh, "the agent's file could not take it");
    let shown = rig.status_last_error().expect("the status says what happened");
    assert!(shown.contains("new tokens kept in the keychain"), "{shown}");
    // Still failing: the sync says so and keeps everything.
    assert!(rig.refresher.sync(&rig.vault, &rig.target).await.is_err());

    exporter.fail(false);
    assert_eq!(rig.refresher.sync(&rig.vault, &rig.target).await.expect("sync"), SyncOutcome::Exported);
    assert_eq!(rig.file_refresh(), rig.vault_refresh(), "the agent has the new pair again");
    assert_eq!(rig.file_access(), rig.vault_access());
    assert_eq!(rig.status_last_error(), None, "cleared once both copies agree");
    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refreshed");
    assert_eq!(rig.server.log().reuse_events, 0, "a spent refresh token was presented");
}

/// A real read-only token folder (immutable for root, which ignores modes):
/// the agent's fence cannot be taken there, so the refresh stops before the
/// token endpoint is asked and no refresh token is spent; once the folder is
/// writable again the next refresh works with the same grant.
#[tokio::test]
async fn a_read_only_token_folder_stops_the_refresh_before_any_token_is_spent() {
    let rig = connected(reuse_detecting()).await;
    let old_refresh = rig.vault_refresh();
    let folder = rig.target.paths().tokens.parent().expect("token folder").to_owned();
    let read_only = faults::ReadOnlyDir::new(&folder);
    let err = rig.refresher.refresh(&rig.vault, &rig.target).await.expect_err("the folder is read-only");
    assert!(matches!(err, RefreshError::Fence(_)), "{err:?}");
    assert!(err.is_transient(), "worth retrying: {err:?}");
    assert_eq!(rig.server.log().grants("refresh_token"), 0, "nothing was sent to the token endpoint");
    assert_eq!(rig.vault_refresh(), old_refresh);
    assert_eq!(rig.file_refresh(), old_refresh);

    drop(read_only);
    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refreshed");
    assert_ne!(rig.file_refresh(), old_refresh, "the agent has the new pair");
    assert_eq!(rig.file_refresh(), rig.vault_refresh());
    assert_eq!(rig.server.log().reuse_events, 0, "a spent refresh token was presented");
}

#[tokio::test]
async fn refresh_updates_vault_and_agent_file() {
    let rig = connected(Behaviour::default()).await;
    let before = rig.vault_access();
    let outcome = rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refreshed");
    assert!(matches!(outcome, RefreshOutcome::Refreshed { expires_at: Some(_) }), "{outcome:?}");
    let after = rig.vault_access();
    assert_ne!(after, before);
    assert!(rig.server.is_valid_access_token(&after));
    assert_eq!(rig.file_access(), after, "the agent's file follows the vault");
    let log = rig.server.log();
    assert_eq!(log.grants("refresh_token"), 1);
    let refresh = log
        .token_requests
        .iter()
        .find(|r| r.get("grant_type").map(String::as_str) == Some("refresh_token"))
        .expect("refresh");
    assert_eq!(
        refresh.get("resource"),
        Some(&rig.server.mcp_url()),
        "resource = the configured URL, as the agent sends it"
    );
}

/// No keychain storm: a refresh reads the record once (under its lock) and
/// writes it once; the write does not read the head again.
#[tokio::test]
async fn a_refresh_reads_the_keychain_once_and_writes_it_once() {
    let backend = faults::FlakyBackend::new();
    let rig = connected_with(Behaviour::default(), backend.clone(), Arc::new(HermesExporter)).await;
    let (reads, writes) = backend.calls();
    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refreshed");
    assert_eq!(backend.calls(), (reads + 1, writes + 1));
    assert!(rig.server.is_valid_access_token(&rig.vault_access()));
}

#[tokio::test]
async fn concurrent_refreshes_make_one_token_request() {
    let rig = connected(Behaviour::default()).await;
    let (a, b) =
        tokio::join!(rig.refresher.refresh(&rig.vault, &rig.target), rig.refresher.refresh(&rig.vault, &rig.target));
    assert_eq!(a.expect("a"), b.expect("b"));
    assert_eq!(rig.server.log().grants("refresh_token"), 1);
}

#[tokio::test]
async fn an_agent_refresh_is_adopted_not_repeated() {
    let rig = connected(Behaviour::default()).await;
    // The agent refreshed on its own (rotating the refresh token) and wrote its file.
    let ours = rig.vault.load(&rig.target.vault_key()).expect("vault").expect("record");
    let endpoint = mcp_auth_core::TokenEndpoint {
        token_url: format!("{}/token", rig.server.base_url()),
        revocation_url: None,
        client: ours.client.clone(),
        resource: Some(rig.server.mcp_url()),
    };
    let agents = endpoint
        .refresh(&Http::new().expect("http"), ours.tokens.refresh_token.as_ref().expect("rt"), None)
        .await
        .expect("agent refresh");
    let mut file = read_json(&rig.target.paths().tokens).expect("file");
    file["access_token"] = agents.access_token.expose().into();
    file["refresh_token"] = agents.refresh_token.as_ref().expect("rotated").expose().into();
    file["expires_at"] = (agents.expires_at().expect("expiry") + 1.0).into();
    std::fs::write(&rig.target.paths().tokens, serde_json::to_vec(&file).expect("json")).expect("write");
    let requests_before = rig.server.log().grants("refresh_token");

    let outcome = rig.refresher.refresh(&rig.vault, &rig.target).await.expect("adopted");
    assert!(matches!(outcome, RefreshOutcome::Adopted { .. }), "{outcome:?}");
    assert_eq!(rig.server.log().grants("refresh_token"), requests_before, "no request with a spent refresh token");
    let vault = rig.vault.load(&rig.target.vault_key()).expect("vault").expect("record");
    assert_eq!(vault.tokens.refresh_token, agents.refresh_token, "the rotated refresh token is now ours");
    // And the next refresh works with it (no invalid_grant).
    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refresh with the adopted token");
}

#[tokio::test]
async fn a_refresh_token_dropped_by_the_agent_is_restored() {
    let rig = connected(Behaviour::default()).await;
    let ours = rig.vault.load(&rig.target.vault_key()).expect("vault").expect("record");
    // mcp 1.26 wrote back a new access token without the refresh token.
    let mut file = read_json(&rig.target.paths().tokens).expect("file");
    file["access_token"] = "agent-new-access".into();
    file.as_object_mut().expect("object").remove("refresh_token");
    file["expires_at"] = (ours.tokens.expires_at.expect("expiry") + 60.0).into();
    std::fs::write(&rig.target.paths().tokens, serde_json::to_vec(&file).expect("json")).expect("write");

    let outcome = rig.refresher.refresh(&rig.vault, &rig.target).await.expect("adopted");
    assert!(matches!(outcome, RefreshOutcome::Adopted { .. }));
    let file = read_tokens(&rig.target.paths()).expect("file");
    assert_eq!(file.access_token.expose(), "agent-new-access");
    assert_eq!(file.refresh_token, ours.tokens.refresh_token, "our refresh token is back in the agent's file");
}

#[tokio::test]
async fn invalid_grant_means_sign_in_again() {
    let rig = connected(Behaviour::default()).await;
    rig.server.forget_refresh_tokens();
    let err = rig.refresher.refresh(&rig.vault, &rig.target).await.expect_err("rejected");
    assert!(matches!(err, RefreshError::NeedsReauth(ReauthReason::GrantRejected { .. })), "{err}");
    // The vault remembers it, for every front end and the next run.
    let key = rig.target.vault_key();
    let failure = rig.vault.load(&key).expect("load").expect("record").last_error.expect("noted");
    assert!(failure.needs_reauth);
    assert!(failure.message.starts_with("the refresh token was rejected"), "{}", failure.message);
}

#[tokio::test]
async fn the_next_successful_refresh_clears_a_noted_failure() {
    let rig = connected(Behaviour::default()).await;
    let key = rig.target.vault_key();
    // An earlier attempt failed (the network was down, say).
    let mut record = rig.vault.load(&key).expect("load").expect("record");
    record.last_error = Some(mcp_auth_core::RefreshFailure {
        message: "cannot reach the token endpoint".to_owned(),
        needs_reauth: false,
        at: 1.0,
    });
    rig.vault.store(&key, &record).expect("store");
    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refreshed");
    assert_eq!(rig.vault.load(&key).expect("load").expect("record").last_error, None);
}

#[tokio::test]
#[cfg(unix)]
async fn the_agents_fence_is_respected() {
    use std::io::{BufRead, BufReader, Write};
    let rig = connected(Behaviour::default()).await;
    let refresher = rig.refresher.clone().with_fence_timeout(Duration::from_millis(300));
    let script = "import fcntl,sys\nf=open(sys.argv[1],'a+')\nfcntl.flock(f,fcntl.LOCK_EX|fcntl.LOCK_NB)\nprint('locked',flush=True)\nsys.stdin.readline()\n";
    let mut agent = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&rig.target.paths().refresh_lock)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(agent.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().transpose().expect("read").as_deref(), Some("locked"));
    let err = refresher.refresh(&rig.vault, &rig.target).await.expect_err("fenced out");
    assert!(matches!(&err, RefreshError::Fence(e) if matches!(**e, FenceError::Timeout { .. })), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(rig.server.log().grants("refresh_token"), 0, "no token request without the fence");
    writeln!(agent.stdin.take().expect("stdin")).expect("release");
    agent.wait().expect("exit");
    refresher.refresh(&rig.vault, &rig.target).await.expect("refreshed once the agent let go");
}

#[tokio::test]
async fn sync_adopts_what_the_agent_wrote_and_respects_its_sign_out() {
    use mcp_auth_core::SyncOutcome;
    let rig = connected(Behaviour::default()).await;
    assert_eq!(rig.refresher.sync(&rig.vault, &rig.target).await.expect("sync"), SyncOutcome::InSync);

    // The agent wrote a newer pair.
    let paths = rig.target.paths();
    let mut file = read_json(&paths.tokens).expect("file");
    let expires = file["expires_at"].as_f64().expect("expiry");
    file["access_token"] = "agent-wrote-this".into();
    file["expires_at"] = (expires + 100.0).into();
    std::fs::write(&paths.tokens, serde_json::to_vec(&file).expect("json")).expect("write");
    assert_eq!(rig.refresher.sync(&rig.vault, &rig.target).await.expect("sync"), SyncOutcome::Adopted);
    assert_eq!(rig.vault_access(), "agent-wrote-this");
    assert_eq!(rig.server.log().grants("refresh_token"), 0, "sync never calls the server");

    // The agent signed out (hermes mcp remove / reauth): nothing comes back.
    for p in [&paths.tokens, &paths.client, &paths.meta] {
        std::fs::remove_file(p).expect("remove");
    }
    assert_eq!(rig.refresher.sync(&rig.vault, &rig.target).await.expect("sync"), SyncOutcome::AgentSignedOut);
    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("our own refresh still works");
    assert!(!paths.tokens.exists() && !paths.client.exists(), "files the agent deleted were resurrected");
}

#[tokio::test]
async fn sync_takes_in_the_agents_own_sign_in() {
    use mcp_auth_core::SyncOutcome;
    let rig = connected(Behaviour::default()).await;
    // As if the agent had signed in itself: files present, vault empty.
    rig.vault.remove(&rig.target.vault_key()).expect("remove");
    assert_eq!(rig.refresher.sync(&rig.vault, &rig.target).await.expect("sync"), SyncOutcome::AdoptedNew);
    assert_eq!(rig.vault_access(), rig.file_access());
    // And we can refresh it from there.
    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refreshed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_refresher_renews_before_expiry_and_stops_on_invalid_grant() {
    use mcp_auth_core::BackgroundRefresh;
    let rig = connected(Behaviour { access_token_lifetime: 4, ..Default::default() }).await;
    let stops = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = stops.clone();
    let background = BackgroundRefresh::start(
        rig.vault.clone(),
        rig.refresher.clone(),
        Box::new(move |server, event| {
            if let mcp_auth_core::RefreshEvent::Stopped(reason) = event {
                seen.lock().expect("lock").push(format!("{}: {reason}", server.name));
            }
        }),
    );
    background.set_servers(vec![rig.target.clone()]);
    let first = rig.vault_access();
    // Due at 60-75 % of 4 s: well before expiry.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(rig.server.log().grants("refresh_token"), 1, "one refresh before the token expired");
    assert_ne!(rig.vault_access(), first);
    assert_eq!(rig.file_access(), rig.vault_access(), "the agent's file follows");

    // The grant is revoked: the next refresh fails for good, once, and says so.
    rig.server.forget_refresh_tokens();
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let stops = stops.lock().expect("lock").clone();
    assert_eq!(stops.len(), 1, "{stops:?} after {} refresh requests", rig.server.log().grants("refresh_token"));
    assert!(stops[0].starts_with("s: the refresh token was rejected"), "{stops:?}");
    let attempts = rig.server.log().grants("refresh_token");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(rig.server.log().grants("refresh_token"), attempts, "no retries after a definitive failure");
}

#[tokio::test]
async fn foreign_and_corrupt_files_in_the_token_folder_change_nothing() {
    use mcp_auth_core::SyncOutcome;
    let rig = connected(Behaviour::default()).await;
    let dir = rig.target.paths().tokens.parent().expect("folder").to_path_buf();
    std::fs::write(dir.join("other.json"), b"{not json").expect("write");
    std::fs::write(dir.join("notes.txt"), b"hello").expect("write");
    std::fs::write(dir.join("s.client.json.bak"), b"[]").expect("write");
    std::fs::create_dir_all(dir.join("a-folder.json")).expect("mkdir");
    assert_eq!(rig.refresher.sync(&rig.vault, &rig.target).await.expect("sync"), SyncOutcome::InSync);
    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refreshed");
    assert_eq!(rig.file_access(), rig.vault_access());

    // Our own server's token file damaged: the next refresh repairs it.
    std::fs::write(&rig.target.paths().tokens, b"{\"access_token\": ").expect("write");
    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refreshed");
    assert_eq!(rig.file_access(), rig.vault_access());
    assert_eq!(std::fs::read(dir.join("other.json")).expect("read"), b"{not json", "other files are left alone");
}

/// Starts a refresh whose answer the server holds back, and waits until the
/// server has issued it (the old refresh token is spent, the answer in flight).
async fn refresh_in_flight(rig: &Rig) -> tokio::task::JoinHandle<Result<RefreshOutcome, RefreshError>> {
    rig.server.hold_refreshes();
    let (refresher, vault, target) = (rig.refresher.clone(), rig.vault.clone(), rig.target.clone());
    let refresh = tokio::spawn(async move { refresher.refresh(&vault, &target).await });
    assert!(rig.server.wait_for_held_refreshes(1, Duration::from_secs(10)).await, "the refresh reached the server");
    refresh
}

/// How long a local disconnect or sign-in would take if it did not wait for
/// the refresh in flight (it talks only to the in-process server).
const WOULD_HAVE_FINISHED: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_in_flight_finishes_before_disconnect_and_brings_nothing_back() {
    let rig = connected(Behaviour::default()).await;
    let old_refresh = rig.vault_refresh();
    let refresh = refresh_in_flight(&rig).await;

    let disconnect = mcp_auth_core::disconnect(&rig.http, &rig.vault, &HermesExporter, &rig.target);
    tokio::pin!(disconnect);
    assert!(
        tokio::time::timeout(WOULD_HAVE_FINISHED, &mut disconnect).await.is_err(),
        "disconnect did not wait for the refresh in flight"
    );
    rig.server.release_refreshes();
    refresh.await.expect("task").expect("the refresh in flight completed");
    let done = disconnect.await.expect("disconnected");
    assert!(done.had_credentials && done.revoked, "{done:?}");

    assert!(rig.vault.load(&rig.target.vault_key()).expect("vault").is_none(), "the refresh brought the record back");
    let paths = rig.target.paths();
    assert!(!paths.tokens.exists() && !paths.client.exists(), "the refresh brought the agent's files back");
    let revoked = rig.server.log().revocations;
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    assert!(!revoked.contains(&old_refresh), "the spent refresh token was revoked instead of the live one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_in_flight_cannot_overwrite_a_new_sign_in() {
    let rig = connected(Behaviour::default()).await;
    let refresh = refresh_in_flight(&rig).await;
    // The new sign-in's tokens are recognisable by their lifetime.
    rig.server.set_behaviour(|b| b.access_token_lifetime = 7200);

    let redirect = rig.listener.redirect_uri();
    let sign_in = connect(&rig.engine, &rig.vault, &HermesExporter, &rig.target, &redirect, &|_| {});
    tokio::pin!(sign_in);
    assert!(
        tokio::time::timeout(WOULD_HAVE_FINISHED, &mut sign_in).await.is_err(),
        "the sign-in did not wait for the refresh in flight"
    );
    rig.server.release_refreshes();
    refresh.await.expect("task").expect("the refresh in flight completed");
    sign_in.await.expect("signed in");

    let record = rig.vault.load(&rig.target.vault_key()).expect("vault").expect("record");
    assert_eq!(record.tokens.expires_in, Some(7200), "the refresh overwrote the new sign-in");
    assert_eq!(read_tokens(&rig.target.paths()).expect("file").expires_in, Some(7200));
    assert!(rig.server.is_valid_access_token(record.tokens.access_token.expose()));
}

#[tokio::test]
async fn the_agents_own_new_sign_in_brings_its_registration_along() {
    use mcp_auth_core::SyncOutcome;
    let rig = connected(reuse_detecting()).await;
    let ours = rig.vault.load(&rig.target.vault_key()).expect("vault").expect("record").client.client_id;
    // The agent signed in again by itself: a new registration, new tokens,
    // its own files (played by a sign-in that knows nothing of our vault).
    let paths = rig.target.paths();
    std::fs::remove_file(&paths.client).expect("remove client file");
    let elsewhere = Vault::new(Arc::new(MemoryBackend::default()));
    let redirect = rig.listener.redirect_uri();
    connect(&rig.engine, &elsewhere, &HermesExporter, &rig.target, &redirect, &|_| {}).await.expect("agent sign-in");
    let theirs = mcp_auth_core::read_client(&paths).expect("client file").client_id;
    assert_ne!(theirs, ours, "the agent registered a new client");

    assert_eq!(rig.refresher.sync(&rig.vault, &rig.target).await.expect("sync"), SyncOutcome::Adopted);
    let record = rig.vault.load(&rig.target.vault_key()).expect("vault").expect("record");
    assert_eq!(record.client.client_id, theirs, "new tokens paired with the old client");
    assert_eq!(record.tokens.access_token.expose(), rig.file_access());
    assert_eq!(record.metadata, read_json(&paths.meta), "the agent's metadata came along");
    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refreshed with the agent's client");
}

#[tokio::test]
async fn a_corrupt_vault_record_is_recovered_from_the_agents_files() {
    use mcp_auth_core::{RECOVERED_NOTE, SyncOutcome};
    let backend = Arc::new(MemoryBackend::default());
    let rig = connected_with(Behaviour::default(), backend.clone(), Arc::new(HermesExporter)).await;
    let before = rig.vault.load(&rig.target.vault_key()).expect("vault").expect("record");
    backend.write(rig.target.vault_key().account(), "mcpv2:damaged").expect("damage the record");
    assert!(rig.vault.load(&rig.target.vault_key()).is_err(), "the record is unreadable");

    assert_eq!(rig.refresher.sync(&rig.vault, &rig.target).await.expect("sync"), SyncOutcome::Recovered);
    let record = rig.vault.load(&rig.target.vault_key()).expect("readable again").expect("record");
    assert_eq!(record.tokens, before.tokens);
    assert_eq!(record.client, before.client);
    assert_eq!(record.metadata, before.metadata);
    assert_eq!(record.issuer, before.issuer);
    assert_eq!(rig.status_last_error().as_deref(), Some(RECOVERED_NOTE), "the status says it was recovered");

    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refreshed");
    assert_eq!(rig.status_last_error(), None);
}

#[tokio::test]
async fn a_corrupt_vault_record_does_not_wedge_a_refresh() {
    let backend = Arc::new(MemoryBackend::default());
    let rig = connected_with(Behaviour::default(), backend.clone(), Arc::new(HermesExporter)).await;
    backend.write(rig.target.vault_key().account(), "mcpv2:damaged").expect("damage the record");
    let outcome = rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refreshed after recovery");
    assert!(matches!(outcome, RefreshOutcome::Refreshed { .. }), "{outcome:?}");
    assert_eq!(rig.vault_access(), rig.file_access());
}

/// Two refreshers (two processes: the tray and a proxy, or two proxies)
/// holding the same token both find it due: the first through the fence
/// refreshes, the second finds the replacement and spends nothing.
#[tokio::test]
async fn a_refresh_replacing_a_token_someone_already_replaced_makes_no_request() {
    let rig = connected(reuse_detecting()).await;
    let seen = mcp_auth_core::SecretString::new(rig.vault_access());
    let other = Refresher::new(rig.http.clone(), Arc::new(HermesExporter));
    let (a, b) = tokio::join!(
        rig.refresher.refresh_replacing(&rig.vault, &rig.target, &seen),
        other.refresh_replacing(&rig.vault, &rig.target, &seen),
    );
    let outcomes = [a.expect("first"), b.expect("second")];
    assert!(outcomes.iter().any(|o| matches!(o, RefreshOutcome::Refreshed { .. })), "{outcomes:?}");
    assert!(outcomes.iter().any(|o| matches!(o, RefreshOutcome::AlreadyRenewed { .. })), "{outcomes:?}");
    assert_eq!(rig.server.log().grants("refresh_token"), 1);
    assert_ne!(rig.vault_access(), seen.expose());

    // The current token refused by the server: refreshed, even though it
    // looks valid.
    let current = mcp_auth_core::SecretString::new(rig.vault_access());
    let outcome = other.refresh_replacing(&rig.vault, &rig.target, &current).await.expect("refreshed");
    assert!(matches!(outcome, RefreshOutcome::Refreshed { .. }), "{outcome:?}");
    assert_eq!(rig.server.log().grants("refresh_token"), 2);
    assert_eq!(rig.server.log().reuse_events, 0);
}

/// The wall clock, this many seconds ahead.
struct Ahead(f64);

impl mcp_auth_core::Clock for Ahead {
    fn now(&self) -> f64 {
        mcp_auth_core::now_secs() + self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_due_at_once_refresh_a_few_at_a_time_with_one_token_request_each() {
    use mcp_auth_core::{BackgroundRefresh, MAX_CONCURRENT_REFRESHES, RefreshEvent};
    use std::sync::atomic::{AtomicUsize, Ordering};
    const SERVERS: usize = 3 * MAX_CONCURRENT_REFRESHES;
    let server =
        FakeServer::start(Behaviour { access_token_lifetime: 3600, ..Default::default() }).await.expect("server");
    let names: Vec<String> = (0..SERVERS).map(|i| format!("s{i}")).collect();
    let (_home, snapshot) = common::home_with(&server.mcp_url(), &names.iter().map(String::as_str).collect::<Vec<_>>());
    let servers = mcp_auth_core::oauth_servers(&snapshot);
    let (engine, listener, http) = common::engine().await;
    let vault = Vault::new(Arc::new(MemoryBackend::default()));
    for s in &servers {
        connect(&engine, &vault, &HermesExporter, s, &listener.redirect_uri(), &|_| {}).await.expect("connected");
    }
    let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (done, mut finished) = tokio::sync::watch::channel(0usize);
    let on_event = {
        let (in_flight, most) = (in_flight.clone(), most.clone());
        Box::new(move |_: &OAuthServer, event: RefreshEvent<'_>| match event {
            RefreshEvent::Started => {
                most.fetch_max(in_flight.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            }
            RefreshEvent::Renewed | RefreshEvent::WillRetry(_) | RefreshEvent::Stopped(_) => {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                done.send_modify(|n| *n += 1);
            }
        })
    };
    server.hold_refreshes();
    // 80 % of the lifetime ahead: past every server's refresh point (60–75 %).
    let background = BackgroundRefresh::start_with_clock(
        vault.clone(),
        Refresher::new(http, Arc::new(HermesExporter)),
        on_event,
        Arc::new(Ahead(3600.0 * 0.8)),
    );
    background.set_servers(servers.clone());
    assert!(
        server.wait_for_held_refreshes(MAX_CONCURRENT_REFRESHES, Duration::from_secs(20)).await,
        "the first refreshes reached the server"
    );
    assert!(
        !server.wait_for_held_refreshes(MAX_CONCURRENT_REFRESHES + 1, Duration::from_millis(500)).await,
        "no more than {MAX_CONCURRENT_REFRESHES} token requests wait at once"
    );
    server.release_refreshes();
    tokio::time::timeout(Duration::from_secs(30), finished.wait_for(|n| *n >= SERVERS))
        .await
        .expect("every refresh finished")
        .expect("events");
    drop(background);
    assert_eq!(most.load(Ordering::SeqCst), MAX_CONCURRENT_REFRESHES, "refreshes ran that many at a time, no more");
    let log = server.log();
    assert_eq!(log.grants("refresh_token"), SERVERS, "one token request per server");
    let mut presented: Vec<&str> = log.refreshes.iter().map(|r| r.presented.as_str()).collect();
    presented.sort_unstable();
    presented.dedup();
    assert_eq!(presented.len(), SERVERS, "each server's own refresh token, once");
    for s in &servers {
        let record = vault.load(&s.vault_key()).expect("vault").expect("record");
        let file = read_tokens(&s.paths()).expect("agent file");
        assert!(server.is_valid_access_token(record.tokens.access_token.expose()), "{} renewed", s.name);
        assert_eq!(file.access_token.expose(), record.tokens.access_token.expose(), "{}'s file follows", s.name);
    }
}
