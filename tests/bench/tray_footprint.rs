//! Footprint of the tray app (a benchmark that prints figures, not a test).
//!
//! Runs the built `mcp-auth-tray` under Xvfb in a private D-Bus session with
//! the stand-in tray host (`tests/tray/sni_probe.py`), not on its first run
//! (so no window opens), and prints:
//! - start-to-tray time: from launch until its StatusNotifierItem registers;
//! - idle resident memory with the window closed, summed over the app and
//!   any WebKit helper processes it started (the target is under 40 MB);
//! - CPU time and context switches (wake-ups) over an idle period (60 s by
//!   default; `--idle-secs N`), with no token due for refresh;
//! - the same memory figure with the status window open, for comparison.
//!
//! Build first (`cargo build --workspace --bins`, or `--release` for
//! release figures), then: `cargo run -p mcp-auth-e2e --bin tray-footprint [-- --idle-secs N]`.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_auth_e2e::cli::UNLOCK;
use mcp_auth_e2e::{ChildGuard, Lines, Session, Xvfb, fixture_home, repo_root};
use serde_json::Value;

fn main() -> anyhow::Result<()> {
    let idle_secs: u64 =
        std::env::args().skip_while(|a| a != "--idle-secs").nth(1).map(|v| v.parse()).transpose()?.unwrap_or(60);
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
    println!("binary:            {}", app.display());
    println!("start to tray:     {:.2} s", item["after_s"].as_f64().unwrap_or(f64::NAN));

    std::thread::sleep(Duration::from_secs(5)); // let start-up work (keychain, first sync) finish
    let closed = Footprint::of(pid);
    println!("idle, window closed: {} (processes: {})", mb(closed.rss_kb), closed.processes.join(", "));
    std::thread::sleep(Duration::from_secs(idle_secs));
    let after = Footprint::of(pid);
    println!(
        "over {idle_secs} idle s: CPU {:.3} s, context switches {}",
        (after.cpu_ticks - closed.cpu_ticks) as f64 / ticks_per_second(),
        after.switches.saturating_sub(closed.switches)
    );

    writeln!(stdin, "click Open status window")?;
    next(Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(5));
    let open = Footprint::of(pid);
    println!("window open:       {} (processes: {})", mb(open.rss_kb), open.processes.join(", "));
    writeln!(stdin, "click Quit")?;
    let _ = next(Duration::from_secs(10));
    Ok(())
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

/// Resident memory, CPU ticks and context switches of a process and its descendants.
#[derive(Debug, Default)]
struct Footprint {
    rss_kb: u64,
    cpu_ticks: u64,
    switches: u64,
    processes: Vec<String>,
}

impl Footprint {
    fn of(root: u32) -> Self {
        let mut total = Self::default();
        for pid in family(root) {
            let dir = PathBuf::from(format!("/proc/{pid}"));
            let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            total.rss_kb += field("VmRSS:");
            let name = status.lines().find_map(|l| l.strip_prefix("Name:")).unwrap_or("?").trim().to_owned();
            total.processes.push(format!("{name} {}", mb(field("VmRSS:"))));
            total.cpu_ticks += cpu_ticks(&dir.join("stat"));
            total.switches += threads(&dir)
                .iter()
                .map(|t| {
                    let s = std::fs::read_to_string(t.join("status")).unwrap_or_default();
                    ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"]
                        .iter()
                        .filter_map(|k| s.lines().find_map(|l| l.strip_prefix(k)))
                        .filter_map(|v| v.trim().parse::<u64>().ok())
                        .sum::<u64>()
                })
                .sum::<u64>();
        }
        total
    }
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
