//! `arca key rotate`: replace every secret key of the repository and rewrite everything the old
//! keys sealed (format-spec/25-rotation.md).
//!
//! The switch is one atomic write: a new admin key file is published first, then the `config`,
//! sealed under the new master key, names the old one as the previous generation and sets the
//! rotation bit. From then on readers open what is not yet rewritten with the previous keys,
//! and writers seal only with the new ones. The rewrite is `copy` from the old generation into
//! the new one (every blob decrypted, re-identified under the new blob-ID key, sealed anew;
//! trees and snapshots mapped), then the journal, then the removals — snapshots, index files,
//! packs, stale locks — of what only the old keys open. The last write is the config without
//! the previous key. Each step can be repeated: a crash anywhere leaves a repository that reads
//! completely, and running the rotation again finishes it.
//!
//! The caller holds an exclusive lock for the whole run.

use super::copy::{self, CopyOptions, CopyReport, Outcome};
use crate::backend::FileType;
use crate::crypto::{MasterKey, Role};
use crate::error::{Error, Result};
use crate::format::config::{Config, PreviousMaster, FEATURE_ROTATION};
use crate::format::header::FileKind;
use crate::format::key::{KdfParams, KeyFile};
use crate::id::Id;
use crate::repo::lock::is_stale;
use crate::repo::Repository;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;

/// The points a crash test can stop a rotation after (see [`StepHook`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The new admin key file is published; nothing else changed.
    KeyWritten,
    /// The config names the new keys and the previous ones: the switch.
    ConfigSwitched,
    /// Every other key file is removed.
    KeysRemoved,
    /// Every snapshot of the old generation has a copy under the new keys.
    SnapshotsCopied,
    /// The journal is sealed under the new keys.
    JournalRewritten,
    /// The old generation's snapshots are removed.
    SnapshotsRemoved,
    /// The old generation's index files are removed.
    IndexRemoved,
    /// The old generation's packs are removed.
    PacksRemoved,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 8] = [
        Step::KeyWritten,
        Step::ConfigSwitched,
        Step::KeysRemoved,
        Step::SnapshotsCopied,
        Step::JournalRewritten,
        Step::SnapshotsRemoved,
        Step::IndexRemoved,
        Step::PacksRemoved,
    ];

    /// The step's name, as the crash hook takes it.
    pub fn name(self) -> &'static str {
        match self {
            Step::KeyWritten => "key-written",
            Step::ConfigSwitched => "config-switched",
            Step::KeysRemoved => "keys-removed",
            Step::SnapshotsCopied => "snapshots-copied",
            Step::JournalRewritten => "journal-rewritten",
            Step::SnapshotsRemoved => "snapshots-removed",
            Step::IndexRemoved => "index-removed",
            Step::PacksRemoved => "packs-removed",
        }
    }

    /// The step named `name`.
    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Called after each [`Step`] (a test aborts the process there).
pub type StepHook = Arc<dyn Fn(Step) -> Result<()> + Send + Sync>;

/// What a new rotation needs: the new admin key's password and parameters.
pub struct NewKey<'a> {
    /// Its password.
    pub password: &'a [u8],
    /// Its key-derivation parameters.
    pub kdf: KdfParams,
    /// Its label.
    pub label: &'a str,
}

/// A key file that a rotation removed: it can open nothing any more.
#[derive(Clone, Debug, Serialize)]
pub struct RemovedKey {
    /// File name.
    pub id: String,
    /// Its role (backup and restore keys have to be given out again).
    pub role: String,
    /// Its label.
    pub label: String,
}

/// What a rotation did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RotateReport {
    /// This run finished a rotation an earlier run started.
    pub resumed: bool,
    /// The admin key file of the new keys (the one this run used, when resumed).
    pub new_key: String,
    /// Key files removed.
    pub removed_keys: Vec<RemovedKey>,
    /// Snapshots rewritten under the new keys: (old ID, new ID).
    pub snapshots: Vec<(Id, Id)>,
    /// Snapshots of the old generation that could not be read completely: the rotation stops
    /// before removing anything, so nothing of them is lost.
    pub damaged: Vec<(Id, String)>,
    /// Blobs stored under the new keys, and their plaintext bytes.
    pub blobs: u64,
    /// Plaintext bytes of those blobs.
    pub bytes: u64,
    /// Bytes written to new packs.
    pub stored_bytes: u64,
    /// Journal files sealed again.
    pub journal_files: usize,
    /// Index files of the old generation removed.
    pub index_files_removed: usize,
    /// Packs of the old generation removed.
    pub packs_removed: usize,
    /// Stale locks of the old generation removed.
    pub locks_removed: usize,
    /// Everything is sealed under the new keys and the config no longer names the old ones.
    pub finished: bool,
}

