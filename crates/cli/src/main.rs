//! `mcp-auth`: the headless command line of mcp-auth-tray.
//!
//! A thin front end over `mcp-auth-core`: it parses arguments, calls the core
//! and prints. Exit codes: 0 success, 1 the operation failed, 2 usage error.
//! Colours only on a terminal, never with `NO_COLOR` (`term`).

mod assets;
mod clients;
mod conformance;
mod connect;
mod daemon;
mod doctor;
mod keychain;
mod manage;
mod proxy;
mod refresh;
mod status;
mod term;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// `mcp-auth version` and `--version`: the version, the git commit and the
/// build date (set by build.rs; `unknown` commit when built without git).
pub const VERSION_LINE: &str = env!("MCP_AUTH_VERSION_LINE");

/// Sign-in state of your agent's MCP servers, from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "mcp-auth",
    version = VERSION_LINE,
    about,
    long_about = None,
    after_help = "Exit codes: 0 success; 1 the operation failed (for doctor: a step failed; for export --check: drift); 2 usage error.\nColours only on a terminal, and never when NO_COLOR is set."
)]
struct Cli {
    /// The agent's home folder (default: $HERMES_HOME, else ~/.hermes).
    #[arg(long, global = true, value_name = "DIR")]
    hermes_home: Option<PathBuf>,

    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every configured MCP server with its sign-in state.
    ///
    /// Example: mcp-auth status --json | jq '.[] | select(.state == "needs_reauth")'
    Status(status::StatusArgs),
    /// Sign in to OAuth servers of the agent's config and write their token files.
    ///
    /// Example: mcp-auth connect linear --no-browser    (also: connect a b, --all-needing, --device)
    Connect(connect::ConnectArgs),
    /// Check each step of signing in to a server (or all) against the live server, and say which fails.
    ///
    /// Example: mcp-auth doctor linear --json
    Doctor(doctor::DoctorArgs),
    /// Refresh a server's tokens now (or all of them) and update the agent's files.
    ///
    /// Example: mcp-auth refresh --all
    Refresh(refresh::RefreshArgs),
    /// Sign out of a server: revoke its tokens when the server allows it, remove them here and from the agent.
    ///
    /// Example: mcp-auth disconnect linear
    Disconnect(manage::DisconnectArgs),
    /// Sign out of every OAuth server of every profile.
    ///
    /// Example: mcp-auth logout --all
    Logout(manage::LogoutArgs),
    /// Rewrite the agent's token files from the vault, or check them with --check (exit 1 on drift).
    ///
    /// Example: mcp-auth export --check
    Export(manage::ExportArgs),
    /// Show what is stored for a server; the access token itself only with --reveal.
    ///
    /// Example: curl -H "Authorization: Bearer $(mcp-auth token linear --reveal)" ...
    Token(manage::TokenArgs),
    /// Run in the background without a window: keep every server's tokens fresh and exported, follow config edits.
    ///
    /// For SSH machines and headless agents; one daemon or tray per user. Stops on SIGTERM or Ctrl-C.
    ///
    /// Example: mcp-auth daemon --install-user-unit && systemctl --user enable --now mcp-auth.service
    Daemon(daemon::DaemonArgs),
    /// Serve one remote MCP server on stdio with the vault's token, for any MCP client that starts a command.
    ///
    /// Example: {"command": "mcp-auth", "args": ["proxy", "linear"]}   (in a client's MCP config)
    Proxy(proxy::ProxyArgs),
    /// Print {"Authorization": "Bearer …"} for a server (refreshed first when due), for a client's headers helper.
    ///
    /// Example: "headersHelper": "mcp-auth headers"   (Claude Code; the server comes from its variables)
    Headers(proxy::HeadersArgs),
    /// Add a remote server to our own list (for servers in no client's config).
    ///
    /// Example: mcp-auth add linear https://mcp.linear.app/mcp
    Add(clients::AddArgs),
    /// Remove a server from our own list.
    ///
    /// Example: mcp-auth remove linear
    Remove(clients::RemoveArgs),
    /// Show (or with --write make) the change that routes a client's servers through mcp-auth.
    ///
    /// Example: mcp-auth setup cursor linear --write   (clients: claude-code, claude-desktop, cursor, vscode, codex, gemini, opencode)
    Setup(clients::SetupArgs),
    /// Print the version, the git commit and the build date.
    ///
    /// Example: mcp-auth version
    Version,
    /// Check that the OS keychain can hold the app's tokens (stores, reads back and removes a test record).
    ///
    /// Example: mcp-auth keychain-check
    KeychainCheck(keychain::KeychainArgs),
    /// Run as the client of the MCP conformance suite (used by CI).
    ///
    /// Example: npx @modelcontextprotocol/conformance client --scenario auth/metadata-default --command "mcp-auth conformance-client"
    #[command(hide = true)]
    ConformanceClient(conformance::ConformanceArgs),
    /// Write the man pages and shell completions into a folder (used by scripts/package.sh).
    ///
    /// Example: mcp-auth generate-assets target/release/assets
    #[command(hide = true)]
    GenerateAssets(assets::AssetsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon's log is its output: what it did, at `info`.
    init_logging(cli.verbose + u8::from(matches!(cli.command, Command::Daemon(_))));
    let result = match &cli.command {
        Command::Status(args) => status::run(cli.hermes_home.as_deref(), args),
        Command::Connect(args) => block_on(connect::run(cli.hermes_home.as_deref(), args)),
        Command::Doctor(args) => block_on(doctor::run(cli.hermes_home.as_deref(), args)),
        Command::Refresh(args) => block_on(refresh::run(cli.hermes_home.as_deref(), args)),
        Command::KeychainCheck(args) => keychain::run(args),
        Command::Disconnect(args) => block_on(manage::run_disconnect(cli.hermes_home.as_deref(), args)),
        Command::Logout(args) => block_on(manage::run_logout(cli.hermes_home.as_deref(), args)),
        Command::Export(args) => block_on(manage::run_export(cli.hermes_home.as_deref(), args)),
        Command::Token(args) => block_on(manage::run_token(cli.hermes_home.as_deref(), args)),
        Command::Proxy(args) => block_on(proxy::run_proxy(cli.hermes_home.as_deref(), args)),
        Command::Headers(args) => block_on(proxy::run_headers(cli.hermes_home.as_deref(), args)),
        Command::Add(args) => clients::run_add(args),
        Command::Remove(args) => clients::run_remove(args),
        Command::Setup(args) => clients::run_setup(cli.hermes_home.as_deref(), args),
        Command::Version => manage::run_version(),
        Command::Daemon(args) => daemon::run(cli.hermes_home.as_deref(), args),
        Command::ConformanceClient(args) => block_on(conformance::run(args)),
        Command::GenerateAssets(args) => assets::run(Cli::command(), args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[expect(clippy::print_stderr, reason = "the binary's error edge")]
            {
                eprintln!("{} {e:#}", term::Paint::stderr().red("error:"));
            }
            ExitCode::from(1)
        }
    }
}

/// Runs an async command on a fresh runtime (commands that need none don't pay for one).
fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(future: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(future)
}

/// Logs go to stderr so stdout stays parseable; `RUST_LOG` overrides `-v`.
fn init_logging(verbose: u8) {
    mcp_auth_core::init_stderr_logging(match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    });
}
