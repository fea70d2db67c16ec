//! format-spec/10-index.md — an index file's plaintext body: for each pack, its ID, size and blobs.

use super::blob::BlobType;
use super::{Reader, SEAL_OVERHEAD};
use crate::error::{Error, Result};
use crate::id::Id;

/// Bytes of one blob entry.
pub const BLOB_ENTRY_LEN: usize = 45;
/// Bytes of one pack header entry.
pub const PACK_ENTRY_LEN: usize = 40;
/// Bytes of one pack header entry in an index file sealed under `K_meta` (format-spec/24 §24.6):
/// the 40 bytes and the pack's ephemeral key.
pub const SEALED_PACK_ENTRY_LEN: usize = 72;

/// Which pack record layout an index body uses (format-spec/24 §24.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// 40-byte records: every pack is sealed under `K_enc` (index files sealed under `K_enc`).
    Plain,
    /// 72-byte records ending in the pack's ephemeral public key, all zero for a pack sealed
    /// under `K_enc` (index files sealed under `K_meta`).
    WithEphemeral,
}
/// Largest index body accepted (bytes).
pub const MAX_INDEX_LEN: usize = 256 << 20;

/// A blob's location as an index file states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexBlob {
    /// Data or tree.
    pub blob_type: BlobType,
    /// Blob ID.
    pub id: Id,
    /// Offset of the envelope from the start of the pack.
    pub offset: u32,
    /// Envelope length.
    pub stored_len: u32,
    /// Uncompressed plaintext length.
    pub plain_len: u32,
}

/// One pack and its blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPack {
    /// Pack ID (BLAKE3 of the pack file).
    pub id: Id,
    /// Pack file length.
    pub size: u32,
    /// The ephemeral public key of a pack sealed to the read key (format-spec/24 §24.5); `None`
    /// for a pack sealed under `K_enc`.
    pub ephemeral: Option<[u8; 32]>,
    /// Blobs, in any order.
    pub blobs: Vec<IndexBlob>,
}

/// Encode an index body with 40-byte pack records (every pack sealed under `K_enc`).
pub fn encode(packs: &[IndexPack]) -> Vec<u8> {
    encode_layout(packs, Layout::Plain)
}

/// Encode an index body in `layout`. A pack with an ephemeral key needs
/// [`Layout::WithEphemeral`]: the caller chooses it whenever the repository has roles.
pub fn encode_layout(packs: &[IndexPack], layout: Layout) -> Vec<u8> {
    let record = match layout {
        Layout::Plain => PACK_ENTRY_LEN,
        Layout::WithEphemeral => SEALED_PACK_ENTRY_LEN,
    };
    let n: usize = packs.iter().map(|p| record + p.blobs.len() * BLOB_ENTRY_LEN).sum();
    let mut out = Vec::with_capacity(4 + n);
    out.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for p in packs {
        out.extend_from_slice(&p.id.0);
        out.extend_from_slice(&p.size.to_le_bytes());
        out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
        if layout == Layout::WithEphemeral {
            out.extend_from_slice(&p.ephemeral.unwrap_or([0; 32]));
        }
        for b in &p.blobs {
            out.push(b.blob_type as u8);
            out.extend_from_slice(&b.id.0);
            out.extend_from_slice(&b.offset.to_le_bytes());
            out.extend_from_slice(&b.stored_len.to_le_bytes());
            out.extend_from_slice(&b.plain_len.to_le_bytes());
        }
    }
    out
}

/// Decode and validate an index body with 40-byte pack records.
pub fn decode(body: &[u8], what: &str) -> Result<Vec<IndexPack>> {
    decode_layout(body, Layout::Plain, what)
}

/// Decode and validate an index body in `layout`: every blob lies inside its pack, after the
/// header (and after the ephemeral key of a pack that has one).
pub fn decode_layout(body: &[u8], layout: Layout, what: &str) -> Result<Vec<IndexPack>> {
    if body.len() > MAX_INDEX_LEN {
        return Err(Error::integrity(what, "index body too large"));
    }
    let mut r = Reader::new(body, what);
    let count = r.u32()? as usize;
    let mut packs = Vec::with_capacity(count.min(body.len() / PACK_ENTRY_LEN));
    for _ in 0..count {
        let id = Id(r.array()?);
        let size = r.u32()?;
        let n = r.u32()? as usize;
        let ephemeral = match layout {
            Layout::Plain => None,
            Layout::WithEphemeral => Some(r.array::<32>()?).filter(|e| *e != [0; 32]),
        };
        let first = super::header::HEADER_LEN + if ephemeral.is_some() { 32 } else { 0 };
        if n.saturating_mul(BLOB_ENTRY_LEN) > r.remaining() {
            return Err(Error::integrity(what, format!("pack {id}: blob count {n} exceeds the file")));
        }
        let mut blobs = Vec::with_capacity(n);
        for _ in 0..n {
            let blob_type = BlobType::from_u8(r.u8()?).map_err(|_| Error::integrity(what, "unknown blob type"))?;
            let b = IndexBlob {
                blob_type,
                id: Id(r.array()?),
                offset: r.u32()?,
                stored_len: r.u32()?,
                plain_len: r.u32()?,
            };
            let end = b.offset as u64 + b.stored_len as u64;
            if (b.offset as usize) < first || (b.stored_len as usize) < SEAL_OVERHEAD + 1 || end > size as u64 {
                return Err(Error::integrity(what, format!("blob {} lies outside pack {id}", b.id)));
            }
            blobs.push(b);
        }
        packs.push(IndexPack { id, size, ephemeral, blobs });
    }
    r.finish()?;
    Ok(packs)
}
