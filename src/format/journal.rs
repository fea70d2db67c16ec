//! format-spec/21-journal.md — the operations journal: records of what ran against a repository.
//!
//! A journal file's body is a postcard sequence of [`Record`]s, followed by zero bytes that pad
//! the file to a size class (§21.7), so that a file's size does not tell a storage observer how
//! long its texts are. `op` and `outcome` are bytes on the wire; values this version does not
//! know are kept as [`Op::Other`] and [`Outcome::Other`], because one record from a newer writer
//! must not make a compacted file of many records unreadable.

use crate::error::{Error, Result};
use crate::id::Id;
use serde::{Deserialize, Serialize};

/// Largest journal body accepted.
pub const MAX_JOURNAL_LEN: usize = 16 << 20;
/// Largest file a compaction writes: its records are encoded in at most
/// `COMPACT_TARGET_LEN - FILE_OVERHEAD` bytes, so the file's size class is at most this.
pub const COMPACT_TARGET_LEN: usize = 8 << 20;
/// What an encrypted file stored with method `00` adds to its body: header (8), nonce (24),
/// method byte (1) and tag (16).
pub const FILE_OVERHEAD: usize = 49;
/// The smallest size class: every journal file of one ordinary record is 4 096 bytes.
pub const MIN_CLASS: usize = 1 << 12;
/// The largest size class (2^24 bytes).
pub const MAX_CLASS: usize = 1 << 24;
/// Most records in one body.
pub const MAX_RECORDS: usize = 1 << 20;
/// Most snapshots one record names.
pub const MAX_SNAPSHOTS: usize = 65_536;
/// Most errors, labels or metrics in one record.
pub const MAX_ITEMS: usize = 256;
/// Longest error message or label value, in bytes.
pub const MAX_TEXT: usize = 4096;
/// Longest label or metric key, in bytes.
pub const MAX_KEY: usize = 64;

/// What ran (field 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "u8", into = "u8")]
pub enum Op {
    /// `arca backup`.
    Backup,
    /// `arca check`.
    Check,
    /// `arca drill`.
    Drill,
    /// `arca restore`.
    Restore,
    /// `arca dump`.
    Dump,
    /// `arca copy`, recorded in the source repository.
    CopyFrom,
    /// `arca copy`, recorded in the destination repository.
    CopyTo,
    /// `arca forget`.
    Forget,
    /// `arca prune`.
    Prune,
    /// `arca verify`.
    Verify,
    /// `arca tag`: `snapshots` lists each replaced snapshot followed by its replacement.
    Tag,
    /// A value this version does not know (0 is rejected on decoding).
    Other(u8),
}

const OPS: [(Op, u8, &str); 11] = [
    (Op::Backup, 1, "backup"),
    (Op::Check, 2, "check"),
    (Op::Drill, 3, "drill"),
    (Op::Restore, 4, "restore"),
    (Op::Dump, 5, "dump"),
    (Op::CopyFrom, 6, "copy-from"),
    (Op::CopyTo, 7, "copy-to"),
    (Op::Forget, 8, "forget"),
    (Op::Prune, 9, "prune"),
    (Op::Verify, 10, "verify"),
    (Op::Tag, 11, "tag"),
];

impl From<u8> for Op {
    fn from(b: u8) -> Op {
        OPS.iter().find(|o| o.1 == b).map_or(Op::Other(b), |o| o.0)
    }
}

impl From<Op> for u8 {
    fn from(op: Op) -> u8 {
        match op {
            Op::Other(b) => b,
            known => OPS.iter().find(|o| o.0 == known).expect("every named op is in OPS").1,
        }
    }
}

impl Op {
    /// The name shown and accepted by `arca journal --op` (`op 11` for unknown values).
    pub fn name(self) -> String {
        OPS.iter().find(|o| o.0 == self).map_or_else(|| format!("op {}", u8::from(self)), |o| o.2.to_string())
    }

    /// The op with this name, if any.
    pub fn from_name(name: &str) -> Option<Op> {
        OPS.iter().find(|o| o.2 == name).map(|o| o.0)
    }

    /// Every named op, for help texts.
    pub fn names() -> impl Iterator<Item = &'static str> {
        OPS.iter().map(|o| o.2)
    }
}

