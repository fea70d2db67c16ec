//! Looking after a repository: `init`, `key`, `cat`, `repoinfo`, `unlock`, `parity` and
//! `repair` — each the open, the lock it needs and the library call, so that any front end
//! gets the same locking.

use super::context::PasswordSource;
use super::locate;
use super::scope::Scope;
use crate::backend::retention::Policy;
use crate::backend::FileType;
use crate::crypto::Role;
use crate::error::{Error, Result};
use crate::format::blob::BlobType;
use crate::format::key::{KdfParams, KeyFile};
use crate::id::Id;
use crate::lifecycle::{heal, repair, rotate};
use crate::repo::lock::LockOutcome;
use crate::repo::roles::RolesEnabled;
use crate::repo::select::SnapshotFilter;
use crate::repo::{InitOptions, KeyInfo, Repository};
use serde::Serialize;
use serde_json::{json, Value};

/// A new repository.
#[derive(Serialize)]
pub struct Created {
    /// Where.
    pub repository: String,
    /// Its ID (hex).
    pub id: String,
    /// The first key's name.
    pub key: String,
    /// The retention the storage enforces (S3 Object Lock), if asked for.
    pub object_lock: Option<Policy>,
}

/// `init`: a new repository (the password is asked for twice at a prompt). With
/// `object_lock`, the storage first retains every object by that policy (S3 Object Lock,
/// format-spec/17 §17.12); a storage that cannot is refused before anything is written.
pub fn init(scope: &Scope, opts: &InitOptions, object_lock: Option<&Policy>) -> Result<Created> {
    let backend = scope.ctx.backend()?;
    if let Some(policy) = object_lock {
        let lock = backend.object_lock().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: --object-lock needs an S3 repository (s3:https://host/bucket/prefix); this storage \
                 cannot refuse deletions (for a server that can, see `arca serve --append-only`)",
                backend.location()
            ))
        })?;
        lock.set_up(policy)?;
    }
    let pw = scope.ctx.password.get(true)?;
    let repo = Repository::init(backend.clone(), &pw, opts)?;
    Ok(Created {
        repository: backend.location(),
        id: crate::id::hex(repo.repo_id()),
        key: repo.key_name().to_string(),
        object_lock: object_lock.copied(),
    })
}

/// A `key` subcommand.
pub enum KeyAction {
    /// Add a key with this password, KDF, label and role.
    Add(PasswordSource, KdfParams, String, Role),
    /// List keys.
    List,
    /// Remove the key with this ID prefix.
    Remove(String),
    /// Change the password of the key in use.
    Passwd(PasswordSource, KdfParams),
    /// Replace every key of the repository (format-spec/25): the new admin key's password,
    /// KDF and label, and a crash-test hook.
    Rotate(PasswordSource, KdfParams, String, Option<rotate::StepHook>),
}

/// What a `key` subcommand did.
pub enum KeyResult {
    /// The key added, and what turning key roles on did if it was needed for it.
    Added(String, Option<RolesEnabled>),
    /// The keys.
    Listed(Vec<KeyInfo>),
    /// The key removed.
    Removed(String),
    /// The new key of the changed password.
    Changed(String),
    /// What a rotation did.
    Rotated(rotate::RotateReport),
}

/// `key add|list|remove|passwd`.
pub fn key(scope: &Scope, action: KeyAction) -> Result<KeyResult> {
    // The password is read once: removing the key in use needs it again (see `remove_key`).
    let pw = scope.ctx.password.get(false)?;
    let mut repo = Repository::fetch(scope.ctx.backend()?)?.unlock(&pw)?;
    // Every key subcommand but `list` changes who can open the repository.
    if !matches!(action, KeyAction::List) {
        repo.require(&[Role::Admin], "manage keys")?;
    }
    Ok(match action {
        KeyAction::Add(pw, kdf, label, role) => {
            let pw = pw.get(true)?;
            // A role key needs roles on: the first one enables them (config and index files
            // change, as in prune); later ones finish what a crashed enabling left undone.
            // A key made now would hold the keys a finishing rotation is replacing or, for a
            // backup key, the config it rewrites (format-spec/25 §25.4).
            repo.refuse_during_rotation("add keys")?;
            let enabled = if role != Role::Admin {
                let _lock = scope.ctx.lock(&repo, true)?;
                Some(repo.enable_roles()?)
            } else {
                None
            };
            KeyResult::Added(repo.add_role_key(role, &pw, kdf, &label)?, enabled)
        }
        KeyAction::List => KeyResult::Listed(repo.list_keys()?),
        KeyAction::Remove(id) => KeyResult::Removed(remove_key(&repo, &id, &pw)?),
        KeyAction::Passwd(pw, kdf) => {
            KeyResult::Changed(repo.change_password(&pw.get(true)?, kdf, &crate::repo::default_label())?)
        }
        KeyAction::Rotate(pw, kdf, label, hook) => KeyResult::Rotated(rotate_keys(scope, repo, pw, kdf, &label, hook)?),
    })
}

