use super::*;
use pretty_assertions::assert_eq;
use rstest::rstest;

const PROGRAM: &str = "/usr/bin/mcp-auth";

fn request(
    dir: &Path,
    client: ClientKind,
    shape: Shape,
    name: &str,
    text: Option<&str>,
    servers: &[&str],
) -> SetupRequest {
    let path = dir.join(name);
    if let Some(text) = text {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    }
    SetupRequest {
        location: ConfigLocation::new(client, path, shape),
        servers: servers.iter().map(|s| (*s).to_owned()).collect(),
        program: PROGRAM.to_owned(),
    }
}

fn no_resolve(_: &str) -> Option<url::Url> {
    None
}

/// After setup every named server reads back as routed through us, the
/// comments survive, and a second plan changes nothing.
#[rstest]
#[case::claude_code(ClientKind::ClaudeCode, Shape::ClaudeUser, include_str!("../fixtures/claude.json"), "linear", "\"numStartups\": 12")]
#[case::claude_desktop(ClientKind::ClaudeDesktop, Shape::McpServers, include_str!("../fixtures/claude_desktop_config.json"), "linear", "\"globalShortcut\"")]
#[case::cursor(ClientKind::Cursor, Shape::McpServers, include_str!("../fixtures/cursor.json"), "linear", "\"bad-url\"")]
#[case::vscode(ClientKind::VsCode, Shape::VsCode, include_str!("../fixtures/vscode.jsonc"), "linear", "// the issue tracker")]
#[case::codex(ClientKind::Codex, Shape::Codex, include_str!("../fixtures/codex.toml"), "linear", "# the issue tracker")]
#[case::gemini(ClientKind::GeminiCli, Shape::McpServers, include_str!("../fixtures/gemini.json"), "legacy", "\"theme\": \"dark\"")]
#[case::opencode(ClientKind::Opencode, Shape::Opencode, include_str!("../fixtures/opencode.jsonc"), "linear", "// remote servers")]
fn setup_routes_keeps_comments_and_is_idempotent(
    #[case] client: ClientKind,
    #[case] shape: Shape,
    #[case] text: &str,
    #[case] server: &str,
    #[case] kept: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let req = request(dir.path(), client, shape, "config", Some(text), &[server]);
    let plan = plan(&req, &no_resolve)?;
    assert!(plan.changes(), "nothing planned for {server}");
    assert!(plan.diff().starts_with("--- "), "{}", plan.diff());
    assert!(plan.new.contains(kept), "lost `{kept}`:\n{}", plan.new);
    let routed = parse_text(&req.location, &plan.new);
    let entry = routed.servers.iter().find(|s| s.name == server && s.project.is_none()).ok_or("entry gone")?;
    assert!(entry.routing.is_ours(), "{entry:?}\n{}", plan.new);
    assert!(entry.url.is_some(), "the URL is still known: {entry:?}");
    // Every other entry reads back exactly as before.
    let before = parse_text(&req.location, text);
    let others = |f: &super::super::ClientFile| -> Vec<String> {
        f.servers.iter().filter(|s| s.name != server).map(|s| format!("{s:?}")).collect()
    };
    assert_eq!(others(&routed), others(&before));
    // Written: the second run plans nothing.
    let backup =
        apply(&plan, SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_764_590_400))?.ok_or("no backup")?;
    assert_eq!(std::fs::read_to_string(&backup)?, text);
    assert!(backup.display().to_string().ends_with("config.mcp-auth-backup-20251201T120000Z"), "{}", backup.display());
    assert_eq!(std::fs::read_to_string(&req.location.path)?, plan.new);
    let again = super::plan(&req, &no_resolve)?;
    assert!(!again.changes(), "second run changed:\n{}", again.diff());
    assert_eq!(again.actions, vec![SetupAction::AlreadyRouted { name: server.to_owned() }]);
    assert_eq!(apply(&again, SystemTime::now())?, None, "no change: no write, no backup");
    let files = std::fs::read_dir(dir.path())?.count();
    assert_eq!(files, 2, "the config and one backup, no temp file left");
    Ok(())
}