/// Rotate `repo`'s keys, or finish a rotation an earlier run started. `new` is required to
/// start one (it is ignored when finishing). The caller holds an exclusive lock; `repo` is
/// left opened with the new keys.
pub fn rotate(
    repo: &mut Repository,
    new: Option<NewKey<'_>>,
    hook: Option<StepHook>,
    relock: &mut dyn FnMut(&Repository) -> Result<()>,
    on_snapshot: &mut dyn FnMut(&copy::CopiedSnapshot),
) -> Result<RotateReport> {
    repo.require(&[Role::Admin], "rotate keys")?;
    let step = |s: Step| hook.as_ref().map_or(Ok(()), |h| h(s));
    let mut report = RotateReport { resumed: repo.rotation_unfinished(), ..RotateReport::default() };
    if !report.resumed {
        let new = new.ok_or_else(|| Error::InvalidArgument("a rotation needs the new key's password".into()))?;
        switch(repo, &new, &step)?;
        // The lock taken before the switch is sealed under the old keys: take it again under
        // the new ones, so that nothing written from here on is sealed under the old keys.
        relock(repo)?;
    }
    report.new_key = repo.key_name().to_string();
    // Keys left by a run that crashed before removing them, and on the first run all of them.
    remove_other_keys(repo, &mut report)?;
    step(Step::KeysRemoved)?;
    let (old, current) = views(repo)?;
    reseal_parity_policy(repo, &current)?;
    if !copy_snapshots(&old, &current, on_snapshot, &mut report)? {
        return Ok(report);
    }
    step(Step::SnapshotsCopied)?;
    report.journal_files = rewrite_journal(&old, &current)?;
    step(Step::JournalRewritten)?;
    remove_old_snapshots(&old, &report.snapshots)?;
    step(Step::SnapshotsRemoved)?;
    let old_packs = remove_old_index_files(&old, &current, &mut report)?;
    step(Step::IndexRemoved)?;
    remove_old_packs(&old, &current, old_packs, &mut report)?;
    step(Step::PacksRemoved)?;
    report.locks_removed = remove_old_stale_locks(&old)?;
    // A key file a session of the old keys wrote meanwhile (it checks the config first; this
    // closes the gap between its check and its write).
    remove_other_keys(repo, &mut report)?;
    finish(repo)?;
    report.finished = true;
    Ok(report)
}

/// The switch (format-spec/25 §25.2): a new admin key file, then the config under the new
/// master key naming the old one. `repo` is then the repository as opened with the new key.
fn switch(repo: &mut Repository, new: &NewKey<'_>, step: &dyn Fn(Step) -> Result<()>) -> Result<()> {
    let old_master = repo.master().cloned().ok_or_else(|| Error::InvalidArgument("no master key".into()))?;
    let master = MasterKey::random()?;
    let mut config = repo.config().clone();
    config.required_features |= FEATURE_ROTATION;
    config.previous_master = Some(PreviousMaster(*old_master.as_bytes()));
    let mut next = repo.generation_view(&master, config.clone());
    let name = next.add_key(new.password, new.kdf, new.label)?;
    step(Step::KeyWritten)?;
    let bytes = next.encrypt_file(FileKind::Config, &config.encode())?;
    repo.ensure_locks_fresh()?;
    repo.backend().replace(FileType::Config, "config", &bytes)?;
    step(Step::ConfigSwitched)?;
    next.adopt_switch(name, &bytes);
    *repo = next;
    Ok(())
}

/// Seal the parity policy (a fixed name) under the new keys if only the previous ones open it;
/// on every run, so that a crash right after the switch leaves nothing behind.
fn reseal_parity_policy(repo: &Repository, current: &Repository) -> Result<()> {
    match current.load_parity_policy() {
        Ok(_) => Ok(()),
        Err(e) if e.is_integrity() => match repo.load_parity_policy()? {
            Some(bp) => current.set_parity_overhead(bp),
            None => Ok(()),
        },
        Err(e) => Err(e),
    }
}

