//! Fuzzes the keychain record decoder (`vault/chunked.rs`, `vault/record.rs`); the properties checked are
//! documented at `mcp_auth_core::fuzzing::vault_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = mcp_auth_core::fuzzing::vault_record(data) {
        panic!("property broken: {broken}");
    }
});
