//! The file names of the agent's token store, `<home>/mcp-tokens/`.
//!
//! The stem must be byte-for-byte what the agent computes
//! (`re.sub(r"[^\w\-]", "_", name).strip("_")[:128] or "default"`), or the agent
//! would never see what we export. Python's `\w` on `str` is Unicode-aware: it
//! matches characters whose general category is a letter or a number, plus `_`.
//! Slicing counts code points, and stripping happens before truncation.

use std::path::{Path, PathBuf};

use unicode_general_category::{GeneralCategory as G, get_general_category};

/// Python's `str.isalnum()`, the `\w` class less the underscore.
fn is_python_word_char(c: char) -> bool {
    if c == '_' {
        return true;
    }
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
            | G::DecimalNumber
            | G::LetterNumber
            | G::OtherNumber
    )
}

/// The file stem the agent uses for a server's token files.
///
/// Two names can share a stem (`my server` and `my_server`); callers that write
/// files must detect that and refuse.
pub fn token_file_stem(server_name: &str) -> String {
    let replaced: String =
        server_name.chars().map(|c| if is_python_word_char(c) || c == '-' { c } else { '_' }).collect();
    let stem: String = replaced.trim_matches('_').chars().take(128).collect();
    if stem.is_empty() { "default".to_owned() } else { stem }
}

/// The three files the agent keeps for one server, plus its refresh fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPaths {
    /// `<stem>.json`: the tokens.
    pub tokens: PathBuf,
    /// `<stem>.client.json`: the client registration.
    pub client: PathBuf,
    /// `<stem>.meta.json`: the authorization server metadata.
    pub meta: PathBuf,
    /// `<stem>.json.refresh.lock`: the refresh fence of newer agents.
    pub refresh_lock: PathBuf,
}

impl AgentPaths {
    /// The paths for `server_name` in the token folder `tokens_dir`.
    pub fn new(tokens_dir: &Path, server_name: &str) -> Self {
        let stem = token_file_stem(server_name);
        Self {
            tokens: tokens_dir.join(format!("{stem}.json")),
            client: tokens_dir.join(format!("{stem}.client.json")),
            meta: tokens_dir.join(format!("{stem}.meta.json")),
            refresh_lock: tokens_dir.join(format!("{stem}.json.refresh.lock")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use rstest::rstest;

    #[rstest]
    #[case("github", "github")]
    #[case("my server", "my_server")]
    #[case("my_server", "my_server")]
    #[case("__x__", "x")]
    #[case("a/b\\c", "a_b_c")]
    #[case("../../etc/passwd", "etc_passwd")]
    #[case("", "default")]
    #[case("///", "default")]
    #[case("dash-ok", "dash-ok")]
    #[case("café", "café")]
    #[case("日本語", "日本語")]
    #[case("x²", "x²")]
    #[case("emoji🙂", "emoji")]
    #[case("a.b", "a_b")]
    fn stems(#[case] name: &str, #[case] want: &str) {
        assert_eq!(token_file_stem(name), want);
    }

    #[test]
    fn truncates_to_128_code_points_after_strip() {
        let name = format!("_{}", "é".repeat(200));
        assert_eq!(token_file_stem(&name), "é".repeat(128));
        let name = format!("{}_", "a".repeat(127));
        assert_eq!(token_file_stem(&format!("{name}x")), format!("{name}"));
    }

    /// Cross-checks against the agent's own expression run by a real Python.
    #[test]
    fn matches_python_for_a_mixed_sample() -> Result<(), Box<dyn std::error::Error>> {
        let names = [
            "github",
            "my server",
            "ça-va",
            "x\u{0301}y",
            "٣٤",
            "Ⅻ",
            "½",
            "a\u{200b}b",
            "tab\tx",
            "名前-1",
            "ǅ",
            "__",
            "ß.ẞ",
            "\u{1d7d8}",
            "a\u{0345}b",
        ];
        let script = r#"import json,re,sys
names=json.load(sys.stdin)
print(json.dumps([re.sub(r"[^\w\-]", "_", n).strip("_")[:128] or "default" for n in names]))"#;
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin.write_all(serde_json::to_string(&names)?.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        assert!(out.status.success(), "python3 failed");
        let want: Vec<String> = serde_json::from_slice(&out.stdout)?;
        let got: Vec<String> = names.iter().map(|n| token_file_stem(n)).collect();
        assert_eq!(got, want);
        Ok(())
    }
}
