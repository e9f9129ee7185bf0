//! Resource indicators (RFC 8707) and matching them to the server we talk to.
//!
//! The `resource` we send is the MCP server's canonical URI: scheme and host
//! lower-case, default port dropped, no fragment, and no trailing slash on
//! an empty path. A server's Protected Resource Metadata names the resource
//! it protects; if that is not our server (another origin, or a path that is
//! not a prefix of ours), tokens obtained for it must not be sent to our
//! server, so the flow stops there.

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

/// Whether metadata naming `advertised` may be used for `server`: same
/// origin, and the advertised path is the server's path or a parent of it
/// (segment-wise: `/api` covers `/api/mcp`, not `/apis`).
pub fn resource_matches(advertised: &Url, server: &Url) -> bool {
    if advertised.scheme() != server.scheme()
        || advertised.host_str() != server.host_str()
        || advertised.port_or_known_default() != server.port_or_known_default()
    {
        return false;
    }
    let want = advertised.path().trim_end_matches('/');
    let have = server.path().trim_end_matches('/');
    have == want || have.starts_with(&format!("{want}/")) || want.is_empty()
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

    #[rstest]
    #[case("https://x.example/mcp", "https://x.example/mcp", true)]
    #[case("https://x.example/mcp/", "https://x.example/mcp", true)]
    #[case("https://x.example", "https://x.example/mcp", true)]
    #[case("https://x.example/api", "https://x.example/api/mcp", true)]
    #[case("https://x.example/apis", "https://x.example/api/mcp", false)]
    #[case("https://x.example/other", "https://x.example/mcp", false)]
    #[case("https://evil.example/mcp", "https://x.example/mcp", false)]
    #[case("http://x.example/mcp", "https://x.example/mcp", false)]
    #[case("https://x.example:8443/mcp", "https://x.example/mcp", false)]
    #[case("https://X.EXAMPLE:443/mcp", "https://x.example/mcp", true)]
    fn matching(#[case] advertised: &str, #[case] server: &str, #[case] ok: bool) {
        assert_eq!(resource_matches(&u(advertised), &u(server)), ok, "{advertised} vs {server}");
    }
}