/// How an operation ended (field 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "u8", into = "u8")]
pub enum Outcome {
    /// Success.
    Ok,
    /// Completed, but some entries were skipped (exit code 3).
    Partial,
    /// Failed: nothing usable was produced.
    Failed,
    /// Damage was found: stored data failed to authenticate, or restored data differs from the
    /// snapshot (exit code 4).
    Damage,
    /// `verify`: the live files differ from the snapshot; nothing is damaged (exit code 5).
    Differs,
    /// Refused before it did anything: a usage error, or a request that named nothing (exit code 2).
    Refused,
    /// Completed, but an objective was missed (a drill slower than its `max-rto`, exit code 6).
    Missed,
    /// A value this version does not know.
    Other(u8),
}

impl From<u8> for Outcome {
    fn from(b: u8) -> Outcome {
        match b {
            0 => Outcome::Ok,
            1 => Outcome::Partial,
            2 => Outcome::Failed,
            3 => Outcome::Damage,
            4 => Outcome::Differs,
            5 => Outcome::Refused,
            6 => Outcome::Missed,
            b => Outcome::Other(b),
        }
    }
}

impl From<Outcome> for u8 {
    fn from(o: Outcome) -> u8 {
        match o {
            Outcome::Ok => 0,
            Outcome::Partial => 1,
            Outcome::Failed => 2,
            Outcome::Damage => 3,
            Outcome::Differs => 4,
            Outcome::Refused => 5,
            Outcome::Missed => 6,
            Outcome::Other(b) => b,
        }
    }
}

impl Outcome {
    /// The name shown (`outcome 7` for unknown values).
    pub fn name(self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Partial => "partial".into(),
            Outcome::Failed => "failed".into(),
            Outcome::Damage => "damage".into(),
            Outcome::Differs => "differs".into(),
            Outcome::Refused => "refused".into(),
            Outcome::Missed => "missed".into(),
            Outcome::Other(b) => format!("outcome {b}"),
        }
    }
}

/// One record (format-spec/21-journal.md §21.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Random identity; equal IDs are the same record.
    pub id: [u8; 16],
    /// When the operation started, Unix nanoseconds.
    pub time: i64,
    /// How long it ran, nanoseconds.
    pub duration: u64,
    /// What ran.
    pub op: Op,
    /// How it ended.
    pub outcome: Outcome,
    /// The process exit code it ended with.
    pub exit_code: u8,
    /// Host it ran on.
    pub hostname: String,
    /// User it ran as.
    pub username: String,
    /// Snapshots it made, read or removed.
    pub snapshots: Vec<Id>,
    /// Bytes processed.
    pub bytes: u64,
    /// Files processed.
    pub files: u64,
    /// Error messages, first first.
    pub errors: Vec<String>,
    /// Named texts.
    pub labels: Vec<(String, String)>,
    /// Named numbers.
    pub metrics: Vec<(String, u64)>,
}

