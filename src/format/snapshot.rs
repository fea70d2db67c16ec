//! format-spec/11-snapshot.md — a snapshot: the root tree of one backup and what it was.

use super::from_postcard_canonical;
use crate::error::{Error, Result};
use crate::id::Id;
use serde::{Deserialize, Serialize};

/// Largest snapshot body accepted.
pub const MAX_SNAPSHOT_LEN: usize = 1 << 20;

/// Counters recorded by the backup that made a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Files not in the parent.
    pub files_new: u64,
    /// Files in the parent whose metadata changed (and were read again).
    pub files_changed: u64,
    /// Files taken from the parent without reading.
    pub files_unchanged: u64,
    /// Directories not in the parent.
    pub dirs_new: u64,
    /// Directories whose tree differs from the parent's.
    pub dirs_changed: u64,
    /// Directories whose tree equals the parent's.
    pub dirs_unchanged: u64,
    /// Bytes of file content read.
    pub bytes_read: u64,
    /// Bytes of plaintext newly stored (data and trees, before compression).
    pub bytes_added: u64,
    /// Bytes newly written to packs (after compression and encryption).
    pub bytes_stored: u64,
    /// Blobs newly stored.
    pub blobs_added: u64,
    /// Files or directories that could not be read and are missing from the snapshot.
    pub errors: u64,
    /// Files whose metadata changed while they were read.
    pub changed_during_read: u64,
    /// Start time, Unix nanoseconds.
    pub started: i64,
    /// End time, Unix nanoseconds.
    pub finished: i64,
}

/// A snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup started, Unix nanoseconds.
    pub time: i64,
    /// The root tree.
    pub tree: Id,
    /// The paths given to the backup, as bytes (absolute).
    pub paths: Vec<Vec<u8>>,
    /// Host name.
    pub hostname: String,
    /// User name of the backing-up process.
    pub username: String,
    /// Its user ID.
    pub uid: u32,
    /// Its group ID.
    pub gid: u32,
    /// Tags, sorted, unique.
    pub tags: Vec<String>,
    /// The snapshot used for change detection, if any.
    pub parent: Option<Id>,
    /// `arca <version>` of the writer.
    pub program: String,
    /// Counters.
    pub summary: Summary,
}

impl Snapshot {
    /// Encode to the plaintext body.
    pub fn encode(&self) -> Vec<u8> {
        super::to_postcard(self)
    }

    /// Decode and validate.
    pub fn decode(body: &[u8], what: &str) -> Result<Snapshot> {
        if body.len() > MAX_SNAPSHOT_LEN {
            return Err(Error::integrity(what, "snapshot too large"));
        }
        let s: Snapshot = from_postcard_canonical(body, what)?;
        if !s.tags.windows(2).all(|w| w[0] < w[1]) {
            return Err(Error::integrity(what, "tags not sorted and unique"));
        }
        Ok(s)
    }
}
