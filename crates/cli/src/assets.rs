//! `mcp-auth generate-assets DIR` (hidden): the man pages and the shell
//! completions, generated from the clap definitions so they never drift from
//! `--help`. `scripts/package.sh` runs it and the packages install the result.
//!
//! Layout written: `DIR/man/mcp-auth.1` and one `mcp-auth-<command>.1` per
//! visible subcommand; `DIR/completions/mcp-auth.bash`, `_mcp-auth` (zsh),
//! `mcp-auth.fish`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct AssetsArgs {
    /// The folder to write `man/` and `completions/` into (made if missing).
    dir: PathBuf,
}

pub fn run(mut cmd: clap::Command, args: &AssetsArgs) -> anyhow::Result<()> {
    let man = args.dir.join("man");
    let completions = args.dir.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Hidden commands (this one, the conformance client) get no page, nor
    // does `help` (the pages are the help).
    clap_mangen::generate_to(cmd.clone().disable_help_subcommand(true), &man)
        .with_context(|| format!("cannot write the man pages to {}", man.display()))?;
    let name = cmd.get_name().to_owned();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, &name, &completions)
            .with_context(|| format!("cannot write the {shell} completions to {}", completions.display()))?;
    }
    writeln!(std::io::stdout().lock(), "wrote {} and {}", man.display(), completions.display())?;
    Ok(())
}
