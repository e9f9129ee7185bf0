//! Driving the `mcp-auth` CLI like a person: homes, credential stores
//! (opt-in file, or a real Secret Service in a private session), and the
//! browser step of `connect --no-browser`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_auth_core::Http;
use mcp_auth_core::{Browser, HeadlessBrowser};
use serde_json::Value;

use crate::{ChildGuard, Lines, Session, bin};

/// Where the CLI keeps credentials in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The opt-in plain file (no keychain needed).
    File,
    /// A real Secret Service: gnome-keyring in a private D-Bus session.
    Keyring,
}

#[derive(Debug)]
pub struct Setup {
    pub home: tempfile::TempDir,
    pub config_home: tempfile::TempDir,
    pub session: Session,
    pub store: Store,
}

/// Unlocks (creating on first use) a gnome-keyring in the current session bus.
pub const UNLOCK: &str =
    "eval \"$(printf 'test-password' | gnome-keyring-daemon --unlock --components=secrets)\" >/dev/null";

impl Setup {
    /// A home whose config has `fake` (OAuth, at `mcp_url`) and a local server.
    pub fn new(mcp_url: &str, store: Store) -> Self {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config_home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config =
            format!("mcp_servers:\n  fake:\n    url: {}\n    auth: oauth\n  local:\n    command: npx\n", mcp_url);
        std::fs::write(home.path().join("config.yaml"), config).unwrap_or_else(|e| panic!("{e}"));
        if store == Store::File {
            let settings = config_home.path().join("mcp-auth-tray");
            std::fs::create_dir_all(&settings).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(settings.join("settings.json"), r#"{"credential_store": "file"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        Self { home, config_home, session: Session::new(), store }
    }

    /// `mcp-auth --hermes-home HOME <args>`, inside a keyring session when asked.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match self.store {
            Store::File => Command::new(bin("mcp-auth")),
            Store::Keyring => {
                let mut c = Command::new("dbus-run-session");
                c.args(["--", "sh", "-c", &format!("{UNLOCK}; exec \"$0\" \"$@\"")]).arg(bin("mcp-auth"));
                self.session.apply(&mut c, ":none");
                c
            }
        };
        cmd.arg("--hermes-home")
            .arg(self.home.path())
            .args(args)
            .env("XDG_CONFIG_HOME", self.config_home.path())
            .env("XDG_DATA_HOME", self.session.dir.path().join("data"))
            .env("NO_COLOR", "1")
            .env_remove("BROWSER")
            .env_remove("HERMES_HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub fn tokens_dir(&self) -> PathBuf {
        self.home.path().join("mcp-tokens")
    }

    pub fn redirect_port(&self) -> u64 {
        let settings = read_json(&self.config_home.path().join("mcp-auth-tray/settings.json"));
        settings["redirect_port"].as_u64().unwrap_or_else(|| panic!("no redirect_port persisted: {settings}"))
    }
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Waits for the child to exit (at most 30 s); returns its code and output.
pub async fn finish(child: &mut Child, stderr_seen: Vec<String>, stderr: Option<Lines>) -> (i32, String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break status;
        }
        assert!(Instant::now() < deadline, "mcp-auth connect did not finish within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut out);
    }
    let mut err = stderr_seen.join("\n");
    if let Some(lines) = stderr {
        while let Some(line) = lines.next(Duration::from_millis(200)) {
            err.push('\n');
            err.push_str(&line);
        }
    }
    (status.code().unwrap_or(-1), out, err)
}

/// The next line of `lines` that `matches` (within 20 s each), keeping the
/// others in `seen`.
pub fn next_matching(lines: &Lines, matches: impl Fn(&str) -> bool, seen: &mut Vec<String>) -> String {
    loop {
        match lines.next(Duration::from_secs(20)) {
            Some(line) if matches(&line) => return line,
            Some(line) => seen.push(line),
            None => panic!("no such line; output so far:\n{}", seen.join("\n")),
        }
    }
}

/// A printed URL to open (`--no-browser`, `--paste`).
pub fn is_url(line: &str) -> bool {
    line.trim_start().starts_with("http")
}

/// Runs `connect --no-browser`, plays the browser with the printed URL.
pub async fn connect_no_browser(setup: &Setup) -> (i32, String, String) {
    let mut guard =
        ChildGuard(setup.command(&["connect", "fake", "--no-browser"]).spawn().unwrap_or_else(|e| panic!("{e}")));
    let stderr = Lines::new(guard.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let mut seen = Vec::new();
    let url = next_matching(&stderr, is_url, &mut seen).trim().to_owned();
    HeadlessBrowser::new(Http::new().unwrap_or_else(|e| panic!("{e}")))
        .open(&url)
        .await
        .unwrap_or_else(|e| panic!("browser: {e}"));
    finish(&mut guard.0, seen, Some(stderr)).await
}
