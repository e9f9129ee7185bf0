//! Shared helpers for the end-to-end tests: the built binaries, fixture
//! homes, child processes that die with the test, and bounded line reads.
//!
//! The binaries are taken from the target folder these tests were built
//! into, so build them first: `cargo build --workspace --bins` (the test
//! script does). A missing binary fails the test with that instruction.
//! With `MCP_AUTH_BIN_DIR` set they are taken from there instead: the
//! package test (`scripts/package-test.sh`) runs these tests against the
//! installed `/usr/bin/mcp-auth` and `/usr/bin/mcp-auth-tray`.

pub mod cli;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A binary of this workspace, built into the same target folder as the
/// test, or in `MCP_AUTH_BIN_DIR` when that is set (an installed package).
pub fn bin(name: &str) -> PathBuf {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    if let Some(dir) = std::env::var_os(BIN_DIR_VAR).filter(|d| !d.is_empty()) {
        let path = Path::new(&dir).join(file);
        assert!(path.is_file(), "{} is missing ({BIN_DIR_VAR} is set)", path.display());
        return path;
    }
    // current_exe: <target>/<profile>/deps/<test>-<hash>
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(Path::to_path_buf))
        .unwrap_or_default();
    let path = profile_dir.join(file);
    assert!(path.is_file(), "{} is missing: run `cargo build --workspace --bins` first", path.display());
    path
}

/// Where [`bin`] takes the binaries from instead of the target folder.
pub const BIN_DIR_VAR: &str = "MCP_AUTH_BIN_DIR";

/// Copies a fixture home from `tests/fixtures/<name>` into a fresh temp folder.
pub fn fixture_home(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    copy_dir(&repo_root().join("tests/fixtures").join(name), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())).flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// A child process killed when the guard drops, so no test leaves one behind.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of a child's output, read on a thread so every wait can time out.
#[derive(Debug)]
pub struct Lines(mpsc::Receiver<String>);

impl Lines {
    pub fn new(stream: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self(rx)
    }

    /// The next line, or `None` after `timeout` or at end of stream.
    pub fn next(&self, timeout: Duration) -> Option<String> {
        self.0.recv_timeout(timeout).ok()
    }
}

/// A private X server on a free display, stopped on drop.
#[derive(Debug)]
pub struct Xvfb {
    _child: ChildGuard,
    pub display: String,
}

impl Xvfb {
    pub fn start() -> Self {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Xvfb (apt-get install xvfb): {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("Xvfb stdout"));
        let guard = ChildGuard(child);
        let number = Lines::new(stdout)
            .next(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("Xvfb did not report a display within 20 s"));
        Self { _child: guard, display: format!(":{}", number.trim()) }
    }
}

/// An isolated desktop session environment: its own HOME and XDG folders.
#[derive(Debug)]
pub struct Session {
    pub dir: tempfile::TempDir,
}

impl Session {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        for sub in ["home", "config", "data", "cache", "runtime"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap_or_else(|e| panic!("mkdir: {e}"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.path().join("runtime"), std::fs::Permissions::from_mode(0o700));
        }
        Self { dir }
    }

    /// Marks the app's first run as done in this session, so it opens no
    /// window and leaves "Start at login" as the OS has it.
    pub fn not_first_run(&self) {
        let settings = self.dir.path().join("config/mcp-auth-tray");
        std::fs::create_dir_all(&settings).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(settings.join("settings.json"), r#"{"first_run_done": true}"#).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Applies the isolated environment to `cmd`.
    pub fn apply(&self, cmd: &mut Command, display: &str) {
        let p = |sub: &str| self.dir.path().join(sub);
        cmd.env("HOME", p("home"))
            .env("XDG_CONFIG_HOME", p("config"))
            .env("XDG_DATA_HOME", p("data"))
            .env("XDG_CACHE_HOME", p("cache"))
            .env("XDG_RUNTIME_DIR", p("runtime"))
            .env("DISPLAY", display)
            .env("NO_AT_BRIDGE", "1")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("WAYLAND_DISPLAY");
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}