/// `key rotate`: start a rotation (asking for the new key's password) or finish one, under an
/// exclusive lock for the whole run.
fn rotate_keys(
    scope: &Scope,
    mut repo: Repository,
    pw: PasswordSource,
    kdf: KdfParams,
    label: &str,
    hook: Option<rotate::StepHook>,
) -> Result<rotate::RotateReport> {
    // Retained objects cannot be removed before their retention ends, so the old keys would
    // keep opening them: say so instead of starting what cannot finish.
    let retained = match repo.backend().object_lock() {
        Some(lock) => lock.policy()?.is_some(),
        None => false,
    };
    if retained {
        return Err(Error::InvalidArgument(
            "key rotation needs to delete every object sealed under the old keys, which S3 Object Lock \
             retention forbids: `arca init` a new repository and `arca copy` into it"
                .into(),
        ));
    }
    // Asked before anything is locked or written; a run that finishes a rotation needs none.
    let password = match repo.rotation_unfinished() {
        true => None,
        false => Some(pw.get(true)?),
    };
    let mut lock = Some(scope.ctx.lock(&repo, true)?);
    // Waiting for the lock, another process may have rewritten the config (key roles turned
    // on): the rotation must start from the config as it is now.
    repo.ensure_config_as_opened()?;
    let new = password.as_deref().map(|password| rotate::NewKey { password, kdf, label });
    let mut relock = |r: &Repository| -> Result<()> {
        drop(lock.take());
        lock = Some(r.lock(true)?);
        Ok(())
    };
    rotate::rotate(&mut repo, new, hook, &mut relock, &mut |_| {})
}

/// Remove a key file by ID prefix. The key in use may go too when another admin key file
/// opens this repository with the same password (two keys made with one password, which the
/// password alone cannot choose between): the repository stays open to that password.
fn remove_key(repo: &Repository, prefix: &str, pw: &[u8]) -> Result<String> {
    let keys = repo.list_keys()?;
    let names: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
    let name = crate::repo::unique_prefix(&names, prefix, "key")?;
    if name != repo.key_name() {
        return repo.remove_key(&name);
    }
    let twin = keys.iter().filter(|k| k.name != name).find(|k| {
        matches!(crate::crypto::kdf::unwrap_any(&k.file, pw),
                 Ok((crate::crypto::kdf::Unwrapped::Admin(_), id)) if id == *repo.repo_id())
    });
    if twin.is_none() {
        return Err(Error::InvalidArgument(
            "refusing to remove the key in use (no other admin key opens with this password); open with another key"
                .into(),
        ));
    }
    repo.remove_file(FileType::Key, &name)?;
    Ok(name)
}

/// A key file as JSON.
pub fn key_json(name: &str, f: &KeyFile, current: bool) -> Value {
    json!({
        "id": name, "current": current, "created": f.created, "label": f.label, "role": f.role.name(),
        "kdf": {"algorithm": "argon2id", "memory_kib": f.kdf.memory_kib, "iterations": f.kdf.time_cost, "lanes": f.kdf.lanes},
        "salt": crate::id::hex(&f.salt),
    })
}

/// What `cat` shows: a decoded object, or a data blob's bytes.
pub enum Cat {
    /// Decoded, as JSON.
    Json(Value),
    /// A data blob's plaintext.
    Bytes(Vec<u8>),
}

fn by_prefix(repo: &Repository, t: FileType, prefix: &str) -> Result<String> {
    let names: Vec<String> = repo.list_objects(t)?.into_iter().map(|(n, _)| n).collect();
    crate::repo::unique_prefix(&names, prefix, t.dir())
}

