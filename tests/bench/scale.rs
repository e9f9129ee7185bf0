//! Scale: 200 OAuth servers (a benchmark that prints figures, not a test).
//!
//! Runs itself again inside a private D-Bus session with an unlocked
//! gnome-keyring (as the keychain end-to-end tests do), signs 200 servers in
//! against the in-process authorization server, so the real Secret Service
//! holds 200 records and the agent's folder 200 sets of files, and prints:
//! - `mcp-auth status --json`, whole process, with the vault empty and
//!   filled (the target is under 50 ms filled);
//! - the vault's part of it in this process, before and after reading in
//!   one go: every record looked up one by one (as status did) against one
//!   search of the Secret Service for all of them;
//! - what the keyring alone takes to hand over every record's secret, with
//!   nothing of ours around it: a `GetSecret` per item
//!   (`SECRET_SERVICE_IN_FLIGHT` waiting at once, as the read in one go
//!   asks) and the Secret Service's one `GetSecrets`
//!   for all of them (which the `secret-service` crate does not offer), in
//!   a plain session, made here only, to show the floor under `status`;
//! - `mcp-auth proxy` started for 1 and for 8 servers at once (as clients
//!   start one per server): start to first response (spawn → `initialize`
//!   answered through the proxy) and idle memory per proxy;
//! - the background refresher renewing all 200 at once (every one due):
//!   the time (target under 2 s), the token requests the server counted
//!   (one per server), the most refreshes in flight at once, and the
//!   keychain calls per refresh, counted (and timed) by a wrapper of the
//!   vault backend.
//!
//! Build the release CLI first, then run it:
//! `cargo build --release -p mcp-auth-cli && cargo bench -p mcp-auth-e2e --bench scale [-- --servers N] [--proxies 1,8]`.
#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use mcp_auth_core::{
    BackendError, BackgroundRefresh, CallbackRouter, Clock, Engine, Fetched, HeadlessBrowser, HermesExporter,
    HermesRoot, Http, KeyringBackend, LoopbackListener, MAX_CONCURRENT_REFRESHES, NamedBy, RefreshEvent, Refresher,
    SECRET_SERVICE_IN_FLIGHT, SERVICE, SecretBackend, SnapshotLoader, Vault, VaultKey, connect, default_lock_dir,
    now_secs, oauth_servers,
};
use mcp_auth_e2e::cli::UNLOCK;
use mcp_auth_e2e::{ChildGuard, Session, bin};
use mcp_auth_test_support::{Behaviour, FakeServer};

/// Set in the copy of this bench that runs inside the keyring session.
const INNER: &str = "MCP_AUTH_SCALE_BENCH_INNER";
const DEFAULT_SERVERS: usize = 200;
/// Runs of `mcp-auth status --json` (and of the in-process reads) per figure.
const STATUS_RUNS: usize = 21;
/// Proxies started at once, per round.
const DEFAULT_PROXIES: &[usize] = &[1, 8];
/// The access tokens' lifetime; the refresher's clock runs 80 % of it ahead,
/// past every server's refresh point (60–75 %).
const LIFETIME: u64 = 3600;

