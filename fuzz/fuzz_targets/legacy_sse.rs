//! Fuzzes the legacy SSE client's reading of a server's event stream (the
//! size limit, `sse-stream`, the endpoint's origin check, the JSON-RPC
//! reading; `mcp/sse.rs`); the properties checked are documented at
//! `mcp_auth_core::fuzzing::legacy_sse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = mcp_auth_core::fuzzing::legacy_sse(data) {
        panic!("property broken: {broken}");
    }
});
