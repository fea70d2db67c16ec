//! format-spec/13-lock.md — a lock file's body: who holds a lock, since when, shared or exclusive.

use super::from_postcard_canonical;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Largest lock body accepted.
pub const MAX_LOCK_LEN: usize = 64 * 1024;

/// A lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// When written or last refreshed, Unix nanoseconds.
    pub time: i64,
    /// Exclusive locks conflict with every other lock.
    pub exclusive: bool,
    /// Host of the holder.
    pub hostname: String,
    /// User of the holder.
    pub username: String,
    /// Process ID of the holder.
    pub pid: u32,
}

impl Lock {
    /// Encode to the plaintext body.
    pub fn encode(&self) -> Vec<u8> {
        super::to_postcard(self)
    }

    /// Decode.
    pub fn decode(body: &[u8]) -> Result<Lock> {
        if body.len() > MAX_LOCK_LEN {
            return Err(Error::integrity("lock", "too large"));
        }
        from_postcard_canonical(body, "lock")
    }
}
