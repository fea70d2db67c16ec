//! format-spec/09-pack.md — a packfile: header, blobs, then the sealed table of contents and its
//! length. The TOC makes every pack self-describing, so the index can be rebuilt from packs alone.

use super::blob::{BlobType, MIN_STORED_LEN};
use super::header::{self, FileKind, Sealing, HEADER_LEN};
use super::index::IndexBlob;
use super::{Reader, SEAL_OVERHEAD};
use crate::error::{Error, Result};
use crate::id::Id;

/// Bytes of one TOC entry.
pub const TOC_ENTRY_LEN: usize = 41;
/// Bytes of the trailer (the TOC length).
pub const TRAILER_LEN: usize = 4;
/// Largest pack a reader accepts (offsets are 32-bit).
pub const MAX_PACK_LEN: u64 = u32::MAX as u64;
/// Bytes of the smallest sealed TOC: an empty TOC (its 4-byte count) in a sealed box.
pub const MIN_TOC_LEN: usize = SEAL_OVERHEAD + 4;
/// Smallest pack a reader accepts: header, the smallest sealed TOC and the trailer (56 bytes,
/// a valid pack with no blobs).
pub const MIN_PACK_LEN: u64 = (HEADER_LEN + MIN_TOC_LEN + TRAILER_LEN) as u64;

/// One TOC entry: a blob in this pack, in storage order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TocEntry {
    /// Data or tree.
    pub blob_type: BlobType,
    /// Blob ID.
    pub id: Id,
    /// Bytes the blob envelope occupies in the pack.
    pub stored_len: u32,
    /// Bytes of the blob's uncompressed plaintext.
    pub plain_len: u32,
}

/// Encode a TOC plaintext.
pub fn encode_toc(entries: &[TocEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + entries.len() * TOC_ENTRY_LEN);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.push(e.blob_type as u8);
        out.extend_from_slice(&e.id.0);
        out.extend_from_slice(&e.stored_len.to_le_bytes());
        out.extend_from_slice(&e.plain_len.to_le_bytes());
    }
    out
}

/// Decode a TOC plaintext; `blob_area` is the number of bytes between header and TOC, which the
/// stored lengths must exactly fill.
pub fn decode_toc(toc: &[u8], blob_area: u64, what: &str) -> Result<Vec<TocEntry>> {
    let mut r = Reader::new(toc, what);
    let count = r.u32()? as usize;
    if r.remaining() != count.saturating_mul(TOC_ENTRY_LEN) {
        return Err(Error::integrity(what, "TOC length does not match its entry count"));
    }
    let mut entries = Vec::with_capacity(count);
    let mut total = 0u64;
    for _ in 0..count {
        let blob_type = BlobType::from_u8(r.u8()?).map_err(|_| Error::integrity(what, "TOC: unknown blob type"))?;
        let id = Id(r.array()?);
        let stored_len = r.u32()?;
        let plain_len = r.u32()?;
        if stored_len < MIN_STORED_LEN {
            return Err(Error::integrity(what, format!("TOC: blob {id} stored length {stored_len} too small")));
        }
        total += stored_len as u64;
        entries.push(TocEntry { blob_type, id, stored_len, plain_len });
    }
    if total != blob_area {
        return Err(Error::integrity(what, format!("TOC covers {total} bytes, blob area is {blob_area}")));
    }
    Ok(entries)
}

/// The index entries of a pack's blobs: TOC entries with their offsets, which are implicit
/// (the first blob starts right after the header, each next one where the previous ends).
pub fn locate_blobs(entries: &[TocEntry]) -> Vec<IndexBlob> {
    locate_blobs_from(entries, HEADER_LEN as u32)
}

