//! The real tray app under Xvfb in a private D-Bus session.
//!
//! A stand-in tray host (`tests/tray/sni_probe.py`, python3-dbus) owns the
//! StatusNotifierWatcher name, so the app registers its item and exports its
//! menu over `com.canonical.dbusmenu`; the test reads and clicks that menu as
//! a panel would. The probe also owns `org.freedesktop.Notifications` and
//! records every notification the app shows.
// Linux only: XDG folders, D-Bus, Xvfb, `sh` and python3 stand-ins; the
// macOS and Windows CI runs the rest (see README "Tests").
#![cfg(target_os = "linux")]

use std::io::Write;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcp_auth_e2e::cli::{UNLOCK, read_json};
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
        Self::start_with(session, display, hermes_home, |_| {})
    }

    /// Starts the app inside a fresh session with an unlocked keyring (the
    /// real Secret Service), `extra` adding to its environment.
    fn start_with(session: &Session, display: &str, hermes_home: &Path, extra: impl FnOnce(&mut Command)) -> Self {
        let log = session.dir.path().join("probe.log");
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new("dbus-run-session");
        cmd.args(["--", "sh", "-c", &format!("{UNLOCK}; exec \"$0\" \"$@\"")])
            .arg("/usr/bin/python3")
            .arg(repo_root().join("tests/tray/sni_probe.py"))
            .arg(bin("mcp-auth-tray"))
            .env("HERMES_HOME", hermes_home)
            .env("RUST_LOG", "info")
            .env_remove("BROWSER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        session.apply(&mut cmd, display);
        extra(&mut cmd);
        let mut child =
            cmd.spawn().unwrap_or_else(|e| panic!("cannot start dbus-run-session (apt-get install dbus): {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
        let lines = Lines::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
        Self { stdin, lines, _child: ChildGuard(child), log }
    }

    /// The probe's next JSON line. Services the session bus starts for the
    /// app (the accessibility registry) share the probe's stdout: their
    /// chatter is skipped.
    fn event(&self, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            match self.lines.next(deadline.saturating_duration_since(Instant::now())) {
                Some(line) if !line.starts_with('{') => continue,
                Some(line) => {
                    return serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("probe printed non-JSON ({e}): {line}"));
                }
                None => panic!(
                    "no answer from the probe within {timeout:?}; log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
            }
        }
    }

    fn send(&mut self, command: &str) -> Value {
        if let Err(e) = writeln!(self.stdin, "{command}") {
            panic!("probe stdin: {e}; log:\n{}", self.log_text());
        }
        self.stdin.flush().unwrap_or_else(|e| panic!("probe stdin: {e}"));
        let answer = self.event(Duration::from_secs(30));
        assert!(answer.get("error").is_none(), "probe error for {command}: {answer}");
        answer
    }

    /// The top-level menu's labels, in order ("---" for separators, "[…]"
    /// around clickable items, "[x] "/"[ ] " before checkboxes); numbers of
    /// days are replaced by N so the fixture's far-future expiry reads stably.
    fn labels(&mut self) -> Vec<String> {
        self.items(|item| item["path"].as_array().is_some_and(Vec::is_empty))
    }

    /// The labels of the submenu whose label starts with `parent`.
    fn submenu(&mut self, parent: &str) -> Vec<String> {
        self.items(|item| {
            item["path"]
                .as_array()
                .and_then(|p| p.last())
                .and_then(Value::as_str)
                .is_some_and(|p| p.starts_with(parent))
        })
    }

    fn items(&mut self, keep: impl Fn(&Value) -> bool) -> Vec<String> {
        let menu = self.send("dump");
        menu["menu"]
            .as_array()
            .unwrap_or_else(|| panic!("no menu in {menu}"))
            .iter()
            .filter(|item| keep(item))
            .map(|item| {
                if item["type"] == "separator" {
                    return "---".to_owned();
                }
                let label = item["label"].as_str().unwrap_or_default().to_owned();
                let enabled = item["enabled"].as_bool().unwrap_or(true);
                let label = normalize_days(&label);
                let label = match item["toggle"].as_i64() {
                    Some(1) => format!("[x] {label}"),
                    Some(0) => format!("[ ] {label}"),
                    _ => label,
                };
                if enabled { format!("[{label}]") } else { label }
            })
            .collect()
    }

    /// The notifications shown so far.
    fn notifications(&mut self) -> Vec<Value> {
        let answer = self.send("notifications");
        answer["notifications"].as_array().cloned().unwrap_or_else(|| panic!("no notifications in {answer}"))
    }

    /// Waits (at most 20 s) until a notification titled `summary` was shown; returns it.
    fn wait_for_notification(&mut self, summary: &str, nth: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let shown = self.notifications();
            let matching: Vec<&Value> = shown.iter().filter(|n| n["summary"] == summary).collect();
            if let Some(n) = matching.get(nth - 1) {
                return (*n).clone();
            }
            assert!(
                Instant::now() < deadline,
                "no notification #{nth} \"{summary}\"; shown: {shown:#?}\napp log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits (at most 10 s) until the submenu `parent` satisfies `want`.
    fn wait_for_submenu(&mut self, parent: &str, what: &str, want: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let labels = self.submenu(parent);
            if want(&labels) {
                return labels;
            }
            assert!(
                Instant::now() < deadline,
                "submenu {parent} never showed {what}; last: {labels:#?}\napp log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most 5 s) until the menu satisfies `want`.
    fn wait_for(&mut self, what: &str, want: impl Fn(&[String]) -> bool) -> Vec<String> {
        self.wait_up_to(Duration::from_secs(5), what, want)
    }

    fn wait_up_to(&mut self, limit: Duration, what: &str, want: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let labels = self.labels();
            if want(&labels) {
                return labels;
            }
            assert!(
                Instant::now() < deadline,
                "menu never showed {what}; last menu: {labels:#?}\napp log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

fn normalize_days(label: &str) -> String {
    let Some(rest) = label.strip_suffix(" d") else { return label.to_owned() };
    let start = rest.rfind(' ').map_or(0, |i| i + 1);
    if rest[start..].chars().all(|c| c.is_ascii_digit()) { format!("{}N d", &label[..start]) } else { label.to_owned() }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[test]
fn menu_follows_config_and_token_files_and_quits() {
    let xvfb = Xvfb::start();
    let session = Session::new();
    let home = fixture_home("home");
    // Not the first run: no window, and "Start at login" stays as the OS has it (off).
    session.not_first_run();
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
            "[○ linear — Not connected]",
            // The fixture's token expires in decades: "Connected" alone.
            "[● notion — Connected]",
            "[◌ sentry — Expired, can refresh]",
            "[✕ asana — Error: token file is corrupt: not valid JSON; sign in again to rep…]",
            "· github — Static headers",
            "✕ stripe — Error: Authorization needs ${STRIPE_KEY_NOT_SET_ANYWHERE}, which i…",
            "· filesystem — Local command",
            "· legacy — Disabled",
            "✕ typo — Error: invalid entry (config.yaml line 53): `url` must be a string…",
            "· plain — No sign-in needed",
            "Profile work",
            "[⚠ notion — Needs sign-in]",
            "---",
            "[Connect all that need sign-in (1)]",
            "[Check now]",
            "[Open status window]",
            "[[ ] Start at login]",
            "[Open config file]",
            "[Open logs folder]",
            "---",
            "[Quit]",
        ]
    );
    assert_eq!(
        probe.submenu("○ linear"),
        vec!["[Connect]", "---", "[Copy server URL]", "[Show details]"],
        "an OAuth server's actions"
    );
    assert_eq!(
        probe.submenu("● notion"),
        vec!["[Reconnect]", "[Disconnect]", "---", "[Copy server URL]", "[Show details]"]
    );

    // A server added to the config appears.
    let config = home.path().join("config.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap_or_default();
    text.push_str("  newcomer:\n    url: https://new.example/mcp\n    auth: oauth\n");
    std::fs::write(&config, &text).unwrap_or_else(|e| panic!("{e}"));
    probe.wait_for("the new server", |l| l.iter().any(|x| x == "[○ newcomer — Not connected]"));

    // Tokens written by the agent turn "Not connected" into "Connected".
    let tokens = format!(
        r#"{{"access_token":"a","token_type":"Bearer","expires_in":3600,"expires_at":{},"refresh_token":"r"}}"#,
        now() + 3600
    );
    std::fs::write(home.path().join("mcp-tokens").join("linear.json"), tokens).unwrap_or_else(|e| panic!("{e}"));
    let labels =
        probe.wait_for("linear connected", |l| l.iter().any(|x| x.starts_with("[● linear — Connected · 59 min")));
    assert_eq!(labels[0], "3 connected · 1 needs sign-in · 1 not connected · 3 errors");

    // A broken config keeps the last good list and says why.
    std::fs::write(&config, "mcp_servers:\n  a: [\n").unwrap_or_else(|e| panic!("{e}"));
    let labels = probe.wait_for("the config error", |l| {
        l.iter().any(|x| x.starts_with("⚠ config error (showing the last good list): "))
    });
    assert!(labels.iter().any(|x| x == "[○ newcomer — Not connected]"), "last good list lost: {labels:#?}");

    // The token file deleted: back to "Not connected".
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(home.path().join("mcp-tokens").join("linear.json")).unwrap_or_else(|e| panic!("{e}"));
    probe.wait_for("linear disconnected", |l| {
        l.iter().any(|x| x == "[○ linear — Not connected]") && !l.iter().any(|x| x.starts_with("⚠ config error"))
    });

    let clicked = probe.send("click Quit");
    assert_eq!(clicked["clicked"], "Quit");
    let exit = probe.send("wait-exit");
    assert_eq!(exit["exit"], 0, "the app did not exit cleanly after Quit");

    // Its first log line names the build; an installed package is a
    // production Tauri build (notifications come from the app itself).
    let log = std::fs::read_to_string(&probe.log).unwrap_or_default();
    let start =
        log.lines().find(|l| l.contains("mcp-auth-tray starting")).unwrap_or_else(|| panic!("no start line:\n{log}"));
    assert!(start.contains(&format!("mcp-auth-tray {}", env!("CARGO_PKG_VERSION"))), "{start}");
    let installed = std::env::var_os(mcp_auth_e2e::BIN_DIR_VAR).is_some();
    if installed {
        assert!(start.contains("production=true"), "the installed app is not a production build: {start}");
    }
    // The sign-in URL scheme: a source build registers itself with the
    // desktop (a user-level handler); an installed one leaves it to the
    // package's desktop entry, so nothing of it outlives the package.
    let handler = session.dir.path().join("data/applications/mcp-auth-tray-handler.desktop");
    assert_eq!(handler.is_file(), !installed, "user-level URL handler at {}", handler.display());
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

/// A config with two OAuth servers of the test authorization server: one
/// redirecting to the loopback listener, one to the app's URL scheme.
fn connect_home(mcp_url: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = format!(
        "mcp_servers:\n  fake:\n    url: {mcp_url}\n    auth: oauth\n  deep:\n    url: {mcp_url}\n    auth: oauth\n    mcp_auth_tray:\n      redirect: custom_scheme\n  local:\n    command: npx\n"
    );
    std::fs::write(home.path().join("config.yaml"), config).unwrap_or_else(|e| panic!("{e}"));
    home
}

/// Waits (at most 10 s) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn autostart_entries(session: &Session) -> Vec<String> {
    // auto-launch writes to ~/.config/autostart whatever XDG_CONFIG_HOME says.
    std::fs::read_dir(session.dir.path().join("home/.config/autostart"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".desktop"))
        .collect()
}

/// Saves what Xvfb shows (for a person to look at; not asserted on).
fn screenshot(display: &str, name: &str) {
    let dir = repo_root().join("test-output");
    let _ = std::fs::create_dir_all(&dir);
    let _ = Command::new("import")
        .args(["-display", display, "-window", "root"])
        .arg(dir.join(name))
        .stderr(Stdio::null())
        .status();
}

#[test]
fn connect_from_the_menu_reauth_notification_deep_link_disconnect_and_autostart() {
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let server = runtime
        .block_on(mcp_auth_test_support::FakeServer::start(mcp_auth_test_support::Behaviour {
            access_token_lifetime: 8,
            ..Default::default()
        }))
        .unwrap_or_else(|e| panic!("{e}"));
    let xvfb = Xvfb::start();
    let session = Session::new();
    let home = connect_home(&server.mcp_url());
    let tokens = home.path().join("mcp-tokens");
    let mut probe = Probe::start_with(&session, &xvfb.display, home.path(), |cmd| {
        cmd.env("BROWSER", repo_root().join("tests/tray/browser.sh")).env("RUST_LOG", "info,mcp_auth_core=debug");
    });
    let registered = probe.event(Duration::from_secs(90));
    assert!(registered.get("registered").is_some(), "tray item did not register: {registered}");

    // First run: the app turned "Start at login" on, and the login item exists.
    let labels = probe.wait_for("the servers", |l| l.iter().any(|x| x == "[○ fake — Not connected]"));
    assert!(labels.contains(&"[[x] Start at login]".to_owned()), "{labels:#?}");
    assert_eq!(autostart_entries(&session).len(), 1, "no login item after the first run");

    // Connect from the menu: browser, loopback redirect, keychain, export.
    probe.send("click ○ fake >> Connect");
    // Signed in: "Connected", or "Refresh due" once most of its 8 s have passed.
    let signed_in = |l: &[String]| l.iter().any(|x| x.starts_with("[● fake — Connected") || x.starts_with("[◐ fake"));
    probe.wait_up_to(Duration::from_secs(20), "fake connected", signed_in);
    let file = read_json(&tokens.join("fake.json"));
    assert_eq!(file["token_type"], "Bearer");
    assert!(tokens.join("fake.client.json").is_file());
    let connected = probe.wait_for_notification("Connected to fake", 1);
    assert_eq!(connected["body"], "Signed in; the agent can use it now.");

    // The grant dies: the background refresh fails for good, the server
    // needs sign-in, and exactly one notification says so.
    server.forget_refresh_tokens();
    probe.wait_up_to(Duration::from_secs(20), "fake needs sign-in", |l| {
        l.iter().any(|x| x == "[⚠ fake — Needs sign-in]")
    });
    let reauth = probe.wait_for_notification("Sign in again to fake", 1);
    assert!(reauth["body"].as_str().is_some_and(|b| b.starts_with("The refresh token was rejected")), "{reauth}");
    assert!(reauth["actions"].as_array().is_some_and(|a| a.iter().any(|x| x == "sign-in")), "{reauth}");

    // Clicking "Sign in" on the notification reconnects.
    probe.send(&format!("invoke {} sign-in", reauth["id"]));
    probe.wait_for_notification("Connected to fake", 2);
    probe.wait_up_to(Duration::from_secs(20), "fake connected again", signed_in);
    let reauth_count = probe.notifications().iter().filter(|n| n["summary"] == "Sign in again to fake").count();
    assert_eq!(reauth_count, 1, "one transition, one notification");

    // The custom-scheme server: the browser hands the redirect to a second
    // launch of the app (xdg-open), which passes it to this one.
    probe.send("click ○ deep >> Connect");
    probe.wait_for_notification("Connected to deep", 1);
    assert!(read_json(&tokens.join("deep.json"))["access_token"].is_string());
    let registrations = server.log().registrations;
    assert!(
        registrations.iter().any(|r| r["redirect_uris"][0] == "dev.mcpauthtray.app:/callback"),
        "{registrations:#?}"
    );

    // The status window (opened by the first run) with both servers signed
    // in: its capability lets it call the app's commands and hear its events.
    for line in [
        "the status window read its rows",
        "the status window read the log",
        "the status window follows the app's status-changed events",
    ] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !probe.log_text().contains(line) {
            assert!(Instant::now() < deadline, "the app log never said `{line}`:\n{}", probe.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    screenshot(&xvfb.display, "tray-status-window.png");
    // Its log folder is private, and so is each file in it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let logs = session.dir.path().join("data/dev.mcpauthtray.tray/logs");
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode(&logs), 0o700, "{}", logs.display());
        let files: Vec<_> = std::fs::read_dir(&logs).into_iter().flatten().flatten().map(|e| e.path()).collect();
        assert!(!files.is_empty(), "no log file in {}", logs.display());
        for file in files {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }

    // "Check now" asks the servers for real: one that now requires more
    // scope reads "Needs more access" and offers the step-up.
    server.set_behaviour(|b| b.mcp_scope = Some("mcp:admin".to_owned()));
    probe.send("click Check now");
    probe.wait_up_to(Duration::from_secs(30), "fake needing more access", |l| {
        l.iter().any(|x| x == "[⚠ fake — Needs more access]")
    });
    assert_eq!(
        probe.submenu("⚠ fake"),
        vec!["[Grant more access]", "[Reconnect]", "[Disconnect]", "---", "[Copy server URL]", "[Show details]"]
    );
    server.set_behaviour(|b| b.mcp_scope = None);

    // Disconnect revokes and removes the agent's files.
    probe.send("click fake — >> Disconnect");
    probe.wait_for("fake disconnected", |l| l.iter().any(|x| x == "[○ fake — Not connected]"));
    assert!(!tokens.join("fake.json").exists(), "token file left behind");
    assert!(!server.log().revocations.is_empty(), "nothing revoked");
    probe.wait_for_notification("Disconnected from fake", 1);

    // "Start at login" follows the checkbox both ways.
    // The outcome is the login item on disk; the tick follows it.
    probe.send("click Start at login");
    wait_until("the login item to be removed", || autostart_entries(&session).is_empty());
    probe.wait_for("autostart off", |l| l.contains(&"[[ ] Start at login]".to_owned()));
    assert!(autostart_entries(&session).is_empty(), "the login item came back");
    probe.send("click Start at login");
    wait_until("the login item to be added", || autostart_entries(&session).len() == 1);
    probe.wait_for("autostart on", |l| l.contains(&"[[x] Start at login]".to_owned()));
    assert_eq!(autostart_entries(&session).len(), 1);

    probe.send("click Quit");
    assert_eq!(probe.send("wait-exit")["exit"], 0);
}

/// The tray in a real panel (xfce4-panel): the icon registers with the
/// panel's tray, and screenshots of the open menu and the status window go to
/// `test-output/` for a person to look at.
#[test]
fn shows_in_a_real_panel_with_screenshots() {
    let xvfb = Xvfb::start();
    let session = Session::new();
    let home = fixture_home("home");
    session.not_first_run();
    let out = repo_root().join("test-output");
    for name in ["tray-menu.png", "tray-window.png"] {
        let _ = std::fs::remove_file(out.join(name));
    }
    let mut cmd = Command::new("dbus-run-session");
    cmd.args(["--", "sh", "-c", &format!("{UNLOCK}; exec \"$0\" \"$@\"")])
        .arg(repo_root().join("tests/tray/panel_screenshots.sh"))
        .arg(bin("mcp-auth-tray"))
        .arg(&out)
        .env("HERMES_HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    session.apply(&mut cmd, &xvfb.display);
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run the panel script: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("registered:"),
        "the icon did not reach xfce4-panel's tray:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for name in ["tray-menu.png", "tray-window.png"] {
        let size = std::fs::metadata(out.join(name)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0, "no screenshot {name}");
    }
}

/// The status window's capability grants exactly what its page uses: an
/// `allow-<command>` for each command `ui/*.js` invokes, `core:event:allow-listen`
/// when it listens, and nothing else (no `core:default`).
#[test]
fn the_status_window_may_call_only_what_its_page_calls() {
    let mut used = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(repo_root().join("ui")).unwrap_or_else(|e| panic!("{e}")).flatten() {
        if entry.path().extension().is_none_or(|x| x != "js") {
            continue;
        }
        let js = std::fs::read_to_string(entry.path()).unwrap_or_else(|e| panic!("{e}"));
        for call in js.split("invoke(\"").skip(1) {
            let command = call.split('"').next().unwrap_or_default();
            used.insert(format!("allow-{}", command.replace('_', "-")));
        }
        if js.contains("event.listen(") {
            used.insert("core:event:allow-listen".to_owned());
        }
    }
    let capability = read_json(&repo_root().join("src-tauri/capabilities/default.json"));
    let granted: std::collections::BTreeSet<String> = capability["permissions"]
        .as_array()
        .unwrap_or_else(|| panic!("no permissions list: {capability}"))
        .iter()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    assert_eq!(capability["windows"], serde_json::json!(["status"]));
    assert_eq!(granted, used);
}

/// Writes `body` to `path`, making its folder.
fn write_file(path: &Path, body: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(path, body).unwrap_or_else(|e| panic!("{e}"));
}

/// JSON without its `//` comment lines (the JSONC files the clients keep).
fn jsonc(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let plain: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    serde_json::from_str(&plain).unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", path.display()))
}

#[test]
fn other_clients_submenu_and_use_in_a_client() {
    let xvfb = Xvfb::start();
    let session = Session::new();
    session.not_first_run();
    let hermes = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_file(
        &hermes.path().join("config.yaml"),
        "mcp_servers:\n  notion:\n    url: https://mcp.notion.com/mcp\n    auth: oauth\n",
    );
    let home = session.dir.path().join("home");
    let claude = home.join(".claude.json");
    write_file(
        &claude,
        r#"{"numStartups": 3, "mcpServers": {"linear": {"type": "http", "url": "https://mcp.linear.app/mcp"}}}"#,
    );
    let cursor = home.join(".cursor/mcp.json");
    let cursor_text = "{\n  // mine\n  \"mcpServers\": {\n    \"notion\": { \"url\": \"https://mcp.notion.com/mcp\", \"headers\": { \"X-Api-Key\": \"cursor-secret-value\" } },\n    \"linear\": { \"command\": \"mcp-auth\", \"args\": [\"proxy\", \"https://mcp.linear.app/mcp\"] },\n    \"tool\": { \"command\": \"npx\", \"args\": [\"some-tool\"] }\n  }\n}\n";
    write_file(&cursor, cursor_text);
    write_file(&home.join(".gemini/settings.json"), "{ \"mcpServers\": ");
    let mut probe = Probe::start(&session, &xvfb.display, hermes.path());
    let registered = probe.event(Duration::from_secs(90));
    assert!(registered.get("registered").is_some(), "tray item did not register: {registered}");

    // After the agent's servers, before the actions.
    let labels = probe.wait_for("the clients' submenu", |l| l.iter().any(|x| x == "[Other MCP clients]"));
    let at = labels.iter().position(|x| x == "[Other MCP clients]").unwrap_or_default();
    assert_eq!(labels[at - 1], "[○ notion — Not connected]", "{labels:#?}");
    assert_eq!(labels[at + 1], "---", "{labels:#?}");
    assert_eq!(probe.submenu("Other MCP clients"), vec!["[Claude Code]", "[Cursor]", "[Gemini CLI]"]);
    assert_eq!(probe.submenu("Claude Code"), vec!["[○ linear — Not connected · direct]"]);
    assert_eq!(
        probe.submenu("Cursor"),
        vec!["[○ notion — Not connected · direct]", "[○ linear — Not connected · through mcp-auth]"],
        "grouped by client, a local tool not listed"
    );
    assert_eq!(probe.submenu("○ notion — Not connected · direct"), vec!["[Sign in]", "[Use in Cursor]"]);
    assert_eq!(probe.submenu("○ linear — Not connected · through mcp-auth"), vec!["[Sign in]"]);
    let gemini = probe.submenu("Gemini CLI");
    assert!(gemini.len() == 1 && gemini[0].starts_with("⚠ ") && gemini[0].contains("cannot parse"), "{gemini:#?}");
    let everything = probe.send("dump").to_string();
    assert!(!everything.contains("cursor-secret-value"), "a header value reached the menu");

    // "Use in Cursor": the same change as `mcp-auth setup cursor notion --write`.
    probe.send("click notion — Not connected · direct >> Use in Cursor");
    let program = bin("mcp-auth").canonicalize().unwrap_or_else(|e| panic!("{e}")).display().to_string();
    wait_until("Cursor's file routed", || {
        std::fs::read_to_string(&cursor).is_ok_and(|t| t.contains("\"proxy\", \"https://mcp.notion.com"))
    });
    let doc = jsonc(&cursor);
    assert_eq!(
        doc["mcpServers"]["notion"],
        serde_json::json!({"command": program, "args": ["proxy", "https://mcp.notion.com/mcp"]})
    );
    assert_eq!(doc["mcpServers"]["tool"], serde_json::json!({"command": "npx", "args": ["some-tool"]}));
    let text = std::fs::read_to_string(&cursor).unwrap_or_default();
    assert!(text.contains("// mine"), "the comment was lost:\n{text}");
    let backups: Vec<_> = std::fs::read_dir(home.join(".cursor"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("mcp.json.mcp-auth-backup-"))
        .collect();
    assert_eq!(backups.len(), 1, "one backup");
    assert_eq!(std::fs::read_to_string(backups[0].path()).unwrap_or_default(), cursor_text);
    probe.wait_for_submenu("Cursor", "notion routed", |l| {
        l == ["[○ notion — Not connected · through mcp-auth]", "[○ linear — Not connected · through mcp-auth]"]
    });
    let told = probe.wait_for_notification("Cursor uses notion through mcp-auth", 1);
    assert!(told["body"].as_str().is_some_and(|b| b.starts_with("Changed ") && b.contains("Restart Cursor")), "{told}");

    // "Use in Claude Code": its headers helper.
    probe.send("click linear — Not connected · direct >> Use in Claude Code");
    wait_until("Claude Code's file routed", || {
        std::fs::read_to_string(&claude).is_ok_and(|t| t.contains("headersHelper"))
    });
    let doc = read_json(&claude);
    assert_eq!(doc["numStartups"], 3, "other keys kept");
    assert_eq!(doc["mcpServers"]["linear"]["url"], "https://mcp.linear.app/mcp");
    assert_eq!(doc["mcpServers"]["linear"]["headersHelper"], format!("{program} headers https://mcp.linear.app/mcp"));
    probe.wait_for_submenu("Claude Code", "linear routed", |l| l == ["[○ linear — Not connected · through mcp-auth]"]);
    probe.wait_for_notification("Claude Code uses linear through mcp-auth", 1);

    let clicked = probe.send("click Quit");
    assert_eq!(clicked["clicked"], "Quit");
}

/// `mcp-auth proxy` started as a client starts it, in the tray's session.
/// `mcp-auth --hermes-home <home>` in the tray's desktop session (its
/// keyring on `bus`, its runtime folder), as a client would start it.
fn mcp_auth(session: &Session, display: &str, bus: &str, home: &Path) -> Command {
    let mut cmd = Command::new(bin("mcp-auth"));
    cmd.arg("--hermes-home").arg(home);
    session.apply(&mut cmd, display);
    cmd.env("DBUS_SESSION_BUS_ADDRESS", bus).env("NO_COLOR", "1").env_remove("HERMES_HOME").env_remove("BROWSER");
    cmd
}

/// Runs `cmd` to its end (at most 60 s): whether it succeeded, and its stderr.
fn finish(cmd: &mut Command) -> (bool, String) {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn();
    let mut child = ChildGuard(child.unwrap_or_else(|e| panic!("{e}")));
    let stderr = Lines::new(child.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break status;
        }
        assert!(Instant::now() < deadline, "{cmd:?} did not end within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = Vec::new();
    while let Some(line) = stderr.next(Duration::from_secs(5)) {
        text.push(line);
    }
    (status.success(), text.join("\n"))
}

struct ProxyChild {
    stdin: ChildStdin,
    stdout: Lines,
    _child: ChildGuard,
}

impl ProxyChild {
    /// Starts the proxy `cmd` and initializes an MCP session through it.
    fn start(cmd: &mut Command) -> Self {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
        let stdout = Lines::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
        let mut proxy = ProxyChild { stdin, stdout, _child: ChildGuard(child) };
        let init = serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}});
        let answer = proxy.request(1, "initialize", init);
        assert_eq!(answer["result"]["serverInfo"]["name"], "mcp-auth-test-server", "{answer}");
        writeln!(proxy.stdin, "{}", serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .unwrap_or_else(|e| panic!("{e}"));
        proxy
    }

    fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        let message = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(self.stdin, "{message}").unwrap_or_else(|e| panic!("write to the proxy: {e}"));
        self.stdin.flush().unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = self
                .stdout
                .next(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|| panic!("no answer to {method} within 60 s"));
            let answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {line}"));
            if answer["id"] == id {
                return answer;
            }
        }
    }
}

/// The test authorization and MCP server (on the returned runtime, which
/// must outlive it), an X display, and a desktop session past its first run.
fn desktop_with_server() -> (tokio::runtime::Runtime, mcp_auth_test_support::FakeServer, Xvfb, Session) {
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let server = runtime
        .block_on(mcp_auth_test_support::FakeServer::start(mcp_auth_test_support::Behaviour::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    let xvfb = Xvfb::start();
    let session = Session::new();
    session.not_first_run();
    (runtime, server, xvfb, session)
}

#[test]
fn a_proxy_finding_its_grant_revoked_raises_the_trays_notice() {
    let (_runtime, server, xvfb, session) = desktop_with_server();
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_file(
        &home.path().join("config.yaml"),
        &format!("mcp_servers:\n  fake:\n    url: {}\n    auth: oauth\n", server.mcp_url()),
    );
    let mut probe = Probe::start_with(&session, &xvfb.display, home.path(), |cmd| {
        cmd.env("BROWSER", repo_root().join("tests/tray/browser.sh")).env("RUST_LOG", "info,mcp_auth_core=debug");
    });
    let registered = probe.event(Duration::from_secs(90));
    let bus = registered["registered"]["bus"].as_str().unwrap_or_else(|| panic!("no bus in {registered}")).to_owned();
    probe.wait_for("the server", |l| l.iter().any(|x| x == "[○ fake — Not connected]"));
    probe.send("click ○ fake >> Connect");
    probe.wait_up_to(Duration::from_secs(20), "fake connected", |l| {
        l.iter().any(|x| x.starts_with("[● fake — Connected"))
    });

    // A client's proxy, in the same desktop session (keyring, runtime folder).
    let mut proxy =
        ProxyChild::start(mcp_auth(&session, &xvfb.display, &bus, home.path()).args(["proxy", &server.mcp_url()]));
    let listed = proxy.request(2, "tools/list", serde_json::json!({}));
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    assert!(probe.notifications().iter().all(|n| n["summary"] != "Sign in again to fake"));

    // The grant is revoked at the server: the proxy's request gets a 401, its
    // refresh is refused, the client gets the error, and the tray says so.
    server.revoke_grants();
    let failed = proxy.request(3, "tools/list", serde_json::json!({}));
    assert_eq!(failed["error"]["code"], -32001, "{failed}");
    assert!(failed["error"]["message"].as_str().is_some_and(|m| m.starts_with("sign in to fake again")), "{failed}");
    probe.wait_up_to(Duration::from_secs(20), "fake needs sign-in", |l| {
        l.iter().any(|x| x == "[⚠ fake — Needs sign-in]")
    });
    let notice = probe.wait_for_notification("Sign in again to fake", 1);
    assert!(notice["actions"].as_array().is_some_and(|a| a.iter().any(|x| x == "sign-in")), "{notice}");
    // The tray learned it from the proxy: the one refused refresh was the proxy's.
    assert_eq!(server.log().refreshes_ending("invalid_grant"), 1);

    let clicked = probe.send("click Quit");
    assert_eq!(clicked["clicked"], "Quit");
}

/// `pid`'s children, with their command lines.
fn children(pid: u32) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).ok()?;
            (ppid == pid).then(|| (child, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .collect()
}

/// Whether `pid` ended (gone, or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

/// The status window's process (a child of the tray started with `--window`), waited for.
fn window_process(tray: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((pid, _)) = children(tray).into_iter().find(|(_, cmd)| cmd.contains("--window")) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no status window process within 30 s; children: {:?}", children(tray));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `pid`'s mapped X windows (decimal ids), through xdotool.
fn x_windows(pid: u32, display: &str) -> Vec<String> {
    Command::new("xdotool")
        .args(["search", "--onlyvisible", "--pid", &pid.to_string()])
        .env("DISPLAY", display)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Waits (at most 20 s) until the app log has a line containing `text`; returns it.
fn log_line(probe: &Probe, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(line) = probe.log_text().lines().find(|l| l.contains(text)) {
            return line.to_owned();
        }
        assert!(Instant::now() < deadline, "the app log never said `{text}`:\n{}", probe.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status window is a process of its own, started on demand: the tray
/// itself never maps a webview; the window shows what the tray sends it,
/// hands its buttons' actions to the tray (which alone signs in), and is
/// gone, WebKit and all, once closed. A second launch of the app opens it
/// again without becoming a second tray.
#[test]
fn the_status_window_is_a_process_of_its_own_that_hands_actions_to_the_tray() {
    let (_runtime, server, xvfb, session) = desktop_with_server();
    let home = connect_home(&server.mcp_url());
    let tokens = home.path().join("mcp-tokens");
    let mut probe = Probe::start_with(&session, &xvfb.display, home.path(), |cmd| {
        cmd.env("BROWSER", repo_root().join("tests/tray/browser.sh"));
    });
    let registered = probe.event(Duration::from_secs(90));
    let tray = registered["registered"]["pid"].as_u64().unwrap_or_else(|| panic!("no pid in {registered}")) as u32;
    probe.wait_for("the servers", |l| l.iter().any(|x| x == "[○ fake — Not connected]"));
    assert!(children(tray).is_empty(), "the idle tray started processes: {:?}", children(tray));
    assert!(x_windows(tray, &xvfb.display).is_empty(), "the tray itself shows a window");

    probe.send("click Open status window");
    let window = window_process(tray);
    // It shows the servers the tray sent it.
    let rows = log_line(&probe, "the status window read its rows");
    assert!(rows.contains("fake,deep"), "the window's rows are not the config's servers: {rows}");
    log_line(&probe, "the status window read the log");
    let windows = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = x_windows(window, &xvfb.display);
            if !found.is_empty() {
                break found;
            }
            assert!(Instant::now() < deadline, "the window process shows no window");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    screenshot(&xvfb.display, "tray-window-process.png");

    // Its first button is the first server's "Connect": pressed from the
    // keyboard, the tray signs in (the window process has no engine).
    let key = |args: &[&str]| {
        let status = Command::new("xdotool").args(args).env("DISPLAY", &xvfb.display).status();
        assert!(status.is_ok_and(|s| s.success()), "xdotool {args:?} failed");
    };
    key(&["windowfocus", &windows[0]]);
    key(&["key", "--delay", "150", "Tab", "Return"]);
    let asked = log_line(&probe, "the status window asks the tray");
    assert!(asked.contains("connect:"), "{asked}");
    probe.wait_for_notification("Connected to fake", 1);
    assert_eq!(read_json(&tokens.join("fake.json"))["token_type"], "Bearer");
    probe.wait_for("fake connected", |l| l.iter().any(|x| x.starts_with("[● fake — Connected")));

    // Closed as a window manager closes it: the process ends and WebKit's with it.
    let closer = Command::new("/usr/bin/python3")
        .arg(repo_root().join("tests/tray/close_window.py"))
        .args(&windows)
        .env("DISPLAY", &xvfb.display)
        .status();
    assert!(closer.is_ok_and(|s| s.success()), "cannot ask the window to close");
    wait_until("the window process to end", || gone(window));
    wait_until("the tray to have no children", || children(tray).is_empty());

    // A second launch hands over to this tray (single instance), which opens the window again.
    let environ = std::fs::read(format!("/proc/{tray}/environ")).unwrap_or_default();
    let mut second = Command::new(bin("mcp-auth-tray"));
    second.env_clear().stdout(Stdio::null()).stderr(Stdio::null());
    for pair in environ.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let pair = String::from_utf8_lossy(pair);
        if let Some((k, v)) = pair.split_once('=') {
            second.env(k, v);
        }
    }
    let status = second.status().unwrap_or_else(|e| panic!("cannot launch the app again: {e}"));
    assert!(status.success(), "the second launch failed: {status}");
    let again = window_process(tray);
    assert_ne!(again, window);
    let windows = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = x_windows(again, &xvfb.display);
            if !found.is_empty() {
                break found;
            }
            assert!(Instant::now() < deadline, "the second window process shows no window");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(!windows.is_empty());
    // Quitting the tray closes the window too.
    probe.send("click Quit");
    assert_eq!(probe.send("wait-exit")["exit"], 0);
    wait_until("the window process to end with the tray", || gone(again));
}

/// A server that only other clients use (our list, through `mcp-auth
/// proxy`): its grant revoked, the proxy's refused refresh raises the
/// tray's notice, and "Sign in" on it signs in again from the tray, with no
/// token file written anywhere.
#[test]
fn a_server_only_proxies_use_gets_the_trays_notice_and_signs_in_from_it() {
    let (_runtime, server, xvfb, session) = desktop_with_server();
    let hermes = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_file(&hermes.path().join("config.yaml"), "mcp_servers: {}\n");
    let browser = repo_root().join("tests/tray/browser.sh");
    let mut probe = Probe::start_with(&session, &xvfb.display, hermes.path(), |cmd| {
        cmd.env("BROWSER", &browser);
    });
    let registered = probe.event(Duration::from_secs(90));
    let bus = registered["registered"]["bus"].as_str().unwrap_or_else(|| panic!("no bus in {registered}")).to_owned();
    let cli = || mcp_auth(&session, &xvfb.display, &bus, hermes.path());
    let (added, why) = finish(cli().args(["add", "ours", &server.mcp_url()]));
    assert!(added, "mcp-auth add: {why}");
    let (connected, why) = finish(cli().env("BROWSER", &browser).args(["connect", "ours"]));
    assert!(connected, "mcp-auth connect ours: {why}");

    let mut proxy = ProxyChild::start(cli().args(["proxy", "ours"]));
    let listed = proxy.request(2, "tools/list", serde_json::json!({}));
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    server.revoke_grants();
    let failed = proxy.request(3, "tools/list", serde_json::json!({}));
    assert!(failed["error"]["message"].as_str().is_some_and(|m| m.starts_with("sign in to ours again")), "{failed}");
    let notice = probe.wait_for_notification("Sign in again to ours", 1);
    assert!(notice["actions"].as_array().is_some_and(|a| a.iter().any(|x| x == "sign-in")), "{notice}");
    assert_eq!(server.log().refreshes_ending("invalid_grant"), 1, "the tray refreshed too");

    // "Sign in" on the notice: the tray signs in to our grant itself.
    let authorized = server.log().authorizations.len();
    probe.send(&format!("invoke {} sign-in", notice["id"]));
    let connected = probe.wait_for_notification("Connected to ours", 1);
    assert!(connected["body"].as_str().is_some_and(|b| b.contains("through mcp-auth")), "{connected}");
    assert_eq!(server.log().authorizations.len(), authorized + 1);
    // The proxy's next request uses the new grant; nothing announces it again.
    let again = proxy.request(4, "tools/list", serde_json::json!({}));
    assert!(again["result"]["tools"].is_array(), "{again}");
    let notices = probe.notifications();
    assert_eq!(notices.iter().filter(|n| n["summary"] == "Sign in again to ours").count(), 1, "{notices:#?}");
    // Tokens of ours live in the keychain only.
    let files: Vec<_> = walkdir(session.dir.path()).into_iter().chain(walkdir(hermes.path())).collect();
    assert!(!files.iter().any(|p| p.to_string_lossy().contains("mcp-tokens")), "{files:#?}");

    let clicked = probe.send("click Quit");
    assert_eq!(clicked["clicked"], "Quit");
}

/// A server only another client names signs in from its line under "Other
/// MCP clients": the grant of its URL, kept in the keychain only.
#[test]
fn a_server_only_a_client_names_signs_in_from_the_clients_submenu() {
    let (_runtime, server, xvfb, session) = desktop_with_server();
    let hermes = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_file(&hermes.path().join("config.yaml"), "mcp_servers: {}\n");
    let cursor = session.dir.path().join("home/.cursor/mcp.json");
    write_file(&cursor, &format!(r#"{{"mcpServers": {{"tracker": {{"url": "{}"}}}}}}"#, server.mcp_url()));
    let browser = repo_root().join("tests/tray/browser.sh");
    let mut probe = Probe::start_with(&session, &xvfb.display, hermes.path(), |cmd| {
        cmd.env("BROWSER", &browser);
    });
    let registered = probe.event(Duration::from_secs(90));
    assert!(registered.get("registered").is_some(), "tray item did not register: {registered}");
    probe.wait_for_submenu("Cursor", "the server", |l| l == ["[○ tracker — Not connected · direct]"]);
    assert_eq!(probe.submenu("○ tracker — Not connected · direct"), vec!["[Sign in]", "[Use in Cursor]"]);

    let clicked = probe.send("click tracker — Not connected · direct >> Sign in");
    assert_eq!(clicked["clicked"], "Sign in", "{clicked}");
    probe.wait_for_submenu("Cursor", "signed in", |l| {
        l.len() == 1 && l[0].starts_with("[● tracker — Connected") && l[0].ends_with(" · direct]")
    });
    assert_eq!(server.log().authorizations.len(), 1, "one sign-in");
    let connected = probe.notifications();
    assert!(
        connected.iter().any(|n| n["summary"].as_str().is_some_and(|s| s.starts_with("Connected to "))),
        "{connected:#?}"
    );
    // Signed in, so nothing more to offer than routing it.
    assert_eq!(probe.submenu("● tracker — Connected"), vec!["[Use in Cursor]"]);
    let files: Vec<_> = walkdir(session.dir.path()).into_iter().chain(walkdir(hermes.path())).collect();
    assert!(!files.iter().any(|p| p.to_string_lossy().contains("mcp-tokens")), "{files:#?}");

    let clicked = probe.send("click Quit");
    assert_eq!(clicked["clicked"], "Quit");
}

/// Every file under `dir`.
fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walkdir(&path)) } else { out.push(path) }
    }
    out
}