fn main() -> anyhow::Result<()> {
    let arg = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let servers: usize = arg("--servers").map(|v| v.parse()).transpose()?.unwrap_or(DEFAULT_SERVERS);
    let proxies: Vec<usize> = match arg("--proxies") {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => DEFAULT_PROXIES.to_vec(),
    };
    if std::env::var_os(INNER).is_none() {
        return relaunch();
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(inner(servers, &proxies))
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

async fn inner(count: usize, proxies: &[usize]) -> anyhow::Result<()> {
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

    // The vault's part of a status, in this process: before (one lookup per
    // server, as status read it) and after (one read in one go).
    let keys: Vec<VaultKey> = servers.iter().map(|s| s.vault_key()).collect();
    let one_by_one = time_reads(&backend, count, || {
        let vault = vault.clone();
        let keys = keys.clone();
        move || keys.iter().map(|k| vault.load(k)).collect()
    })
    .await?;
    println!("vault reads, one by one      {one_by_one}");
    let together = time_reads(&backend, count, || {
        let vault = vault.clone();
        let keys = keys.clone();
        move || vault.load_many(&keys)
    })
    .await?;
    println!("vault reads, in one go       {together}");
    let (each, all) = keyring_floor(count).await?;
    println!("keyring alone, GetSecret each ({SECRET_SERVICE_IN_FLIGHT} waiting)  {each}");
    println!("keyring alone, one GetSecrets for all       {all}");

    for &n in proxies {
        let names: Vec<String> = servers.iter().take(n).map(|s| s.name.clone()).collect();
        anyhow::ensure!(names.len() == n, "{n} proxies need {n} servers");
        let home = home.path().to_owned();
        let figures = tokio::task::spawn_blocking(move || proxy_round(&home, &names)).await??;
        println!("proxies, {n} at once{:>width$}{figures}", "", width = 11usize.saturating_sub(n.to_string().len()));
    }

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
        "keychain calls per refresh    {:.2} (reads {:.2}, writes {:.2}, deletes {:.2}; plus {} reads in one go of all the records, for the plans)",
        calls.total() as f64 / count as f64,
        calls.reads as f64 / count as f64,
        calls.writes as f64 / count as f64,
        calls.deletes as f64 / count as f64,
        calls.many,
    );
    println!(
        "keychain busy                 {:.2} s of the {:.2} s ({:.1} ms per refresh; at least one call waiting for the keyring)",
        calls.busy.as_secs_f64(),
        took.as_secs_f64(),
        calls.busy.as_secs_f64() * 1000.0 / count as f64,
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
    Ok(figure(&mut times))
}

/// Times `make()`'s reads of the `count` records off the async threads
/// ([`STATUS_RUNS`] runs); checks every run found every record and says
/// how many keychain calls one run made.
async fn time_reads<F, R>(backend: &Arc<Counting<KeyringBackend>>, count: usize, make: F) -> anyhow::Result<String>
where
    F: Fn() -> R,
    R: FnOnce() -> Vec<Result<Option<mcp_auth_core::CredentialRecord>, mcp_auth_core::VaultError>> + Send + 'static,
{
    let mut times = Vec::with_capacity(STATUS_RUNS);
    let before = backend.calls();
    for _ in 0..STATUS_RUNS {
        let read = make();
        let started = Instant::now();
        let records = tokio::task::spawn_blocking(read).await?;
        times.push(started.elapsed());
        let found = records.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
        anyhow::ensure!(found == count, "{found} of {count} records read");
    }
    let calls = backend.calls().minus(&before);
    Ok(format!(
        "{}; keychain calls per run: {} reads, {} in one go",
        figure(&mut times),
        calls.reads / STATUS_RUNS,
        calls.many / STATUS_RUNS,
    ))
}

/// The Secret Service calls the floor measurement makes (zbus's proxy).
#[zbus::proxy(
    interface = "org.freedesktop.Secret.Service",
    default_service = "org.freedesktop.secrets",
    default_path = "/org/freedesktop/secrets"
)]
trait SecretService {
    fn open_session(
        &self,
        algorithm: &str,
        input: &zbus::zvariant::Value<'_>,
    ) -> zbus::Result<(zbus::zvariant::OwnedValue, zbus::zvariant::OwnedObjectPath)>;

    fn search_items(
        &self,
        attributes: std::collections::HashMap<&str, &str>,
    ) -> zbus::Result<(Vec<zbus::zvariant::OwnedObjectPath>, Vec<zbus::zvariant::OwnedObjectPath>)>;

    #[allow(clippy::type_complexity, reason = "the D-Bus signature a{o(oayays)}")]
    fn get_secrets(
        &self,
        items: &[zbus::zvariant::OwnedObjectPath],
        session: &zbus::zvariant::ObjectPath<'_>,
    ) -> zbus::Result<
        std::collections::HashMap<
            zbus::zvariant::OwnedObjectPath,
            (zbus::zvariant::OwnedObjectPath, Vec<u8>, Vec<u8>, String),
        >,
    >;
}

/// The Secret Service's `Item.GetSecret`, on an item's own path.
#[zbus::proxy(interface = "org.freedesktop.Secret.Item", default_service = "org.freedesktop.secrets")]
trait SecretItem {
    fn get_secret(
        &self,
        session: &zbus::zvariant::ObjectPath<'_>,
    ) -> zbus::Result<(zbus::zvariant::OwnedObjectPath, Vec<u8>, Vec<u8>, String)>;
}

