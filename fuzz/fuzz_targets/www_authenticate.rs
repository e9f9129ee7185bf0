//! Fuzzes the `WWW-Authenticate` tokenizer (`oauth/www_authenticate.rs`); the properties checked are
//! documented at `mcp_auth_core::fuzzing::www_authenticate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = mcp_auth_core::fuzzing::www_authenticate(data) {
        panic!("property broken: {broken}");
    }
});
