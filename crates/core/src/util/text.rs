//! Small text helpers for what people read (menus, pages, messages), and the
//! one gate for text a server wrote.
//!
//! Text from a server (`error_description`, registration error bodies, the
//! device flow's `user_code` and verification URL) ends up on a terminal, in
//! a notification, in the log and in the vault's `last_error`. A hostile
//! server could repaint the terminal (ANSI CSI), plant a clickable link that
//! says one thing and goes elsewhere (OSC 8), overwrite the line (`\r`), flip
//! the reading order (bidi overrides) or flood every one of those places.
//! [`server_text`] is applied once, where the oauth code parses the server's
//! answer, so nothing downstream needs to think about it.

/// Longest server text we pass on, in characters.
pub(crate) const MAX_SERVER_TEXT: usize = 300;

/// `text` cut to at most `max` characters, ending in "…" when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max.saturating_sub(1)).collect::<String>())
    }
}

/// Server-supplied `text` made safe to show: escape sequences (CSI, OSC, DCS
/// and the other string controls, in their 7-bit `ESC` and 8-bit C1 forms)
/// removed whole, other C0/C1 controls and `DEL` removed, line breaks and tabs
/// turned into single spaces, bidi and invisible formatting characters
/// removed, and the result cut to [`MAX_SERVER_TEXT`] characters.
pub(crate) fn server_text(text: &str) -> String {
    server_text_max(text, MAX_SERVER_TEXT)
}

/// [`server_text`] with another length cap.
pub(crate) fn server_text_max(text: &str, max: usize) -> String {
    let mut out = String::new();
    // Never look at more than needed to fill `max` (plus what escapes eat):
    // a 1 MB body costs one pass, not a copy.
    let mut chars = text.chars().peekable();
    let mut kept = 0usize;
    while let Some(c) = chars.next() {
        if kept > max {
            break;
        }
        let escape = match c {
            '\u{1b}' => match chars.peek().copied() {
                Some('[') => {
                    chars.next();
                    Some(Escape::Csi)
                }
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    chars.next();
                    Some(Escape::String)
                }
                // A two-character escape (`ESC c`, `ESC 7`, ...).
                Some(_) => {
                    chars.next();
                    None
                }
                None => None,
            },
            '\u{9b}' => Some(Escape::Csi),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => Some(Escape::String),
            _ => {
                if let Some(shown) = shown_as(c)
                    && (shown != ' ' || !out.ends_with(' '))
                {
                    out.push(shown);
                    kept += 1;
                }
                continue;
            }
        };
        match escape {
            // Parameters and intermediates, up to the final byte 0x40–0x7E.
            Some(Escape::Csi) => {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) || !('\u{20}'..='\u{3f}').contains(&c) {
                        break;
                    }
                }
            }
            // Up to BEL or the string terminator (`ESC \` or C1 ST).
            Some(Escape::String) => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || c == '\u{9c}' {
                        break;
                    }
                    if c == '\u{1b}' {
                        if chars.peek() == Some(&'\\') {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            None => {}
        }
    }
    shorten(out.trim(), max)
}

enum Escape {
    Csi,
    String,
}

/// How one character outside an escape sequence is shown: `None` drops it.
fn shown_as(c: char) -> Option<char> {
    match c {
        '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}' => Some(' '),
        c if c.is_control() => None,
        // Bidi embeddings, overrides, isolates and marks; zero-width characters.
        '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}' => None,
        c => Some(c),
    }
}

/// An error and every cause under it, each printed once, joined by `: `
/// ("cannot write P: Permission denied (os error 13)"). Our errors leave
/// their `#[source]` out of their own message, so plain `to_string()` would
/// drop the cause; use this wherever an error becomes text for people (a
/// status note, the window, a notification). `{:#}` on an `anyhow::Error`
/// prints the same.
pub fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_by_characters() {
        assert_eq!(shorten("héllo", 5), "héllo");
        assert_eq!(shorten("héllo!", 5), "héll…");
        assert_eq!(shorten("", 0), "");
    }

    #[test]
    fn server_text_is_made_safe() {
        let cases: &[(&str, &str, &str)] = &[
            ("plain", "client is not allowed", "client is not allowed"),
            ("unicode kept", "clé refusée — 認証", "clé refusée — 認証"),
            ("CSI clear screen", "a\u{1b}[2Jb", "ab"),
            ("CSI colour", "\u{1b}[1;31mred\u{1b}[0m", "red"),
            ("OSC 8 link, BEL", "\u{1b}]8;;https://evil.example\u{7}click\u{1b}]8;;\u{7}", "click"),
            ("OSC 8 link, ST", "\u{1b}]8;;https://evil.example\u{1b}\\click\u{1b}]8;;\u{1b}\\", "click"),
            ("OSC title", "\u{1b}]0;owned\u{7}x", "x"),
            ("DCS", "\u{1b}Pq#0;2;0;0;0\u{1b}\\x", "x"),
            ("C1 CSI", "a\u{9b}2Jb", "ab"),
            ("C1 OSC", "a\u{9d}8;;u\u{9c}b", "ab"),
            ("two-char escape", "a\u{1b}cb", "ab"),
            ("lone ESC at end", "ab\u{1b}", "ab"),
            ("carriage return", "ok\rFAKE", "ok FAKE"),
            ("newlines and tabs collapse", "a\n\n\tb", "a b"),
            ("other C0 and DEL", "a\u{0}\u{7}\u{8}\u{7f}b", "ab"),
            ("C1 controls", "a\u{85}b\u{9a}c", "a bc"),
            ("RLO override", "invoice\u{202e}fdp.exe", "invoicefdp.exe"),
            ("isolates and marks", "\u{2066}a\u{2069}\u{200f}b\u{061c}", "ab"),
            ("zero width", "a\u{200b}\u{feff}b", "ab"),
            ("unterminated OSC eats the rest", "a\u{1b}]8;;http://x", "a"),
            ("trimmed", "  \r\n x \n", "x"),
        ];
        for (name, input, want) in cases {
            assert_eq!(server_text(input), *want, "{name}");
        }
    }

    #[test]
    fn server_text_is_capped() {
        let long = "x".repeat(10 * 1024);
        let got = server_text(&long);
        assert_eq!(got.chars().count(), MAX_SERVER_TEXT);
        assert!(got.ends_with('…'));
        assert_eq!(server_text_max("abcdef", 4), "abc…");
        assert_eq!(server_text_max("abcd", 4), "abcd");
    }

    #[test]
    fn an_error_prints_each_cause_once() {
        let error = crate::hermes::files::AgentFilesError::Write {
            path: "/p/x.json".into(),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied"),
        };
        assert_eq!(error_text(&error), "cannot write /p/x.json: Permission denied");
        assert_eq!(error.to_string(), "cannot write /p/x.json");
    }
}
