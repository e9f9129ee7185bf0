//! Speaking MCP to a remote server with a token: sessions, tool calls, and
//! the status check (one authenticated request per server);
//! the proxy that relays another client's session with our tokens, over
//! Streamable HTTP or the legacy HTTP+SSE transport.

pub(crate) mod check;
pub(crate) mod client;
pub(crate) mod proxy;
pub(crate) mod remote;
pub(crate) mod sse;