#[test]
fn the_diff_shows_exactly_the_routed_entry() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let text = "{\n  // mine\n  \"mcpServers\": {\n    \"linear\": { \"url\": \"https://mcp.linear.app/mcp\", \"timeout\": 5 }\n  }\n}\n";
    let req = request(dir.path(), ClientKind::Cursor, Shape::McpServers, "mcp.json", Some(text), &[]);
    let plan = plan(&req, &no_resolve)?;
    let path = req.location.path.display().to_string();
    let want = format!(
        "--- {path}\n+++ {path}\n@@ -1,6 +1,10 @@\n {{\n   // mine\n   \"mcpServers\": {{\n-    \"linear\": {{ \"url\": \"https://mcp.linear.app/mcp\", \"timeout\": 5 }}\n+    \"linear\": {{\n+      \"timeout\": 5,\n+      \"command\": \"/usr/bin/mcp-auth\",\n+      \"args\": [\"proxy\", \"https://mcp.linear.app/mcp\"]\n+    }}\n   }}\n }}\n"
    );
    assert_eq!(plan.diff(), want);
    Ok(())
}

#[test]
fn header_and_env_values_never_show_in_the_diff_or_debug() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let text = r#"{"mcpServers": {
  "linear": {"url": "https://mcp.linear.app/mcp", "headers": {"Authorization": "Bearer hdr-secret-1"}},
  "tool": {"command": "t", "env": {"API_KEY": "env-secret-2"}}
}}
"#;
    let req = request(dir.path(), ClientKind::Cursor, Shape::McpServers, "mcp.json", Some(text), &["linear"]);
    let plan = plan(&req, &no_resolve)?;
    let diff = plan.diff();
    assert!(diff.contains("\"Authorization\": \"[redacted]\""), "{diff}");
    assert!(diff.contains("\"API_KEY\": \"[redacted]\""), "{diff}");
    let debug = format!("{plan:?}");
    for secret in ["hdr-secret-1", "env-secret-2"] {
        assert!(!diff.contains(secret) && !debug.contains(secret), "{secret}: {diff}\n{debug}");
    }
    // The file itself gets the real values.
    assert!(plan.new.contains("env-secret-2"));
    Ok(())
}

#[test]
fn a_server_of_ours_is_added_and_a_missing_file_is_created() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let req = request(dir.path(), ClientKind::Codex, Shape::Codex, "config.toml", None, &["linear"]);
    let resolve = |n: &str| (n == "linear").then(|| url::Url::parse("https://mcp.linear.app/mcp").ok()).flatten();
    let plan = plan(&req, &resolve)?;
    assert_eq!(
        plan.new,
        "[mcp_servers.linear]\ncommand = \"/usr/bin/mcp-auth\"\nargs = [\"proxy\", \"https://mcp.linear.app/mcp\"]\n"
    );
    assert!(plan.diff().starts_with("--- /dev/null\n"), "{}", plan.diff());
    assert_eq!(apply(&plan, SystemTime::now())?, None, "nothing to back up");
    assert_eq!(std::fs::read_to_string(&req.location.path)?, plan.new);
    Ok(())
}

#[test]
fn refusals() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let desktop = include_str!("../fixtures/claude_desktop_config.json");
    let req = request(dir.path(), ClientKind::ClaudeDesktop, Shape::McpServers, "d.json", Some(desktop), &["weather"]);
    assert!(matches!(plan(&req, &no_resolve), Err(SetupError::NotRemote { .. })));
    let req = request(dir.path(), ClientKind::ClaudeDesktop, Shape::McpServers, "d.json", Some(desktop), &["nope"]);
    assert!(matches!(plan(&req, &no_resolve), Err(SetupError::NotFound { .. })));
    let broken = include_str!("../fixtures/broken.json");
    let req = request(dir.path(), ClientKind::Cursor, Shape::McpServers, "b.json", Some(broken), &[]);
    assert!(matches!(plan(&req, &no_resolve), Err(SetupError::Unusable { .. })));
    assert_eq!(std::fs::read_to_string(&req.location.path)?, broken, "a broken file is left alone");
    Ok(())
}

