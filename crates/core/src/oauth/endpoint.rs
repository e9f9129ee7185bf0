//! Which URLs a server may name for us to talk to, or to show in a browser.
//!
//! Every endpoint an authorization server names (in its metadata or a
//! registration answer) is either handed to the OS launcher — the
//! authorization endpoint — or sent codes, tokens and secrets. A hostile
//! server that names `javascript:…`, `file:///…` or `smb://…` would have the
//! launcher run or fetch it (the class of CVE-2025-6514), and one that names
//! a plain `http://` endpoint on another host would have secrets cross the
//! network in clear. So [`check_endpoint`] is the one rule, applied at
//! discovery (before any browser step and before anything is sent), again on
//! the final authorization URL right before any browser opens it, and on
//! every token, revocation and device endpoint we send to, including ones
//! kept from an earlier sign-in:
//! - `https://` with a host, or
//! - `http://` only on a loopback host (`127.0.0.0/8`, `::1`, `localhost`),
//!   where local and test servers live (RFC 8252 §8.3 allows it for the same
//!   reason);
//! - never with userinfo (`https://trusted.example@evil.example/` is a
//!   classic way to make a URL read as another host).
//!
//! Schemes compare case-insensitively (the URL parser lowercases them), and
//! hosts are compared after the parser normalised them (`0x7f.1` is
//! `127.0.0.1`, `LOCALHOST` is `localhost`).

use url::Url;

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeUrl {
    #[error("it is not a valid absolute URL")]
    Unparsable,
    #[error("the `{0}:` scheme is not a web address (only https://, or http:// on this machine)")]
    Scheme(String),
    #[error(
        "plain http:// to another machine would send codes and tokens in clear (only https://, or http:// on this machine)"
    )]
    PlainHttp,
    #[error("it has a user name or password before the host, which can make it look like another host")]
    Userinfo,
    #[error("it has no host")]
    NoHost,
}

/// `url` parsed, when it is one we may send secrets to or open in a browser
/// (see the module docs).
pub fn check_endpoint(url: &str) -> Result<Url, UnsafeUrl> {
    let parsed = Url::parse(url.trim()).map_err(|_| UnsafeUrl::Unparsable)?;
    check_url(&parsed)?;
    Ok(parsed)
}

/// [`check_endpoint`] for an already parsed URL.
pub fn check_url(url: &Url) -> Result<(), UnsafeUrl> {
    match url.scheme() {
        "https" => {}
        "http" if super::http::is_loopback_host(url) => {}
        "http" => return Err(UnsafeUrl::PlainHttp),
        other => return Err(UnsafeUrl::Scheme(crate::util::text::server_text_max(other, 40))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UnsafeUrl::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UnsafeUrl::Userinfo);
    }
    Ok(())
}

/// The endpoint fields of authorization server metadata (RFC 8414 §2,
/// RFC 8628 §4, RFC 7009 §2) that we send to or open, and the `issuer`:
/// metadata fetched over plain `http://` from another machine could have
/// been rewritten on the way, endpoints and all (RFC 8414 §2 requires an
/// `https` issuer).
pub const METADATA_ENDPOINTS: &[&str] = &[
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "registration_endpoint",
    "device_authorization_endpoint",
    "revocation_endpoint",
    "jwks_uri",
];

/// The first endpoint field of `metadata` (a JSON object) that is refused:
/// its name, its value (made safe to show) and why. Fields that are absent
/// are fine; a present one that is not a string is refused.
pub fn unsafe_metadata_endpoint(metadata: &serde_json::Value) -> Option<(&'static str, String, UnsafeUrl)> {
    METADATA_ENDPOINTS.iter().find_map(|&field| {
        let value = metadata.get(field)?;
        let problem = match value.as_str() {
            None if value.is_null() => return None,
            None => UnsafeUrl::Unparsable,
            Some(url) => check_endpoint(url).err()?,
        };
        Some((field, shown(value.as_str().unwrap_or("(not a string)")), problem))
    })
}