/// [`locate_blobs`] for a pack whose first blob starts at `first` (40 in a pack sealed to the
/// read key, format-spec/24 §24.5).
pub fn locate_blobs_from(entries: &[TocEntry], first: u32) -> Vec<IndexBlob> {
    let mut offset = first;
    entries
        .iter()
        .map(|e| {
            let b = IndexBlob {
                blob_type: e.blob_type,
                id: e.id,
                offset,
                stored_len: e.stored_len,
                plain_len: e.plain_len,
            };
            offset = offset.wrapping_add(e.stored_len);
            b
        })
        .collect()
}

/// Locate the sealed TOC in a pack of `pack_len` bytes from its last four bytes.
/// Returns (offset of the sealed TOC, its length).
pub fn locate_toc(pack_len: u64, trailer: [u8; TRAILER_LEN], what: &str) -> Result<(u64, u32)> {
    locate_toc_after(pack_len, trailer, HEADER_LEN as u64, what)
}

/// [`locate_toc`] for a pack whose blob area starts at `first` (8, or 40 in a pack sealed to
/// the read key): the pack is at least `first + 48` bytes, and the TOC lies after `first`.
pub fn locate_toc_after(pack_len: u64, trailer: [u8; TRAILER_LEN], first: u64, what: &str) -> Result<(u64, u32)> {
    let toc_len = u32::from_le_bytes(trailer);
    let min = first + TRAILER_LEN as u64;
    if !(min + MIN_TOC_LEN as u64..=MAX_PACK_LEN).contains(&pack_len) {
        return Err(Error::integrity(what, format!("impossible pack length {pack_len}")));
    }
    if (toc_len as usize) < MIN_TOC_LEN || toc_len as u64 > pack_len - min {
        return Err(Error::integrity(what, format!("TOC length {toc_len} out of range")));
    }
    Ok((pack_len - TRAILER_LEN as u64 - toc_len as u64, toc_len))
}

/// Check a pack's header.
pub fn check_header(bytes: &[u8], what: &str) -> Result<()> {
    header::check(bytes, FileKind::Pack, what)
}

/// Check a pack's header in a repository with or without roles (format-spec/24 §24.5) and
/// return how it is sealed, with its ephemeral key when it is sealed to the read key (`bytes`
/// then has to hold the first 40 bytes of the pack).
pub fn check_header_sealing(bytes: &[u8], roles: bool, what: &str) -> Result<(Sealing, Option<[u8; 32]>)> {
    let allowed: &[u8] = if roles { &[0, 1] } else { &[0] };
    let sealing = Sealing::from_byte(header::check_variant(bytes, FileKind::Pack, allowed, what)?);
    if sealing == Sealing::Full {
        return Ok((sealing, None));
    }
    let e = bytes.get(HEADER_LEN..HEADER_LEN + 32).ok_or_else(|| Error::integrity(what, "truncated"))?;
    Ok((sealing, Some(e.try_into().expect("32 bytes"))))
}

/// Where the first blob of a pack sealed as `ephemeral` says starts: 8, or 40 after an
/// ephemeral key.
pub fn first_blob_at(ephemeral: Option<&[u8; 32]>) -> u32 {
    HEADER_LEN as u32 + if ephemeral.is_some() { 32 } else { 0 }
}

/// The pack header for packs sealed as `ephemeral` says.
pub fn header_for(ephemeral: Option<&[u8; 32]>) -> [u8; HEADER_LEN] {
    header::encode_sealed(FileKind::Pack, if ephemeral.is_some() { Sealing::Reader } else { Sealing::Full })
}

/// Associated data of the TOC of a pack sealed as `ephemeral` says: its header and the
/// repository ID.
pub fn toc_ad_for(ephemeral: Option<&[u8; 32]>, repo_id: &[u8; 32]) -> Vec<u8> {
    header::file_ad(&header_for(ephemeral), repo_id)
}

/// Associated data of a pack's TOC: the pack header and the repository ID.
pub fn toc_ad(repo_id: &[u8; 32]) -> Vec<u8> {
    header::file_ad(&header::encode(FileKind::Pack), repo_id)
}
