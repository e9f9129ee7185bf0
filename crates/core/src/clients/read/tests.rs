use super::*;
use pretty_assertions::assert_eq;
use rstest::rstest;

fn location(client: ClientKind, shape: Shape) -> ConfigLocation {
    ConfigLocation::new(client, PathBuf::from("/cfg/file"), shape)
}

/// One line per server: name, project, url, transport, routing, enabled, header names.
fn summary(file: &ClientFile) -> Vec<String> {
    file.servers
        .iter()
        .map(|s| {
            let headers: Vec<&str> = s.headers.iter().map(|(k, _)| k.as_str()).collect();
            format!(
                "{}{} {} {:?} {:?}{}{}",
                s.name,
                s.project.as_ref().map(|p| format!(" [{}]", p.display())).unwrap_or_default(),
                s.url.as_ref().map_or("-", url::Url::as_str),
                s.transport,
                s.routing,
                if s.enabled { "" } else { " off" },
                if headers.is_empty() { String::new() } else { format!(" headers={}", headers.join(",")) },
            )
        })
        .collect()
}

#[rstest]
#[case::claude_code(ClientKind::ClaudeCode, Shape::ClaudeUser, include_str!("../fixtures/claude.json"), &[
    "fs - Stdio Direct",
    "linear https://mcp.linear.app/mcp Http Direct headers=X-Api-Key",
    "notion https://mcp.notion.com/mcp Http Headers { target: Some(\"https://mcp.notion.com/mcp\") }",
    "sentry [/work/app] https://mcp.sentry.dev/sse Sse Direct",
][..], &[][..])]
#[case::claude_desktop(ClientKind::ClaudeDesktop, Shape::McpServers, include_str!("../fixtures/claude_desktop_config.json"), &[
    "linear https://mcp.linear.app/mcp Stdio Direct",
    "notion https://mcp.notion.com/mcp Stdio Proxy { target: Some(\"https://mcp.notion.com/mcp\") }",
    "weather - Stdio Direct",
][..], &[][..])]
#[case::cursor(ClientKind::Cursor, Shape::McpServers, include_str!("../fixtures/cursor.json"), &[
    "linear https://mcp.linear.app/mcp Http Direct headers=Authorization",
][..], &[
    "server `wrong`: a field has the wrong type, expected a string",
    "server `bad-url`: the url is not an http(s) address",
    "server `nothing`: neither a `url` nor a `command`",
][..])]
#[case::vscode(ClientKind::VsCode, Shape::VsCode, include_str!("../fixtures/vscode.jsonc"), &[
    "linear https://mcp.linear.app/mcp Http Direct",
    "github https://api.githubcopilot.com/mcp/ Http Direct headers=Authorization",
    "local - Stdio Direct",
][..], &[][..])]
#[case::codex(ClientKind::Codex, Shape::Codex, include_str!("../fixtures/codex.toml"), &[
    "linear https://mcp.linear.app/mcp Http Direct",
    "docs https://docs.example.com/mcp Stdio Proxy { target: Some(\"https://docs.example.com/mcp\") }",
    "shell - Stdio Direct off",
][..], &[][..])]
#[case::gemini(ClientKind::GeminiCli, Shape::McpServers, include_str!("../fixtures/gemini.json"), &[
    "linear https://mcp.linear.app/mcp Http Direct",
    "legacy https://legacy.example/sse Sse Direct headers=Authorization",
][..], &[][..])]
#[case::opencode(ClientKind::Opencode, Shape::Opencode, include_str!("../fixtures/opencode.jsonc"), &[
    "linear https://mcp.linear.app/mcp Http Direct",
    "notion - Stdio Proxy { target: Some(\"notion\") }",
    "off https://off.example/mcp Http Direct off",
][..], &[][..])]
fn fixtures(
    #[case] client: ClientKind,
    #[case] shape: Shape,
    #[case] text: &str,
    #[case] want: &[&str],
    #[case] problems: &[&str],
) {
    let file = parse_text(&location(client, shape), text);
    let mut got = summary(&file);
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let mut got_problems = file.problems.clone();
    let mut want_problems: Vec<String> = problems.iter().map(|s| (*s).to_owned()).collect();
    got_problems.sort();
    want_problems.sort();
    assert_eq!(got_problems, want_problems);
    // Header values never reach a Debug or a problem line.
    let shown = format!("{file:?}");
    for secret in ["sk-claude-secret", "cursor-secret", "gemini-secret"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[rstest]
#[case::json(Shape::McpServers, include_str!("../fixtures/broken.json"))]
#[case::toml(Shape::Codex, include_str!("../fixtures/broken.toml"))]
#[case::not_an_object(Shape::McpServers, "[1, 2]")]
#[case::servers_not_an_object(Shape::McpServers, r#"{"mcpServers": "x"}"#)]
fn a_broken_file_is_one_problem_line_and_no_servers(#[case] shape: Shape, #[case] text: &str) {
    let file = parse_text(&location(ClientKind::Cursor, shape), text);
    assert!(file.servers.is_empty());
    assert_eq!(file.problems.len(), 1, "{:?}", file.problems);
}

#[test]
fn an_empty_file_has_no_servers_and_no_problem() {
    let file = parse_text(&location(ClientKind::Cursor, Shape::McpServers), "  \n");
    assert_eq!((file.servers.len(), file.problems.len()), (0, 0));
}

#[rstest]
#[case::plain(&["mcp-auth", "proxy", "https://a.example/mcp"], "Proxy { target: Some(\"https://a.example/mcp\") }", true)]
#[case::name(&["/opt/bin/mcp-auth", "proxy", "linear"], "Proxy { target: Some(\"linear\") }", false)]
#[case::options_first(&["mcp-auth", "proxy", "--connect", "linear"], "Proxy { target: Some(\"linear\") }", false)]
#[case::windows(&["C:\\bin\\MCP-AUTH.EXE", "proxy", "x"], "Proxy { target: Some(\"x\") }", false)]
#[case::wrapped(&["cmd", "/c", "mcp-auth", "proxy", "x"], "Proxy { target: Some(\"x\") }", false)]
#[case::other_subcommand(&["mcp-auth", "status"], "Direct", false)]
#[case::mcp_remote(&["npx", "-y", "mcp-remote", "https://a.example/mcp"], "Direct", true)]
#[case::mcp_remote_versioned(&["npx", "mcp-remote@latest", "https://a.example/mcp", "--header", "x"], "Direct", true)]
#[case::unrelated(&["node", "server.js"], "Direct", false)]
fn routing_from_a_command(#[case] argv: &[&str], #[case] want: &str, #[case] has_url: bool) {
    let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
    let (routing, url) = routing_of_argv(&argv);
    assert_eq!(format!("{routing:?}"), want);
    assert_eq!(url.is_some(), has_url);
}

#[rstest]
#[case::bare("mcp-auth headers", Some(None))]
#[case::target("/usr/bin/mcp-auth headers linear", Some(Some("linear")))]
#[case::quoted("\"C:\\Program Files\\mcp-auth.exe\" headers", Some(None))]
#[case::quoted_simple("'mcp-auth' headers x", Some(Some("x")))]
#[case::other("get-token --for linear", None)]
#[case::other_subcommand("mcp-auth token linear", None)]
fn headers_helper(#[case] command: &str, #[case] want: Option<Option<&str>>) {
    assert_eq!(headers_helper_target(command), want.map(|t| t.map(str::to_owned)));
}

#[test]
fn read_all_finds_claude_projects_mcp_json_and_skips_missing_files() -> Result<(), Box<dyn std::error::Error>> {
    let home = tempfile::tempdir()?;
    let project = home.path().join("proj");
    std::fs::create_dir_all(&project)?;
    std::fs::write(
        home.path().join(".claude.json"),
        format!(r#"{{"projects": {{"{}": {{"mcpServers": {{}}}}}}}}"#, project.display()),
    )?;
    std::fs::write(
        project.join(".mcp.json"),
        r#"{"mcpServers": {"team": {"type": "http", "url": "https://t.example/mcp"}}}"#,
    )?;
    std::fs::create_dir_all(home.path().join(".cursor"))?;
    std::fs::write(home.path().join(".cursor/mcp.json"), "{ broken")?;
    let env = LocationEnv { home: home.path().to_path_buf(), ..Default::default() };
    let files = read_all(Platform::Linux, &env);
    let got: Vec<(ClientKind, Vec<String>, usize)> = files
        .iter()
        .map(|f| (f.location.client, f.servers.iter().map(|s| s.name.clone()).collect(), f.problems.len()))
        .collect();
    assert_eq!(
        got,
        vec![
            (ClientKind::ClaudeCode, vec![], 0),
            (ClientKind::ClaudeCode, vec!["team".to_owned()], 0),
            (ClientKind::Cursor, vec![], 1),
        ]
    );
    assert_eq!(files[1].servers[0].project.as_deref(), Some(project.as_path()));
    Ok(())
}