/// `cat config|key|index|snapshot|pack|blob [ID]`.
pub fn cat(scope: &Scope, what: &str, id: Option<&str>) -> Result<Cat> {
    let repo = scope.ctx.open_for(crate::ops::context::READERS, "print stored objects")?;
    let need = || id.ok_or_else(|| Error::InvalidArgument(format!("cat {what} needs an ID")));
    let v = match what {
        "config" => serde_json::to_value(repo.config()).map_err(|e| Error::InvalidArgument(e.to_string()))?,
        "key" => {
            let name = by_prefix(&repo, FileType::Key, need()?)?;
            let f = KeyFile::decode(&repo.read_named(FileType::Key, &name)?)?;
            key_json(&name, &f, name == repo.key_name())
        }
        "index" => {
            let name = by_prefix(&repo, FileType::Index, need()?)?;
            let id = Id::from_hex(&name).ok_or_else(|| Error::integrity(format!("index {name}"), "bad name"))?;
            let packs: Vec<_> = repo
                .load_index_file(&id)?
                .iter()
                .map(|p| {
                    let blobs: Vec<_> = p.blobs.iter().map(|b| json!({"type": b.blob_type.name(), "id": b.id, "offset": b.offset, "stored_len": b.stored_len, "plain_len": b.plain_len})).collect();
                    json!({"pack": p.id, "size": p.size, "blobs": blobs})
                })
                .collect();
            json!({"id": name, "packs": packs})
        }
        "snapshot" => {
            let warn = |m: &str| scope.ctx.notices.warn(m);
            let (id, s) = locate::resolve(&repo, need()?, &SnapshotFilter::default(), &warn)?;
            let mut v = serde_json::to_value(&s).map_err(|e| Error::InvalidArgument(e.to_string()))?;
            v["id"] = json!(id);
            // Field 12 is left out of the encoding when absent; the JSON always shows it.
            v["original"] = json!(s.original);
            v["paths"] = json!(s.paths.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>());
            v
        }
        "pack" => pack_json(&repo, &by_prefix(&repo, FileType::Pack, need()?)?)?,
        "blob" => {
            let id = Id::from_hex(need()?)
                .ok_or_else(|| Error::InvalidArgument("blob needs the full 64-digit ID".into()))?;
            let index = scope.ctx.load_index(&repo)?;
            if !index.contains(BlobType::Tree, &id) {
                return Ok(Cat::Bytes(repo.read_blob(&index, BlobType::Data, &id)?));
            }
            serde_json::to_value(repo.read_tree(&index, &id)?).map_err(|e| Error::InvalidArgument(e.to_string()))?
        }
        _ => return Err(Error::InvalidArgument(format!("cannot cat {what:?}"))),
    };
    Ok(Cat::Json(v))
}

/// A pack's table of contents, decoded.
fn pack_json(repo: &Repository, name: &str) -> Result<Value> {
    let bytes = repo.read_named(FileType::Pack, name)?;
    let record = repo.toc_of_bytes(&Id::from_hex(name).unwrap_or(Id([0; 32])), &bytes)?;
    let blobs: Vec<_> = record
        .blobs
        .iter()
        .map(|b| json!({"type": b.blob_type.name(), "id": b.id, "offset": b.offset, "stored_len": b.stored_len, "plain_len": b.plain_len}))
        .collect();
    Ok(json!({"id": name, "size": bytes.len(), "blobs": blobs}))
}

/// `repoinfo`: sizes, counts, compression.
#[derive(Serialize)]
pub struct RepoInfo {
    /// Where.
    pub repository: String,
    /// Its ID (hex).
    pub id: String,
    /// Snapshot files.
    pub snapshots: usize,
    /// Key files.
    pub keys: usize,
    /// Packs the index names.
    pub packs: u64,
    /// Bytes of pack files.
    pub pack_bytes: u64,
    /// Data blobs.
    pub data_blobs: u64,
    /// Tree blobs.
    pub tree_blobs: u64,
    /// Data before compression.
    pub data_plain_bytes: u64,
    /// Data stored.
    pub data_stored_bytes: u64,
    /// Trees before compression.
    pub tree_plain_bytes: u64,
    /// Trees stored.
    pub tree_stored_bytes: u64,
    /// Plain over stored.
    pub compression_ratio: f64,
    /// What the index takes in memory.
    pub index_memory_bytes: usize,
    /// The configuration.
    pub config: Value,
}

/// `repoinfo`.
pub fn repoinfo(scope: &Scope) -> Result<RepoInfo> {
    let repo = scope.ctx.open_for(crate::ops::context::READERS, "summarise the repository")?;
    let (mut packs, mut stored, mut plain, mut blobs) = (0u64, [0u64; 2], [0u64; 2], [0u64; 2]);
    let mut seen = std::collections::HashSet::new();
    for id in repo.index_ids()? {
        // Damaged index files are reported by the load below.
        for p in repo.load_index_file(&id).unwrap_or_default() {
            if !seen.insert(p.id) {
                continue;
            }
            packs += 1;
            for b in p.blobs {
                let t = b.blob_type as usize;
                blobs[t] += 1;
                stored[t] += b.stored_len as u64;
                plain[t] += b.plain_len as u64;
            }
        }
    }
    let index = scope.ctx.load_index(&repo)?;
    let all_stored = stored[0] + stored[1];
    Ok(RepoInfo {
        repository: repo.backend().location(),
        id: crate::id::hex(repo.repo_id()),
        snapshots: repo.list_objects(FileType::Snapshot)?.len(),
        keys: repo.list_objects(FileType::Key)?.len(),
        packs,
        pack_bytes: repo.list_objects(FileType::Pack)?.iter().map(|(_, l)| l).sum(),
        data_blobs: blobs[0],
        tree_blobs: blobs[1],
        data_plain_bytes: plain[0],
        data_stored_bytes: stored[0],
        tree_plain_bytes: plain[1],
        tree_stored_bytes: stored[1],
        compression_ratio: if all_stored > 0 { (plain[0] + plain[1]) as f64 / all_stored as f64 } else { 1.0 },
        index_memory_bytes: index.resident_bytes(),
        config: serde_json::to_value(repo.config()).unwrap_or_default(),
    })
}

