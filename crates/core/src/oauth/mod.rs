//! The client side of MCP authorization (OAuth 2.1 + PKCE).
//!
//! Pieces that touch the world come in as values or traits: the callback
//! router and the loopback listener that feeds it, the browser.

pub mod browser;
pub mod callback;
pub mod client;
pub mod device;
pub mod endpoint;
pub mod engine;
pub mod http;
pub mod loopback;
pub mod omit_resource;
pub mod recorder;
pub mod registration_options;
pub mod resource;
pub mod tokens;
pub mod www_authenticate;
