//! Speaking MCP to a remote server with a token: sessions, tool calls, and
//! the status check (one authenticated request per server).

pub(crate) mod check;
pub(crate) mod client;
