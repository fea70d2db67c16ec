//! Pure encoders and decoders for every on-disk structure, one file per section of `format-spec/`.
//!
//! Nothing here touches the filesystem or keys: functions take bytes and return structures (or the
//! reverse), and every decoder enforces the MUST-reject rules and limits of its section. Decoders
//! of authenticated plaintext still validate fully: a key holder can be hostile too.

pub mod blob;
pub mod compression;
pub mod config;
pub mod header;
pub mod index;
pub mod journal;
pub mod key;
pub mod lock;
pub mod pack;
pub mod parity;
pub mod serve;
pub mod snapshot;
pub mod tree;

use crate::error::{Error, Result};
use serde::{de::DeserializeOwned, Serialize};

/// Length of an XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed box adds to its plaintext (nonce and tag).
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Encode a postcard structure (format-spec/01-conventions.md, "postcard encoding").
pub fn to_postcard<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding into a Vec cannot fail for the plain data types this crate defines.
    postcard::to_allocvec(value).expect("postcard encoding of plain data")
}

/// Decode a postcard structure and enforce canonical form: the input must be exactly the
/// encoding of the decoded value (no overlong varints, no trailing bytes, booleans 0/1 only).
pub fn from_postcard_canonical<T: DeserializeOwned + Serialize>(bytes: &[u8], what: &str) -> Result<T> {
    let value: T =
        postcard::from_bytes(bytes).map_err(|e| Error::integrity(what, format!("malformed encoding: {e}")))?;
    if to_postcard(&value) != bytes {
        return Err(Error::integrity(what, "non-canonical encoding (overlong varint or trailing bytes)"));
    }
    Ok(value)
}

/// A bounds-checked little-endian reader for the fixed-layout structures.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'a str) -> Self {
        Reader { bytes, pos: 0, what }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| Error::integrity(self.what, format!("truncated at byte {}", self.pos)))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().unwrap())
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn finish(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(Error::integrity(self.what, format!("{} trailing bytes", self.remaining())));
        }
        Ok(())
    }
}
