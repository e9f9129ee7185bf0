//! A record as one or more keychain entries.
//!
//! The bytes are deflated and base64-encoded, then cut into pieces of at most
//! `chunk_chars` characters. The first entry (the account itself, the head)
//! holds `mcpv2:<generation>:<count>:<piece 0>`; the other pieces live in
//! entries named after their write, `<account>.<generation>.<i>`, holding
//! `<generation>:<piece i>`. A write puts every new piece under its own new
//! names, then switches the head (one keychain write), then removes the
//! previous generation's pieces. So a write that fails halfway (keychain
//! locked, D-Bus timeout, the process killed) leaves the previous record
//! whole and readable: its head still names its own pieces, which nothing
//! touched. Records of the first format (`mcpv1`, pieces `<account>.<i>`) are
//! still read, and replaced by the next write.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;

use super::VaultError;
use super::backend::SecretBackend;
use crate::util::text::error_text;

/// The current format: pieces under generation-specific names.
const MAGIC: &str = "mcpv2";
/// The first format: pieces under `<account>.<i>`, rewritten in place.
const MAGIC_V1: &str = "mcpv1";
/// A record never needs more pieces than this; more means damage.
const MAX_PIECES: usize = 256;
/// Decompressed records above this are refused.
const MAX_RECORD_BYTES: u64 = 4 * 1024 * 1024;

/// What a record's head says of the record's pieces (piece 0's data aside):
/// enough for a write to replace them without reading the head again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Head {
    /// Written in the first format.
    v1: bool,
    generation: String,
    count: usize,
}

impl Head {
    /// The entry holding piece `i` (1-based; piece 0 is in the head).
    fn piece_account(&self, account: &str, i: usize) -> String {
        if self.v1 { format!("{account}.{i}") } else { piece_account(account, &self.generation, i) }
    }
}

fn piece_account(account: &str, generation: &str, i: usize) -> String {
    format!("{account}.{generation}.{i}")
}

/// The head, and piece 0's data.
fn parse_head(account: &str, value: &str) -> Result<(Head, String), VaultError> {
    let corrupt = |reason: &str| VaultError::Corrupt { account: account.to_owned(), reason: reason.to_owned() };
    let mut parts = value.splitn(4, ':');
    let v1 = match parts.next() {
        Some(MAGIC) => false,
        Some(MAGIC_V1) => true,
        _ => return Err(corrupt("not written by this app (or by a newer version)")),
    };
    let generation = parts.next().ok_or_else(|| corrupt("no generation"))?.to_owned();
    if generation.is_empty() || !generation.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(corrupt("bad generation"));
    }
    let count: usize = parts.next().and_then(|c| c.parse().ok()).ok_or_else(|| corrupt("no piece count"))?;
    if count == 0 || count > MAX_PIECES {
        return Err(corrupt("impossible piece count"));
    }
    let first = parts.next().ok_or_else(|| corrupt("no data"))?.to_owned();
    Ok((Head { v1, generation, count }, first))
}

/// Reads the record's bytes and its head; `None` when there is none.
pub(super) fn read(backend: &dyn SecretBackend, account: &str) -> Result<Option<(Vec<u8>, Head)>, VaultError> {
    // A concurrent writer can switch the head and remove the old pieces
    // between our reads: one retry reads the new generation.
    for attempt in 0..2 {
        let Some(value) = backend.read(account)? else { return Ok(None) };
        let (head, mut encoded) = parse_head(account, &value)?;
        let mut torn = false;
        for i in 1..head.count {
            let piece = backend.read(&head.piece_account(account, i))?;
            match piece.as_deref().and_then(|p| p.split_once(':')) {
                Some((generation, data)) if generation == head.generation => encoded.push_str(data),
                _ => {
                    torn = true;
                    break;
                }
            }
        }
        if !torn {
            return decode(account, &encoded).map(|bytes| Some((bytes, head)));
        }
        if attempt == 0 {
            tracing::debug!(account, "keychain record changed while reading; reading again");
        }
    }
    Err(VaultError::Corrupt { account: account.to_owned(), reason: "pieces missing or from another write".to_owned() })
}

