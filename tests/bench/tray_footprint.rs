//! Footprint of the tray app (a benchmark that prints figures, not a test).
//!
//! Runs the built `mcp-auth-tray` under Xvfb in a private D-Bus session with
//! the stand-in tray host (`tests/tray/sni_probe.py`), not on its first run
//! (so no window opens), and prints, for the app and every process it
//! started (WebKit's helpers):
//! - start-to-tray time: from launch until its StatusNotifierItem registers;
//! - RSS, PSS and USS (`/proc/PID/smaps_rollup`; USS = private pages, what
//!   quitting the app would give back) with the window closed after start-up
//!   settled, with the status window open, and after it closed again (is the
//!   memory returned?), and the dirty part of USS (heap, relocated data:
//!   what cannot be dropped and read back from the files). The target is
//!   USS under 40 MB with the window closed;
//! - wake-ups over an idle period (60 s by default; `--idle-secs N`) with no
//!   token due: context switches summed over all threads, with the threads
//!   that woke named, and CPU time. The target is zero.
//!
//! `scripts/bench-footprint.sh` builds the release binaries and runs it; by
//! hand: `cargo build --workspace --bins` (or `--release`), then
//! `cargo run -p mcp-auth-e2e --bin tray-footprint [-- --idle-secs N --settle-secs N]`.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_auth_e2e::cli::UNLOCK;
use mcp_auth_e2e::{ChildGuard, Lines, Session, Xvfb, fixture_home, repo_root};
use serde_json::Value;

fn main() -> anyhow::Result<()> {
    let arg = |name: &str, default: u64| -> anyhow::Result<u64> {
        Ok(std::env::args().skip_while(|a| a != name).nth(1).map(|v| v.parse()).transpose()?.unwrap_or(default))
    };
    let idle_secs = arg("--idle-secs", 60)?;
    let settle = Duration::from_secs(arg("--settle-secs", 10)?);
    let app = sibling("mcp-auth-tray")?;
    let xvfb = Xvfb::start();
    let session = Session::new();
    let home = fixture_home("home");
    session.not_first_run();

    let mut cmd = Command::new("dbus-run-session");
    cmd.args(["--", "sh", "-c", &format!("{UNLOCK}; exec \"$0\" \"$@\"")])
        .arg("/usr/bin/python3")
        .arg(repo_root().join("tests/tray/sni_probe.py"))
        .arg(&app)
        .env("HERMES_HOME", home.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    session.apply(&mut cmd, &xvfb.display);
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().ok_or_else(|| anyhow::anyhow!("no stdin"))?;
    let lines = Lines::new(child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?);
    let _guard = ChildGuard(child);
    let next = |timeout: Duration| -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let line = lines
                .next(deadline.saturating_duration_since(Instant::now()))
                .ok_or_else(|| anyhow::anyhow!("the probe said nothing in time"))?;
            if line.starts_with('{') {
                return Ok(serde_json::from_str(&line)?);
            }
        }
    };

    let registered = next(Duration::from_secs(90))?;
    let item = &registered["registered"];
    let pid = item["pid"].as_u64().ok_or_else(|| anyhow::anyhow!("no pid in {registered}"))? as u32;
    println!("binary:              {} ({})", app.display(), mb(std::fs::metadata(&app)?.len() / 1024));
    println!("start to tray:       {:.2} s", item["after_s"].as_f64().unwrap_or(f64::NAN));
    println!("{:<21}{:>9} {:>9} {:>9} {:>9}  processes (USS)", "", "RSS", "PSS", "USS", "dirty");

    // Start-up work (keychain, first sync) finishes well within the settle time.
    std::thread::sleep(settle);
    let closed = Footprint::of(pid);
    closed.print("window closed");
    std::thread::sleep(Duration::from_secs(idle_secs));
    let after = Footprint::of(pid);
    let woke: Vec<String> = after
        .threads
        .iter()
        .filter_map(|(name, n)| {
            let d = n.saturating_sub(closed.threads.get(name).copied().unwrap_or(0));
            (d > 0).then(|| format!("{name} {d}"))
        })
        .collect();
    println!(
        "over {idle_secs} idle s: wake-ups (context switches) {}, CPU {:.2} s{}",
        // Per thread: one that started meanwhile counts whole.
        after
            .threads
            .iter()
            .map(|(name, n)| n.saturating_sub(closed.threads.get(name).copied().unwrap_or(0)))
            .sum::<u64>(),
        (after.cpu_ticks.saturating_sub(closed.cpu_ticks)) as f64 / ticks_per_second(),
        if woke.is_empty() { String::new() } else { format!(" (threads: {})", woke.join(", ")) }
    );

    writeln!(stdin, "click Open status window")?;
    next(Duration::from_secs(30))?;
    let windows =
        wait_for(Duration::from_secs(30), || Some(visible_windows(pid, &xvfb.display)).filter(|w| !w.is_empty()))
            .ok_or_else(|| anyhow::anyhow!("the status window did not appear within 30 s"))?;
    std::thread::sleep(settle);
    Footprint::of(pid).print("window open");

    let closer = Command::new("/usr/bin/python3")
        .arg(repo_root().join("tests/tray/close_window.py"))
        .args(&windows)
        .env("DISPLAY", &xvfb.display)
        .status()?;
    anyhow::ensure!(closer.success(), "cannot ask the window to close");
    wait_for(Duration::from_secs(30), || visible_windows(pid, &xvfb.display).is_empty().then_some(()))
        .ok_or_else(|| anyhow::anyhow!("the status window did not close within 30 s"))?;
    wait_for(Duration::from_secs(30), || (family(pid).len() == closed.processes.len()).then_some(()));
    std::thread::sleep(settle);
    Footprint::of(pid).print("window closed again");

    writeln!(stdin, "click Quit")?;
    let _ = next(Duration::from_secs(10));
    Ok(())
}

