//! Where each MCP client keeps its server list, per platform.
//!
//! A pure function of the platform, the home folder and a few environment
//! variables ([`LocationEnv`]), so the rules for all three platforms are
//! table-tested on any one of them. The locations follow each client's own
//! documentation:
//! - Claude Code: `~/.claude.json` (`$CLAUDE_CONFIG_DIR/.claude.json` when set);
//!   its projects' `.mcp.json` are found from that file ([`super::read`]).
//! - Claude Desktop: `~/Library/Application Support/Claude/` (macOS),
//!   `%APPDATA%\Claude\` (Windows), `$XDG_CONFIG_HOME/Claude/` (Linux builds).
//! - Cursor: `~/.cursor/mcp.json` everywhere.
//! - VS Code: the user folder's `mcp.json` (`Code/User` under the platform's
//!   config folder).
//! - Codex: `$CODEX_HOME/config.toml`, default `~/.codex`.
//! - Gemini CLI: `~/.gemini/settings.json` everywhere.
//! - opencode: `$XDG_CONFIG_HOME/opencode/opencode.json[c]` on every platform
//!   (it uses XDG folders even on macOS and Windows), or `$OPENCODE_CONFIG`.

use std::path::{Path, PathBuf};

use super::ClientKind;

/// The operating system whose conventions apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Linux,
    MacOs,
    Windows,
}

impl Platform {
    /// The platform this build runs on (other Unixes follow Linux).
    pub fn current() -> Self {
        if cfg!(target_os = "macos") {
            Self::MacOs
        } else if cfg!(windows) {
            Self::Windows
        } else {
            Self::Linux
        }
    }
}

/// What the locations depend on besides the platform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocationEnv {
    pub home: PathBuf,
    /// `%APPDATA%` (Windows).
    pub appdata: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub claude_config_dir: Option<PathBuf>,
    pub codex_home: Option<PathBuf>,
    pub opencode_config: Option<PathBuf>,
}

impl LocationEnv {
    /// This process's home and environment; `None` without a home folder.
    pub fn from_process() -> Option<Self> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Some(Self {
            home: dirs::home_dir()?,
            appdata: var("APPDATA"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            claude_config_dir: var("CLAUDE_CONFIG_DIR"),
            codex_home: var("CODEX_HOME"),
            opencode_config: var("OPENCODE_CONFIG"),
        })
    }
}

/// How a file lays out its servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `~/.claude.json`: `mcpServers` and `projects.<path>.mcpServers`.
    ClaudeUser,
    /// A top-level `mcpServers` object (Claude Desktop, Cursor, Gemini, `.mcp.json`).
    McpServers,
    /// VS Code: a top-level `servers` object.
    VsCode,
    /// Codex: `[mcp_servers.<name>]` tables in TOML.
    Codex,
    /// opencode: a top-level `mcp` object.
    Opencode,
}

/// One config file a client may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    pub client: ClientKind,
    pub path: PathBuf,
    pub shape: Shape,
    /// For a project's `.mcp.json`: the project folder.
    pub project: Option<PathBuf>,
}

impl ConfigLocation {
    pub(crate) fn new(client: ClientKind, path: PathBuf, shape: Shape) -> Self {
        Self { client, path, shape, project: None }
    }
}

/// The platform's per-user config folder (`%APPDATA%`, `~/Library/Application
/// Support`, `$XDG_CONFIG_HOME` or `~/.config`).
fn config_dir(platform: Platform, env: &LocationEnv) -> PathBuf {
    match platform {
        Platform::Windows => env.appdata.clone().unwrap_or_else(|| env.home.join("AppData").join("Roaming")),
        Platform::MacOs => env.home.join("Library").join("Application Support"),
        Platform::Linux => xdg_config(env),
    }
}

fn xdg_config(env: &LocationEnv) -> PathBuf {
    env.xdg_config_home.clone().filter(|p| p.is_absolute()).unwrap_or_else(|| env.home.join(".config"))
}