/// What the keyring alone takes to hand over the secrets of every item
/// under our service ([`STATUS_RUNS`] runs each): one `GetSecret` per item
/// with at most [`SECRET_SERVICE_IN_FLIGHT`] waiting (the read in one go's
/// way), and one
/// `GetSecrets` for all. A plain session (no encryption on either side),
/// so the figures are the keyring's and the bus's; checks every run got
/// `count` secrets.
async fn keyring_floor(count: usize) -> anyhow::Result<(String, String)> {
    let bus = zbus::Connection::session().await?;
    let service = SecretServiceProxy::new(&bus).await?;
    let (_, session) = service.open_session("plain", &zbus::zvariant::Value::from("")).await?;
    let (items, locked) = service.search_items(std::collections::HashMap::from([("service", SERVICE)])).await?;
    anyhow::ensure!(
        items.len() == count && locked.is_empty(),
        "{} unlocked items, {} locked",
        items.len(),
        locked.len()
    );
    let mut proxies = Vec::with_capacity(items.len());
    for item in &items {
        proxies.push(SecretItemProxy::builder(&bus).path(item.clone())?.build().await?);
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(SECRET_SERVICE_IN_FLIGHT));
    let mut each = Vec::with_capacity(STATUS_RUNS);
    let mut all = Vec::with_capacity(STATUS_RUNS);
    for _ in 0..STATUS_RUNS {
        let started = Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for proxy in &proxies {
            let (proxy, session, limit) = (proxy.clone(), session.clone(), limit.clone());
            calls.spawn(async move {
                let _turn = limit.acquire_owned().await?;
                proxy.get_secret(&session).await.map(drop).map_err(anyhow::Error::from)
            });
        }
        let got = calls.join_all().await.into_iter().collect::<Result<Vec<()>, _>>()?.len();
        each.push(started.elapsed());
        anyhow::ensure!(got == count, "{got} of {count} secrets");
        let started = Instant::now();
        let got = service.get_secrets(&items, &session).await?.len();
        all.push(started.elapsed());
        anyhow::ensure!(got == count, "{got} of {count} secrets");
    }
    Ok((figure(&mut each), figure(&mut all)))
}

/// `median … ms (min …, max …; N runs)` of `times`.
fn figure(times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.1} ms  (min {:.1}, max {:.1}; {} runs)",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    )
}

/// Starts `mcp-auth proxy <name>` for every one of `names` at once, each
/// sent `initialize` as soon as it runs (as a client does); returns each
/// one's start to first response and, once every one has answered
/// `tools/list` too, its resident and private memory.
fn proxy_round(home: &Path, names: &[String]) -> anyhow::Result<String> {
    let started: Vec<anyhow::Result<(Duration, RunningProxy)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = names.iter().map(|name| scope.spawn(move || RunningProxy::start(home, name))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a proxy's thread panicked"))))
            .collect()
    });
    let mut firsts = Vec::new();
    let mut running = Vec::new();
    for result in started {
        let (first, proxy) = result?;
        firsts.push(first);
        running.push(proxy);
    }
    let mut memory = Vec::new();
    for proxy in &mut running {
        proxy.send(&serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        proxy.send(&serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}))?;
        let answer = proxy.answer(2)?;
        anyhow::ensure!(answer["result"]["tools"].is_array(), "tools/list through the proxy: {answer}");
    }
    for proxy in &running {
        memory.push(proxy_memory(proxy.child.0.id())?);
    }
    for proxy in running {
        proxy.finish()?;
    }
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let mb = |kib: u64| kib as f64 / 1024.0;
    let mut sorted = firsts.clone();
    sorted.sort();
    let rss: Vec<u64> = memory.iter().map(|m| m.0).collect();
    let uss: Vec<u64> = memory.iter().map(|m| m.1).collect();
    Ok(format!(
        "start to first response median {:.0} ms (max {:.0}); idle RSS per proxy {:.1}–{:.1} MB, USS {:.1}–{:.1} MB (mcp-remote: ~50 MB)",
        ms(&sorted[sorted.len() / 2]),
        ms(&sorted[sorted.len() - 1]),
        mb(rss.iter().copied().min().unwrap_or_default()),
        mb(rss.iter().copied().max().unwrap_or_default()),
        mb(uss.iter().copied().min().unwrap_or_default()),
        mb(uss.iter().copied().max().unwrap_or_default()),
    ))
}

/// Every answer a proxy owes comes within this.
const PROXY_WAIT: Duration = Duration::from_secs(60);

