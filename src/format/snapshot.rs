//! format-spec/11-snapshot.md — a snapshot: the root tree of one backup and what it was.

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
    /// The snapshot this one was rewritten from (by `tag` or `repair snapshots`), if any; a
    /// rewrite of a rewrite keeps the first original. Field 12: omitted from the body when
    /// `None`, so snapshots written before the field existed keep their bytes. Postcard writes
    /// `Some` as `01 || 32 bytes` (serde skips the field when `None`); [`Snapshot::decode`]
    /// reads it by hand, because postcard cannot tell an absent last field from a truncated one.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
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
        // Fields 1-11 (`original` is skipped by serde), then field 12 from what is left.
        let (mut s, rest): (Snapshot, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| Error::integrity(what, format!("malformed encoding: {e}")))?;
        s.original = decode_original(rest, what)?;
        // Re-encoding catches overlong varints and every other second spelling.
        if s.encode() != body {
            return Err(Error::integrity(what, "non-canonical encoding (overlong varint or trailing bytes)"));
        }
        if !s.tags.windows(2).all(|w| w[0] < w[1]) {
            return Err(Error::integrity(what, "tags not sorted and unique"));
        }
        Ok(s)
    }
}

/// Field 12 from the bytes after `summary` (format-spec/11-snapshot.md §11.2): nothing (None),
/// or `01` and a 32-byte ID that ends the body. `00` (None written out) is a second spelling of
/// an absent field and is refused, as is anything after the ID.
fn decode_original(rest: &[u8], what: &str) -> Result<Option<Id>> {
    match rest {
        [] => Ok(None),
        [0, ..] => Err(Error::integrity(what, "field original written as None (non-canonical: it is omitted)")),
        [1, id @ ..] if id.len() == 32 => Ok(Some(Id(id.try_into().expect("32 bytes")))),
        [1, id @ ..] if id.len() < 32 => Err(Error::integrity(what, "truncated in field original")),
        [1, id @ ..] => Err(Error::integrity(what, format!("{} trailing bytes", id.len() - 32))),
        [tag, ..] => Err(Error::integrity(what, format!("option tag {tag} of field original out of range"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(original: Option<Id>) -> Snapshot {
        Snapshot {
            time: 1,
            tree: Id([2; 32]),
            paths: vec![b"/a".to_vec()],
            hostname: "h".into(),
            username: "u".into(),
            uid: 3,
            gid: 4,
            tags: vec!["t".into()],
            parent: None,
            program: "arca".into(),
            summary: Summary::default(),
            original,
        }
    }

    #[test]
    fn original_is_omitted_when_none_and_appended_when_some() {
        let plain = sample(None).encode();
        let rewritten = sample(Some(Id([9; 32]))).encode();
        assert_eq!(rewritten, [&plain[..], &[1], &[9; 32]].concat());
        assert_eq!(Snapshot::decode(&plain, "t").unwrap(), sample(None));
        assert_eq!(Snapshot::decode(&rewritten, "t").unwrap(), sample(Some(Id([9; 32]))));
    }

    #[test]
    fn second_spellings_of_original_are_refused() {
        let plain = sample(None).encode();
        let bad = [
            [&plain[..], &[0]].concat(),
            [&plain[..], &[1], &[9; 31]].concat(),
            [&plain[..], &[1], &[9; 33]].concat(),
            [&plain[..], &[2], &[9; 32]].concat(),
        ];
        for b in bad {
            assert!(Snapshot::decode(&b, "t").unwrap_err().is_integrity());
        }
    }
}