/// Every user-level config file of every client, in display order. Files
/// that do not exist are skipped by the reader, not here.
pub fn config_locations(platform: Platform, env: &LocationEnv) -> Vec<ConfigLocation> {
    use ClientKind as C;
    let home = env.home.as_path();
    let claude_dir = env.claude_config_dir.clone().unwrap_or_else(|| home.to_path_buf());
    let codex = env.codex_home.clone().unwrap_or_else(|| home.join(".codex"));
    let opencode_dir = xdg_config(env).join("opencode");
    let mut list = vec![
        ConfigLocation::new(C::ClaudeCode, claude_dir.join(".claude.json"), Shape::ClaudeUser),
        ConfigLocation::new(
            C::ClaudeDesktop,
            config_dir(platform, env).join("Claude").join("claude_desktop_config.json"),
            Shape::McpServers,
        ),
        ConfigLocation::new(C::Cursor, home.join(".cursor").join("mcp.json"), Shape::McpServers),
        ConfigLocation::new(
            C::VsCode,
            config_dir(platform, env).join("Code").join("User").join("mcp.json"),
            Shape::VsCode,
        ),
        ConfigLocation::new(C::Codex, codex.join("config.toml"), Shape::Codex),
        ConfigLocation::new(C::GeminiCli, home.join(".gemini").join("settings.json"), Shape::McpServers),
    ];
    match &env.opencode_config {
        Some(path) => list.push(ConfigLocation::new(C::Opencode, path.clone(), Shape::Opencode)),
        None => {
            list.push(ConfigLocation::new(C::Opencode, opencode_dir.join("opencode.json"), Shape::Opencode));
            list.push(ConfigLocation::new(C::Opencode, opencode_dir.join("opencode.jsonc"), Shape::Opencode));
        }
    }
    list
}

