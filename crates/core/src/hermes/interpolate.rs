//! `${VAR}` and `${env:VAR}` expansion in config values, as the agent does it.
//!
//! The agent (`tools/mcp_tool.py::_interpolate_env_vars`, in the newer line
//! `tools/mcp_tool_config.py`) matches `\$\{([^}]+)\}`, trims the body, drops a
//! leading `env:`, and looks the name up in its environment, which includes
//! `<home>/.env` (that file wins). An unset *or empty* variable leaves the
//! placeholder as written. Only string values are expanded, recursively
//! through maps and lists; keys never are.
//!
//! The newer line (v0.20+) first resolves Cursor-style context variables by
//! the trimmed body, case-sensitively and before any environment lookup:
//! `${userHome}` (the user's home), `${workspaceFolder}` (an absolute
//! `$TERMINAL_CWD`, else the working directory), `${workspaceFolderBasename}`
//! (its last component), `${pathSeparator}` and `${/}` (the OS path
//! separator). `${env:userHome}` is an environment lookup, not a context
//! variable. Older agents leave these placeholders as written; the agent
//! then fails the same way on an unresolved URL, so resolving them is safe.

use std::collections::HashMap;
use std::ffi::OsString;

use serde_json::Value;

/// The variables a home's config is expanded with: the process environment
/// overlaid with the home's `.env`.
#[derive(Clone, Default)]
pub struct EnvScope {
    vars: HashMap<String, String>,
    /// The newer agent's context variables, by name (see the module docs).
    context: HashMap<String, String>,
}

impl std::fmt::Debug for EnvScope {
    // Values are often secrets (API keys): show only how many there are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvScope").field("vars", &self.vars.len()).finish_non_exhaustive()
    }
}

/// `$TERMINAL_CWD` values the agent does not take as a workspace anchor.
const TERMINAL_CWD_SENTINELS: [&str; 5] = ["", ".", "./", "auto", "cwd"];

/// The context variables of the newer agent, from the process's view of
/// the world: `home` (the user's home), `terminal_cwd` (`$TERMINAL_CWD`) and
/// `cwd` (the working directory). Pure, so every rule is table-tested.
pub(crate) fn context_vars(home: Option<&str>, terminal_cwd: Option<&str>, cwd: Option<&str>) -> Vec<(String, String)> {
    let separator = std::path::MAIN_SEPARATOR.to_string();
    let mut vars = vec![("pathSeparator".to_owned(), separator.clone()), ("/".to_owned(), separator)];
    if let Some(home) = home {
        vars.push(("userHome".to_owned(), home.to_owned()));
    }
    // As `_configured_terminal_cwd`: trimmed, `~` expanded, sentinels and
    // relative paths refused; then the working directory.
    let anchor = terminal_cwd
        .map(str::trim)
        .filter(|raw| !TERMINAL_CWD_SENTINELS.contains(&raw.to_lowercase().as_str()))
        .map(|raw| match (raw.strip_prefix('~'), home) {
            (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with(['/', '\\']) => format!("{home}{rest}"),
            _ => raw.to_owned(),
        })
        .filter(|p| std::path::Path::new(p).is_absolute());
    if let Some(root) = anchor.or_else(|| cwd.map(str::to_owned)) {
        let trimmed = root.trim_end_matches(['/', '\\']);
        let base = trimmed.rsplit(['/', '\\']).next().filter(|b| !b.is_empty()).unwrap_or(&root).to_owned();
        vars.push(("workspaceFolder".to_owned(), root.clone()));
        vars.push(("workspaceFolderBasename".to_owned(), base));
    }
    vars
}

impl EnvScope {
    /// The process environment (non-UTF-8 entries are skipped) plus `dotenv`.
    pub fn from_process_and(dotenv: Vec<(String, String)>) -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v): (OsString, OsString)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let home = dirs::home_dir().and_then(|h| h.into_os_string().into_string().ok());
        let terminal_cwd = std::env::var("TERMINAL_CWD").ok();
        let cwd = std::env::current_dir().ok().and_then(|d| d.into_os_string().into_string().ok());
        Self::from_pairs(vars.chain(dotenv)).with_context(context_vars(
            home.as_deref(),
            terminal_cwd.as_deref(),
            cwd.as_deref(),
        ))
    }

    /// A scope from explicit pairs; later pairs win. No context variables.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self { vars: pairs.into_iter().collect(), context: HashMap::new() }
    }

    /// The same scope with these context variables (see the module docs).
    pub fn with_context(mut self, context: impl IntoIterator<Item = (String, String)>) -> Self {
        self.context = context.into_iter().collect();
        self
    }

    /// Whether the body of a `${...}` resolves: a context variable, or a set variable.
    pub fn resolves(&self, body: &str) -> bool {
        self.lookup(body).is_some()
    }

    /// What a placeholder body resolves to: a context variable by its
    /// trimmed body first, then the environment by [`ref_name`].
    fn lookup(&self, body: &str) -> Option<&str> {
        self.context.get(body.trim()).map(String::as_str).or_else(|| self.get(ref_name(body)))
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
            match self.lookup(body) {
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

    fn with_context() -> EnvScope {
        scope().with_context(context_vars(Some("/home/me"), None, Some("/work/proj/")))
    }

    #[rstest]
    #[case("${userHome}/.cache", "/home/me/.cache")]
    #[case("${ userHome }", "/home/me")]
    #[case("${workspaceFolder}", "/work/proj/")]
    #[case("${workspaceFolderBasename}", "proj")]
    #[case("a${pathSeparator}b${/}c", "a/b/c")]
    #[case("${USERHOME}", "${USERHOME}")]
    #[case("${env:userHome}", "${env:userHome}")]
    #[case("${TOKEN}${userHome}", "t0k/home/me")]
    fn expands_context_variables(#[case] input: &str, #[case] want: &str) {
        assert_eq!(with_context().expand_str(input), want);
    }

    #[test]
    fn context_variables_win_over_the_environment() {
        let scope = EnvScope::from_pairs([("userHome".to_owned(), "env-value".to_owned())]).with_context(context_vars(
            Some("/home/me"),
            None,
            None,
        ));
        assert_eq!(scope.expand_str("${userHome} ${env:userHome}"), "/home/me env-value");
    }

    #[rstest]
    #[case(Some("/srv/ws"), Some("/cwd"), "/srv/ws", "ws")]
    #[case(Some("  /srv/ws/  "), Some("/cwd"), "/srv/ws/", "ws")]
    #[case(Some("~/ws"), Some("/cwd"), "/home/me/ws", "ws")]
    #[case(Some("auto"), Some("/cwd/x"), "/cwd/x", "x")]
    #[case(Some("CWD"), Some("/cwd/x"), "/cwd/x", "x")]
    #[case(Some("."), Some("/cwd/x"), "/cwd/x", "x")]
    #[case(Some("relative/dir"), Some("/cwd/x"), "/cwd/x", "x")]
    #[case(None, Some("/"), "/", "/")]
    fn workspace_folder_as_the_agent_finds_it(
        #[case] terminal_cwd: Option<&str>,
        #[case] cwd: Option<&str>,
        #[case] folder: &str,
        #[case] basename: &str,
    ) {
        let vars: HashMap<String, String> = context_vars(Some("/home/me"), terminal_cwd, cwd).into_iter().collect();
        assert_eq!(vars.get("workspaceFolder").map(String::as_str), Some(folder));
        assert_eq!(vars.get("workspaceFolderBasename").map(String::as_str), Some(basename));
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
