//! The desktop entries of the system (Linux, freedesktop.org): whether the
//! installed package already hands the app's URL scheme to this program, so
//! the shell does not register a user-level copy that would outlive it.

/// The largest desktop entry read (they are a few hundred bytes).
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

/// Whether a desktop entry of the system's data folders (`$XDG_DATA_DIRS`,
/// where the package puts its own) already opens `scheme` URLs with `exe`.
/// Then the deep-link plugin's run-time registration would only add a
/// user-level copy (`<exe>-handler.desktop` and a `mimeapps.list` default)
/// that outlives the package and keeps naming a program that is gone.
pub fn installed_entry_opens(scheme: &str, exe: &std::path::Path) -> bool {
    let dirs = std::env::var_os("XDG_DATA_DIRS")
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/usr/local/share:/usr/share".into());
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path: Vec<std::path::PathBuf> = std::env::split_paths(&path).collect();
    std::env::split_paths(&dirs).any(|dir| {
        std::fs::read_dir(dir.join("applications"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "desktop"))
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() <= MAX_ENTRY_BYTES))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .any(|text| entry_opens(&text, scheme, exe, &on_path))
    })
}

/// Whether the desktop entry `text` declares `x-scheme-handler/<scheme>` and
/// runs `exe`: by its path, or by a bare name that `PATH` (`on_path`)
/// resolves to it.
fn entry_opens(text: &str, scheme: &str, exe: &std::path::Path, on_path: &[std::path::PathBuf]) -> bool {
    let mime = format!("x-scheme-handler/{scheme}");
    let mut in_entry = false;
    let (mut declares, mut runs) = (false, false);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_entry = line == "[Desktop Entry]";
            continue;
        }
        if !in_entry {
            continue;
        }
        if let Some(types) = line.strip_prefix("MimeType=") {
            declares = types.split(';').any(|t| t.trim() == mime);
        } else if let Some(exec) = line.strip_prefix("Exec=") {
            let program = exec.split_whitespace().next().unwrap_or_default().trim_matches('"');
            let program = std::path::Path::new(program);
            runs = if program.is_absolute() {
                program == exe
            } else {
                program.components().count() == 1
                    && on_path
                        .iter()
                        .find(|dir| dir.join(program).is_file())
                        .is_some_and(|dir| dir.join(program) == exe)
            };
        }
    }
    declares && runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    const ENTRY: &str = "[Desktop Entry]\nType=Application\nName=MCP Auth Tray\nExec=mcp-auth-tray %u\nMimeType=text/plain;x-scheme-handler/dev.mcpauthtray.app;\n\n[Desktop Action x]\nExec=/elsewhere\n";

    fn bin_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("mcp-auth-tray"), "").unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    #[test]
    fn the_packaged_entry_opens_the_installed_program() {
        let bin = bin_dir();
        let exe = bin.path().join("mcp-auth-tray");
        let path = [PathBuf::from("/nowhere"), bin.path().to_path_buf()];
        assert!(entry_opens(ENTRY, "dev.mcpauthtray.app", &exe, &path));
        // Another build of the app (a source checkout) is not the package's program.
        assert!(!entry_opens(ENTRY, "dev.mcpauthtray.app", Path::new("/src/target/debug/mcp-auth-tray"), &path));
        // Not on PATH, or PATH finds another one first.
        assert!(!entry_opens(ENTRY, "dev.mcpauthtray.app", &exe, &[]));
        let first = bin_dir();
        assert!(!entry_opens(
            ENTRY,
            "dev.mcpauthtray.app",
            &exe,
            &[first.path().to_path_buf(), bin.path().to_path_buf()]
        ));
    }

    #[test]
    fn only_an_entry_that_declares_the_scheme_and_runs_the_program_counts() {
        let exe = Path::new("/usr/bin/mcp-auth-tray");
        let absolute = ENTRY.replace("Exec=mcp-auth-tray", "Exec=\"/usr/bin/mcp-auth-tray\"");
        assert!(entry_opens(&absolute, "dev.mcpauthtray.app", exe, &[]));
        assert!(!entry_opens(&absolute, "other.scheme", exe, &[]));
        assert!(!entry_opens(
            &absolute.replace("x-scheme-handler/dev.mcpauthtray.app;", ""),
            "dev.mcpauthtray.app",
            exe,
            &[]
        ));
        // Keys of other groups do not count.
        let elsewhere =
            "[Desktop Action x]\nExec=/usr/bin/mcp-auth-tray\nMimeType=x-scheme-handler/dev.mcpauthtray.app;\n";
        assert!(!entry_opens(elsewhere, "dev.mcpauthtray.app", exe, &[]));
        assert!(!entry_opens(
            &absolute.replace("/usr/bin/mcp-auth-tray", "/usr/bin/other"),
            "dev.mcpauthtray.app",
            exe,
            &[]
        ));
    }
}
