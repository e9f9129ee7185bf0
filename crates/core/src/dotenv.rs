//! The agent's `<home>/.env`, parsed the way python-dotenv reads it.
//!
//! The agent loads this file with `override=True`, so its values win over the
//! process environment. Supported: `export` prefixes, `#` comments (whole-line,
//! and after whitespace in unquoted values), single quotes (literal), double
//! quotes (escapes, may span lines), and `${VAR}` / `${VAR:-default}` expansion
//! in unquoted and double-quoted values, resolved against earlier lines first,
//! then the environment. Lines that don't parse are skipped, as python-dotenv
//! skips them.

use std::collections::HashMap;

/// Parses `.env` text into `(key, value)` pairs in file order.
///
/// `env` resolves `${VAR}` references not defined earlier in the file.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut defined: HashMap<String, String> = HashMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (entry, after) = parse_entry(rest);
        rest = after;
        let Some((key, value, expand)) = entry else { continue };
        let value =
            if expand { expand_refs(&value, &|name| defined.get(name).cloned().or_else(|| env(name))) } else { value };
        defined.insert(key.clone(), value.clone());
        out.push((key, value));
    }
    out
}

/// Parses one entry from the start of `input`; returns it (if the line held
/// one) and the remaining input.
fn parse_entry(input: &str) -> (Option<(String, String, bool)>, &str) {
    let (line, after_line) = split_line(input);
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return (None, after_line);
    }
    let body = trimmed.strip_prefix("export ").map_or(trimmed, str::trim_start);
    let Some(eq) = body.find('=') else { return (None, after_line) };
    let key = body[..eq].trim();
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return (None, after_line);
    }
    let key = key.trim_matches(|c| c == '\'' || c == '"').to_owned();
    if key.is_empty() {
        // `""=x`: python-dotenv wants a quoted key to hold something.
        return (None, after_line);
    }
    // The value may span lines when quoted, so continue from the raw input.
    // `body` is a sub-slice of `input`: its offset is the pointer distance.
    let value_start = (body.as_ptr() as usize - input.as_ptr() as usize) + eq + 1;
    let value_input = input[value_start..].trim_start_matches([' ', '\t']);
    match value_input.chars().next() {
        Some(q @ ('\'' | '"')) => match value_input[1..].find(q) {
            Some(_) => {
                let (value, consumed) = read_quoted(&value_input[1..], q);
                let after = &value_input[1 + consumed..];
                let (_, after) = split_line(after);
                (Some((key, value, q == '"')), after)
            }
            None => (None, after_line),
        },
        _ => {
            let (raw, after) = split_line(value_input);
            let value = strip_inline_comment(raw).trim_end().to_owned();
            (Some((key, value, true)), after)
        }
    }
}

/// Reads a quoted value (without the opening quote); returns the value and the
/// bytes consumed including the closing quote.
fn read_quoted(input: &str, quote: char) -> (String, usize) {
    let mut value = String::new();
    let mut chars = input.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return (value, i + c.len_utf8());
        }
        if c == '\\' && quote == '"' {
            if let Some((_, next)) = chars.next() {
                value.push(match next {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => other,
                });
            }
            continue;
        }
        if c == '\\' && quote == '\'' && input[i + 1..].starts_with('\'') {
            value.push('\'');
            chars.next();
            continue;
        }
        value.push(c);
    }
    (value, input.len())
}

fn split_line(input: &str) -> (&str, &str) {
    match input.find('\n') {
        Some(i) => (input[..i].trim_end_matches('\r'), &input[i + 1..]),
        None => (input.trim_end_matches('\r'), ""),
    }
}

fn strip_inline_comment(raw: &str) -> &str {
    let bytes = raw.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && i > 0 && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            return &raw[..i];
        }
    }
    raw
}

/// Expands `${NAME}` and `${NAME:-default}`; unknown names become empty, as in
/// python-dotenv.
fn expand_refs(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else { break };
        out.push_str(&rest[..start]);
        let body = &rest[start + 2..start + 2 + len];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        let resolved = lookup(name).filter(|v| !v.is_empty());
        out.push_str(&resolved.unwrap_or_else(|| default.unwrap_or_default().to_owned()));
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn pairs(text: &str) -> Vec<(String, String)> {
        let env = |name: &str| (name == "FROM_ENV").then(|| "env-value".to_owned());
        parse(text, &env)
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn parses_the_common_forms() {
        let text = "# comment\n\nPLAIN=value\nexport EXPORTED=yes\nSPACED = padded  \n\
                    INLINE=abc # a comment\nHASH=a#b\nSINGLE='lit ${PLAIN} # kept'\n\
                    DOUBLE=\"line\\nnext \\\"q\\\"\"\nEMPTY=\nnovalue\nCRLF=x\r\n";
        assert_eq!(
            pairs(text),
            vec![
                kv("PLAIN", "value"),
                kv("EXPORTED", "yes"),
                kv("SPACED", "padded"),
                kv("INLINE", "abc"),
                kv("HASH", "a#b"),
                kv("SINGLE", "lit ${PLAIN} # kept"),
                kv("DOUBLE", "line\nnext \"q\""),
                kv("EMPTY", ""),
                kv("CRLF", "x"),
            ]
        );
    }

    #[test]
    fn double_quotes_span_lines() {
        assert_eq!(pairs("KEY=\"a\nb\"\nNEXT=1\n"), vec![kv("KEY", "a\nb"), kv("NEXT", "1")]);
    }

    #[test]
    fn a_key_of_only_quotes_is_skipped() {
        // Found by the fuzzer (fuzz/regressions/dotenv): `""` trimmed to an empty key.
        assert_eq!(pairs("\"\"=x\n''=y\n\"=z\nOK=1\n"), vec![kv("OK", "1")]);
    }

    #[test]
    fn expands_from_earlier_lines_then_environment() {
        let text = "A=one\nB=${A}-${FROM_ENV}\nC=\"${MISSING:-fallback}\"\nD=${MISSING}\n";
        assert_eq!(pairs(text), vec![kv("A", "one"), kv("B", "one-env-value"), kv("C", "fallback"), kv("D", ""),]);
    }

    #[test]
    fn unterminated_quote_skips_only_that_line() {
        assert_eq!(pairs("BAD=\"open\nGOOD=1\n"), vec![kv("GOOD", "1")]);
    }
}
