//! Stage two: one server entry, expanded and validated.
//!
//! Follows the agent's reading (`tools/mcp_tool.py`, `tools/mcp_oauth.py`):
//! a server with `url` is HTTP (even when it also has `command`), one with only
//! `command` is stdio; `auth` is compared lower-cased and trimmed and only
//! `oauth` means anything; `enabled` accepts booleans and the strings
//! true/false/yes/no/on/off/1/0 (anything else counts as enabled, with a
//! warning). Unknown keys are ignored.

use serde_json::{Map, Value};

use super::raw::RawServer;
use crate::hermes::interpolate::{EnvScope, referenced_vars};
use crate::util::secret::SecretString;
use crate::util::text::shorten;

/// One entry of `mcp_servers`: valid, or invalid with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEntry {
    /// The key under `mcp_servers`.
    pub name: String,
    /// 1-based line of the entry in `config.yaml` (0 when unknown).
    pub line: u64,
    /// The validated settings, or why this entry cannot be used.
    pub config: Result<ServerConfig, String>,
}

/// A server's validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The MCP endpoint, for HTTP servers (after `${VAR}` expansion).
    pub url: Option<String>,
    /// `transport: sse` (legacy HTTP+SSE transport).
    pub sse: bool,
    /// `enabled: false` turns the server off without removing it.
    pub enabled: bool,
    /// How the agent authenticates to it.
    pub auth: AuthKind,
    /// Things the user should know that do not stop the server from working.
    pub warnings: Vec<String>,
}

/// How the agent authenticates to a server.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per config entry, read far more often than built; a box would only add indirection"
)]
pub enum AuthKind {
    /// `auth: oauth`: the OAuth 2.1 flow whose credentials this app manages.
    OAuth(OAuthSettings),
    /// Static headers (an API key, a bearer token from `${ENV}`).
    Headers(HeaderAuth),
    /// A local command: no network auth.
    Stdio,
    /// An HTTP server without auth settings.
    None,
}

/// The optional `oauth:` block of a server.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OAuthSettings {
    /// A pre-registered client id.
    pub client_id: Option<String>,
    /// The pre-registered client's secret.
    pub client_secret: Option<SecretString>,
    /// The authorization server (issuer) the pre-registered client belongs
    /// to: the secret is never sent to another (ours; the agent ignores it).
    pub issuer: Option<String>,
    /// Scope to request when the server's metadata names none.
    pub scope: Option<String>,
    /// Fixed loopback port for the redirect (`None`: chosen by us).
    pub redirect_port: Option<u16>,
    /// An explicit redirect URI.
    pub redirect_uri: Option<String>,
    /// Host of the loopback redirect (the agent's default is 127.0.0.1).
    pub redirect_host: Option<String>,
    /// Client name sent at registration (the agent's default: "Hermes Agent").
    pub client_name: Option<String>,
    /// Seconds to wait for the browser step (default 300).
    pub timeout_secs: f64,
    /// Ours, from the entry's `mcp_auth_tray:` block (the agent ignores it):
    /// leave out RFC 8707 `resource` for servers that reject it.
    pub omit_resource: bool,
    /// Ours: a Client ID Metadata Document URL to use when the server supports CIMD.
    pub client_metadata_url: Option<String>,
    /// Ours: how the browser comes back to the app (`mcp_auth_tray.redirect`).
    pub redirect: RedirectKind,
    /// `oauth.flow` (newer agents): how this server signs in by default.
    pub flow: SignInFlow,
    /// `oauth.token_endpoint_auth_method` (newer agents): the method a new
    /// registration asks for (`none` … `private_key_jwt`); unset: `none`, or
    /// `client_secret_post` with a configured secret, as the agent does.
    pub token_endpoint_auth_method: Option<String>,
    /// `oauth.application_type` (newer agents), sent in a dynamic
    /// registration (default `native`: a desktop app with a loopback redirect).
    pub application_type: Option<String>,
    /// `oauth.user_agent` (newer agents): the `User-Agent` of token requests
    /// only (code exchange, refresh, device polling), for WAFs that block ours.
    pub user_agent: Option<String>,
}