/// A running `mcp-auth proxy`, talked to with JSON-RPC lines.
struct RunningProxy {
    child: ChildGuard,
    stdin: Option<std::process::ChildStdin>,
    answers: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl RunningProxy {
    /// Spawns it and sends `initialize` at once; returns the time from the
    /// spawn to the answer, read as it arrives (on this thread).
    fn start(home: &Path, name: &str) -> anyhow::Result<(Duration, Self)> {
        let at = Instant::now();
        let mut child = Command::new(bin("mcp-auth"))
            .arg("--hermes-home")
            .arg(home)
            .args(["proxy", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("the proxy's stdout")?;
        let mut proxy = Self { child: ChildGuard(child), stdin, answers: std::sync::mpsc::channel().1 };
        proxy.send(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
        }))?;
        let mut lines = BufReader::new(stdout).lines();
        let first: serde_json::Value = loop {
            let line = lines.next().context("the proxy ended before answering initialize")??;
            let message: serde_json::Value = serde_json::from_str(&line)?;
            if message["id"] == 1 {
                break message;
            }
        };
        let took = at.elapsed();
        anyhow::ensure!(first["result"].is_object(), "initialize through the proxy: {first}");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(message) = serde_json::from_str(&line)
                    && tx.send(message).is_err()
                {
                    break;
                }
            }
        });
        proxy.answers = rx;
        Ok((took, proxy))
    }

    fn send(&mut self, message: &serde_json::Value) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(stdin, "{message}")?;
        stdin.flush()?;
        Ok(())
    }

    /// The answer to request `id`.
    fn answer(&self, id: u64) -> anyhow::Result<serde_json::Value> {
        let deadline = Instant::now() + PROXY_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.answers.recv_timeout(left).context("no answer from the proxy")?;
            if message["id"] == id {
                return Ok(message);
            }
        }
    }

    /// Closes stdin (the client leaves) and waits for the proxy to end.
    fn finish(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.0.try_wait()? {
                anyhow::ensure!(status.success(), "the proxy exited with {status}");
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the proxy did not end after its client left");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Resident and private (USS: private clean + dirty) memory of `pid`, KiB.
fn proxy_memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let field = |name: &str| -> u64 {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    };
    Ok((field("Rss:"), field("Private_Clean:") + field("Private_Dirty:")))
}

/// The wall clock, this many seconds ahead.
struct Ahead(f64);

impl Clock for Ahead {
    fn now(&self) -> f64 {
        now_secs() + self.0
    }
}

/// Keychain calls by kind, and how long at least one was waiting.
#[derive(Debug, Default, Clone, Copy)]
struct Calls {
    reads: usize,
    writes: usize,
    deletes: usize,
    /// Reads in one go (many records each).
    many: usize,
    busy: Duration,
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
            many: self.many - earlier.many,
            busy: self.busy - earlier.busy,
        }
    }
}

/// The wall-clock time during which at least one keychain call was
/// waiting (calls of concurrent refreshes overlap: it is not their sum).
#[derive(Debug, Default)]
struct Busy(std::sync::Mutex<BusyState>);

#[derive(Debug, Default)]
struct BusyState {
    in_flight: usize,
    since: Option<Instant>,
    total: Duration,
}

impl Busy {
    fn during<T>(&self, f: impl FnOnce() -> T) -> T {
        self.update(|s| {
            if s.in_flight == 0 {
                s.since = Some(Instant::now());
            }
            s.in_flight += 1;
        });
        let out = f();
        self.update(|s| {
            s.in_flight -= 1;
            if s.in_flight == 0
                && let Some(since) = s.since.take()
            {
                s.total += since.elapsed();
            }
        });
        out
    }

    fn update(&self, f: impl FnOnce(&mut BusyState)) {
        f(&mut self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    fn total(&self) -> Duration {
        let mut total = Duration::ZERO;
        self.update(|s| total = s.total + s.since.map_or(Duration::ZERO, |t| t.elapsed()));
        total
    }
}

/// A vault backend that counts the calls it passes on.
#[derive(Debug)]
struct Counting<B> {
    inner: B,
    reads: AtomicUsize,
    writes: AtomicUsize,
    deletes: AtomicUsize,
    many: AtomicUsize,
    busy: Busy,
}

impl<B> Counting<B> {
    fn new(inner: B) -> Self {
        Self {
            inner,
            reads: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            deletes: AtomicUsize::new(0),
            many: AtomicUsize::new(0),
            busy: Busy::default(),
        }
    }

    fn calls(&self) -> Calls {
        Calls {
            reads: self.reads.load(Ordering::SeqCst),
            writes: self.writes.load(Ordering::SeqCst),
            deletes: self.deletes.load(Ordering::SeqCst),
            many: self.many.load(Ordering::SeqCst),
            busy: self.busy.total(),
        }
    }
}

impl<B: SecretBackend> SecretBackend for Counting<B> {
    fn read(&self, account: &str) -> Result<Option<String>, BackendError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.busy.during(|| self.inner.read(account))
    }

    fn write(&self, account: &str, value: &str) -> Result<(), BackendError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.busy.during(|| self.inner.write(account, value))
    }

    fn delete(&self, account: &str) -> Result<(), BackendError> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        self.busy.during(|| self.inner.delete(account))
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn plain_file(&self) -> Option<&std::path::Path> {
        self.inner.plain_file()
    }

    fn read_many(&self, accounts: &[&str], named_by: NamedBy<'_>) -> Result<Option<Fetched>, BackendError> {
        self.many.fetch_add(1, Ordering::SeqCst);
        self.inner.read_many(accounts, named_by)
    }

    fn largest_value_chars(&self) -> usize {
        self.inner.largest_value_chars()
    }
}
