//! The real tray app under Xvfb in a private D-Bus session.
//!
//! A stand-in tray host (`tests/tray/sni_probe.py`, python3-dbus) owns the
//! StatusNotifierWatcher name, so the app registers its item and exports its
//! menu over `com.canonical.dbusmenu`; the test reads that menu as a panel
//! would, changes the agent's files, and sees the menu follow.

use std::io::Write;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcp_auth_e2e::{ChildGuard, Lines, Session, Xvfb, bin, fixture_home, repo_root};
use pretty_assertions::assert_eq;
use serde_json::Value;

struct Probe {
    stdin: ChildStdin,
    lines: Lines,
    _child: ChildGuard,
    log: std::path::PathBuf,
}

impl Probe {
    fn start(session: &Session, display: &str, hermes_home: &Path) -> Self {
        let log = session.dir.path().join("probe.log");
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new("dbus-run-session");
        cmd.arg("--")
            .arg("/usr/bin/python3")
            .arg(repo_root().join("tests/tray/sni_probe.py"))
            .arg(bin("mcp-auth-tray"))
            .env("HERMES_HOME", hermes_home)
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        session.apply(&mut cmd, display);
        let mut child =
            cmd.spawn().unwrap_or_else(|e| panic!("cannot start dbus-run-session (apt-get install dbus): {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
        let lines = Lines::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
        Self { stdin, lines, _child: ChildGuard(child), log }
    }

    fn event(&self, timeout: Duration) -> Value {
        match self.lines.next(timeout) {
            Some(line) => {
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("probe printed non-JSON ({e}): {line}"))
            }
            None => panic!(
                "no answer from the probe within {timeout:?}; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ),
        }
    }

    fn send(&mut self, command: &str) -> Value {
        writeln!(self.stdin, "{command}").unwrap_or_else(|e| panic!("probe stdin: {e}"));
        self.stdin.flush().unwrap_or_else(|e| panic!("probe stdin: {e}"));
        let answer = self.event(Duration::from_secs(10));
        assert!(answer.get("error").is_none(), "probe error for {command}: {answer}");
        answer
    }

    /// The menu's labels, in order ("---" for separators); numbers of days
    /// are replaced by N so the fixture's far-future expiry reads stably.
    fn labels(&mut self) -> Vec<String> {
        let menu = self.send("dump");
        menu["menu"]
            .as_array()
            .unwrap_or_else(|| panic!("no menu in {menu}"))
            .iter()
            .map(|item| {
                if item["type"] == "separator" {
                    return "---".to_owned();
                }
                let label = item["label"].as_str().unwrap_or_default().to_owned();
                let enabled = item["enabled"].as_bool().unwrap_or(true);
                let label = normalize_days(&label);
                if enabled { format!("[{label}]") } else { label }
            })
            .collect()
    }

    /// Waits (at most 5 s) until the menu satisfies `want`.
    fn wait_for(&mut self, what: &str, want: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let labels = self.labels();
            if want(&labels) {
                return labels;
            }
            assert!(Instant::now() < deadline, "menu never showed {what}; last menu: {labels:#?}");
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

fn normalize_days(label: &str) -> String {
    match label.find(" d left") {
        Some(end) => {
            let start = label[..end].rfind(' ').map_or(0, |i| i + 1);
            format!("{}N{}", &label[..start], &label[end..])
        }
        None => label.to_owned(),
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[test]
fn menu_follows_config_and_token_files_and_quits() {
    let xvfb = Xvfb::start();
    let session = Session::new();
    let home = fixture_home("home");
    let mut probe = Probe::start(&session, &xvfb.display, home.path());

    let registered = probe.event(Duration::from_secs(90));
    assert!(registered.get("registered").is_some(), "tray item did not register: {registered}");

    let labels = probe.labels();
    assert_eq!(
        labels,
        vec![
            "2 connected · 1 needs sign-in · 1 not connected · 3 errors",
            "---",
            "Profile default",
            "○ linear — Not connected",
            "● notion — Connected · N d",
            "◌ sentry — Expired, can refresh",
            "✕ asana — Error: token file is corrupt: not valid JSON; sign in again to rep…",
            "· github — Static headers",
            "✕ stripe — Error: Authorization needs ${STRIPE_KEY_NOT_SET_ANYWHERE}, which i…",
            "· filesystem — Local command",
            "· legacy — Disabled",
            "✕ typo — Error: invalid entry (config.yaml line 53): `url` must be a string…",
            "· plain — No sign-in needed",
            "Profile work",
            "⚠ notion — Needs sign-in",
            "---",
            "[Quit]",
        ]
    );

    // A server added to the config appears.
    let config = home.path().join("config.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap_or_default();
    text.push_str("  newcomer:\n    url: https://new.example/mcp\n    auth: oauth\n");
    std::fs::write(&config, &text).unwrap_or_else(|e| panic!("{e}"));
    probe.wait_for("the new server", |l| l.iter().any(|x| x == "○ newcomer — Not connected"));

    // Tokens written by the agent turn "Not connected" into "Connected".
    let tokens = format!(
        r#"{{"access_token":"a","token_type":"Bearer","expires_in":3600,"expires_at":{},"refresh_token":"r"}}"#,
        now() + 3600
    );
    std::fs::write(home.path().join("mcp-tokens").join("linear.json"), tokens).unwrap_or_else(|e| panic!("{e}"));
    let labels =
        probe.wait_for("linear connected", |l| l.iter().any(|x| x.starts_with("● linear — Connected · 59 min")));
    assert_eq!(labels[0], "3 connected · 1 needs sign-in · 1 not connected · 3 errors");

    // A broken config keeps the last good list and says why.
    std::fs::write(&config, "mcp_servers:\n  a: [\n").unwrap_or_else(|e| panic!("{e}"));
    let labels = probe.wait_for("the config error", |l| {
        l.iter().any(|x| x.starts_with("⚠ config error (showing the last good list): "))
    });
    assert!(labels.iter().any(|x| x == "○ newcomer — Not connected"), "last good list lost: {labels:#?}");

    // The token file deleted: back to "Not connected".
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(home.path().join("mcp-tokens").join("linear.json")).unwrap_or_else(|e| panic!("{e}"));
    probe.wait_for("linear disconnected", |l| {
        l.iter().any(|x| x == "○ linear — Not connected") && !l.iter().any(|x| x.starts_with("⚠ config error"))
    });

    let clicked = probe.send("click Quit");
    assert_eq!(clicked["clicked"], "Quit");
    let exit = probe.send("wait-exit");
    assert_eq!(exit["exit"], 0, "the app did not exit cleanly after Quit");
}

#[test]
fn stays_up_without_a_tray_host() {
    let xvfb = Xvfb::start();
    let session = Session::new();
    let home = fixture_home("home");
    let mut cmd = Command::new("dbus-run-session");
    cmd.arg("--")
        .arg(bin("mcp-auth-tray"))
        .env("HERMES_HOME", home.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    session.apply(&mut cmd, &xvfb.display);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start dbus-run-session: {e}"));
    let lines = Lines::new(child.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let mut guard = ChildGuard(child);

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !seen.iter().any(|l: &String| l.contains("tray ready")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.next(left) {
            Some(line) => seen.push(line),
            None => panic!("the app never got ready; stderr:\n{}", seen.join("\n")),
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("WARN") && l.contains("no tray host")),
        "no warning about the missing tray host:\n{}",
        seen.join("\n")
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(matches!(guard.0.try_wait(), Ok(None)), "the app exited without a tray host; stderr:\n{}", seen.join("\n"));
}
