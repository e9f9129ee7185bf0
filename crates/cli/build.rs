//! The git commit and build date that `mcp-auth version` prints.

fn main() {
    mcp_auth_build_info::emit();
}