/// Remove every key file but the one in use: after the switch none of them opens anything.
fn remove_other_keys(repo: &Repository, report: &mut RotateReport) -> Result<()> {
    for (id, _) in repo.list_objects(FileType::Key)? {
        if id == repo.key_name() {
            continue;
        }
        // A damaged key file opens nothing either: it goes too, named as such.
        let file = repo.read_named(FileType::Key, &id).and_then(|b| KeyFile::decode(&b));
        let (role, label) = match file {
            Ok(f) => (f.role.name().to_string(), f.label),
            Err(_) => ("damaged".to_string(), String::new()),
        };
        repo.ensure_locks_fresh()?;
        match repo.backend().remove(FileType::Key, &id) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            r => r?,
        }
        report.removed_keys.push(RemovedKey { id, role, label });
    }
    Ok(())
}

/// The old generation alone and the new one alone, over the same storage.
fn views(repo: &Repository) -> Result<(Repository, Repository)> {
    let previous = repo
        .config()
        .previous_master
        .as_ref()
        .ok_or_else(|| Error::integrity("config", "a rotation without the previous key"))?;
    let master = repo.master().cloned().ok_or_else(|| Error::InvalidArgument("no master key".into()))?;
    let mut old_config = repo.config().clone();
    old_config.required_features &= !FEATURE_ROTATION;
    old_config.previous_master = None;
    let old = repo.generation_view(&MasterKey::from_bytes(previous.0), old_config.clone());
    let current = repo.generation_view(&master, repo.config().clone());
    Ok((old, current))
}

/// Copy every snapshot only the old keys open into the new generation. `false` when some
/// could not be read: then nothing is removed (the rotation stays unfinished, and the
/// repository reads as before).
fn copy_snapshots(
    old: &Repository,
    current: &Repository,
    on_snapshot: &mut dyn FnMut(&copy::CopiedSnapshot),
    report: &mut RotateReport,
) -> Result<bool> {
    let (snapshots, unreadable) = old.list_snapshots_and_damage()?;
    for (name, e) in unreadable {
        let Some(id) = Id::from_hex(&name) else { continue };
        // Written under the new keys (a copy, or a backup since the switch): not damage.
        if current.sealed_by_current_keys(FileKind::Snapshot, &id) {
            continue;
        }
        if !e.is_integrity() {
            return Err(e);
        }
        // Neither generation opens it: it stays, and so does everything it may need.
        report.damaged.push((id, e.to_string()));
    }
    let opts = CopyOptions { within: true, ..CopyOptions::default() };
    let copied: CopyReport = copy::copy(old, current, &snapshots, &snapshots, opts, on_snapshot)?;
    for s in &copied.snapshots {
        match (&s.outcome, s.destination) {
            (Outcome::Copied | Outcome::Skipped, Some(d)) => report.snapshots.push((s.source, d)),
            _ => report.damaged.push((s.source, s.error.clone().unwrap_or_default())),
        }
    }
    report.blobs = copied.blobs;
    report.bytes = copied.bytes;
    report.stored_bytes = copied.stored_bytes;
    Ok(report.damaged.is_empty())
}

