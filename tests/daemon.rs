//! `mcp-auth daemon`, the real binary: against the fake authorization
//! server, with a real Secret Service (gnome-keyring in a private D-Bus
//! session), over a real home. It refreshes what falls due and rewrites the
//! agent's file, follows a config edit, stops on SIGTERM with exit code 0, is
//! the only daemon (or tray) of its user, and installs its systemd user unit.
// Linux only: XDG folder isolation, D-Bus, a real Secret Service.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_auth_core::Http;
use mcp_auth_core::{Browser, HeadlessBrowser};
use mcp_auth_e2e::cli::{Setup, Store, finish, is_url, next_matching, read_json};
use mcp_auth_e2e::{ChildGuard, Lines, bin};
use mcp_auth_test_support::{Behaviour, FakeServer};

/// Every wait's bound.
const WAIT: Duration = Duration::from_secs(30);

/// `mcp-auth connect <name> --no-browser`, playing the browser.
async fn connect(setup: &Setup, name: &str) {
    let mut guard =
        ChildGuard(setup.command(&["connect", name, "--no-browser"]).spawn().unwrap_or_else(|e| panic!("{e}")));
    let stderr = Lines::new(guard.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let mut seen = Vec::new();
    let url = next_matching(&stderr, is_url, &mut seen).trim().to_owned();
    HeadlessBrowser::new(Http::new().unwrap_or_else(|e| panic!("{e}")))
        .open(&url)
        .await
        .unwrap_or_else(|e| panic!("browser: {e}"));
    let (code, _, err) = finish(&mut guard.0, seen, Some(stderr)).await;
    assert_eq!(code, 0, "connect {name} failed:\n{err}");
}

/// A started daemon, its stderr, and its own pid (from its "running" line).
struct Daemon {
    guard: ChildGuard,
    stderr: Lines,
    seen: Vec<String>,
    pid: u32,
}

impl Daemon {
    fn start(setup: &Setup) -> Self {
        let mut guard = ChildGuard(setup.command(&["daemon"]).spawn().unwrap_or_else(|e| panic!("{e}")));
        let stderr = Lines::new(guard.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
        let mut seen = Vec::new();
        let line = next_matching(&stderr, |l| l.contains("daemon running"), &mut seen);
        let pid = line
            .split("pid=")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no pid in `{line}`"));
        Self { guard, stderr, seen, pid }
    }

    /// Waits for a log line that `matches`.
    fn wait_for_line(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "the daemon never logged {what}:\n{}", self.seen.join("\n"));
            match self.stderr.next(Duration::from_secs(1)) {
                Some(line) if matches(&line) => return line,
                Some(line) => self.seen.push(line),
                None => {}
            }
        }
    }

    /// SIGTERM to the daemon itself (not the D-Bus session around it); its
    /// exit code and how long it took.
    fn terminate(&mut self) -> (Option<i32>, Duration) {
        let sent = Instant::now();
        let status = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM {} failed", self.pid);
        loop {
            if let Some(status) = self.guard.0.try_wait().unwrap_or_else(|e| panic!("{e}")) {
                return (status.code(), sent.elapsed());
            }
            assert!(sent.elapsed() < WAIT, "the daemon did not exit within {WAIT:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn access_token(path: &Path) -> String {
    read_json(path)["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token in {}", path.display()))
        .to_owned()
}

/// Waits until `path`'s access token is no longer `old` (the daemon's log
/// in the failure).
async fn wait_for_new_token(daemon: &mut Daemon, path: &Path, old: &str, what: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if path.exists() {
            let now = access_token(path);
            if now != old {
                return now;
            }
        }
        while let Some(line) = daemon.stderr.next(Duration::from_millis(1)) {
            daemon.seen.push(line);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the agent's file was never rewritten; the daemon's log:\n{}",
            daemon.seen.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_refreshes_what_falls_due_follows_config_edits_and_stops_on_sigterm() {
    // Tokens that live 8 s: a refresh is due within seconds.
    let server = FakeServer::start(Behaviour { access_token_lifetime: 8, ..Behaviour::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::Keyring);
    // Both signed in before the daemon starts (each CLI run has a keyring
    // daemon of its own over the same keyring file; one at a time), then
    // `second` leaves the config for a while.
    let config = setup.home.path().join("config.yaml");
    let without_second = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
    let with_second = format!("{without_second}  second:\n    url: {}\n    auth: oauth\n", server.mcp_url());
    std::fs::write(&config, &with_second).unwrap_or_else(|e| panic!("{e}"));
    connect(&setup, "fake").await;
    connect(&setup, "second").await;
    std::fs::write(&config, &without_second).unwrap_or_else(|e| panic!("{e}"));
    let fake = setup.tokens_dir().join("fake.json");
    let second = setup.tokens_dir().join("second.json");
    let signed_in = access_token(&fake);
    let second_signed_in = access_token(&second);

    let mut daemon = Daemon::start(&setup);
    // The daemon refreshes fake when due and hands the agent the new token.
    let refreshed = wait_for_new_token(&mut daemon, &fake, &signed_in, "fake's refresh").await;
    assert!(server.log().grants("refresh_token") >= 1);
    assert!(server.is_valid_access_token(&refreshed), "the agent's file holds a token the server never issued");
    // Not in the config: second is left alone.
    assert_eq!(access_token(&second), second_signed_in, "refreshed a server that is not configured");

    // Back in the config: the daemon follows the edit and refreshes it too.
    std::fs::write(&config, &with_second).unwrap_or_else(|e| panic!("{e}"));
    let renewed = wait_for_new_token(&mut daemon, &second, &second_signed_in, "second's refresh").await;
    assert!(server.is_valid_access_token(&renewed));

    // SIGTERM: a clean exit, promptly.
    let (code, took) = daemon.terminate();
    assert_eq!(code, Some(0), "exit code after SIGTERM; log:\n{}", daemon.seen.join("\n"));
    assert!(took < Duration::from_secs(15), "took {took:?} to stop");
    daemon.wait_for_line("that it stopped", |l| l.contains("daemon stopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_says_which_one_runs_and_exits() {
    let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::Keyring);
    let mut first = Daemon::start(&setup);

    let output = setup.command(&["daemon"]).output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let said = format!(
        "the daemon (mcp-auth daemon) is already running (pid {}); only one daemon or tray runs per user",
        first.pid
    );
    assert!(stderr.contains(&said), "expected `{said}` in:\n{stderr}");

    // The first one is unaffected, and once it is gone another may start.
    assert_eq!(first.terminate().0, Some(0));
    let mut again = Daemon::start(&setup);
    assert_eq!(again.terminate().0, Some(0));
}

#[test]
fn install_user_unit_writes_the_unit_into_xdg_config_home() {
    let config = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = || {
        Command::new(bin("mcp-auth"))
            .args(["daemon", "--install-user-unit"])
            .env("XDG_CONFIG_HOME", config.path())
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let output = run();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("systemctl --user enable --now mcp-auth.service"), "{stdout}");
    let unit_path = config.path().join("systemd/user/mcp-auth.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap_or_else(|e| panic!("{}: {e}", unit_path.display()));
    let exe = std::fs::canonicalize(bin("mcp-auth")).unwrap_or_else(|e| panic!("{e}"));
    assert!(unit.contains(&format!("ExecStart=\"{}\" daemon\n", exe.display())), "{unit}");
    assert!(unit.contains("[Install]\nWantedBy=default.target\n"), "{unit}");
    assert!(!home.path().join(".config").exists(), "wrote outside XDG_CONFIG_HOME");

    // Idempotent: the same unit, and it says so.
    let again = run();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already installed"));
    assert_eq!(std::fs::read_to_string(&unit_path).unwrap_or_default(), unit);
}