impl Record {
    /// The first label named `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first metric named `key`.
    pub fn metric(&self, key: &str) -> Option<u64> {
        self.metrics.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Cut texts and lists to the limits a reader accepts (writers call this, so a long error
    /// message is shortened rather than making the record unreadable).
    pub fn clamp(&mut self) {
        self.snapshots.truncate(MAX_SNAPSHOTS);
        if self.errors.len() > MAX_ITEMS {
            let more = self.errors.len() - (MAX_ITEMS - 1);
            self.errors.truncate(MAX_ITEMS - 1);
            self.errors.push(format!("… and {more} more"));
        }
        self.errors.iter_mut().for_each(|e| clamp_text(e, MAX_TEXT));
        clamp_text(&mut self.hostname, MAX_TEXT);
        clamp_text(&mut self.username, MAX_TEXT);
        self.labels.retain(|(k, _)| !k.is_empty());
        self.labels.truncate(MAX_ITEMS);
        for (k, v) in &mut self.labels {
            clamp_text(k, MAX_KEY);
            clamp_text(v, MAX_TEXT);
        }
        self.metrics.retain(|(k, _)| !k.is_empty());
        self.metrics.truncate(MAX_ITEMS);
        self.metrics.iter_mut().for_each(|(k, _)| clamp_text(k, MAX_KEY));
    }

    fn validate(&self, what: &str) -> Result<()> {
        let bad = |msg: String| Err(Error::integrity(what, msg));
        if self.op == Op::Other(0) {
            return bad("record with op 0".into());
        }
        if self.snapshots.len() > MAX_SNAPSHOTS {
            return bad(format!("record names {} snapshots (limit {MAX_SNAPSHOTS})", self.snapshots.len()));
        }
        for (name, n) in [("errors", self.errors.len()), ("labels", self.labels.len()), ("metrics", self.metrics.len())]
        {
            if n > MAX_ITEMS {
                return bad(format!("record has {n} {name} (limit {MAX_ITEMS})"));
            }
        }
        let names = [&self.hostname, &self.username];
        let texts = self.errors.iter().chain(self.labels.iter().map(|(_, v)| v)).chain(names);
        if let Some(t) = texts.into_iter().find(|t| t.len() > MAX_TEXT) {
            return bad(format!("record text of {} bytes (limit {MAX_TEXT})", t.len()));
        }
        let keys = self.labels.iter().map(|(k, _)| k).chain(self.metrics.iter().map(|(k, _)| k));
        if let Some(k) = keys.into_iter().find(|k| k.is_empty() || k.len() > MAX_KEY) {
            return bad(format!("record key of {} bytes (must be 1 to {MAX_KEY})", k.len()));
        }
        Ok(())
    }
}

/// Cut `s` to at most `max` bytes on a character boundary.
fn clamp_text(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// The size class of a journal file whose records encode in `records_len` bytes: the least
/// power of two that is at least `records_len + 49` and at least 4 096 (format-spec/21 §21.7);
/// `None` above 2^24.
pub fn size_class(records_len: usize) -> Option<usize> {
    let file = records_len.checked_add(FILE_OVERHEAD)?.max(MIN_CLASS).checked_next_power_of_two()?;
    (file <= MAX_CLASS).then_some(file)
}

/// The length of the padded body of records that encode in `records_len` bytes: its size class
/// less [`FILE_OVERHEAD`], so that the file, stored with method `00`, is exactly the class.
pub fn padded_len(records_len: usize) -> Option<usize> {
    size_class(records_len).map(|c| c - FILE_OVERHEAD)
}

/// Encode records as a padded journal body (§21.7), as writers store it: the records, then zero
/// bytes up to [`padded_len`]. Writers MUST store it with compression method `00`, which
/// compression would undo. Records over 2^24 − 49 bytes, which no writer produces (one record is
/// at most about 4.2 MiB, a compaction batch at most 2^23 − 49 bytes), are left unpadded.
pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut body = encode_unpadded(records);
    if let Some(n) = padded_len(body.len()) {
        body.resize(n, 0);
    }
    body
}

/// Encode records without padding, as writers before §21.7 did (and as compaction measures
/// records).
pub fn encode_unpadded(records: &[Record]) -> Vec<u8> {
    super::to_postcard(&records)
}

/// Decode and validate a journal body: padded (§21.7), or unpadded as written before padding.
pub fn decode(body: &[u8], what: &str) -> Result<Vec<Record>> {
    if body.len() > MAX_JOURNAL_LEN {
        return Err(Error::integrity(what, format!("journal body of {} bytes (limit {MAX_JOURNAL_LEN})", body.len())));
    }
    let (records, padding): (Vec<Record>, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| Error::integrity(what, format!("malformed encoding: {e}")))?;
    let used = body.len() - padding.len();
    if super::to_postcard(&records) != body[..used] {
        return Err(Error::integrity(what, "non-canonical encoding (overlong varint)"));
    }
    if !padding.is_empty() {
        if let Some(i) = padding.iter().position(|&b| b != 0) {
            return Err(Error::integrity(what, format!("nonzero padding byte at offset {}", used + i)));
        }
        if padded_len(used) != Some(body.len()) {
            let class = padded_len(used).map_or("none: too long to pad".into(), |n| format!("{n} bytes"));
            return Err(Error::integrity(
                what,
                format!("records of {used} bytes padded to {} bytes (their size class: {class})", body.len()),
            ));
        }
    }
    if records.is_empty() || records.len() > MAX_RECORDS {
        return Err(Error::integrity(what, format!("journal body of {} records (1 to {MAX_RECORDS})", records.len())));
    }
    for r in &records {
        r.validate(what)?;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            id: [1; 16],
            time: 5,
            duration: 6,
            op: Op::Drill,
            outcome: Outcome::Ok,
            exit_code: 0,
            hostname: "h".into(),
            username: "u".into(),
            snapshots: vec![Id([2; 32])],
            bytes: 7,
            files: 8,
            errors: vec![],
            labels: vec![("path".into(), "/".into())],
            metrics: vec![("rto_ns".into(), 9)],
        }
    }

    #[test]
    fn round_trip_and_unknown_values_survive() {
        let mut r = sample();
        let body = encode(std::slice::from_ref(&r));
        assert_eq!(decode(&body, "t").unwrap(), vec![r.clone()]);
        r.op = Op::Other(200);
        r.outcome = Outcome::Other(9);
        let body = encode(std::slice::from_ref(&r));
        assert_eq!(decode(&body, "t").unwrap()[0].op, Op::Other(200));
        assert_eq!(Op::Other(200).name(), "op 200");
    }

    #[test]
    fn op_values_match_the_spec_table() {
        for (op, b, name) in OPS {
            assert_eq!(u8::from(op), b);
            assert_eq!(Op::from(b), op);
            assert_eq!(Op::from_name(name), Some(op));
        }
    }

    #[test]
    fn size_classes_are_powers_of_two_from_4_kib() {
        assert_eq!(size_class(0), Some(4096));
        assert_eq!(size_class(4047), Some(4096));
        assert_eq!(size_class(4048), Some(8192));
        assert_eq!(size_class((8 << 20) - 49), Some(8 << 20));
        assert_eq!(size_class((16 << 20) - 49), Some(16 << 20));
        assert_eq!(size_class((16 << 20) - 48), None);
        let body = encode(&[sample()]);
        assert_eq!(body.len(), 4096 - FILE_OVERHEAD);
        assert_eq!(crate::format::compression::encode(&body, 0).len() + 48, 4096, "the file is exactly the class");
    }

    #[test]
    fn padding_is_checked_and_unpadded_bodies_still_read() {
        let r = sample();
        let unpadded = encode_unpadded(std::slice::from_ref(&r));
        let padded = encode(std::slice::from_ref(&r));
        assert_eq!(padded[..unpadded.len()], unpadded[..]);
        assert_eq!(decode(&unpadded, "t").unwrap(), vec![r.clone()]);
        assert_eq!(decode(&padded, "t").unwrap(), vec![r.clone()]);
        let integrity = |b: &[u8]| matches!(decode(b, "t"), Err(Error::Integrity { .. }));
        let mut bad = padded.clone();
        *bad.last_mut().unwrap() = 1;
        assert!(integrity(&bad), "nonzero padding");
        assert!(integrity(&padded[..padded.len() - 1]), "one byte short of the class");
        assert!(integrity(&[&padded[..], &[0]].concat()), "one byte over the class");
        let mut big = unpadded.clone();
        big.resize(8192 - FILE_OVERHEAD, 0);
        assert!(integrity(&big), "a larger class than the records need");
        assert!(integrity(&[&unpadded[..], &[0]].concat()), "a lone trailing zero");
        // Records that fill their class exactly need no padding byte.
        let mut r = sample();
        r.hostname.clear();
        let short = encode_unpadded(std::slice::from_ref(&r)).len();
        r.hostname = "h".repeat(4096 - FILE_OVERHEAD - short - 1); // its length is now a 2-byte varint
        let exact = encode(std::slice::from_ref(&r));
        assert_eq!(exact, encode_unpadded(std::slice::from_ref(&r)));
        assert_eq!(exact.len(), 4096 - FILE_OVERHEAD);
        assert_eq!(decode(&exact, "t").unwrap(), vec![r]);
    }

    #[test]
    fn clamp_makes_a_record_acceptable() {
        let mut r = sample();
        r.errors = vec!["é".repeat(5000); 300];
        r.labels.push((String::new(), "x".into()));
        r.clamp();
        assert_eq!(r.errors.len(), MAX_ITEMS);
        assert!(r.errors[0].len() <= MAX_TEXT);
        decode(&encode(&[r]), "t").unwrap();
    }
}
