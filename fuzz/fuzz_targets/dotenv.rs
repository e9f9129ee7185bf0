//! Fuzzes the `.env` parser (`dotenv.rs`); the properties checked are
//! documented at `mcp_auth_core::fuzzing::dotenv`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = mcp_auth_core::fuzzing::dotenv(data) {
        panic!("property broken: {broken}");
    }
});
