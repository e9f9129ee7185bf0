//! The build information the binaries print: the git commit and the build
//! date, set by each binary's `build.rs` as compile-time environment
//! variables ([`COMMIT_VAR`], [`DATE_VAR`], and both with the version in one
//! line, [`VERSION_LINE_VAR`]) that the code reads with `env!`.
//!
//! It works from a source tarball with no `.git` too: the commit is then
//! taken from `MCP_AUTH_GIT_COMMIT` (set it when building from a tarball),
//! else it reads `unknown`. The date is `SOURCE_DATE_EPOCH` when set
//! (reproducible builds), else the time the build script ran. The script
//! re-runs when the checked-out commit changes (and not on every source
//! edit, so a day of edits does not rebuild the binary for the date alone).

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The compile-time variable holding the short commit hash (or `unknown`).
pub const COMMIT_VAR: &str = "MCP_AUTH_GIT_COMMIT";
/// The compile-time variable holding the build date, `YYYY-MM-DD` (UTC).
pub const DATE_VAR: &str = "MCP_AUTH_BUILD_DATE";
/// The compile-time variable holding what `--version` and the About line
/// say: `0.1.0 (commit abc123def456, built 2026-12-02)`.
pub const VERSION_LINE_VAR: &str = "MCP_AUTH_VERSION_LINE";

/// Called from a `build.rs`: prints the `cargo:` lines that set
/// [`COMMIT_VAR`], [`DATE_VAR`] and [`VERSION_LINE_VAR`] and re-run the
/// script on a new commit.
pub fn emit() {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    let dir = Path::new(&manifest_dir);
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"])
        .or_else(|| std::env::var(COMMIT_VAR).ok().filter(|c| !c.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    let epoch =
        std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(0)).unwrap_or(0)
        });
    let (commit, date) = (commit.trim(), utc_date(epoch));
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let mut lines = vec![
        format!("cargo:rustc-env={COMMIT_VAR}={commit}"),
        format!("cargo:rustc-env={DATE_VAR}={date}"),
        format!("cargo:rustc-env={VERSION_LINE_VAR}={}", version_line(&version, commit, &date)),
        format!("cargo:rerun-if-env-changed={COMMIT_VAR}"),
        "cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH".to_owned(),
    ];
    // HEAD, the branch it names and packed-refs: what moves on a commit or a checkout.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch.trim().to_owned());
    }
    for name in watched {
        if let Some(path) = git(dir, &["rev-parse", "--path-format=absolute", "--git-path", &name])
            && Path::new(path.trim()).exists()
        {
            lines.push(format!("cargo:rerun-if-changed={}", path.trim()));
        }
    }
    if lines.iter().all(|l| !l.starts_with("cargo:rerun-if-changed")) {
        // No git: without a watched file cargo would re-run on every edit.
        lines.push("cargo:rerun-if-changed=build.rs".to_owned());
    }
    #[expect(clippy::print_stdout, reason = "a build script talks to cargo on stdout")]
    for line in lines {
        println!("{line}");
    }
}

/// What a binary says of its build: `<version> (commit <commit>, built <date>)`.
pub fn version_line(version: &str, commit: &str, date: &str) -> String {
    format!("{version} (commit {commit}, built {date})")
}

/// A git command's output, or `None` without git or outside a repository.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned()).filter(|s| !s.trim().is_empty())
}

/// `YYYY-MM-DD` of a Unix time, in UTC (the proleptic Gregorian calendar;
/// days to civil date as in Howard Hinnant's `civil_from_days`).
pub fn utc_date(epoch_secs: i64) -> String {
    let days = epoch_secs.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::{utc_date, version_line};

    #[test]
    fn the_version_line_names_version_commit_and_date() {
        assert_eq!(
            version_line("0.1.0", "abc123def456", "2026-12-02"),
            "0.1.0 (commit abc123def456, built 2026-12-02)"
        );
    }

    #[rstest]
    #[case(0, "1970-01-01")]
    #[case(86_399, "1970-01-01")]
    #[case(86_400, "1970-01-02")]
    #[case(951_782_400, "2000-02-29")]
    #[case(1_709_164_800, "2024-02-29")]
    #[case(1_709_251_199, "2024-02-29")]
    #[case(1_735_689_599, "2024-12-31")]
    #[case(1_798_761_600, "2027-01-01")]
    #[case(-1, "1969-12-31")]
    fn dates_in_utc(#[case] epoch: i64, #[case] date: &str) {
        assert_eq!(utc_date(epoch), date);
    }
}
