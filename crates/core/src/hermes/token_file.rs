//! What the agent's token file (`<home>/mcp-tokens/<stem>.json`) says about a
//! server's credentials, without holding the credentials themselves.
//!
//! Mirrors the agent's loader (`tools/mcp_oauth.py::get_tokens` + the SDK's
//! `OAuthToken`): the file must be a JSON object with a string `access_token`
//! and a `token_type` of "Bearer" in any casing (so "DPoP" counts as corrupt);
//! the absolute `expires_at` (epoch seconds, a number) wins over
//! `expires_in`, which otherwise counts from the file's mtime. A string
//! `expires_at` crashes the agent, so we call it corrupt too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::util::read_capped::{Capped, read_capped};
use crate::util::time::epoch_secs;

/// Token files larger than this are not read (the agent's are < 10 KiB).
pub const MAX_TOKEN_FILE_BYTES: u64 = 256 * 1024;

/// `expires_at` values above this are milliseconds by mistake (year 5138+ as
/// seconds); the agent then never sees the token expire.
const MILLISECONDS_THRESHOLD: f64 = 1e11;

/// Lifetimes (`expires_in`) above this (ten years) are clamped to it: no
/// server grants more, and larger values only overflow clocks and timers.
pub(crate) const MAX_LIFETIME_SECS: u64 = 10 * 365 * 86_400;

/// An agent's `expires_at` made safe to compute with: seconds since the
/// epoch, at least 0 (a negative one is long expired). `Err` with the reason
/// when it cannot be seconds (milliseconds by mistake, or absurd).
pub(crate) fn usable_expires_at(value: f64) -> Result<f64, &'static str> {
    if !value.is_finite() || value > MILLISECONDS_THRESHOLD {
        return Err("`expires_at` looks like milliseconds; the agent never sees this token expire");
    }
    Ok(value.max(0.0))
}

/// An agent's `expires_in` (a JSON number, or a string of one as sloppy
/// writers leave) as whole seconds within [`MAX_LIFETIME_SECS`]; `None`
/// when it is no number of seconds at all. The flag says it was clamped.
pub(crate) fn usable_expires_in(value: &Value) -> Option<(u64, bool)> {
    let secs = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    let clamped = secs > MAX_LIFETIME_SECS as f64;
    Some((if clamped { MAX_LIFETIME_SECS } else { secs as u64 }, clamped))
}

/// The non-secret facts of a token file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenFileSummary {
    /// When the access token expires (epoch seconds), when known.
    pub expires_at: Option<f64>,
    /// The lifetime the server granted (`expires_in` as written).
    pub lifetime_secs: Option<u64>,
    /// A refresh token is present.
    pub has_refresh_token: bool,
    /// The granted scope.
    pub scope: Option<String>,
    /// The issuer that granted the tokens (`hermes_issuer`, newer agents).
    pub issuer: Option<String>,
    /// Something odd that does not make the file unusable.
    pub note: Option<String>,
    /// The vault's note of the last failed refresh (never from a token file).
    pub last_failure: Option<crate::vault::RefreshFailure>,
    /// The client the vault's grant belongs to (never from a token file).
    pub client: Option<crate::hermes::client_identity::ClientIdentity>,
}

/// Why a token file cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

/// Reads a token file; `Ok(None)` when it does not exist.
pub fn read_token_file(path: &Path) -> Result<Option<TokenFileSummary>, TokenFileError> {
    let io_err = |source: std::io::Error| TokenFileError::Io { path: path.to_path_buf(), source: Arc::new(source) };
    let (bytes, meta) = match read_capped(path, MAX_TOKEN_FILE_BYTES).map_err(io_err)? {
        Capped::Missing => return Ok(None),
        Capped::TooLarge => {
            return Err(TokenFileError::TooLarge { path: path.to_path_buf(), limit: MAX_TOKEN_FILE_BYTES });
        }
        Capped::Bytes(bytes, meta) => (bytes, meta),
    };
    let modified = meta.modified().map_err(io_err)?;
    summarize(&bytes, epoch_secs(modified))
        .map(Some)
        .map_err(|reason| TokenFileError::Corrupt { path: path.to_path_buf(), reason })
}

