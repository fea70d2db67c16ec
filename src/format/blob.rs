//! format-spec/08-blob.md — blob types, the blob envelope (a sealed box stored in a pack) and the
//! associated data that binds a blob to its type, ID and repository.

use super::SEAL_OVERHEAD;
use crate::error::{Error, Result};
use crate::id::Id;
use serde::{Deserialize, Serialize};

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum BlobType {
    /// A chunk of file content.
    Data = 0,
    /// An encoded tree (one directory).
    Tree = 1,
}

impl BlobType {
    /// Decode the type byte.
    pub fn from_u8(b: u8) -> Result<BlobType> {
        match b {
            0 => Ok(BlobType::Data),
            1 => Ok(BlobType::Tree),
            _ => Err(Error::integrity("blob type", format!("unknown blob type {b}"))),
        }
    }

    /// `data` or `tree`.
    pub fn name(self) -> &'static str {
        match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        }
    }
}

/// Length of blob associated data.
pub const BLOB_AD_LEN: usize = 65;

/// The smallest valid stored blob: nonce, an empty plaintext's method byte, tag.
pub const MIN_STORED_LEN: u32 = (SEAL_OVERHEAD + 1) as u32;

/// Associated data of a blob: type byte, blob ID, repository ID.
pub fn blob_ad(t: BlobType, id: &Id, repo_id: &[u8; 32]) -> [u8; BLOB_AD_LEN] {
    let mut ad = [0u8; BLOB_AD_LEN];
    ad[0] = t as u8;
    ad[1..33].copy_from_slice(&id.0);
    ad[33..].copy_from_slice(repo_id);
    ad
}

/// A printable name for a blob in error messages.
pub fn describe(t: BlobType, id: &Id) -> String {
    format!("{} blob {}", t.name(), id)
}
