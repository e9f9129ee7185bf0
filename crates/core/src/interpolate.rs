//! `${VAR}` and `${env:VAR}` expansion in config values, as the agent does it.
//!
//! The agent (`tools/mcp_tool.py::_interpolate_env_vars`) matches
//! `\$\{([^}]+)\}`, trims the body, drops a leading `env:`, and looks the name
//! up in its environment, which includes `<home>/.env` (that file wins). An
//! unset *or empty* variable leaves the placeholder as written. Only string
//! values are expanded, recursively through maps and lists; keys never are.

use std::collections::HashMap;
use std::ffi::OsString;

use serde_json::Value;

/// The variables a home's config is expanded with: the process environment
/// overlaid with the home's `.env`.
#[derive(Clone, Default)]
pub struct EnvScope {
    vars: HashMap<String, String>,
}

impl std::fmt::Debug for EnvScope {
    // Values are often secrets (API keys): show only how many there are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvScope").field("vars", &self.vars.len()).finish_non_exhaustive()
    }
}

impl EnvScope {
    /// The process environment (non-UTF-8 entries are skipped) plus `dotenv`.
    pub fn from_process_and(dotenv: Vec<(String, String)>) -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v): (OsString, OsString)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::from_pairs(vars.chain(dotenv))
    }

    /// A scope from explicit pairs; later pairs win.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self { vars: pairs.into_iter().collect() }
    }

    /// The value of `name` when it is set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Expands every string inside `value`.
    pub fn expand_value(&self, value: &mut Value) {
        match value {
            Value::String(s) if s.contains("${") => {
                *s = self.expand_str(s);
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.expand_value(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.expand_value(v)),
            _ => {}
        }
    }

    /// Expands the placeholders in one string.
    pub fn expand_str(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some((before, body, after)) = next_placeholder(rest) {
            out.push_str(before);
            match self.get(ref_name(body)) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("${");
                    out.push_str(body);
                    out.push('}');
                }
            }
            rest = after;
        }
        out.push_str(rest);
        out
    }
}

/// The variable names a string refers to, in order, without duplicates.
pub fn referenced_vars(s: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = s;
    while let Some((_, body, after)) = next_placeholder(rest) {
        let name = ref_name(body).to_owned();
        if !names.contains(&name) {
            names.push(name);
        }
        rest = after;
    }
    names
}

/// Splits at the next `${body}` (body non-empty, without `}`).
fn next_placeholder(s: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    loop {
        let start = from + s[from..].find("${")?;
        let body_start = start + 2;
        let len = s[body_start..].find('}')?;
        if len > 0 {
            return Some((&s[..start], &s[body_start..body_start + len], &s[body_start + len + 1..]));
        }
        from = start + 1;
    }
}

/// `" env:NAME "` → `NAME`.
fn ref_name(body: &str) -> &str {
    let body = body.trim();
    body.strip_prefix("env:").map_or(body, str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use rstest::rstest;
    use serde_json::json;

    fn scope() -> EnvScope {
        EnvScope::from_pairs([
            ("TOKEN".to_owned(), "t0k".to_owned()),
            ("EMPTY".to_owned(), String::new()),
            ("MY-VAR.x".to_owned(), "dotted".to_owned()),
        ])
    }

    #[rstest]
    #[case("Bearer ${TOKEN}", "Bearer t0k")]
    #[case("${env:TOKEN}", "t0k")]
    #[case("${ env: TOKEN }", "t0k")]
    #[case("${MISSING}", "${MISSING}")]
    #[case("${EMPTY}", "${EMPTY}")]
    #[case("${MY-VAR.x}", "dotted")]
    #[case("${}${TOKEN}", "${}t0k")]
    #[case("a${TOKEN}b${TOKEN}c", "at0kbt0kc")]
    #[case("${TOKEN", "${TOKEN")]
    #[case("$TOKEN", "$TOKEN")]
    fn expands_strings(#[case] input: &str, #[case] want: &str) {
        assert_eq!(scope().expand_str(input), want);
    }

    #[test]
    fn expands_recursively_but_not_keys() {
        let mut v = json!({"${TOKEN}": ["${TOKEN}", 1, true, {"deep": "${env:TOKEN}"}], "n": null});
        scope().expand_value(&mut v);
        assert_eq!(v, json!({"${TOKEN}": ["t0k", 1, true, {"deep": "t0k"}], "n": null}));
    }

    #[test]
    fn lists_referenced_names() {
        assert_eq!(referenced_vars("${A} ${env:B} ${A}"), vec!["A".to_owned(), "B".to_owned()]);
    }

    #[test]
    fn debug_hides_values() {
        assert!(!format!("{:?}", scope()).contains("t0k"));
    }
}
