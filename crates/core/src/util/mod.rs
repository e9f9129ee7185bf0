//! Small shared helpers: crash-safe private files, capped reads, text for
//! people (and the gate for server text), and the secret string type.

pub(crate) mod atomic_file;
pub(crate) mod read_capped;
pub(crate) mod secret;
pub(crate) mod text;
pub(crate) mod time;

/// Sets `key` only when there is a value: the SDKs omit absent fields
/// rather than writing `null`.
pub(crate) fn insert_some(
    m: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    value: Option<serde_json::Value>,
) {
    if let Some(v) = value {
        m.insert(key.to_owned(), v);
    }
}
