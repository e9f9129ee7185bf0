//! Scale: 200 OAuth servers (a benchmark that prints figures, not a test).
//!
//! Runs itself again inside a private D-Bus session with an unlocked
//! gnome-keyring (as the keychain end-to-end tests do), signs 200 servers in
//! against the in-process authorization server, so the real Secret Service
//! holds 200 records and the agent's folder 200 sets of files, and prints:
//! - `mcp-auth status --json`, whole process, with the vault empty and
//!   filled (the target is under 50 ms filled);
//! - the background refresher renewing all 200 at once (every one due):
//!   the time (target under 2 s), the token requests the server counted
//!   (one per server), the most refreshes in flight at once, and the
//!   keychain calls per refresh, counted by a wrapper of the vault backend.
//!
//! Build the release binaries first, then run it:
//! `cargo build --release --bins && cargo bench -p mcp-auth-e2e --bench scale [-- --servers N]`.
#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use mcp_auth_core::{
    BackendError, BackgroundRefresh, CallbackRouter, Clock, Engine, HeadlessBrowser, HermesExporter, HermesRoot, Http,
    KeyringBackend, LoopbackListener, MAX_CONCURRENT_REFRESHES, RefreshEvent, Refresher, SERVICE, SecretBackend,
    SnapshotLoader, Vault, connect, default_lock_dir, now_secs, oauth_servers,
};
use mcp_auth_e2e::cli::UNLOCK;
use mcp_auth_e2e::{Session, bin};
use mcp_auth_test_support::{Behaviour, FakeServer};

/// Set in the copy of this bench that runs inside the keyring session.
const INNER: &str = "MCP_AUTH_SCALE_BENCH_INNER";
const DEFAULT_SERVERS: usize = 200;
/// Runs of `mcp-auth status --json` per figure.
const STATUS_RUNS: usize = 21;
/// The access tokens' lifetime; the refresher's clock runs 80 % of it ahead,
/// past every server's refresh point (60–75 %).
const LIFETIME: u64 = 3600;

