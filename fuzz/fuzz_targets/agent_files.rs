//! Fuzzes the agent's token and client file readers (`token_file.rs`, `agent_files.rs`); the properties checked are
//! documented at `mcp_auth_core::fuzzing::agent_files`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = mcp_auth_core::fuzzing::agent_files(data) {
        panic!("property broken: {broken}");
    }
});
