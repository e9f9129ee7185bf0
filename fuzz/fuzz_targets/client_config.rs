//! Fuzzes the readers of other MCP clients' configs and the `setup` edit
//! (`clients/read.rs`, `clients/setup.rs`); the properties checked are
//! documented at `mcp_auth_core::fuzzing::client_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = mcp_auth_core::fuzzing::client_config(data) {
        panic!("property broken: {broken}");
    }
});
