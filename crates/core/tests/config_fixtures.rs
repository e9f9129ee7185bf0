//! The shared fixture homes (`tests/fixtures/`), read through the public API.
#![expect(clippy::expect_used, reason = "a test fails loudly on broken fixtures")]

use std::path::PathBuf;

use mcp_auth_core::{AuthKind, ConfigError, EnvRef, HermesRoot, Home, load_home_config};
use pretty_assertions::assert_eq;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

fn home(name: &str) -> Home {
    Home { profile: None, path: fixture(name) }
}

/// One line per server: name, kind, and the facts that matter for it.
fn describe(home: &Home) -> Vec<String> {
    let load = load_home_config(home).expect("config loads");
    load.servers
        .iter()
        .map(|entry| match &entry.config {
            Err(reason) => format!("{} (line {}): invalid: {reason}", entry.name, entry.line),
            Ok(cfg) => {
                let kind = match &cfg.auth {
                    AuthKind::OAuth(o) => format!(
                        "oauth client_id={:?} secret={} scope={:?} port={:?} timeout={}",
                        o.client_id,
                        o.client_secret.as_ref().map_or("none", |s| if s.expose() == "fixture-client-secret" {
                            "from .env"
                        } else {
                            "other"
                        }),
                        o.scope,
                        o.redirect_port,
                        o.timeout_secs
                    ),
                    AuthKind::Headers(h) => format!(
                        "headers {}",
                        h.headers
                            .iter()
                            .map(|(n, refs)| format!(
                                "{n}:{}",
                                refs.iter()
                                    .map(|EnvRef { name, is_set }| format!("{name}={is_set}"))
                                    .collect::<Vec<_>>()
                                    .join(",")
                            ))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    AuthKind::Stdio => "stdio".to_owned(),
                    AuthKind::None => "no auth".to_owned(),
                };
                format!(
                    "{} (line {}): {kind} url={} enabled={} sse={}",
                    entry.name,
                    entry.line,
                    cfg.url.as_deref().unwrap_or("-"),
                    cfg.enabled,
                    cfg.sse
                )
            }
        })
        .collect()
}

#[test]
fn every_kind_of_entry() {
    assert_eq!(
        describe(&home("home")),
        vec![
            "linear (line 7): oauth client_id=Some(\"linear-client\") secret=from .env scope=Some(\"read write\") port=Some(8765) timeout=120 url=https://mcp.linear.example/mcp enabled=true sse=false",
            "notion (line 17): oauth client_id=None secret=none scope=None port=None timeout=300 url=https://mcp.notion.example/mcp enabled=true sse=false",
            "sentry (line 21): oauth client_id=None secret=none scope=None port=None timeout=300 url=https://mcp.sentry.example/mcp enabled=true sse=false",
            "asana (line 25): oauth client_id=None secret=none scope=None port=None timeout=300 url=https://mcp.asana.example/v1/mcp enabled=true sse=false",
            "github (line 29): headers Authorization:GITHUB_PAT=true url=https://api.github.example/mcp enabled=true sse=false",
            "stripe (line 36): headers Authorization:STRIPE_KEY_NOT_SET_ANYWHERE=false url=https://mcp.stripe.example enabled=true sse=false",
            "filesystem (line 41): stdio url=- enabled=true sse=false",
            "legacy (line 47): oauth client_id=None secret=none scope=None port=None timeout=300 url=http://127.0.0.1:9000/sse enabled=false sse=true",
            "typo (line 53): invalid: `url` must be a string, found a list",
            "plain (line 56): no auth url=http://127.0.0.1:8931/mcp enabled=true sse=false",
        ]
    );
}

#[test]
fn syntax_error_names_file_line_and_column() {
    match load_home_config(&home("broken")) {
        Err(ConfigError::Syntax { path, line, column, message }) => {
            assert_eq!(path, fixture("broken").join("config.yaml"));
            assert!((5..=6).contains(&line), "line {line}");
            assert!(column >= 1, "column {column}");
            let shown = ConfigError::Syntax { path, line, column, message }.to_string();
            assert!(shown.contains(&format!("config.yaml:{line}:{column}: ")), "{shown}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn missing_file_is_an_empty_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let load = load_home_config(&Home { profile: None, path: dir.path().to_path_buf() }).expect("no error");
    assert!(load.missing);
    assert!(load.servers.is_empty());
}

#[test]
fn profiles_of_the_fixture_root() {
    let homes = HermesRoot::at(fixture("home")).homes();
    let profiles: Vec<Option<&str>> = homes.iter().map(|h| h.profile.as_deref()).collect();
    assert_eq!(profiles, vec![None, Some("work")]);
    assert_eq!(
        describe(&homes[1]),
        vec![
            "notion (line 2): oauth client_id=None secret=none scope=None port=None timeout=300 url=https://mcp.notion.example/mcp enabled=true sse=false"
        ]
    );
}

#[test]
fn oversized_config_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = format!("mcp_servers: {{}}\n#{}\n", "x".repeat(5 * 1024 * 1024));
    std::fs::write(dir.path().join("config.yaml"), big).expect("write");
    let err = load_home_config(&Home { profile: None, path: dir.path().to_path_buf() });
    assert!(matches!(err, Err(ConfigError::TooLarge { .. })), "{err:?}");
}
