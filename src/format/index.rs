//! format-spec/10-index.md — an index file's plaintext body: for each pack, its ID, size and blobs.

use super::blob::BlobType;
use super::{Reader, SEAL_OVERHEAD};
use crate::error::{Error, Result};
use crate::id::Id;

/// Bytes of one blob entry.
pub const BLOB_ENTRY_LEN: usize = 45;
/// Bytes of one pack header entry.
pub const PACK_ENTRY_LEN: usize = 40;
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
    /// Blobs, in any order.
    pub blobs: Vec<IndexBlob>,
}

/// Encode an index body.
pub fn encode(packs: &[IndexPack]) -> Vec<u8> {
    let n: usize = packs.iter().map(|p| PACK_ENTRY_LEN + p.blobs.len() * BLOB_ENTRY_LEN).sum();
    let mut out = Vec::with_capacity(4 + n);
    out.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for p in packs {
        out.extend_from_slice(&p.id.0);
        out.extend_from_slice(&p.size.to_le_bytes());
        out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
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

/// Decode and validate an index body: every blob lies inside its pack, after the header.
pub fn decode(body: &[u8], what: &str) -> Result<Vec<IndexPack>> {
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
            if (b.offset as usize) < super::header::HEADER_LEN
                || (b.stored_len as usize) < SEAL_OVERHEAD + 1
                || end > size as u64
            {
                return Err(Error::integrity(what, format!("blob {} lies outside pack {id}", b.id)));
            }
            blobs.push(b);
        }
        packs.push(IndexPack { id, size, blobs });
    }
    r.finish()?;
    Ok(packs)
}