/// A refused URL as we show it: server text, so made safe and short.
pub fn shown(url: &str) -> String {
    crate::util::text::server_text_max(url, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        use UnsafeUrl::*;
        let cases: &[(&str, Result<(), UnsafeUrl>)] = &[
            ("https://as.example/authorize", Ok(())),
            ("HTTPS://AS.example/authorize", Ok(())),
            ("https://as.example:8443/a?x=1", Ok(())),
            ("http://127.0.0.1:8080/token", Ok(())),
            ("http://127.9.9.9/token", Ok(())),
            ("http://[::1]:9/token", Ok(())),
            ("http://localhost/token", Ok(())),
            ("HtTp://LocalHost:1/token", Ok(())),
            ("http://0x7f.1/token", Ok(())),
            ("http://as.example/token", Err(PlainHttp)),
            ("HTTP://as.example/token", Err(PlainHttp)),
            ("http://10.0.0.1/token", Err(PlainHttp)),
            ("http://localhost.evil.example/", Err(PlainHttp)),
            ("http://127.0.0.1.evil.example/", Err(PlainHttp)),
            ("http://127.0.0.1@evil.example/", Err(PlainHttp)),
            ("https://as.example@evil.example/", Err(Userinfo)),
            ("https://user:pw@as.example/", Err(Userinfo)),
            ("http://user@127.0.0.1/", Err(Userinfo)),
            ("javascript:alert(1)", Err(Scheme("javascript".to_owned()))),
            ("JavaScript:alert(1)", Err(Scheme("javascript".to_owned()))),
            ("file:///etc/passwd", Err(Scheme("file".to_owned()))),
            ("smb://evil.example/share", Err(Scheme("smb".to_owned()))),
            ("data:text/html,<script>x</script>", Err(Scheme("data".to_owned()))),
            ("ftp://as.example/", Err(Scheme("ftp".to_owned()))),
            ("vbscript:x", Err(Scheme("vbscript".to_owned()))),
            ("/authorize", Err(Unparsable)),
            ("", Err(Unparsable)),
            ("https://", Err(Unparsable)),
        ];
        for (url, want) in cases {
            assert_eq!(check_endpoint(url).map(|_| ()), *want, "{url}");
        }
    }

    #[test]
    fn finds_the_first_refused_metadata_field() {
        let ok = serde_json::json!({
            "authorization_endpoint": "https://as.example/a",
            "token_endpoint": "http://127.0.0.1:9/t",
            "registration_endpoint": null,
        });
        assert_eq!(unsafe_metadata_endpoint(&ok), None);
        let in_clear =
            serde_json::json!({"issuer": "http://as.example", "authorization_endpoint": "https://as.example/a"});
        assert_eq!(
            unsafe_metadata_endpoint(&in_clear),
            Some(("issuer", "http://as.example".to_owned(), UnsafeUrl::PlainHttp))
        );
        let bad = serde_json::json!({
            "issuer": "https://as.example",
            "authorization_endpoint": "https://as.example/a",
            "token_endpoint": "https://as.example/t",
            "revocation_endpoint": "http://as.example/r",
            "jwks_uri": "file:///k",
        });
        assert_eq!(
            unsafe_metadata_endpoint(&bad),
            Some(("revocation_endpoint", "http://as.example/r".to_owned(), UnsafeUrl::PlainHttp))
        );
        let not_a_string = serde_json::json!({"token_endpoint": 7});
        assert_eq!(
            unsafe_metadata_endpoint(&not_a_string),
            Some(("token_endpoint", "(not a string)".to_owned(), UnsafeUrl::Unparsable))
        );
        let escapes = serde_json::json!({"authorization_endpoint": "javascript:\u{1b}[2Jx"});
        assert_eq!(unsafe_metadata_endpoint(&escapes).map(|(_, shown, _)| shown), Some("javascript:x".to_owned()));
    }
}
