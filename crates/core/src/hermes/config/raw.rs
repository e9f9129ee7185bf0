//! Stage one: the YAML document, parsed leniently.
//!
//! Only the top level is interpreted here: `mcp_servers` must be a mapping of
//! names to anything; every other key is skipped unread. Entries stay generic
//! values (with their line) so stage two can judge each one alone.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

use super::error::DocumentError;

/// One entry of `mcp_servers` before validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawServer {
    pub name: String,
    /// 1-based line of the entry's name; 0 when unknown.
    pub line: u64,
    pub value: Value,
}

/// Parses the document and returns the `mcp_servers` entries in file order.
pub(crate) fn parse_document(text: &str) -> Result<Vec<RawServer>, DocumentError> {
    if is_blank_yaml(text) {
        return Ok(Vec::new());
    }
    let doc: Document = serde_saphyr::from_str(text).map_err(|e| syntax_error(&e))?;
    match doc {
        Document::Mapping(None) => Ok(Vec::new()),
        Document::Mapping(Some(servers)) => match servers.value {
            Servers::Entries(entries) => Ok(entries
                .into_iter()
                .map(|(name, value)| RawServer { line: name.referenced.line(), name: name.value, value })
                .collect()),
            Servers::Empty => Ok(Vec::new()),
            Servers::Other(kind) => Err(DocumentError::Shape {
                line: servers.referenced.line(),
                message: format!("`mcp_servers` must be a mapping of server names to settings, found {kind}"),
            }),
        },
        Document::Other(kind) => Err(DocumentError::Shape {
            line: 1,
            message: format!("the top level must be a mapping (with an `mcp_servers` key), found {kind}"),
        }),
    }
}

/// Empty files and files of only comments are valid and list nothing.
fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---" || l == "..."
    })
}

fn syntax_error(e: &serde_saphyr::Error) -> DocumentError {
    let plain = e.without_snippet();
    let (line, column) = plain.location().map_or((0, 0), |l| (l.line(), l.column()));
    let message = plain.to_string();
    // The plain rendering ends with " at line L column C"; the path:line:col
    // prefix we add already says where.
    let message = match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    };
    DocumentError::Syntax { line, column, message }
}

enum Document {
    Mapping(Option<Spanned<Servers>>),
    Other(&'static str),
}

enum Servers {
    Entries(Vec<(Spanned<String>, Value)>),
    Empty,
    Other(&'static str),
}

/// Accepts any YAML node without failing, and names what it was.
macro_rules! other_kinds {
    ($ty:ident) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$ty, E> {
            Ok($ty::Other("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$ty, E> {
            Ok($ty::Other("a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$ty, E> {
            Ok($ty::Other("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$ty, E> {
            Ok($ty::Other("a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$ty, E> {
            Ok($ty::Other("a string"))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$ty, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($ty::Other("a list"))
        }
    };
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Document;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a YAML mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Document, E> {
                Ok(Document::Mapping(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Document, E> {
                Ok(Document::Mapping(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
                let mut servers = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "mcp_servers" {
                        servers = Some(map.next_value::<Spanned<Servers>>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Document::Mapping(servers))
            }
            other_kinds!(Document);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Servers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Servers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping of server names to settings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Servers, E> {
                Ok(Servers::Empty)
            }
            fn visit_none<E: de::Error>(self) -> Result<Servers, E> {
                Ok(Servers::Empty)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Servers, A::Error> {
                let mut entries: Vec<(Spanned<String>, Value)> = Vec::new();
                while let Some(name) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<Value>()?;
                    // YAML forbids duplicate keys; like PyYAML, the last one wins.
                    entries.retain(|(n, _)| n.value != name.value);
                    entries.push((name, value));
                }
                Ok(Servers::Entries(entries))
            }
            other_kinds!(Servers);
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn names(text: &str) -> Vec<(String, u64)> {
        match parse_document(text) {
            Ok(servers) => servers.into_iter().map(|s| (s.name, s.line)).collect(),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }

    #[test]
    fn keeps_file_order_and_lines_and_ignores_other_keys() {
        let text = "model: x\nother:\n  - 1\nmcp_servers:\n  zeta:\n    url: https://z\n  alpha:\n    command: npx\n";
        assert_eq!(names(text), vec![("zeta".to_owned(), 5), ("alpha".to_owned(), 7)]);
    }

    #[test]
    fn values_stay_generic() -> Result<(), DocumentError> {
        let servers = parse_document(
            "mcp_servers:\n  a:\n    url: https://a\n    oauth: {client_id: c, redirect_port: 8080}\n    weird: [1, true, null]\n",
        )?;
        assert_eq!(
            servers[0].value,
            json!({"url": "https://a", "oauth": {"client_id": "c", "redirect_port": 8080}, "weird": [1, true, null]})
        );
        Ok(())
    }

    #[test]
    fn empty_forms_list_nothing() {
        for text in ["", "# only a comment\n", "model: x\n", "mcp_servers:\n", "mcp_servers: {}\n", "---\n"] {
            assert_eq!(names(text), vec![], "for {text:?}");
        }
    }

    #[test]
    fn merge_keys_and_anchors_work() {
        let text = "base: &b\n  url: https://x\nmcp_servers:\n  a:\n    <<: *b\n    auth: oauth\n";
        let servers = parse_document(text).unwrap_or_default();
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].value, json!({"url": "https://x", "auth": "oauth"}));
    }

    #[test]
    fn wrong_shapes_are_errors_with_a_line() {
        assert_eq!(
            parse_document("mcp_servers:\n  - a\n  - b\n"),
            Err(DocumentError::Shape {
                line: 2,
                message: "`mcp_servers` must be a mapping of server names to settings, found a list".to_owned()
            })
        );
        assert!(matches!(parse_document("- a\n"), Err(DocumentError::Shape { line: 1, .. })));
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse_document("mcp_servers:\n  a:\n    url: \"unterminated\n  b: {\n");
        match err {
            Err(DocumentError::Syntax { line, column, message }) => {
                assert!(line >= 3, "line {line}");
                assert!(column > 0, "column {column}");
                assert!(!message.is_empty());
                assert!(!message.contains("at line"), "{message}");
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
        match parse_document("mcp_servers:\n  a:\n    url: x\n   bad: y\n") {
            Err(DocumentError::Syntax { line, .. }) => assert_eq!(line, 4),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }
}
