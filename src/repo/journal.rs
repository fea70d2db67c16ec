//! The operations journal on storage (format-spec/21-journal.md): appending a record, reading
//! every record back, and compaction.
//!
//! Appending writes one new content-addressed file and takes no lock, so a journal write can
//! neither block nor be blocked by a backup or a prune. Every file written is padded to its size
//! class and stored uncompressed (§21.7), so its size tells a storage observer nothing finer.
//! Reading skips (and names) files that do not decrypt or decode: a damaged journal file loses
//! its records, never an operation.
//! Compaction merges files under the caller's exclusive lock and removes only what it read, so
//! a record appended meanwhile survives; a crash leaves duplicates, which [`load`] shows once.

use super::Repository;
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::header::FileKind;
use crate::format::journal::{self, Record, COMPACT_TARGET_LEN, FILE_OVERHEAD};
use crate::id::Id;
use rayon::prelude::*;
use std::collections::HashSet;

/// An owned writer of journal files, usable after the [`Repository`] it came from is gone (the
/// CLI writes the record of a command after the command returns).
#[derive(Clone)]
pub struct Appender {
    save: std::sync::Arc<SaveFn>,
}

/// Seals and publishes one (padded) journal body, uncompressed.
type SaveFn = dyn Fn(&[u8]) -> Result<Id> + Send + Sync;

impl Appender {
    /// Write `record` as a new journal file and return the file's ID. Over-long texts are cut
    /// to the format's limits first.
    pub fn append(&self, record: &Record) -> Result<Id> {
        let mut r = record.clone();
        r.clamp();
        (self.save)(&journal::encode(&[r]))
    }

    /// Seal and publish an already padded journal body as it is (a key rotation moving a file
    /// to the new keys).
    pub(crate) fn save_body(&self, body: &[u8]) -> Result<Id> {
        (self.save)(body)
    }

    /// Write `records` as one padded journal file (format-spec/21-journal.md §21.7).
    fn write(&self, records: &[Record]) -> Result<Id> {
        (self.save)(&journal::encode(records))
    }
}

/// Every record of the journal, and the files that could not be read.
#[derive(Debug, Default)]
pub struct Journal {
    /// Records, each ID once, ordered by (time, ID).
    pub records: Vec<Record>,
    /// Journal files that were read (their names), for compaction.
    pub files: Vec<String>,
    /// Journal files skipped: name and why.
    pub damaged: Vec<(String, Error)>,
}

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Compaction {
    /// Journal files read and merged.
    pub files_read: usize,
    /// Journal files written.
    pub files_written: usize,
    /// Journal files removed.
    pub files_removed: usize,
    /// Distinct records kept (all of them).
    pub records: usize,
    /// Files left in place because they could not be read.
    pub damaged: usize,
}

impl Repository {
    /// An owned journal writer for this repository.
    pub fn journal_appender(&self) -> Appender {
        let backend = self.backend.clone();
        let keys = self.keys.clone();
        let repo_id = *self.repo_id();
        let sealing = self.sealing_for(FileKind::Journal);
        let (config_hash, backup_key) = (self.config_hash, self.binding.is_some());
        Appender {
            save: std::sync::Arc::new(move |body: &[u8]| {
                // A record written late (after a failed or refused command) must not be sealed
                // under keys a rotation has replaced since this session opened (format-spec/25).
                let config = backend.read(FileType::Config, "config")?;
                if !super::config_still_ours(&keys, backup_key, &repo_id, &config_hash, &config) {
                    return Err(Error::Refused("the repository's keys changed since this run opened it".into()));
                }
                // Method 00 (level 0): compression would undo the padding (§21.7).
                let bytes = super::encrypt_with(&keys, &repo_id, FileKind::Journal, sealing, body, 0)?;
                let id = Id::of_file_bytes(&bytes);
                backend.write(FileType::Journal, &id.to_hex(), &bytes)?;
                Ok(id)
            }),
        }
    }
}

/// Append one record to `repo`'s journal.
pub fn append(repo: &Repository, record: &Record) -> Result<Id> {
    repo.journal_appender().append(record)
}

/// Read every journal file. Only failing to list `journal/` is an error.
pub fn load(repo: &Repository) -> Result<Journal> {
    let names = repo.list_objects(FileType::Journal)?;
    let loaded: Vec<(String, Result<Vec<Record>>)> =
        repo.io_scope(|| names.into_par_iter().map(|(name, _)| (name.clone(), read_file(repo, &name))).collect());
    let mut j = Journal::default();
    let mut seen = HashSet::new();
    for (name, r) in loaded {
        match r {
            Ok(records) => {
                j.records.extend(records.into_iter().filter(|r| seen.insert(r.id)));
                j.files.push(name);
            }
            // Removed by a compaction between listing and reading: its records are in a newer file.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => j.damaged.push((name, e)),
        }
    }
    j.records.sort_by_key(|r| (r.time, r.id));
    j.files.sort();
    j.damaged.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(j)
}

fn read_file(repo: &Repository, name: &str) -> Result<Vec<Record>> {
    let what = format!("journal file {name}");
    let bytes = repo.read_named(FileType::Journal, name)?;
    journal::decode(&repo.decrypt_file(FileKind::Journal, &bytes, &what)?, &what)
}

/// Merge every readable journal file into as few files as the size target allows
/// (format-spec/21-journal.md §21.4). The caller MUST hold an exclusive lock; removal checks
/// that it is still fresh.
pub fn compact(repo: &Repository) -> Result<Compaction> {
    let j = load(repo)?;
    let mut c = Compaction { files_read: j.files.len(), damaged: j.damaged.len(), ..Compaction::default() };
    if j.files.len() <= 1 {
        return Ok(c);
    }
    c.records = j.records.len();
    let mut written = HashSet::new();
    let appender = repo.journal_appender();
    for batch in batches(&j.records) {
        repo.ensure_locks_fresh()?;
        written.insert(appender.write(batch)?.to_hex());
    }
    c.files_written = written.len();
    for name in j.files.iter().filter(|n| !written.contains(*n)) {
        repo.ensure_locks_fresh()?;
        match repo.backend().remove(FileType::Journal, name) {
            Ok(()) => c.files_removed += 1,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(c)
}

/// Split records into runs whose files, padded, stay within [`COMPACT_TARGET_LEN`]: each run's
/// records encode in at most `COMPACT_TARGET_LEN - 49` bytes, so its size class is at most that.
fn batches(records: &[Record]) -> Vec<&[Record]> {
    // The count varint takes at most 3 bytes for the record limit.
    let budget = COMPACT_TARGET_LEN - FILE_OVERHEAD - 3;
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        let n = crate::format::to_postcard(r).len();
        if i > start && size + n > budget {
            out.push(&records[start..i]);
            (start, size) = (i, 0);
        }
        size += n;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}