/// A Claude Code project's shared server list: `<project>/.mcp.json`.
pub fn project_mcp_json(project: &Path) -> ConfigLocation {
    ConfigLocation {
        client: ClientKind::ClaudeCode,
        path: project.join(".mcp.json"),
        shape: Shape::McpServers,
        project: Some(project.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn env(home: &str) -> LocationEnv {
        LocationEnv { home: PathBuf::from(home), ..Default::default() }
    }

    fn path_of(list: &[ConfigLocation], client: ClientKind) -> String {
        list.iter().find(|l| l.client == client).map(|l| l.path.display().to_string()).unwrap_or_default()
    }

    #[rstest]
    #[case::linux_claude_code(Platform::Linux, ClientKind::ClaudeCode, "/home/u/.claude.json")]
    #[case::linux_desktop(
        Platform::Linux,
        ClientKind::ClaudeDesktop,
        "/home/u/.config/Claude/claude_desktop_config.json"
    )]
    #[case::linux_cursor(Platform::Linux, ClientKind::Cursor, "/home/u/.cursor/mcp.json")]
    #[case::linux_vscode(Platform::Linux, ClientKind::VsCode, "/home/u/.config/Code/User/mcp.json")]
    #[case::linux_codex(Platform::Linux, ClientKind::Codex, "/home/u/.codex/config.toml")]
    #[case::linux_gemini(Platform::Linux, ClientKind::GeminiCli, "/home/u/.gemini/settings.json")]
    #[case::linux_opencode(Platform::Linux, ClientKind::Opencode, "/home/u/.config/opencode/opencode.json")]
    #[case::mac_claude_code(Platform::MacOs, ClientKind::ClaudeCode, "/home/u/.claude.json")]
    #[case::mac_desktop(
        Platform::MacOs,
        ClientKind::ClaudeDesktop,
        "/home/u/Library/Application Support/Claude/claude_desktop_config.json"
    )]
    #[case::mac_vscode(Platform::MacOs, ClientKind::VsCode, "/home/u/Library/Application Support/Code/User/mcp.json")]
    #[case::mac_opencode(Platform::MacOs, ClientKind::Opencode, "/home/u/.config/opencode/opencode.json")]
    #[case::mac_cursor(Platform::MacOs, ClientKind::Cursor, "/home/u/.cursor/mcp.json")]
    #[case::win_desktop(
        Platform::Windows,
        ClientKind::ClaudeDesktop,
        "/home/u/AppData/Roaming/Claude/claude_desktop_config.json"
    )]
    #[case::win_vscode(Platform::Windows, ClientKind::VsCode, "/home/u/AppData/Roaming/Code/User/mcp.json")]
    #[case::win_codex(Platform::Windows, ClientKind::Codex, "/home/u/.codex/config.toml")]
    #[case::win_gemini(Platform::Windows, ClientKind::GeminiCli, "/home/u/.gemini/settings.json")]
    #[case::win_opencode(Platform::Windows, ClientKind::Opencode, "/home/u/.config/opencode/opencode.json")]
    fn default_locations(#[case] platform: Platform, #[case] client: ClientKind, #[case] want: &str) {
        // Forward slashes on every host: the rule is what is tested, not the separator.
        let got = path_of(&config_locations(platform, &env("/home/u")), client).replace('\\', "/");
        assert_eq!(got, want);
    }

    #[rstest]
    #[case::appdata(Platform::Windows, ClientKind::ClaudeDesktop, "/roam/Claude/claude_desktop_config.json")]
    #[case::appdata_vscode(Platform::Windows, ClientKind::VsCode, "/roam/Code/User/mcp.json")]
    #[case::xdg_vscode(Platform::Linux, ClientKind::VsCode, "/xdg/Code/User/mcp.json")]
    #[case::xdg_desktop(Platform::Linux, ClientKind::ClaudeDesktop, "/xdg/Claude/claude_desktop_config.json")]
    #[case::xdg_not_on_mac(
        Platform::MacOs,
        ClientKind::VsCode,
        "/home/u/Library/Application Support/Code/User/mcp.json"
    )]
    #[case::xdg_opencode_mac(Platform::MacOs, ClientKind::Opencode, "/xdg/opencode/opencode.json")]
    #[case::claude_dir(Platform::Linux, ClientKind::ClaudeCode, "/cc/.claude.json")]
    #[case::codex_home(Platform::MacOs, ClientKind::Codex, "/cx/config.toml")]
    fn environment_overrides(#[case] platform: Platform, #[case] client: ClientKind, #[case] want: &str) {
        let env = LocationEnv {
            appdata: Some("/roam".into()),
            xdg_config_home: Some("/xdg".into()),
            claude_config_dir: Some("/cc".into()),
            codex_home: Some("/cx".into()),
            ..env("/home/u")
        };
        let got = path_of(&config_locations(platform, &env), client).replace('\\', "/");
        assert_eq!(got, want);
    }

    #[test]
    fn opencode_has_both_spellings_unless_one_is_named() {
        let list = config_locations(Platform::Linux, &env("/h"));
        let opencode: Vec<_> =
            list.iter().filter(|l| l.client == ClientKind::Opencode).map(|l| l.path.clone()).collect();
        assert_eq!(
            opencode,
            vec![
                PathBuf::from("/h/.config/opencode/opencode.json"),
                PathBuf::from("/h/.config/opencode/opencode.jsonc")
            ]
        );
        let named = LocationEnv { opencode_config: Some("/etc/oc.json".into()), ..env("/h") };
        let list = config_locations(Platform::Linux, &named);
        let opencode: Vec<_> = list.iter().filter(|l| l.client == ClientKind::Opencode).collect();
        assert_eq!(opencode.len(), 1);
        assert_eq!(opencode[0].path, PathBuf::from("/etc/oc.json"));
    }

    #[test]
    fn a_relative_xdg_config_home_is_ignored() {
        // The XDG spec: relative values are invalid and must be ignored.
        let env = LocationEnv { xdg_config_home: Some("rel".into()), ..env("/h") };
        let got = path_of(&config_locations(Platform::Linux, &env), ClientKind::VsCode);
        assert_eq!(got, "/h/.config/Code/User/mcp.json");
    }
}