/// How a server signs in (`oauth.flow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInFlow {
    /// Authorization code + PKCE in a browser (the default).
    #[default]
    Browser,
    /// The device authorization grant (RFC 8628): a code entered on any device.
    Device,
}

impl SignInFlow {
    /// `browser` or `device`, as in the config and `status --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Browser => "browser",
            Self::Device => "device",
        }
    }
}

/// The token endpoint auth methods the agent's SDK accepts in `client.json`.
const AUTH_METHODS: [&str; 4] = ["none", "client_secret_post", "client_secret_basic", "private_key_jwt"];

/// Where the authorization server sends the browser back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedirectKind {
    /// `http://127.0.0.1:PORT/callback` (RFC 8252 §7.3): the default, since
    /// many authorization servers accept only http(s) redirect URIs.
    #[default]
    Loopback,
    /// The tray app's private-use URI scheme (RFC 8252 §7.1), delivered to
    /// the running app as a deep link. Only the tray app can receive it.
    CustomScheme,
}

/// Static headers, described without their values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderAuth {
    /// Header names with the variables their values refer to.
    pub headers: Vec<(String, Vec<EnvRef>)>,
}

/// A `${VAR}` a header value refers to, and whether it is set (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRef {
    pub name: String,
    pub is_set: bool,
}

pub(crate) const DEFAULT_OAUTH_TIMEOUT_SECS: f64 = 300.0;

/// The longest wait for a browser step we honour: a sign-in nobody finished
/// within a day is abandoned, and larger values overflow a `Duration`
/// (`1e20` seconds made `Duration::from_secs_f64` panic).
pub const MAX_OAUTH_TIMEOUT_SECS: f64 = 86_400.0;

pub(crate) fn validate(raw: RawServer, scope: &EnvScope) -> ServerEntry {
    let RawServer { name, line, value } = raw;
    let config = validate_value(&value, scope);
    ServerEntry { name, line, config }
}

fn validate_value(value: &Value, scope: &EnvScope) -> Result<ServerConfig, String> {
    let Value::Object(unexpanded) = value else {
        return Err(format!("the entry must be a mapping of settings, found {}", kind_of(value)));
    };
    let mut expanded = value.clone();
    scope.expand_value(&mut expanded);
    let Value::Object(entry) = &expanded else {
        return Err("the entry must be a mapping of settings".to_owned());
    };
    let mut warnings = Vec::new();

    let enabled = parse_enabled(entry.get("enabled"), &mut warnings);
    let url = match entry.get("url") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => return Err(format!("`url` must be a string, found {}", kind_of(other))),
    };
    let url = match url {
        Some(u) => Some(validate_url(u)?),
        None => None,
    };
    let sse = match optional_string(entry, "transport")? {
        Some(t) if t.trim().eq_ignore_ascii_case("sse") => true,
        Some(t)
            if matches!(
                t.trim().to_ascii_lowercase().as_str(),
                "http" | "streamable-http" | "streamable_http" | "stdio"
            ) =>
        {
            false
        }
        Some(t) => {
            warnings.push(format!("unknown transport `{t}` (the agent uses Streamable HTTP)"));
            false
        }
        None => false,
    };
    let command = optional_string(entry, "command")?;
    let auth_value = match entry.get("auth") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.trim().to_lowercase(),
        Some(other) => return Err(format!("`auth` must be a string, found {}", kind_of(other))),
    };

    let auth = if url.is_none() {
        if command.is_none() {
            return Err("needs either `url` (a remote server) or `command` (a local one)".to_owned());
        }
        if auth_value == "oauth" {
            return Err("`auth: oauth` needs a `url`: a local command cannot use OAuth".to_owned());
        }
        AuthKind::Stdio
    } else if auth_value == "oauth" {
        let mut oauth = parse_oauth(entry.get("oauth"), &mut warnings)?;
        parse_own_settings(entry.get("mcp_auth_tray"), &mut oauth)?;
        AuthKind::OAuth(oauth)
    } else {
        if !auth_value.is_empty() {
            warnings.push(format!("`auth: {auth_value}` is not a kind the agent knows; it is ignored"));
        }
        match parse_headers(unexpanded.get("headers"), entry.get("headers"), scope)? {
            Some(headers) => AuthKind::Headers(headers),
            None => AuthKind::None,
        }
    };
    Ok(ServerConfig { url, sse, enabled, auth, warnings })
}

