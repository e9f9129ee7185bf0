//! Fuzzes the browser redirect's query parser (`oauth/callback.rs`); the properties checked are
//! documented at `mcp_auth_core::fuzzing::callback_query`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = mcp_auth_core::fuzzing::callback_query(data) {
        panic!("property broken: {broken}");
    }
});