#[test]
fn a_file_changed_after_planning_is_not_overwritten() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let text = include_str!("../fixtures/gemini.json");
    let req = request(dir.path(), ClientKind::GeminiCli, Shape::McpServers, "settings.json", Some(text), &[]);
    let plan = plan(&req, &no_resolve)?;
    std::fs::write(&req.location.path, "{\"edited\": true}")?;
    assert!(matches!(apply(&plan, SystemTime::now()), Err(SetupError::Changed { .. })));
    assert_eq!(std::fs::read_to_string(&req.location.path)?, "{\"edited\": true}");
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 1, "no backup, no temp file");
    Ok(())
}

#[cfg(unix)]
#[test]
fn the_written_file_and_its_backup_keep_the_permissions() -> Result<(), Box<dyn std::error::Error>> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let req = request(
        dir.path(),
        ClientKind::Cursor,
        Shape::McpServers,
        "mcp.json",
        Some(include_str!("../fixtures/cursor.json")),
        &[],
    );
    std::fs::set_permissions(&req.location.path, std::fs::Permissions::from_mode(0o640))?;
    let backup = apply(&plan(&req, &no_resolve)?, SystemTime::now())?.ok_or("no backup")?;
    assert_eq!(std::fs::metadata(&req.location.path)?.permissions().mode() & 0o777, 0o640);
    assert_eq!(std::fs::metadata(&backup)?.permissions().mode() & 0o777, 0o640);
    Ok(())
}

#[rstest]
#[case(0, "19700101T000000Z")]
#[case(1_764_590_400, "20251201T120000Z")]
#[case(951_825_599, "20000229T115959Z")]
fn stamps(#[case] secs: u64, #[case] want: &str) {
    assert_eq!(utc_stamp(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)), want);
}

/// JSON allows a key twice and readers take the last: an entry naming `url`
/// (or `type`) twice is routed all the same (found by the fuzz target).
#[test]
fn duplicate_keys_in_an_entry_are_all_replaced() {
    let location = ConfigLocation::new(ClientKind::Opencode, "/x/opencode.jsonc".into(), Shape::Opencode);
    let text = r#"{ "mcp": { "linear": { "type": "remote", "url": "https://a.example/mcp", "type": "remote", "url": "https://off.example/mcp", "enabled": false } } }"#;
    let url = url::Url::parse("https://off.example/mcp").unwrap_or_else(|e| panic!("{e}"));
    let new =
        edit_jsonc(&location, text, &[("linear".to_owned(), url, true)], PROGRAM).unwrap_or_else(|e| panic!("{e}"));
    let after = parse_text(&location, &new);
    let entry = after.servers.iter().find(|s| s.name == "linear").unwrap_or_else(|| panic!("{new}"));
    assert!(entry.routing.is_ours(), "{new}");
    assert_eq!(new.matches("\"url\"").count(), 0, "{new}");
}

/// A server (or the whole `mcp` map) named twice: the last one is the one
/// readers take, so that is the one routed (found by the fuzz target).
#[test]
fn a_server_named_twice_is_routed_where_readers_look() {
    let location = ConfigLocation::new(ClientKind::Opencode, "/x/opencode.jsonc".into(), Shape::Opencode);
    let url = url::Url::parse("https://off.example/mcp").unwrap_or_else(|e| panic!("{e}"));
    for text in [
        r#"{ "mcp": { "off": { }, "off": { "type": "remote", "url": "https://off.example/mcp" } } }"#,
        r#"{ "mcp": { }, "mcp": { "off": { "type": "remote", "url": "https://off.example/mcp" } } }"#,
    ] {
        let new = edit_jsonc(&location, text, &[("off".to_owned(), url.clone(), true)], PROGRAM)
            .unwrap_or_else(|e| panic!("{e}"));
        let after = parse_text(&location, &new);
        let entry = after.servers.iter().find(|s| s.name == "off").unwrap_or_else(|| panic!("{new}"));
        assert!(entry.routing.is_ours(), "{new}");
    }
}
