//! Values the engine tests build again and again, with the defaults the
//! agent's config gives; each test changes only what it is about (struct
//! update syntax).

use std::time::Duration;

use mcp_auth_core::{ClientRecord, Target};

/// The sign-in target `name` at `url`, as a config with no OAuth settings
/// makes it.
pub fn target(name: &str, url: &str) -> Target {
    Target {
        name: name.to_owned(),
        url: url.parse().unwrap_or_else(|e| panic!("{url}: {e}")),
        client_id: None,
        client_secret: None,
        issuer: None,
        scope: None,
        extra_scope: None,
        client_name: "Hermes Agent".to_owned(),
        client_metadata_url: None,
        omit_resource: false,
        timeout: Duration::from_secs(10),
        user_agent: None,
        registration: Default::default(),
    }
}

/// A public client (no secret, `none` authentication) registered as `id`.
pub fn public_client(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: id.to_owned(),
        client_secret: None,
        redirect_uris: vec![],
        token_endpoint_auth_method: "none".to_owned(),
        grant_types: vec![],
        response_types: vec![],
        scope: None,
        client_name: None,
        client_id_issued_at: None,
    }
}
