//! Speaking MCP to a remote server with a token: sessions, tool calls.

pub(crate) mod client;
