//! The agent's `<home>/.env`, parsed the way python-dotenv reads it.
//!
//! The agent loads this file with `override=True`, so its values win over the
//! process environment. Supported: `export` prefixes, `#` comments (whole-line,
//! and after whitespace in unquoted values), single quotes (literal), double
//! quotes (escapes, may span lines), and `${VAR}` / `${VAR:-default}` expansion
//! in unquoted and double-quoted values, resolved against earlier lines first,
//! then the environment. Lines that don't parse are skipped, as python-dotenv
//! skips them.
//!
//! Expansion is bounded: each line may refer to the lines before it, so 40
//! lines of `X=${W}${W}` would double 40 times (a terabyte). An expanded
//! value may not exceed [`MAX_VALUE_BYTES`] nor all values together
//! [`MAX_TOTAL_BYTES`]; the file is refused, naming the variable, before the
//! memory is taken. Expanded text is never expanded again, so there is no
//! depth to bound.

use std::collections::HashMap;

/// The longest value a line may expand to (a PEM key or a JSON credential
/// fits many times over).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The most all values of one file may expand to together (the size of the
/// largest config file read).
pub const MAX_TOTAL_BYTES: usize = 4 * 1024 * 1024;

/// Why a `.env` file was refused: a variable expands beyond a bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` (line {line}) expands to more than {limit} bytes{}", if *.total { " together with the lines before it" } else { "" })]
pub struct TooLarge {
    /// The variable being defined.
    pub key: String,
    /// Its 1-based line.
    pub line: usize,
    /// The bound it crossed.
    pub limit: usize,
    /// The bound is [`MAX_TOTAL_BYTES`] (else [`MAX_VALUE_BYTES`]).
    pub total: bool,
}

/// Parses `.env` text into `(key, value)` pairs in file order.
///
/// `env` resolves `${VAR}` references not defined earlier in the file.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>, TooLarge> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut defined: HashMap<String, String> = HashMap::new();
    let mut total = 0usize;
    let mut rest = text;
    let mut line = 1;
    while !rest.is_empty() {
        let (entry, after) = parse_entry(rest);
        let entry_line = line;
        line += rest[..rest.len() - after.len()].matches('\n').count();
        rest = after;
        let Some((key, value, expand)) = entry else { continue };
        let budget = MAX_VALUE_BYTES.min(MAX_TOTAL_BYTES - total);
        let value = if expand {
            expand_refs(&value, &|name| defined.get(name).cloned().or_else(|| env(name)), budget)
        } else {
            (value.len() <= budget).then_some(value)
        };
        let Some(value) = value else {
            let total = budget < MAX_VALUE_BYTES;
            let limit = if total { MAX_TOTAL_BYTES } else { MAX_VALUE_BYTES };
            return Err(TooLarge { key, line: entry_line, limit, total });
        };
        total += value.len();
        defined.insert(key.clone(), value.clone());
        out.push((key, value));
    }
    Ok(out)
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
/// python-dotenv. `None` as soon as the result would exceed `budget` bytes.
fn expand_refs(value: &str, lookup: &dyn Fn(&str) -> Option<String>, budget: usize) -> Option<String> {
    let mut out = String::with_capacity(value.len().min(budget));
    let push = |out: &mut String, piece: &str| (out.len() + piece.len() <= budget).then(|| out.push_str(piece));
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else { break };
        push(&mut out, &rest[..start])?;
        let body = &rest[start + 2..start + 2 + len];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        let resolved = lookup(name).filter(|v| !v.is_empty());
        push(&mut out, resolved.as_deref().unwrap_or_else(|| default.unwrap_or_default()))?;
        rest = &rest[start + 3 + len..];
    }
    push(&mut out, rest)?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn pairs(text: &str) -> Vec<(String, String)> {
        let env = |name: &str| (name == "FROM_ENV").then(|| "env-value".to_owned());
        parse(text, &env).expect("within the bounds")
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

    /// 40 lines doubling the one before: a terabyte if expanded.
    fn bomb(lines: usize) -> String {
        let mut text = "W0=0123456789abcdef\n".to_owned();
        for i in 1..=lines {
            text.push_str(&format!("W{i}=${{W{}}}${{W{}}}\n", i - 1, i - 1));
        }
        text
    }

    #[test]
    fn an_exponential_expansion_is_refused_quickly() {
        let started = std::time::Instant::now();
        let err = parse(&bomb(40), &|_| None).expect_err("refused");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
        // 16 bytes doubled 13 times is 128 KiB: `W13` (line 14) is the first too large.
        assert_eq!(err, TooLarge { key: "W13".to_owned(), line: 14, limit: MAX_VALUE_BYTES, total: false });
        assert_eq!(err.to_string(), "`W13` (line 14) expands to more than 65536 bytes");
    }

    #[test]
    fn many_large_values_are_refused_in_total() {
        // Each value is 32 KiB: 128 of them reach 4 MiB; the 129th crosses it.
        let mut text = format!("BIG={}\n", "x".repeat(32 * 1024));
        for i in 1..200 {
            text.push_str(&format!("# comment\nB{i}=${{BIG}}\n"));
        }
        let err = parse(&text, &|_| None).expect_err("refused");
        assert_eq!(err, TooLarge { key: "B128".to_owned(), line: 257, limit: MAX_TOTAL_BYTES, total: true });
        assert!(err.to_string().ends_with("together with the lines before it"), "{err}");
    }

    #[test]
    fn values_up_to_the_bound_are_kept() {
        let exact = "y".repeat(MAX_VALUE_BYTES / 2);
        let got = pairs(&format!("A={exact}\nB=${{A}}${{A}}\n'Q'='{exact}'\n"));
        assert_eq!(got[1].1.len(), MAX_VALUE_BYTES);
        assert_eq!(got[2], kv("Q", &exact));
    }
}