fn validate_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if let Some(name) = referenced_vars(trimmed).first() {
        return Err(format!("`url` uses ${{{name}}}, which is not set"));
    }
    let parsed = url::Url::parse(trimmed).map_err(|e| format!("`url` is not a valid URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("`url` must be an http:// or https:// URL, found `{}`", parsed.scheme()));
    }
    Ok(trimmed.to_owned())
}

fn parse_enabled(value: Option<&Value>, warnings: &mut Vec<String>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => match s.trim().to_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                warnings.push(format!("`enabled: {s}` is not a yes/no value; treated as enabled"));
                true
            }
        },
        Some(other) => {
            warnings.push(format!("`enabled` is {}, not a yes/no value; treated as enabled", kind_of(other)));
            true
        }
    }
}

fn parse_oauth(value: Option<&Value>, warnings: &mut Vec<String>) -> Result<OAuthSettings, String> {
    let block = match value {
        None | Some(Value::Null) => {
            return Ok(OAuthSettings { timeout_secs: DEFAULT_OAUTH_TIMEOUT_SECS, ..Default::default() });
        }
        Some(Value::Object(map)) => map,
        Some(other) => return Err(format!("`oauth` must be a mapping, found {}", kind_of(other))),
    };
    let field = |key: &str| optional_string(block, key).map_err(|e| e.replacen('`', "`oauth.", 1));
    let redirect_port = match block.get("redirect_port") {
        None | Some(Value::Null) => None,
        Some(v) => match port_number(v) {
            Some(0) => None,
            Some(p) => Some(p),
            None => {
                return Err(format!("`oauth.redirect_port` must be a port number (1-65535), found {}", show_scalar(v)));
            }
        },
    };
    let timeout_secs = match block.get("timeout") {
        None | Some(Value::Null) => DEFAULT_OAUTH_TIMEOUT_SECS,
        Some(v) => {
            let (secs, warning) = oauth_timeout(v)?;
            warnings.extend(warning);
            secs
        }
    };
    // Like the agent at run time: anything but `device` signs in with the
    // browser (its `hermes mcp login` refuses other values, so say so).
    let flow = match field("flow")?.as_deref().map(str::trim) {
        None | Some("") | Some("browser") => SignInFlow::Browser,
        Some("device") => SignInFlow::Device,
        Some(other) => {
            warnings.push(format!(
                "`oauth.flow: {}` is neither `browser` nor `device`; signing in with the browser",
                shorten(other, 24)
            ));
            SignInFlow::Browser
        }
    };
    let token_endpoint_auth_method = field("token_endpoint_auth_method")?.filter(|s| !s.is_empty());
    if let Some(method) = &token_endpoint_auth_method
        && !AUTH_METHODS.contains(&method.as_str())
    {
        return Err(format!(
            "`oauth.token_endpoint_auth_method` must be one of {}, found {}",
            AUTH_METHODS.join(", "),
            show_scalar(&Value::String(method.clone()))
        ));
    }
    Ok(OAuthSettings {
        flow,
        token_endpoint_auth_method,
        application_type: field("application_type")?.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
        user_agent: field("user_agent")?.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
        client_id: field("client_id")?.filter(|s| !s.is_empty()),
        client_secret: field("client_secret")?.filter(|s| !s.is_empty()).map(SecretString::new),
        issuer: field("issuer")?.filter(|s| !s.is_empty()),
        scope: field("scope")?.filter(|s| !s.is_empty()),
        redirect_port,
        redirect_uri: field("redirect_uri")?.filter(|s| !s.is_empty()),
        redirect_host: field("redirect_host")?.filter(|s| !s.is_empty()),
        client_name: field("client_name")?.filter(|s| !s.is_empty()),
        timeout_secs,
        omit_resource: false,
        client_metadata_url: None,
        redirect: RedirectKind::Loopback,
    })
}

