//! Speaking MCP: the proxy that relays another client's session with our tokens.

pub(crate) mod proxy;