/// The record's bytes when `value`, a head, holds the whole record (one
/// piece); `None` for anything else.
pub(super) fn whole(value: &str) -> Option<Vec<u8>> {
    let (head, first) = parse_head("", value).ok()?;
    (head.count == 1).then(|| decode("", &first).ok()).flatten()
}

fn decode(account: &str, encoded: &str) -> Result<Vec<u8>, VaultError> {
    let corrupt = |reason: &str| VaultError::Corrupt { account: account.to_owned(), reason: reason.to_owned() };
    let compressed = STANDARD_NO_PAD.decode(encoded).map_err(|_| corrupt("not base64"))?;
    let mut bytes = Vec::new();
    DeflateDecoder::new(compressed.as_slice())
        .take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|_| corrupt("does not decompress"))?;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(corrupt("too large"));
    }
    Ok(bytes)
}

/// Writes `bytes` as the record, in pieces of at most `chunk_chars`: new
/// pieces first, the head last, the previous generation removed after.
/// `previous` is the head there now when the caller knows it (`Some(None)`:
/// no record), saving a keychain read; `None` reads it. Returns the new head.
pub(super) fn write(
    backend: &dyn SecretBackend,
    account: &str,
    bytes: &[u8],
    chunk_chars: usize,
    previous: Option<Option<Head>>,
) -> Result<Head, VaultError> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).and_then(|()| encoder.flush()).map_err(|e| VaultError::Backend(error_text(&e)))?;
    let compressed = encoder.finish().map_err(|e| VaultError::Backend(error_text(&e)))?;
    let encoded = STANDARD_NO_PAD.encode(compressed);
    let previous = match previous {
        Some(known) => known,
        None => backend.read(account)?.and_then(|v| parse_head(account, &v).ok()).map(|(head, _)| head),
    };
    let mut generation = generation();
    while previous.as_ref().is_some_and(|p| p.generation == generation) {
        generation = self::generation();
    }
    // The head carries its prefix too; leave room for it.
    let head_room = chunk_chars.saturating_sub(MAGIC.len() + generation.len() + 8).max(8);
    let piece_room = chunk_chars.saturating_sub(generation.len() + 1).max(8);
    let (first, rest) = encoded.split_at(head_room.min(encoded.len()));
    let pieces: Vec<&str> =
        rest.as_bytes().chunks(piece_room).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    let count = 1 + pieces.len();
    if count > MAX_PIECES {
        return Err(VaultError::Backend("the record is too large for the keychain".to_owned()));
    }
    for (i, piece) in pieces.iter().enumerate() {
        if let Err(e) = backend.write(&piece_account(account, &generation, i + 1), &format!("{generation}:{piece}")) {
            // The previous record is untouched; take back what this write left.
            for j in 1..=i {
                let _ = backend.delete(&piece_account(account, &generation, j));
            }
            return Err(e.into());
        }
    }
    if let Err(e) = backend.write(account, &format!("{MAGIC}:{generation}:{count}:{first}")) {
        for j in 1..count {
            let _ = backend.delete(&piece_account(account, &generation, j));
        }
        return Err(e.into());
    }
    if let Some(previous) = previous {
        // The new record is whole; a piece left here is only clutter.
        for i in 1..previous.count {
            if let Err(e) = backend.delete(&previous.piece_account(account, i)) {
                tracing::debug!(account, error = %e, "cannot remove a piece of the previous record");
            }
        }
    }
    Ok(Head { v1: false, generation, count })
}

/// Deletes the record and its pieces (the head first, so nothing half-deleted
/// is ever read as a record).
pub(super) fn delete(backend: &dyn SecretBackend, account: &str) -> Result<(), VaultError> {
    let head = backend.read(account)?.and_then(|v| parse_head(account, &v).ok()).map(|(head, _)| head);
    backend.delete(account)?;
    if let Some(head) = head {
        for i in 1..head.count {
            backend.delete(&head.piece_account(account, i))?;
        }
    }
    Ok(())
}

/// A short value unique to one write (not a secret).
fn generation() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("{:08x}", h.finish() as u32)
}