/// Our own per-server settings under `mcp_auth_tray:` (unknown to the agent,
/// which ignores unknown keys): `omit_resource`, `client_metadata_url`,
/// `redirect` (`loopback` or `custom_scheme`).
fn parse_own_settings(value: Option<&Value>, oauth: &mut OAuthSettings) -> Result<(), String> {
    let block = match value {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(format!("`mcp_auth_tray` must be a mapping, found {}", kind_of(other))),
    };
    oauth.omit_resource = match block.get("omit_resource") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(format!("`mcp_auth_tray.omit_resource` must be true or false, found {}", kind_of(other)));
        }
    };
    oauth.client_metadata_url =
        optional_string(block, "client_metadata_url").map_err(|e| e.replacen('`', "`mcp_auth_tray.", 1))?;
    if let Some(u) = &oauth.client_metadata_url {
        let ok = url::Url::parse(u).is_ok_and(|p| p.scheme() == "https" && p.path() != "/");
        if !ok {
            return Err("`mcp_auth_tray.client_metadata_url` must be an https:// URL with a path".to_owned());
        }
    }
    oauth.redirect =
        match optional_string(block, "redirect").map_err(|e| e.replacen('`', "`mcp_auth_tray.", 1))?.as_deref() {
            None | Some("loopback") => RedirectKind::Loopback,
            Some("custom_scheme") => RedirectKind::CustomScheme,
            Some(other) => {
                return Err(format!(
                    "`mcp_auth_tray.redirect` must be `loopback` or `custom_scheme`, found `{}`",
                    shorten(other, 40)
                ));
            }
        };
    Ok(())
}

/// Header names and the variables they use; values are never kept here.
fn parse_headers(
    unexpanded: Option<&Value>,
    expanded: Option<&Value>,
    scope: &EnvScope,
) -> Result<Option<HeaderAuth>, String> {
    let (Some(Value::Object(raw)), Some(Value::Object(_))) = (unexpanded, expanded) else {
        return match expanded {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) if m.is_empty() => Ok(None),
            Some(other) => {
                Err(format!("`headers` must be a mapping of header names to values, found {}", kind_of(other)))
            }
        };
    };
    if raw.is_empty() {
        return Ok(None);
    }
    let mut headers = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => return Err(format!("header `{name}` must be a string, found {}", kind_of(other))),
        };
        let refs =
            referenced_vars(&text).into_iter().map(|var| EnvRef { is_set: scope.resolves(&var), name: var }).collect();
        headers.push((name.clone(), refs));
    }
    Ok(Some(HeaderAuth { headers }))
}

fn optional_string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!("`{key}` must be a string, found {}", kind_of(other))),
    }
}

/// A port as the agent reads it (`int(value)`: numbers and numeric strings).
fn port_number(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Value::String(s) => s.trim().parse::<u16>().ok(),
        _ => None,
    }
}

