//! Tauri's build step, with the app's commands declared: each gets an
//! `allow-<command>` permission, and a window may call only the commands its
//! capability grants (without this list, every window may call every command).
//! Also the version line's git commit and build date (`mcp-auth-build-info`).

/// Every `#[tauri::command]` of the shell (`generate_handler!` in main.rs).
const COMMANDS: &[&str] = &["status_rows", "menu_action", "log_tail"];

fn main() {
    // The About line's git commit and build date.
    mcp_auth_build_info::emit();
    let attributes = tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        panic!("tauri build step failed: {e:#}");
    }
}