/// The pure part of [`read_token_file`]: judge the bytes, given the file's mtime.
pub(crate) fn summarize(bytes: &[u8], mtime: f64) -> Result<TokenFileSummary, String> {
    // Deliberately no detail from serde_json's message: it can quote the input.
    let value: Value = serde_json::from_slice(bytes).map_err(|_| "not valid JSON".to_owned())?;
    let Value::Object(map) = value else { return Err("not a JSON object".to_owned()) };
    match map.get("access_token") {
        Some(Value::String(_)) => {}
        _ => return Err("no `access_token` string".to_owned()),
    }
    match map.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(t)) if t.len() <= 16 => {
            return Err(format!("`token_type` is `{t}`, the agent accepts only Bearer"));
        }
        _ => return Err("`token_type` must be \"Bearer\"".to_owned()),
    }
    let optional_str = |key: &str| -> Result<Option<String>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{key}` must be a string")),
        }
    };
    let has_refresh_token = optional_str("refresh_token")?.is_some_and(|t| !t.is_empty());
    let scope = optional_str("scope")?;
    let issuer = optional_str("hermes_issuer")?;
    let mut note = None;
    let lifetime_secs = match map.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::Number(_) | Value::String(_))) => match usable_expires_in(v) {
            Some((secs, clamped)) => {
                if clamped {
                    note = Some("`expires_in` is more than ten years; counted as ten".to_owned());
                }
                Some(secs)
            }
            None if v.is_number() => {
                note = Some("`expires_in` is negative; ignored".to_owned());
                None
            }
            None => None,
        },
        Some(_) => return Err("`expires_in` must be a number".to_owned()),
    };
    let expires_at = match map.get("expires_at") {
        None | Some(Value::Null) => lifetime_secs.map(|l| mtime + l as f64),
        Some(Value::Number(n)) => match n.as_f64().map(usable_expires_at) {
            Some(Ok(v)) => Some(v),
            Some(Err(reason)) => {
                note = Some(reason.to_owned());
                None
            }
            None => None,
        },
        Some(_) => return Err("`expires_at` must be a number of seconds (the agent cannot load a string)".to_owned()),
    };
    Ok(TokenFileSummary {
        expires_at,
        lifetime_secs,
        has_refresh_token,
        scope,
        issuer,
        note,
        last_failure: None,
        client: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use rstest::rstest;

    const MTIME: f64 = 1_000_000.0;

    fn ok(json: &str) -> TokenFileSummary {
        summarize(json.as_bytes(), MTIME).expect("valid token file")
    }

    #[test]
    fn absolute_expiry_wins() {
        let s = ok(
            r#"{"access_token":"a","token_type":"bearer","expires_in":3600,"expires_at":2000000.5,"refresh_token":"r","scope":"x y"}"#,
        );
        assert_eq!(
            s,
            TokenFileSummary {
                expires_at: Some(2_000_000.5),
                lifetime_secs: Some(3600),
                has_refresh_token: true,
                scope: Some("x y".to_owned()),
                issuer: None,
                note: None,
                last_failure: None,
                client: None,
            }
        );
    }

    #[test]
    fn expires_in_counts_from_mtime() {
        let s = ok(r#"{"access_token":"a","token_type":"Bearer","expires_in":60}"#);
        assert_eq!(s.expires_at, Some(MTIME + 60.0));
        assert!(!s.has_refresh_token);
    }

    #[test]
    fn no_expiry_at_all() {
        assert_eq!(ok(r#"{"access_token":"a","token_type":"BEARER"}"#).expires_at, None);
    }

    #[test]
    fn milliseconds_are_flagged() {
        let s = ok(r#"{"access_token":"a","token_type":"Bearer","expires_at":1700000000000}"#);
        assert_eq!(s.expires_at, None);
        assert!(s.note.is_some());
    }

    /// Numbers no real token file holds never panic, overflow or mislead.
    #[rstest]
    #[case::huge_expires_at(r#""expires_at":1e20"#, None, None, true)]
    #[case::milliseconds(r#""expires_at":1700000000000"#, None, None, true)]
    #[case::negative_expires_at(r#""expires_at":-5"#, Some(0.0), None, false)]
    #[case::huge_expires_in(r#""expires_in":1e20"#, Some(MTIME + MAX_LIFETIME_SECS as f64), Some(MAX_LIFETIME_SECS), true)]
    #[case::max_integer_expires_in(
        r#""expires_in":18446744073709551615"#,
        Some(MTIME + MAX_LIFETIME_SECS as f64),
        Some(MAX_LIFETIME_SECS),
        true
    )]
    #[case::negative_expires_in(r#""expires_in":-60"#, None, None, true)]
    #[case::string_expires_in(r#""expires_in":"3600""#, Some(MTIME + 3600.0), Some(3600), false)]
    #[case::fractional_expires_in(r#""expires_in":59.9"#, Some(MTIME + 59.0), Some(59), false)]
    fn odd_numbers(
        #[case] field: &str,
        #[case] expires_at: Option<f64>,
        #[case] lifetime: Option<u64>,
        #[case] noted: bool,
    ) {
        let s = ok(&format!(r#"{{"access_token":"a","token_type":"Bearer",{field}}}"#));
        assert_eq!((s.expires_at, s.lifetime_secs, s.note.is_some()), (expires_at, lifetime, noted), "{s:?}");
    }

    #[rstest]
    #[case("{", "not valid JSON")]
    #[case("[]", "not a JSON object")]
    #[case(r#"{"token_type":"Bearer"}"#, "no `access_token` string")]
    #[case(r#"{"access_token":"a","token_type":"DPoP"}"#, "`token_type` is `DPoP`, the agent accepts only Bearer")]
    #[case(r#"{"access_token":"a"}"#, "`token_type` must be \"Bearer\"")]
    #[case(
        r#"{"access_token":"a","token_type":"Bearer","expires_at":"2026-01-01T00:00:00Z"}"#,
        "`expires_at` must be a number of seconds (the agent cannot load a string)"
    )]
    #[case(r#"{"access_token":"a","token_type":"Bearer","refresh_token":5}"#, "`refresh_token` must be a string")]
    fn corrupt(#[case] json: &str, #[case] reason: &str) {
        assert_eq!(summarize(json.as_bytes(), MTIME), Err(reason.to_owned()));
    }

    #[test]
    fn errors_do_not_quote_the_secret() {
        let err = summarize(br#"{"access_token":"sk-SECRET-VALUE","token_type":"Bearer",}"#, MTIME);
        assert!(!format!("{err:?}").contains("SECRET"));
    }

    #[test]
    fn reads_real_files() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.json");
        assert_eq!(read_token_file(&path)?, None);
        std::fs::write(&path, r#"{"access_token":"a","token_type":"Bearer","expires_in":10}"#)?;
        let s = read_token_file(&path)?.expect("present");
        let mtime = epoch_secs(std::fs::metadata(&path)?.modified()?);
        assert_eq!(s.expires_at, Some(mtime + 10.0));
        std::fs::write(&path, vec![b' '; (MAX_TOKEN_FILE_BYTES + 1) as usize])?;
        assert!(matches!(read_token_file(&path), Err(TokenFileError::TooLarge { .. })));
        Ok(())
    }
}
