//! Resource indicators (RFC 8707) for requests made without discovery.
//!
//! In the authorization-code flow the `resource` is exactly what the server's
//! Protected Resource Metadata publishes (rmcp sends it verbatim and checks
//! that it covers our URL). Where there is no PRM to copy (machine-client
//! grants), we send the MCP server's canonical URI: scheme and host
//! lower-case, default port dropped, no fragment, and no trailing slash on
//! an empty path.

use url::Url;

/// The canonical form of an MCP server URL, used as the `resource` parameter.
pub fn canonical_resource(url: &Url) -> String {
    let mut u = url.clone();
    u.set_fragment(None);
    // `Url` already lower-cases scheme and host and drops default ports.
    let mut s = u.to_string();
    if u.path() == "/" && u.query().is_none() && s.ends_with('/') {
        s.pop();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn u(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[rstest]
    #[case("https://MCP.Example.com:443/mcp", "https://mcp.example.com/mcp")]
    #[case("HTTPS://mcp.example.com/", "https://mcp.example.com")]
    #[case("https://mcp.example.com", "https://mcp.example.com")]
    #[case("https://mcp.example.com:8443/v1/mcp#frag", "https://mcp.example.com:8443/v1/mcp")]
    #[case("http://127.0.0.1:9000/mcp/", "http://127.0.0.1:9000/mcp/")]
    #[case("https://x.example/mcp?tenant=a", "https://x.example/mcp?tenant=a")]
    fn canonical(#[case] input: &str, #[case] want: &str) {
        assert_eq!(canonical_resource(&u(input)), want);
    }
}