/// Seal every journal file only the old keys open again under the new ones; returns how many.
fn rewrite_journal(old: &Repository, current: &Repository) -> Result<usize> {
    let mut n = 0;
    let appender = current.journal_appender();
    for (name, _) in old.list_objects(FileType::Journal)? {
        let Some(id) = Id::from_hex(&name) else { continue };
        if current.sealed_by_current_keys(FileKind::Journal, &id) {
            continue;
        }
        let body = match old.load_file(FileKind::Journal, &id) {
            Ok(body) => body,
            // Damaged or foreign files stay where they are, reported by `check` as before.
            Err(e) if e.is_integrity() || is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        current.ensure_locks_fresh()?;
        appender.save_body(&body)?;
        remove_if_present(current, FileType::Journal, &name)?;
        n += 1;
    }
    Ok(n)
}

/// Remove the old generation's snapshots that have copies.
fn remove_old_snapshots(old: &Repository, copies: &[(Id, Id)]) -> Result<()> {
    for (source, _) in copies {
        old.ensure_locks_fresh()?;
        remove_if_present(old, FileType::Snapshot, &source.to_hex())?;
    }
    Ok(())
}

/// Remove the index files only the old keys open; returns the packs they listed that no index
/// file of the new keys lists.
fn remove_old_index_files(old: &Repository, current: &Repository, report: &mut RotateReport) -> Result<Vec<Id>> {
    let (mut listed_old, mut listed_new, mut files) = (HashSet::new(), HashSet::new(), Vec::new());
    for id in old.index_ids()? {
        match current.load_index_file(&id) {
            Ok(packs) => {
                listed_new.extend(packs.iter().map(|p| p.id));
                continue;
            }
            Err(e) if !e.is_integrity() && !is_not_found(&e) => return Err(e),
            Err(_) => {}
        }
        match old.load_index_file(&id) {
            Ok(packs) => {
                listed_old.extend(packs.iter().map(|p| p.id));
                files.push(id);
            }
            // Damaged (neither generation opens it): it stays, reported by `check` as before.
            Err(e) if e.is_integrity() || is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    for id in &files {
        old.ensure_locks_fresh()?;
        remove_if_present(old, FileType::Index, &id.to_hex())?;
    }
    report.index_files_removed = files.len();
    let mut packs: Vec<Id> = listed_old.difference(&listed_new).copied().collect();
    packs.sort();
    Ok(packs)
}

/// Remove `listed` (packs the removed index files named) and every unindexed pack whose table
/// of contents the old keys open (left by a writer of the old generation that crashed).
fn remove_old_packs(old: &Repository, current: &Repository, listed: Vec<Id>, report: &mut RotateReport) -> Result<()> {
    let index = current.load_index()?;
    let indexed: HashSet<Id> = index.packs().iter().map(|p| p.id).collect();
    let mut doomed: HashSet<Id> = listed.into_iter().filter(|p| !indexed.contains(p)).collect();
    for (id, len) in current.unindexed_packs(&index)? {
        if doomed.contains(&id) {
            continue;
        }
        match old.read_pack_toc(&id, len) {
            Ok(_) => {
                doomed.insert(id);
            }
            Err(e) if e.is_integrity() || is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let mut doomed: Vec<Id> = doomed.into_iter().collect();
    doomed.sort();
    for id in &doomed {
        old.ensure_locks_fresh()?;
        remove_if_present(old, FileType::Pack, &id.to_hex())?;
    }
    report.packs_removed = doomed.len();
    Ok(())
}

/// Remove stale lock files only the old keys open: once the rotation is finished nobody could
/// read them, and an unreadable lock blocks everyone. Live ones (this run's own) stay.
fn remove_old_stale_locks(old: &Repository) -> Result<usize> {
    let mut n = 0;
    for (name, _) in old.list_objects(FileType::Lock)? {
        let Some(id) = Id::from_hex(&name) else { continue };
        let body = match old.load_file(FileKind::Lock, &id) {
            Ok(body) => body,
            Err(e) if e.is_integrity() || is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        let Ok(lock) = crate::format::lock::Lock::decode(&body) else { continue };
        if is_stale(&lock) {
            remove_if_present(old, FileType::Lock, &name)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The last write: the config without the previous key (format-spec/25 §25.5).
fn finish(repo: &mut Repository) -> Result<()> {
    let mut config: Config = repo.config().clone();
    config.required_features &= !FEATURE_ROTATION;
    config.previous_master = None;
    let master = repo.master().cloned().ok_or_else(|| Error::InvalidArgument("no master key".into()))?;
    let done = repo.generation_view(&master, config.clone());
    let bytes = done.encrypt_file(FileKind::Config, &config.encode())?;
    repo.ensure_locks_fresh()?;
    repo.backend().replace(FileType::Config, "config", &bytes)?;
    let name = repo.key_name().to_string();
    let mut done = done;
    done.adopt_switch(name, &bytes);
    *repo = done;
    Ok(())
}

fn remove_if_present(repo: &Repository, t: FileType, name: &str) -> Result<()> {
    match repo.remove_file(t, name) {
        Err(e) if is_not_found(&e) => Ok(()),
        r => r,
    }
}

/// A file removed since it was listed (by a concurrent `forget`, or an earlier step).
fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}
