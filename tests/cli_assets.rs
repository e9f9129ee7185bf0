//! What the packages ship beside the binaries, from the real `mcp-auth`:
//! its version line (commit and build date), and the man pages and shell
//! completions generated from its clap definitions.

use std::process::Command;

use mcp_auth_e2e::{bin, repo_root};

fn mcp_auth(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("mcp-auth")).args(args).output().unwrap_or_else(|e| panic!("cannot run mcp-auth: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The visible subcommands, as `mcp-auth --help` lists them.
fn subcommands() -> Vec<String> {
    let (code, out, _) = mcp_auth(&["--help"]);
    assert_eq!(code, 0);
    out.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn version_names_the_version_commit_and_build_date() {
    let (code, out, err) = mcp_auth(&["version"]);
    assert_eq!(code, 0, "{err}");
    let line = out.trim();
    let rest = line
        .strip_prefix(&format!("mcp-auth {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("unexpected version line: {line}"));
    let (commit, date) =
        rest.strip_suffix(')').and_then(|r| r.split_once(", built ")).unwrap_or_else(|| panic!("{line}"));
    assert!(commit == "unknown" || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())), "{line}");
    let parts: Vec<&str> = date.split('-').collect();
    assert!(
        parts.len() == 3 && [4, 2, 2] == [parts[0].len(), parts[1].len(), parts[2].len()],
        "date is not YYYY-MM-DD: {line}"
    );
    // Built from this checkout (not an installed package): the commit is the checkout's.
    if std::env::var_os(mcp_auth_e2e::BIN_DIR_VAR).is_none()
        && let Ok(head) =
            Command::new("git").arg("-C").arg(repo_root()).args(["rev-parse", "--short=12", "HEAD"]).output()
        && head.status.success()
    {
        // The binary may predate a commit made since the build; it names a commit of this history.
        let known = Command::new("git")
            .arg("-C")
            .arg(repo_root())
            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(known, "{commit} is not a commit of this repository");
    }
    assert_eq!(mcp_auth(&["--version"]).1.trim(), line, "--version and version differ");
}

#[test]
fn man_pages_and_completions_come_from_the_clap_definitions() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (code, _, err) = mcp_auth(&["generate-assets", &dir.path().display().to_string()]);
    assert_eq!(code, 0, "{err}");
    let commands = subcommands();
    assert!(commands.contains(&"status".to_owned()) && commands.contains(&"connect".to_owned()), "{commands:?}");
    let mut pages: Vec<String> = std::fs::read_dir(dir.path().join("man"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    let mut expected: Vec<String> = commands.iter().map(|c| format!("mcp-auth-{c}.1")).collect();
    expected.push("mcp-auth.1".to_owned());
    expected.sort();
    assert_eq!(pages, expected, "one page per visible command, none for hidden ones");
    let status = std::fs::read_to_string(dir.path().join("man/mcp-auth-status.1")).unwrap_or_default();
    assert!(status.contains(".TH mcp-auth-status 1") && status.contains("\\-\\-json"), "{status}");

    let completions = dir.path().join("completions");
    for file in ["mcp-auth.bash", "_mcp-auth", "mcp-auth.fish"] {
        let text = std::fs::read_to_string(completions.join(file)).unwrap_or_default();
        assert!(text.contains("connect") && text.contains("hermes-home"), "{file} lacks the commands");
    }
    // The bash script loads and registers the completion.
    if cfg!(windows) {
        return;
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$0" && complete -p mcp-auth"#)
        .arg(completions.join("mcp-auth.bash"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash: {e}"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("mcp-auth"), "{}", String::from_utf8_lossy(&out.stderr));
}