fn main() -> anyhow::Result<()> {
    let servers: usize = std::env::args()
        .skip_while(|a| a != "--servers")
        .nth(1)
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(DEFAULT_SERVERS);
    if std::env::var_os(INNER).is_none() {
        return relaunch();
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(inner(servers))
}

/// This bench again, inside `dbus-run-session` with an unlocked keyring and
/// an isolated HOME and XDG folders.
fn relaunch() -> anyhow::Result<()> {
    let session = Session::new();
    let mut cmd = Command::new("dbus-run-session");
    cmd.args(["--", "sh", "-c", &format!("{UNLOCK}; exec \"$0\" \"$@\"")])
        .arg(std::env::current_exe()?)
        .args(std::env::args().skip(1))
        .env(INNER, "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    session.apply(&mut cmd, ":none");
    let status = cmd.status().context("dbus-run-session (apt-get install dbus gnome-keyring)")?;
    anyhow::ensure!(status.success(), "the bench failed: {status}");
    Ok(())
}

async fn inner(count: usize) -> anyhow::Result<()> {
    let server = FakeServer::start(Behaviour { access_token_lifetime: LIFETIME, ..Default::default() })
        .await
        .map_err(|e| anyhow::anyhow!("fake server: {e}"))?;
    let home = tempfile::tempdir()?;
    let entries: String =
        (0..count).map(|i| format!("  s{i:03}:\n    url: {}\n    auth: oauth\n", server.mcp_url())).collect();
    std::fs::write(home.path().join("config.yaml"), format!("mcp_servers:\n{entries}"))?;
    let snapshot = SnapshotLoader::new().load(&HermesRoot::at(home.path()));
    let servers = oauth_servers(&snapshot);
    anyhow::ensure!(servers.len() == count, "the config names {} OAuth servers, not {count}", servers.len());
    println!("servers: {count}; keychain: Secret Service (gnome-keyring, private session)");

    let empty = time_status(home.path(), count, "not_connected")?;
    println!("status --json, vault empty   {empty}");

    let backend = Arc::new(Counting::new(KeyringBackend::system(SERVICE).map_err(|e| anyhow::anyhow!("{e}"))?));
    let mut vault = Vault::new(backend.clone());
    if let Some(dir) = default_lock_dir() {
        vault = vault.with_lock_dir(dir);
    }
    let http = Http::new()?;
    let router = CallbackRouter::new();
    let listener = LoopbackListener::bind(0, router.clone()).await?;
    let engine = Engine::new(http.clone(), router, Arc::new(HeadlessBrowser::new(http.clone())));
    let started = Instant::now();
    for s in &servers {
        connect(&engine, &vault, &HermesExporter, s, &listener.redirect_uri(), &|_| {})
            .await
            .with_context(|| format!("signing in {}", s.name))?;
    }
    println!("sign-ins ({count}, sequential)  {:.2} s", started.elapsed().as_secs_f64());

    let filled = time_status(home.path(), count, "connected")?;
    println!("status --json, vault filled  {filled}");

    // Every server due at once: the refresher's clock is past all refresh points.
    let before = server.log().grants("refresh_token");
    let calls_before = backend.calls();
    let (renewed, in_flight, most) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(0usize);
    let on_event = {
        let (renewed, in_flight, most) = (renewed.clone(), in_flight.clone(), most.clone());
        Box::new(move |_: &_, event: RefreshEvent<'_>| match event {
            RefreshEvent::Started => {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
            }
            RefreshEvent::Renewed | RefreshEvent::WillRetry(_) | RefreshEvent::Stopped(_) => {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let n = renewed.fetch_add(1, Ordering::SeqCst) + 1;
                done_tx.send_replace(n);
            }
        })
    };
    let started = Instant::now();
    let background = BackgroundRefresh::start_with_clock(
        vault.clone(),
        Refresher::new(http.clone(), Arc::new(HermesExporter)),
        on_event,
        Arc::new(Ahead(LIFETIME as f64 * 0.8)),
    );
    background.set_servers(servers.clone());
    tokio::time::timeout(Duration::from_secs(120), done_rx.wait_for(|n| *n >= count))
        .await
        .context("the refreshes did not finish within 120 s")??;
    let took = started.elapsed();
    drop(background);
    let requests = server.log().grants("refresh_token") - before;
    let calls = backend.calls().minus(&calls_before);
    println!(
        "refresh all {count} (due at once)  {:.2} s; token requests {requests} ({:.2} per server); most in flight {} (limit {MAX_CONCURRENT_REFRESHES})",
        took.as_secs_f64(),
        requests as f64 / count as f64,
        most.load(Ordering::SeqCst),
    );
    println!(
        "keychain calls per refresh    {:.1} (reads {:.1}, writes {:.1}, deletes {:.1}; planning included)",
        calls.total() as f64 / count as f64,
        calls.reads as f64 / count as f64,
        calls.writes as f64 / count as f64,
        calls.deletes as f64 / count as f64,
    );
    anyhow::ensure!(renewed.load(Ordering::SeqCst) == count, "not every refresh succeeded");
    anyhow::ensure!(requests == count, "{requests} token requests for {count} servers");
    Ok(())
}

/// Runs `mcp-auth status --json` [`STATUS_RUNS`] times; checks every run
/// lists `count` servers in `state`.
fn time_status(home: &Path, count: usize, state: &str) -> anyhow::Result<String> {
    let mut times = Vec::with_capacity(STATUS_RUNS);
    for _ in 0..STATUS_RUNS {
        let started = Instant::now();
        let out = Command::new(bin("mcp-auth"))
            .arg("--hermes-home")
            .arg(home)
            .args(["status", "--json"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()?;
        times.push(started.elapsed());
        anyhow::ensure!(out.status.success(), "mcp-auth status failed: {}", out.status);
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
        let matching = rows.iter().filter(|r| r["state"] == state).count();
        anyhow::ensure!(matching == count, "{matching} of {} rows are {state}", rows.len());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(format!(
        "median {:.1} ms  (min {:.1}, max {:.1}; {STATUS_RUNS} runs)",
        ms(times[STATUS_RUNS / 2]),
        ms(times[0]),
        ms(times[STATUS_RUNS - 1])
    ))
}

/// The wall clock, this many seconds ahead.
struct Ahead(f64);

impl Clock for Ahead {
    fn now(&self) -> f64 {
        now_secs() + self.0
    }
}

/// Keychain calls by kind.
#[derive(Debug, Default, Clone, Copy)]
struct Calls {
    reads: usize,
    writes: usize,
    deletes: usize,
}

impl Calls {
    fn total(&self) -> usize {
        self.reads + self.writes + self.deletes
    }

    fn minus(&self, earlier: &Self) -> Self {
        Self {
            reads: self.reads - earlier.reads,
            writes: self.writes - earlier.writes,
            deletes: self.deletes - earlier.deletes,
        }
    }
}

/// A vault backend that counts the calls it passes on.
#[derive(Debug)]
struct Counting<B> {
    inner: B,
    reads: AtomicUsize,
    writes: AtomicUsize,
    deletes: AtomicUsize,
}

impl<B> Counting<B> {
    fn new(inner: B) -> Self {
        Self { inner, reads: AtomicUsize::new(0), writes: AtomicUsize::new(0), deletes: AtomicUsize::new(0) }
    }

    fn calls(&self) -> Calls {
        Calls {
            reads: self.reads.load(Ordering::SeqCst),
            writes: self.writes.load(Ordering::SeqCst),
            deletes: self.deletes.load(Ordering::SeqCst),
        }
    }
}

impl<B: SecretBackend> SecretBackend for Counting<B> {
    fn read(&self, account: &str) -> Result<Option<String>, BackendError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(account)
    }

    fn write(&self, account: &str, value: &str) -> Result<(), BackendError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write(account, value)
    }

    fn delete(&self, account: &str) -> Result<(), BackendError> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(account)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