/// Polls `check` every 100 ms until it gives a value or `timeout` passes.
fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The app's mapped X windows (decimal ids), through xdotool.
fn visible_windows(pid: u32, display: &str) -> Vec<String> {
    Command::new("xdotool")
        .args(["search", "--onlyvisible", "--pid", &pid.to_string()])
        .env("DISPLAY", display)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A binary built next to this one.
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().map(|d| d.join(name)).unwrap_or_default();
    anyhow::ensure!(path.is_file(), "{} is missing: run `cargo build --workspace --bins` first", path.display());
    Ok(path)
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn ticks_per_second() -> f64 {
    // USER_HZ is 100 on every Linux this runs on.
    100.0
}

/// Memory (kB), CPU ticks and context switches of a process and its descendants.
#[derive(Debug, Default)]
struct Footprint {
    rss_kb: u64,
    pss_kb: u64,
    uss_kb: u64,
    /// The part of USS that is written to (heap, relocated data): what
    /// the kernel cannot drop and read back from the files.
    dirty_kb: u64,
    cpu_ticks: u64,
    /// Context switches per thread (`pid/name/tid`), voluntary and not.
    threads: BTreeMap<String, u64>,
    processes: Vec<String>,
}

impl Footprint {
    fn of(root: u32) -> Self {
        let mut total = Self::default();
        for pid in family(root) {
            let dir = PathBuf::from(format!("/proc/{pid}"));
            let rollup = std::fs::read_to_string(dir.join("smaps_rollup")).unwrap_or_default();
            let field = |name: &str| {
                rollup
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let uss = field("Private_Clean:") + field("Private_Dirty:");
            total.rss_kb += field("Rss:");
            total.pss_kb += field("Pss:");
            total.uss_kb += uss;
            total.dirty_kb += field("Private_Dirty:");
            let name = comm(&dir);
            total.processes.push(format!("{name} {}", mb(uss)));
            total.cpu_ticks += cpu_ticks(&dir.join("stat"));
            for t in threads(&dir) {
                let s = std::fs::read_to_string(t.join("status")).unwrap_or_default();
                let n = ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"]
                    .iter()
                    .filter_map(|k| s.lines().find_map(|l| l.strip_prefix(k)))
                    .filter_map(|v| v.trim().parse::<u64>().ok())
                    .sum::<u64>();
                let tid = t.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_owned();
                total.threads.insert(format!("{name}/{}/{tid}", comm(&t)), n);
            }
        }
        total
    }

    fn print(&self, what: &str) {
        println!(
            "{what:<21}{:>9} {:>9} {:>9} {:>9}  {}",
            mb(self.rss_kb),
            mb(self.pss_kb),
            mb(self.uss_kb),
            mb(self.dirty_kb),
            self.processes.join(", ")
        );
    }
}

fn comm(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("comm")).map(|c| c.trim().to_owned()).unwrap_or_else(|_| "?".to_owned())
}

/// `root` and every process whose parent chain leads to it.
fn family(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after = stat.rsplit_once(')')?.1;
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut family = vec![root];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        family.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    family
}

fn cpu_ticks(stat: &Path) -> u64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    let Some((_, after)) = text.rsplit_once(')') else { return 0 };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name.
    fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn threads(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("task")).into_iter().flatten().flatten().map(|e| e.path()).collect()
}
