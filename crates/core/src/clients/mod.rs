//! Other MCP clients on this machine: their remote servers, read from their
//! own config files, and the change that routes a server through us.
//!
//! - [`paths`]: where each client keeps its list, per platform (pure).
//! - [`read`]: raw lenient parse → validated [`ClientServer`]s. Reading never
//!   fails as a whole: a file we cannot parse becomes a problem line of its
//!   [`ClientFile`], an unusable entry a problem line too; unknown keys are
//!   ignored. Reads are bounded. Header values are [`SecretString`]s.
//! - [`setup`]: the edit that makes a client start `mcp-auth proxy` (or, for
//!   Claude Code, ask `mcp-auth headers`), shown as a diff and written only
//!   on request, with a backup, atomically, keeping comments and layout.
//! - [`own`]: our own list, for servers in no client config.
//! - [`live`]: the views read from this machine now, and "Use in <client>"
//!   (the tray's and the CLI's shared entry points).
//! - [`grant`]: which vault record serves a URL, so every client naming a
//!   URL shares the one grant (Hermes' included).
//!
//! We never write into another client's credential store, and read-only
//! code paths never write at all.

pub mod grant;
pub mod live;
pub mod menu;
pub mod own;
pub mod paths;
pub mod read;
pub mod setup;
pub mod view;

use std::path::PathBuf;

use crate::util::secret::SecretString;

/// An MCP client whose config we understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    ClaudeCode,
    ClaudeDesktop,
    Cursor,
    VsCode,
    Codex,
    GeminiCli,
    Opencode,
}

impl ClientKind {
    /// Every client, in display order.
    pub const ALL: [Self; 7] = [
        Self::ClaudeCode,
        Self::ClaudeDesktop,
        Self::Cursor,
        Self::VsCode,
        Self::Codex,
        Self::GeminiCli,
        Self::Opencode,
    ];

    /// The id used on the command line and in JSON (`claude-code`, ...).
    pub fn id(self) -> &'static str {
        match self {
            Self::ClaudeCode => "claude-code",
            Self::ClaudeDesktop => "claude-desktop",
            Self::Cursor => "cursor",
            Self::VsCode => "vscode",
            Self::Codex => "codex",
            Self::GeminiCli => "gemini",
            Self::Opencode => "opencode",
        }
    }

    /// The name people know it by.
    pub fn label(self) -> &'static str {
        match self {
            Self::ClaudeCode => "Claude Code",
            Self::ClaudeDesktop => "Claude Desktop",
            Self::Cursor => "Cursor",
            Self::VsCode => "VS Code",
            Self::Codex => "Codex",
            Self::GeminiCli => "Gemini CLI",
            Self::Opencode => "opencode",
        }
    }

    /// The client named `id` (as [`ClientKind::id`], a few spellings accepted).
    pub fn parse(id: &str) -> Option<Self> {
        let id = id.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        Self::ALL.into_iter().find(|c| c.id() == id).or(match id.as_str() {
            "claude" => Some(Self::ClaudeCode),
            "vs-code" | "code" => Some(Self::VsCode),
            "gemini-cli" => Some(Self::GeminiCli),
            _ => None,
        })
    }
}

/// How a client reaches a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Streamable HTTP (or unspecified HTTP).
    Http,
    /// Legacy HTTP+SSE.
    Sse,
    /// A local command on stdio.
    Stdio,
}

/// Whether an entry already goes through us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// The client talks to the server itself (or through another bridge).
    Direct,
    /// Its command runs `mcp-auth proxy <target>`.
    Proxy { target: Option<String> },
    /// Claude Code's `headersHelper` runs `mcp-auth headers [<target>]`.
    Headers { target: Option<String> },
}

impl Routing {
    /// Through us, either way.
    pub fn is_ours(&self) -> bool {
        !matches!(self, Self::Direct)
    }

    /// `proxy`, `headers` or `None`.
    pub fn via(&self) -> Option<&'static str> {
        match self {
            Self::Direct => None,
            Self::Proxy { .. } => Some("proxy"),
            Self::Headers { .. } => Some("headers"),
        }
    }
}

/// One server entry of a client's config.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientServer {
    pub client: ClientKind,
    /// The file it was read from.
    pub config: PathBuf,
    /// A Claude Code project the entry belongs to (`None`: user-wide).
    pub project: Option<PathBuf>,
    /// The entry's key.
    pub name: String,
    /// The remote server: the entry's URL, or the URL a bridge
    /// (`mcp-auth proxy <url>`, `mcp-remote <url>`) is started with.
    pub url: Option<url::Url>,
    pub transport: Transport,
    pub routing: Routing,
    /// Static headers as configured (values never shown).
    pub headers: Vec<(String, SecretString)>,
    /// Environment the client sets for a local command (values never shown).
    pub env: Vec<(String, SecretString)>,
    /// `false` when the client has the entry switched off.
    pub enabled: bool,
}

impl ClientServer {
    /// A remote server (directly or through a bridge), as opposed to a local tool.
    pub fn is_remote(&self) -> bool {
        self.url.is_some() || matches!(self.routing, Routing::Proxy { target: Some(_) })
    }

    /// The name or URL `mcp-auth proxy`/`headers` is given for this entry, if routed.
    pub fn routed_target(&self) -> Option<&str> {
        match &self.routing {
            Routing::Proxy { target } | Routing::Headers { target } => target.as_deref(),
            Routing::Direct => None,
        }
    }
}

/// What one config file held.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFile {
    pub location: paths::ConfigLocation,
    pub servers: Vec<ClientServer>,
    /// Why the file, or some of its entries, could not be used (never a secret).
    pub problems: Vec<String>,
}

pub use grant::{
    AgentServersOnly, GrantError, GrantServer, GrantSource, NoExport, OWN_PROFILE, exporter_for, find_grant,
    is_own_home, is_own_profile, normalize_url,
};
pub use live::{
    UseInDone, load_clients_report, named_server_url, own_grant_named, own_grants_needing_sign_in, program_beside,
    read_client_files, urls_named, use_in,
};
pub use menu::{ClientMenuAction, clients_menu, with_clients_menu};
pub use own::{OwnList, OwnListError, OwnListFile};
pub use paths::{ConfigLocation, LocationEnv, Platform, Shape, config_locations};
pub use read::{read_all, read_location};
pub use setup::{SetupAction, SetupError, SetupPlan, SetupRequest, setup_location};
pub use view::{ClientProblem, ClientServerStatus, ClientsReport, OWN_CLIENT, clients_status, own_grant_keys};