/// `unlock [--remove-all]`: takes no lock itself.
pub fn unlock(scope: &Scope, all: bool) -> Result<Vec<LockOutcome>> {
    scope.ctx.open_for(crate::ops::context::ADMINS, "remove locks")?.remove_locks(all)
}

/// `parity set`: the overhead for new files, under an exclusive lock (a backup running now
/// would mix old and new settings).
pub fn parity_set(scope: &Scope, overhead: u16) -> Result<()> {
    let repo = scope.ctx.open_for(crate::ops::context::ADMINS, "change the parity policy")?;
    let _lock = scope.ctx.lock(&repo, true)?;
    repo.set_parity_overhead(overhead)
}

/// `parity build`, under a shared lock: parity files are written after their files and never
/// needed to read them, so backups may run meanwhile; a prune (exclusive) may not delete under it.
pub fn parity_build(scope: &Scope, opts: heal::BuildOptions) -> Result<heal::BuildReport> {
    let repo = scope.ctx.open_for(crate::ops::context::ADMINS, "build parity")?;
    let _lock = scope.ctx.lock(&repo, false)?;
    heal::build_parity(&repo, opts)
}

/// `parity status`.
pub fn parity_status(scope: &Scope) -> Result<heal::StatusReport> {
    heal::parity_status(&scope.ctx.open_for(crate::ops::context::READERS, "read the parity status")?)
}

/// `repair packs`: exclusive unless a dry run.
pub fn repair_packs(scope: &Scope, dry_run: bool) -> Result<heal::HealReport> {
    let repo = scope.ctx.uncached().open_for(crate::ops::context::ADMINS, "repair packs")?;
    repo.refuse_during_rotation("repair packs")?;
    let _lock = scope.ctx.lock(&repo, !dry_run)?;
    heal::repair_files(&repo, heal::HealOptions { dry_run })
}

/// `repair index`, exclusive.
pub fn repair_index(scope: &Scope, opts: repair::IndexRepairOptions) -> Result<repair::IndexRepairReport> {
    let repo = scope.ctx.uncached().open_for(crate::ops::context::ADMINS, "repair the index")?;
    repo.refuse_during_rotation("repair the index")?;
    let _lock = scope.ctx.lock(&repo, true)?;
    repair::repair_index(&repo, opts)
}

/// What `repair snapshots` did, and the snapshot files it could not read.
pub struct SnapshotsRepaired {
    /// The report.
    pub report: repair::SnapshotRepairReport,
    /// Unreadable snapshot files among those chosen.
    pub damaged: Vec<(String, Error)>,
}

/// `repair snapshots [SNAP...]` among those `filter` selects; exclusive unless a dry run.
pub fn repair_snapshots(
    scope: &Scope,
    refs: &[String],
    filter: &SnapshotFilter,
    opts: repair::SnapshotRepairOptions,
) -> Result<SnapshotsRepaired> {
    let ctx = &scope.ctx.uncached();
    let repo = ctx.open_for(crate::ops::context::ADMINS, "repair snapshots")?;
    repo.refuse_during_rotation("repair snapshots")?;
    // A dry run writes and removes nothing: a shared lock keeps a prune away while it reads.
    let _lock = ctx.lock(&repo, !opts.dry_run)?;
    let filter = scope.filter(filter, None);
    let (all, mut damaged) = repo.list_snapshots_and_damage()?;
    let chosen: Vec<_> = if refs.is_empty() {
        all.iter().filter(|(_, s)| filter.matches(s)).cloned().collect()
    } else {
        damaged.clear();
        let warn = |m: &str| ctx.notices.warn(m);
        refs.iter().map(|r| locate::resolve(&repo, r, &filter, &warn)).collect::<Result<Vec<_>>>()?
    };
    let report = repair::repair_snapshots(&repo, &all, &chosen, opts)?;
    Ok(SnapshotsRepaired { report, damaged })
}

impl crate::ops::HasOutcome for rotate::RotateReport {
    /// Damage when some snapshot could not be rewritten: the rotation is then unfinished.
    fn outcome(&self) -> crate::ops::Outcome {
        match self.finished {
            true => crate::ops::Outcome::Ok,
            false => crate::ops::Outcome::Damage,
        }
    }
}
