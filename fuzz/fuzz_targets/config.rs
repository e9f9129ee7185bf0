//! Fuzzes the config loader (`config/`, `config.yaml` + `.env` text); the properties checked are
//! documented at `mcp_auth_core::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = mcp_auth_core::fuzzing::config(data) {
        panic!("property broken: {broken}");
    }
});