/// `oauth.timeout` in seconds: a positive finite number (or numeric string),
/// clamped to [`MAX_OAUTH_TIMEOUT_SECS`] with a warning for the entry.
fn oauth_timeout(v: &Value) -> Result<(f64, Option<String>), String> {
    match number(v) {
        Some(t) if t > MAX_OAUTH_TIMEOUT_SECS && t.is_finite() => Ok((
            MAX_OAUTH_TIMEOUT_SECS,
            Some(format!("`oauth.timeout` of {} seconds is more than a day; waiting a day instead", show_scalar(v))),
        )),
        Some(t) if t > 0.0 && t.is_finite() => Ok((t, None)),
        _ => Err(format!("`oauth.timeout` must be a positive number of seconds, found {}", show_scalar(v))),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// A scalar for an error message; strings are quoted and cut short, since a
/// misplaced value could be a secret pasted into the wrong key.
fn show_scalar(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() > 24 => "a long string".to_owned(),
        Value::String(s) => format!("`{s}`"),
        Value::Number(n) => n.to_string(),
        other => kind_of(other).to_owned(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use rstest::rstest;
    use serde_json::json;

    fn scope() -> EnvScope {
        EnvScope::from_pairs([
            ("TOKEN".to_owned(), "secret-token-value".to_owned()),
            ("HOST".to_owned(), "mcp.example.com".to_owned()),
        ])
    }

    fn check(value: Value) -> Result<ServerConfig, String> {
        validate(RawServer { name: "s".to_owned(), line: 1, value }, &scope()).config
    }

    #[test]
    fn oauth_with_block() {
        let cfg = check(json!({
            "url": "https://${HOST}/mcp", "auth": " OAuth ",
            "oauth": {"client_id": "cid", "client_secret": "${TOKEN}", "scope": "read write",
                      "redirect_port": "8765", "client_name": "Me", "timeout": 60,
                      "issuer": "https://auth.example.com"}
        }));
        let cfg = cfg.expect("valid");
        assert_eq!(cfg.url.as_deref(), Some("https://mcp.example.com/mcp"));
        let AuthKind::OAuth(o) = cfg.auth else { panic!("not oauth: {:?}", cfg.auth) };
        assert_eq!(o.client_id.as_deref(), Some("cid"));
        assert_eq!(o.client_secret.as_ref().map(SecretString::expose), Some("secret-token-value"));
        assert_eq!(o.issuer.as_deref(), Some("https://auth.example.com"));
        assert_eq!(o.redirect_port, Some(8765));
        assert_eq!(o.timeout_secs, 60.0);
        assert_eq!(o.client_name.as_deref(), Some("Me"));
    }

    #[test]
    fn our_own_settings() {
        let cfg = check(json!({"url": "https://x/mcp", "auth": "oauth",
            "mcp_auth_tray": {"omit_resource": true, "client_metadata_url": "https://me.example/client.json",
                              "redirect": "custom_scheme"}}))
        .expect("valid");
        let AuthKind::OAuth(o) = cfg.auth else { panic!("not oauth") };
        assert!(o.omit_resource);
        assert_eq!(o.redirect, RedirectKind::CustomScheme);
        assert_eq!(o.client_metadata_url.as_deref(), Some("https://me.example/client.json"));
    }

    #[test]
    fn newer_agent_keys() {
        let cfg = check(json!({"url": "https://x/mcp", "auth": "oauth", "protocol": "stateless", "trust": "high",
            "keepalive_interval": 30, "skip_preflight": true, "lifecycle": {"idle": 5},
            "oauth": {"flow": "device", "token_endpoint_auth_method": "client_secret_basic",
                      "application_type": " web ", "user_agent": " Me/1.0 ", "cimd": false,
                      "client_metadata_url": "https://me.example/c.json"}}))
        .expect("valid");
        assert_eq!(cfg.warnings, Vec::<String>::new());
        let AuthKind::OAuth(o) = cfg.auth else { panic!("not oauth") };
        assert_eq!(o.flow, SignInFlow::Device);
        assert_eq!(o.token_endpoint_auth_method.as_deref(), Some("client_secret_basic"));
        assert_eq!(o.application_type.as_deref(), Some("web"));
        assert_eq!(o.user_agent.as_deref(), Some("Me/1.0"));
        // The agent's own CIMD document is not ours to present.
        assert_eq!(o.client_metadata_url, None);
    }

    #[rstest]
    #[case(json!("browser"), SignInFlow::Browser, 0)]
    #[case(json!("device"), SignInFlow::Device, 0)]
    #[case(json!(""), SignInFlow::Browser, 0)]
    #[case(json!(null), SignInFlow::Browser, 0)]
    #[case(json!("pigeon"), SignInFlow::Browser, 1)]
    fn flows(#[case] flow: Value, #[case] want: SignInFlow, #[case] warnings: usize) {
        let cfg = check(json!({"url": "https://x/mcp", "auth": "oauth", "oauth": {"flow": flow}})).expect("valid");
        assert_eq!(cfg.warnings.len(), warnings, "{:?}", cfg.warnings);
        let AuthKind::OAuth(o) = cfg.auth else { panic!("not oauth") };
        assert_eq!(o.flow, want);
    }

    #[test]
    fn oauth_defaults() {
        let cfg = check(json!({"url": "http://127.0.0.1:9/mcp", "auth": "oauth"})).expect("valid");
        assert_eq!(cfg.auth, AuthKind::OAuth(OAuthSettings { timeout_secs: 300.0, ..Default::default() }));
    }

    #[test]
    fn headers_report_variables_not_values() {
        let cfg = check(json!({"url": "https://x/mcp", "headers": {"Authorization": "Bearer ${TOKEN}", "X-Key": "${env:NOPE}", "X-Plain": "v"}}))
            .expect("valid");
        let AuthKind::Headers(h) = &cfg.auth else { panic!("not headers") };
        assert_eq!(
            h.headers,
            vec![
                ("Authorization".to_owned(), vec![EnvRef { name: "TOKEN".to_owned(), is_set: true }]),
                ("X-Key".to_owned(), vec![EnvRef { name: "NOPE".to_owned(), is_set: false }]),
                ("X-Plain".to_owned(), vec![]),
            ]
        );
        assert!(!format!("{cfg:?}").contains("secret-token-value"));
    }

    #[rstest]
    #[case(json!({"command": "npx", "args": ["-y", "x"]}), "stdio")]
    #[case(json!({"url": "https://x/mcp", "command": "npx"}), "none")]
    #[case(json!({"url": "https://x/mcp", "headers": {}}), "none")]
    #[case(json!({"url": "https://x/sse", "transport": "sse", "auth": "basic"}), "none")]
    fn kinds(#[case] value: Value, #[case] kind: &str) {
        let cfg = check(value).expect("valid");
        let got = match cfg.auth {
            AuthKind::OAuth(_) => "oauth",
            AuthKind::Headers(_) => "headers",
            AuthKind::Stdio => "stdio",
            AuthKind::None => "none",
        };
        assert_eq!(got, kind);
    }

    #[rstest]
    #[case(json!(true), true)]
    #[case(json!(false), false)]
    #[case(json!("off"), false)]
    #[case(json!(" No "), false)]
    #[case(json!("yes"), true)]
    #[case(json!("maybe"), true)]
    #[case(json!(null), true)]
    fn enabled_values(#[case] enabled: Value, #[case] want: bool) {
        let cfg = check(json!({"command": "x", "enabled": enabled})).expect("valid");
        assert_eq!(cfg.enabled, want);
    }

    #[test]
    fn warnings_for_ignored_settings() {
        let cfg = check(json!({"url": "https://x/mcp", "auth": "basic", "enabled": "maybe"})).expect("valid");
        assert_eq!(
            cfg.warnings,
            vec![
                "`enabled: maybe` is not a yes/no value; treated as enabled".to_owned(),
                "`auth: basic` is not a kind the agent knows; it is ignored".to_owned(),
            ]
        );
    }

    #[rstest]
    #[case(json!("just a string"), "the entry must be a mapping of settings, found a string")]
    #[case(json!({}), "needs either `url` (a remote server) or `command` (a local one)")]
    #[case(json!({"url": ["x"]}), "`url` must be a string, found a list")]
    #[case(json!({"url": "ftp://x/"}), "`url` must be an http:// or https:// URL, found `ftp`")]
    #[case(json!({"url": "not a url"}), "`url` is not a valid URL (relative URL without a base)")]
    #[case(json!({"url": "https://${MISSING_HOST}/mcp"}), "`url` uses ${MISSING_HOST}, which is not set")]
    #[case(json!({"url": "https://x/", "auth": {"type": "oauth"}}), "`auth` must be a string, found a mapping")]
    #[case(json!({"url": "https://x/", "auth": "oauth", "oauth": "yes"}), "`oauth` must be a mapping, found a string")]
    #[case(json!({"url": "https://x/", "auth": "oauth", "oauth": {"redirect_port": 70000}}), "`oauth.redirect_port` must be a port number (1-65535), found 70000")]
    #[case(json!({"url": "https://x/", "auth": "oauth", "oauth": {"timeout": "soon"}}), "`oauth.timeout` must be a positive number of seconds, found `soon`")]
    #[case(json!({"url": "https://x/", "auth": "oauth", "oauth": {"client_id": ["a"]}}), "`oauth.client_id` must be a string, found a list")]
    #[case(json!({"command": "x", "auth": "oauth"}), "`auth: oauth` needs a `url`: a local command cannot use OAuth")]
    #[case(json!({"url": "https://x/", "auth": "oauth", "mcp_auth_tray": {"omit_resource": "yes"}}), "`mcp_auth_tray.omit_resource` must be true or false, found a string")]
    #[case(json!({"url": "https://x/", "auth": "oauth", "mcp_auth_tray": {"redirect": "carrier-pigeon"}}), "`mcp_auth_tray.redirect` must be `loopback` or `custom_scheme`, found `carrier-pigeon`")]
    #[case(json!({"url": "https://x/", "auth": "oauth", "mcp_auth_tray": {"client_metadata_url": "http://x/c.json"}}), "`mcp_auth_tray.client_metadata_url` must be an https:// URL with a path")]
    #[case(json!({"url": "https://x/", "auth": "oauth", "oauth": {"token_endpoint_auth_method": "magic"}}), "`oauth.token_endpoint_auth_method` must be one of none, client_secret_post, client_secret_basic, private_key_jwt, found `magic`")]
    #[case(json!({"url": "https://x/", "headers": ["a"]}), "`headers` must be a mapping of header names to values, found a list")]
    #[case(json!({"url": "https://x/", "headers": {"A": {"b": 1}}}), "header `A` must be a string, found a mapping")]
    fn invalid_entries(#[case] value: Value, #[case] reason: &str) {
        assert_eq!(check(value), Err(reason.to_owned()));
    }

    #[rstest]
    #[case::plain(json!(60), Ok((60.0, None)))]
    #[case::fraction(json!(0.5), Ok((0.5, None)))]
    #[case::string(json!(" 90 "), Ok((90.0, None)))]
    #[case::a_day(json!(86400), Ok((86400.0, None)))]
    #[case::huge(json!(1e20), Ok((86400.0, Some("`oauth.timeout` of 1e+20 seconds is more than a day; waiting a day instead"))))]
    #[case::huge_integer(json!(u64::MAX), Ok((86400.0, Some("`oauth.timeout` of 18446744073709551615 seconds is more than a day; waiting a day instead"))))]
    #[case::huge_string(json!("1e300"), Ok((86400.0, Some("`oauth.timeout` of `1e300` seconds is more than a day; waiting a day instead"))))]
    #[case::zero(json!(0), Err("`oauth.timeout` must be a positive number of seconds, found 0"))]
    #[case::negative(json!(-5), Err("`oauth.timeout` must be a positive number of seconds, found -5"))]
    #[case::nan(json!("NaN"), Err("`oauth.timeout` must be a positive number of seconds, found `NaN`"))]
    #[case::infinite(json!("1e400"), Err("`oauth.timeout` must be a positive number of seconds, found `1e400`"))]
    #[case::infinity(json!("inf"), Err("`oauth.timeout` must be a positive number of seconds, found `inf`"))]
    #[case::a_list(json!([1]), Err("`oauth.timeout` must be a positive number of seconds, found a list"))]
    fn oauth_timeouts(#[case] value: Value, #[case] expected: Result<(f64, Option<&str>), &str>) {
        let expected = expected.map(|(t, w)| (t, w.map(str::to_owned))).map_err(str::to_owned);
        assert_eq!(oauth_timeout(&value), expected);
        // Whatever was accepted converts to a Duration (this panicked for 1e20).
        if let Ok((secs, _)) = oauth_timeout(&value) {
            assert!(std::time::Duration::try_from_secs_f64(secs).is_ok());
        }
    }

    #[test]
    fn a_huge_timeout_is_clamped_with_a_warning_on_the_entry() {
        let cfg = check(json!({"url": "https://x/", "auth": "oauth", "oauth": {"timeout": 1e20}})).expect("valid");
        let AuthKind::OAuth(o) = &cfg.auth else { panic!("{:?}", cfg.auth) };
        assert_eq!(o.timeout_secs, MAX_OAUTH_TIMEOUT_SECS);
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].contains("more than a day"), "{:?}", cfg.warnings);
    }

    #[test]
    fn errors_never_echo_long_values() {
        let err = check(
            json!({"url": "https://x/", "auth": "oauth", "oauth": {"timeout": "sk-live-0123456789abcdefghijklmnop"}}),
        );
        assert_eq!(err, Err("`oauth.timeout` must be a positive number of seconds, found a long string".to_owned()));
    }
}
