//! Speaking MCP to a remote server with a token: sessions, tool calls, and
//! the status check (one authenticated request per server);
//! the proxy that relays another client's session with our tokens.

pub(crate) mod check;
pub(crate) mod client;
pub(crate) mod proxy;
