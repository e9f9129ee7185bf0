//! Parsing `WWW-Authenticate` (RFC 9110 §11.6.1) for the Bearer challenge.
//!
//! Real servers send several challenges in one header (`Basic realm="x",
//! Bearer resource_metadata="…"`) or one per header line, quote some values
//! and not others, escape quotes inside quoted strings, and space things
//! oddly. A substring search ("find `scope=`") gets these wrong — it matches
//! inside `error_description` or a URL's query — so this is a small proper
//! tokenizer: schemes, `key=value` parameters (token or quoted-string), and
//! token68, with case-insensitive scheme and parameter names.

/// One challenge: a scheme and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The auth scheme as written (compare case-insensitively).
    pub scheme: String,
    /// `token68` credentials, for schemes that use them.
    pub token68: Option<String>,
    /// Parameters with lower-cased names, in order.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (case-insensitive); the first one wins.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What a Bearer challenge tells an MCP client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// RFC 9728 `resource_metadata`: where the Protected Resource Metadata is.
    pub resource_metadata: Option<String>,
    /// The scope needed (RFC 6750 §3).
    pub scope: Option<String>,
    /// `invalid_token`, `insufficient_scope`, ...
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl BearerChallenge {
    /// A 403 asking for more scope.
    pub fn is_insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// The first Bearer challenge across all `WWW-Authenticate` header values.
pub fn bearer_challenge<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<BearerChallenge> {
    headers.into_iter().flat_map(parse_challenges).find(|c| c.scheme.eq_ignore_ascii_case("bearer")).map(|c| {
        let get = |k: &str| c.param(k).map(str::to_owned);
        BearerChallenge {
            resource_metadata: get("resource_metadata"),
            scope: get("scope").filter(|s| !s.trim().is_empty()),
            error: get("error"),
            error_description: get("error_description"),
        }
    })
}

/// Parses one header value into its challenges. Malformed parts are skipped;
/// parsing never fails.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut p = Parser { s: header.as_bytes(), i: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_separators();
        let Some(scheme) = p.token() else {
            if p.at_end() {
                return out;
            }
            p.i += 1; // not a token char: skip it and resynchronise
            continue;
        };
        let mut challenge = Challenge { scheme, token68: None, params: Vec::new() };
        let mut first = true;
        loop {
            let mark = p.i;
            // token68 may only follow the scheme directly, not after a comma.
            let after_comma = p.skip_separators();
            let may_be_token68 = first && !after_comma;
            first = false;
            let Some(name) = p.token() else {
                p.i = mark;
                break;
            };
            p.skip_ws();
            if p.peek() == Some(b'=') {
                // token68 ends with '='s and is not followed by a value.
                let eq_start = p.i;
                while p.peek() == Some(b'=') {
                    p.i += 1;
                }
                let equals = p.i - eq_start;
                p.skip_ws();
                let value = if equals == 1 { p.quoted().or_else(|| p.token()) } else { None };
                match value {
                    Some(v) => challenge.params.push((name.to_ascii_lowercase(), v)),
                    None if may_be_token68 => {
                        challenge.token68 = Some(format!("{name}{}", "=".repeat(equals)));
                    }
                    None => {}
                }
                p.skip_ws();
                if !p.at_end() && p.peek() != Some(b',') {
                    // Garbage after a parameter: resynchronise at the next comma.
                    while !p.at_end() && p.peek() != Some(b',') {
                        p.i += 1;
                    }
                }
            } else if may_be_token68 && !matches!(p.peek(), Some(b',') | None) && !p.next_is_param() {
                challenge.token68 = Some(name);
            } else {
                // A bare token: the next challenge's scheme.
                p.i = mark;
                break;
            }
        }
        out.push(challenge);
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Skips blanks and commas; true when a comma was among them.
    fn skip_separators(&mut self) -> bool {
        let mut comma = false;
        while let Some(c @ (b' ' | b'\t' | b',')) = self.peek() {
            comma |= c == b',';
            self.i += 1;
        }
        comma
    }

    /// Whether a `token =` (single `=`) starts here.
    fn next_is_param(&mut self) -> bool {
        let mark = self.i;
        let is_param = self.token().is_some() && {
            self.skip_ws();
            self.peek() == Some(b'=') && self.s.get(self.i + 1) != Some(&b'=')
        };
        self.i = mark;
        is_param
    }

    /// RFC 9110 `token` (plus `/`, `+` for token68-style values).
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c);
            if !ok {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A quoted-string with `\` escapes; `None` (position unchanged) when not one.
    fn quoted(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.i += 1;
        let mut value = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'\\' => {
                    if let Some(next) = self.peek() {
                        value.push(next);
                        self.i += 1;
                    }
                }
                b'"' => return Some(String::from_utf8_lossy(&value).into_owned()),
                other => value.push(other),
            }
        }
        // Unterminated: take the rest as the value.
        Some(String::from_utf8_lossy(&value).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use rstest::rstest;

    fn bearer(h: &str) -> BearerChallenge {
        bearer_challenge([h]).expect("a bearer challenge")
    }

    #[rstest]
    #[case(
        r#"Bearer resource_metadata="https://x/.well-known/oauth-protected-resource/mcp""#,
        Some("https://x/.well-known/oauth-protected-resource/mcp"),
        None,
        None
    )]
    #[case(
        r#"Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://x/prm""#,
        Some("https://x/prm"),
        Some("files:read files:write"),
        Some("insufficient_scope")
    )]
    #[case(r#"bearer   Scope = "a b" ,  RESOURCE_METADATA=https://x/prm"#, Some("https://x/prm"), Some("a b"), None)]
    #[case(
        r#"Basic realm="api", Bearer resource_metadata="https://x/prm", scope="s""#,
        Some("https://x/prm"),
        Some("s"),
        None
    )]
    #[case(
        r#"Bearer error_description="need scope=\"admin\", resource_metadata=fake", error="invalid_token""#,
        None,
        None,
        Some("invalid_token")
    )]
    #[case(
        r#"Bearer resource_metadata="https://x/prm?scope=evil", scope="real""#,
        Some("https://x/prm?scope=evil"),
        Some("real"),
        None
    )]
    #[case("Bearer", None, None, None)]
    #[case(r#"Bearer realm="example",error=invalid_token"#, None, None, Some("invalid_token"))]
    #[case(r#"Bearer scope="""#, None, None, None)]
    fn bearer_parameters(
        #[case] header: &str,
        #[case] rm: Option<&str>,
        #[case] scope: Option<&str>,
        #[case] error: Option<&str>,
    ) {
        let b = bearer(header);
        assert_eq!(
            (b.resource_metadata.as_deref(), b.scope.as_deref(), b.error.as_deref()),
            (rm, scope, error),
            "{header}"
        );
    }

    #[test]
    fn escaped_description() {
        let b = bearer(r#"Bearer error="invalid_token", error_description="the \"token\" expired""#);
        assert_eq!(b.error_description.as_deref(), Some(r#"the "token" expired"#));
    }

    #[test]
    fn several_challenges_and_token68() {
        let got = parse_challenges(
            r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple", Negotiate YII4BAQ==, Bearer"#,
        );
        let schemes: Vec<&str> = got.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Newauth", "Basic", "Negotiate", "Bearer"]);
        assert_eq!(got[0].param("title"), Some(r#"Login to "apps""#));
        assert_eq!(got[0].param("type"), Some("1"));
        assert_eq!(got[2].token68.as_deref(), Some("YII4BAQ=="));
    }

    #[test]
    fn bearer_from_a_later_header_line() {
        let b = bearer_challenge([r#"Basic realm="x""#, r#"Bearer scope="s""#]).expect("bearer");
        assert_eq!(b.scope.as_deref(), Some("s"));
        assert!(bearer_challenge([r#"Basic realm="x""#]).is_none());
    }

    #[test]
    fn garbage_never_panics() {
        for h in [
            "",
            ",,,",
            "=",
            "Bearer =",
            "Bearer a=\"unterminated",
            "\u{00e9}\u{00e9} Bearer x=1",
            "Bearer ,,, scope=s,,",
        ] {
            let _ = parse_challenges(h);
        }
        assert_eq!(bearer("Bearer ,,, scope=s,,").scope.as_deref(), Some("s"));
        assert_eq!(bearer("Bearer a=\"unterminated").error, None);
    }
}
