//! An open repository: keys, config, encrypted files, blobs and the index.
//!
//! Opening reads `config`'s plaintext header first (so "not a repository" and "unsupported
//! version" are told apart from "wrong password"), then tries the key files, then decrypts the
//! config and checks that it belongs to the same repository ID as the key that opened it.

pub mod index;
pub mod journal;
pub mod lock;
pub mod packer;
pub mod packs;
pub mod parity;
pub mod roles;
pub mod select;
pub mod walk;

use crate::backend::{is_object_name, Backend, FileType};
use crate::crypto::kdf::{self, BackupBinding, Unwrapped};
use crate::crypto::{Keys, MasterKey, Role, SymKey};
use crate::error::{Error, Result};
use crate::format::blob::{self, BlobType};
use crate::format::config::Config;
use crate::format::header::{self, FileKind, Sealing};
use crate::format::key::{KdfParams, KeyFile};
use crate::format::snapshot::Snapshot;
use crate::format::{compression, index as findex, lock as flock, tree::Tree};
use crate::id::Id;
use index::Index;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Limits on decrypted file bodies, by kind.
fn body_limit(kind: FileKind) -> usize {
    match kind {
        FileKind::Config => crate::format::config::MAX_CONFIG_LEN,
        FileKind::Index => findex::MAX_INDEX_LEN,
        FileKind::Snapshot => crate::format::snapshot::MAX_SNAPSHOT_LEN,
        FileKind::Lock => flock::MAX_LOCK_LEN,
        FileKind::Journal => crate::format::journal::MAX_JOURNAL_LEN,
        FileKind::ParityPolicy => crate::format::parity::POLICY_BODY_LEN,
        FileKind::Key | FileKind::Pack | FileKind::Parity => 0,
    }
}

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Config => FileType::Config,
        FileKind::Key => FileType::Key,
        FileKind::Pack => FileType::Pack,
        FileKind::Index => FileType::Index,
        FileKind::Snapshot => FileType::Snapshot,
        FileKind::Lock => FileType::Lock,
        FileKind::Journal => FileType::Journal,
        FileKind::Parity => FileType::Parity,
        FileKind::ParityPolicy => FileType::ParityPolicy,
    }
}

/// Options for a new repository.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Argon2id parameters for the first key.
    pub kdf: KdfParams,
    /// Label for the first key.
    pub label: String,
    /// zstd level.
    pub compression_level: i32,
    /// Pack target size, bytes.
    pub pack_target_size: u32,
    /// Content-defined chunking parameters.
    pub chunker: crate::format::config::ChunkerParams,
    /// Parity overhead for packs, in basis points (0: no parity; format-spec/22).
    pub parity_overhead: u16,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::default(),
            label: default_label(),
            compression_level: 3,
            pack_target_size: 16 << 20,
            chunker: Default::default(),
            parity_overhead: crate::format::parity::DEFAULT_OVERHEAD,
        }
    }
}

/// `user@host` of this process.
pub fn default_label() -> String {
    format!("{}@{}", crate::sys::username(), crate::sys::hostname())
}

/// An open, unlocked repository.
pub struct Repository {
    backend: Arc<dyn Backend>,
    keys: Keys,
    /// The master key, for an admin key only.
    master: Option<MasterKey>,
    /// What binds a backup key to this repository (its cache key), for a backup key only.
    binding: Option<BackupBinding>,
    /// Keys of objects sealed to the read key, by ephemeral key (one per backup session).
    sealed_keys: Mutex<std::collections::HashMap<[u8; 32], SymKey>>,
    /// The ephemeral key and object key this session seals new packs with, when it seals them
    /// to the read key (a backup key): drawn once, forgotten when the repository is dropped.
    session: Mutex<Option<([u8; 32], SymKey)>>,
    config: Config,
    key_name: String,
    /// Index files [`Repository::load_index`] skipped, for the caller to report.
    index_problems: Mutex<Vec<Error>>,
    /// The locks this process holds on the repository: every index file and snapshot written,
    /// and every file a deleting operation removes, first checks that they are still fresh
    /// (format-spec/17-consistency.md §17.5 rule 3).
    held: Mutex<Vec<lock::WeakFreshness>>,
    /// The parity policy's pack overhead in basis points, once read (see [`parity`]).
    parity: Mutex<Option<u16>>,
    /// Threads for reading packs from a remote store, made on first use (see [`Repository::io_scope`]).
    io_pool: std::sync::OnceLock<Option<rayon::ThreadPool>>,
    /// BLAKE3 of the `config` file this session opened: a lock taken later checks that it is
    /// still the same, so a session never writes under keys a rotation has replaced.
    config_hash: [u8; 32],
    /// Trees kept across the operations of a long-running front end ([`Repository::share_trees`]).
    shared_trees: Option<Arc<walk::SharedTrees>>,
}

/// The in-memory index and the index files that could not be used.
pub type IndexReport = (Index, Vec<Error>);

/// Readable snapshots (oldest first) and the unreadable ones: file name and error.
pub type SnapshotListing = (Vec<(Id, Snapshot)>, Vec<(String, Error)>);

/// A key file as listed by [`Repository::list_keys`].
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// File name (ID).
    pub name: String,
    /// Decoded header fields.
    pub file: KeyFile,
    /// Whether this key opened the repository.
    pub current: bool,
}

impl Repository {
    /// Create a new repository in an empty location.
    pub fn init(backend: Arc<dyn Backend>, password: &[u8], opts: &InitOptions) -> Result<Repository> {
        let master = MasterKey::random()?;
        let repo_id = crate::crypto::random_array()?;
        let mut config = Config::new(repo_id);
        config.compression_level = opts.compression_level;
        config.pack_target_size = opts.pack_target_size;
        config.chunker = opts.chunker;
        // Out-of-range options are the caller's mistake, not damage.
        config.validate().map_err(as_invalid_argument)?;
        opts.kdf.validate().map_err(as_invalid_argument)?;
        backend.create()?;
        let keys = Keys::derive(&master);
        let mut repo = Repository::assemble(backend, keys, Some(master), None, config, String::new());
        repo.key_name = repo.add_key_unchecked(password, opts.kdf, &opts.label)?;
        repo.set_parity_overhead(opts.parity_overhead)?;
        // The config is written last: a directory without it is not (yet) a repository.
        let bytes = repo.encrypt_file(FileKind::Config, &repo.config.encode())?;
        repo.backend.write(FileType::Config, "config", &bytes)?;
        repo.config_hash = *blake3::hash(&bytes).as_bytes();
        Ok(repo)
    }

    /// Open an existing repository with a password.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        Repository::fetch(backend)?.unlock(password)
    }

    /// Everything opening needs from the storage, before a password: the config and the key
    /// list at once, then every key file at once (on a remote store: two round trips, not one
    /// per file). A location without a config is not a repository.
    pub fn fetch(backend: Arc<dyn Backend>) -> Result<Opening> {
        let (config, keys) =
            rayon::join(|| backend.read(FileType::Config, "config"), || list_objects(backend.as_ref(), FileType::Key));
        let config_bytes = match config {
            Ok(b) => b,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotARepository(format!("{}: no config file", backend.location())))
            }
            Err(e) => return Err(e),
        };
        header::split_sealed(&config_bytes, FileKind::Config, "config")?;
        let keys = keys?;
        if keys.is_empty() {
            return Err(Error::NotARepository(format!("{}: no key files", backend.location())));
        }
        let keys = keys.into_par_iter().map(|(name, _)| (backend.read(FileType::Key, &name), name)).collect();
        Ok(Opening { backend, config_bytes, keys })
    }
}

/// A repository fetched but not yet unlocked (see [`Repository::fetch`]).
pub struct Opening {
    backend: Arc<dyn Backend>,
    config_bytes: Vec<u8>,
    /// Each key file as read, with its name, in name order.
    keys: Vec<(Result<Vec<u8>>, String)>,
}

impl Opening {
    /// The repository `open` unlocked before, again, without its password (no KDF), when
    /// nothing it was opened from has changed: the same `config` bytes and its key file still
    /// listed (key files are named by their content). `None` otherwise, or for a backup key
    /// (whose binding is not kept). For a long-running front end, `arca ui`, which opens the
    /// repository for every page.
    pub fn reuse(&self, open: &Repository) -> Option<Repository> {
        let same_config = *blake3::hash(&self.config_bytes).as_bytes() == open.config_hash;
        let key_listed = self.keys.iter().any(|(read, name)| read.is_ok() && *name == open.key_name);
        if !same_config || !key_listed || open.binding.is_some() {
            return None;
        }
        open.duplicate_on(self.backend.clone())
    }

    /// Open the repository with `password`: the first key file it unlocks that opens the config.
    pub fn unlock(self, password: &[u8]) -> Result<Repository> {
        let Opening { backend, config_bytes, keys } = self;
        let mut damaged = None;
        // Key files that open with this password but not this repository's config.
        let mut foreign = Vec::new();
        let count = keys.len();
        for (read, name) in keys {
            let name = &name;
            let named = match read {
                Ok(bytes) if Id::of_file_bytes(&bytes).to_hex() == *name => KeyFile::decode(&bytes),
                Ok(_) => Err(Error::integrity("key file", "content does not match its name")),
                // Not a regular file, or too long: damaged like any other bad key file.
                Err(e @ Error::Integrity { .. }) => Err(e),
                Err(e) => return Err(e),
            };
            let kf = match named {
                Ok(kf) => kf,
                Err(e) => {
                    // A damaged key file must not lock out the others.
                    damaged.get_or_insert(match e {
                        Error::Integrity { reason, .. } => Error::integrity(format!("key file {name}"), reason),
                        e => e,
                    });
                    continue;
                }
            };
            let (unwrapped, repo_id) = match kdf::unwrap_any(&kf, password) {
                Ok(v) => v,
                Err(Error::WrongPassword) => continue,
                Err(e) => return Err(e),
            };
            let (keys, master, binding) = match unwrapped {
                Unwrapped::Admin(m) => (Keys::derive(&m), Some(m), None),
                Unwrapped::Restore(s) => (Keys::of_restore(&s), None, None),
                Unwrapped::Backup(s, b) => (Keys::of_backup(&s), None, Some(b)),
            };
            // A key copied from another repository with the same password must not lock the
            // user out: try the remaining key files.
            let config = match config_for(&keys, binding.as_ref(), &repo_id, &config_bytes)? {
                Some(c) if c.repo_id == repo_id => c,
                _ => {
                    foreign.push(name.clone());
                    continue;
                }
            };
            // An unfinished rotation: what is not yet rewritten is read with the previous keys
            // (format-spec/25), which the config carries (a backup key never sees such a config).
            let keys = match (&config.previous_master, keys.role()) {
                (Some(p), Role::Admin | Role::Restore) => {
                    let previous = Keys::derive(&MasterKey::from_bytes(p.0));
                    // Both views of a rotation would coincide, and it would remove every snapshot
                    // as already copied (format-spec/25 §25.1).
                    if previous.meta().as_bytes() == keys.meta().as_bytes() {
                        return Err(Error::integrity("config", "it names its own master key as the previous one"));
                    }
                    keys.with_previous(previous)
                }
                _ => keys,
            };
            let mut repo = Repository::assemble(backend, keys, master, binding, config, name.clone());
            repo.config_hash = *blake3::hash(&config_bytes).as_bytes();
            return Ok(repo);
        }
        if !foreign.is_empty() {
            // Which of the two cannot be told apart: the config's authentication binds both.
            let (s, verb) = if foreign.len() == 1 { ("", "belongs") } else { ("s", "belong") };
            return Err(Error::integrity(
                "config",
                format!(
                    "it does not decrypt with key file{s} {}, which open{} with this password: the key file{s} \
                     {verb} to another repository (remove {}), or the config is damaged; no other key file \
                     matches the password",
                    foreign.join(", "),
                    if foreign.len() == 1 { "s" } else { "" },
                    if foreign.len() == 1 { "it" } else { "them" },
                ),
            ));
        }
        match damaged {
            // Every key file is unreadable: say why, rather than blaming the password.
            Some(e) if count == 1 => Err(e),
            _ => Err(Error::WrongPassword),
        }
    }
}

/// The config as the key that opened the repository sees it, `None` when the key is not this
/// repository's. An admin or restore key decrypts `config`; a backup key, which cannot, carries
/// the config's body and the hash of the `config` file it was made for (format-spec/24 §24.3).
fn config_for(
    keys: &Keys,
    binding: Option<&BackupBinding>,
    repo_id: &[u8; 32],
    config_bytes: &[u8],
) -> Result<Option<Config>> {
    if let Some(b) = binding {
        if *blake3::hash(config_bytes).as_bytes() != b.config_hash {
            return Ok(None);
        }
        let config = Config::decode(&b.config_body)?;
        if config.required_features & crate::format::config::FEATURE_ROLES == 0 {
            return Err(Error::integrity("config", "a backup key belongs to a repository with roles"));
        }
        return Ok(Some(config));
    }
    match decrypt_with(keys, repo_id, FileKind::Config, config_bytes, "config", false) {
        Ok((_, body)) => Config::decode(&body).map(Some),
        Err(Error::Integrity { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Repository {
    fn assemble(
        backend: Arc<dyn Backend>,
        keys: Keys,
        master: Option<MasterKey>,
        binding: Option<BackupBinding>,
        config: Config,
        key_name: String,
    ) -> Repository {
        Repository {
            backend,
            keys,
            master,
            binding,
            sealed_keys: Mutex::default(),
            session: Mutex::default(),
            config,
            key_name,
            index_problems: Mutex::default(),
            held: Mutex::default(),
            parity: Mutex::default(),
            io_pool: Default::default(),
            config_hash: [0; 32],
            shared_trees: None,
        }
    }

    /// This repository again, on `backend`, with the same keys and config and fresh session
    /// state; `None` for a backup key (its binding is not kept). See [`Opening::reuse`].
    pub fn duplicate_on(&self, backend: Arc<dyn Backend>) -> Option<Repository> {
        if self.binding.is_some() {
            return None;
        }
        let (keys, master, config) = (self.keys.clone(), self.master.clone(), self.config.clone());
        let mut repo = Repository::assemble(backend, keys, master, None, config, self.key_name.clone());
        repo.config_hash = self.config_hash;
        repo.shared_trees.clone_from(&self.shared_trees);
        Some(repo)
    }

    /// Keep decoded trees across operations: this repository and every
    /// [`Repository::duplicate_on`] of it share one bounded cache ([`walk::SharedTrees`]).
    pub fn share_trees(&mut self) {
        self.shared_trees.get_or_insert_with(Default::default);
    }

    /// The cache [`Repository::share_trees`] made, if any.
    pub fn shared_trees(&self) -> Option<&walk::SharedTrees> {
        self.shared_trees.as_deref()
    }

    /// The role of the key that opened the repository.
    pub fn role(&self) -> Role {
        self.keys.role()
    }

    /// Whether the repository has key roles enabled (format-spec/24): its config sets the
    /// required feature bit.
    pub fn has_roles(&self) -> bool {
        self.config.required_features & crate::format::config::FEATURE_ROLES != 0
    }

    /// Fail with [`Error::RoleDenied`] unless this key's role is one of `roles`; `action` says
    /// what was asked (`"forget snapshots"`). Operations call this before they touch storage.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<()> {
        if roles.contains(&self.role()) {
            return Ok(());
        }
        let needed: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        Err(Error::RoleDenied { role: self.role().name().into(), action: action.into(), needed: needed.join(" or ") })
    }

    /// The key of this backup key's local cache (format-spec/24 §24.8), for a backup key.
    pub fn backup_cache_key(&self) -> Option<&[u8; 32]> {
        self.binding.as_ref().map(|b| &b.cache_key)
    }

    /// The key of an object sealed to the read key with ephemeral key `e` (cached: one X25519
    /// per backup session's packs, not per blob).
    fn sealed_key(&self, e: &[u8; 32], what: &str) -> Result<SymKey> {
        if let Some(k) = self.sealed_keys.lock().unwrap().get(e) {
            return Ok(k.clone());
        }
        let k = self.keys.sealed_key(e, what)?;
        let mut cache = self.sealed_keys.lock().unwrap();
        // Ephemeral keys are chosen by writers; bound what a hostile index can make us keep.
        if cache.len() >= 1 << 16 {
            cache.clear();
        }
        cache.insert(*e, k.clone());
        Ok(k)
    }

    /// The key blobs of a pack sealed as `ephemeral` says are sealed with.
    fn pack_key(&self, ephemeral: Option<&[u8; 32]>, what: &str) -> Result<SymKey> {
        match ephemeral {
            None => self.keys.full().cloned(),
            Some(e) => self.sealed_key(e, what),
        }
    }

    /// [`Repository::pack_key`] of generation `keys`: the current keys (cached), or the
    /// previous ones of an unfinished rotation.
    fn pack_key_of(&self, keys: &Keys, ephemeral: Option<&[u8; 32]>, what: &str) -> Result<SymKey> {
        match (std::ptr::eq(keys, &self.keys), ephemeral) {
            (true, _) => self.pack_key(ephemeral, what),
            (false, None) => keys.full().cloned(),
            (false, Some(e)) => keys.sealed_key(e, what),
        }
    }

    /// Run `open` with the current keys and, if it fails as damage and a rotation is
    /// unfinished, with the previous ones (format-spec/25 §25.3): an object not yet rewritten.
    /// The first error is the one reported when neither opens it.
    pub(crate) fn with_generations<T>(&self, mut open: impl FnMut(&Keys) -> Result<T>) -> Result<T> {
        match (open(&self.keys), self.keys.previous()) {
            (Err(e @ Error::Integrity { .. }), Some(previous)) => open(previous).map_err(|_| e),
            (r, _) => r,
        }
    }

    /// Whether file `id` of `kind` opens with the current keys alone, not only with the
    /// previous generation's of an unfinished rotation (format-spec/25). Unreadable: `false`.
    pub fn sealed_by_current_keys(&self, kind: FileKind, id: &Id) -> bool {
        let Ok(bytes) = self.read_named(file_type(kind), &id.to_hex()) else { return false };
        decrypt_with(&self.keys, self.repo_id(), kind, &bytes, "", self.has_roles()).is_ok()
    }

    /// The repository as one generation of keys sees it (format-spec/25): `master`'s keys
    /// alone, with `config`, checking this session's locks before it writes.
    pub(crate) fn generation_view(&self, master: &MasterKey, config: Config) -> Repository {
        let keys = Keys::derive(master);
        let mut view =
            Repository::assemble(self.backend.clone(), keys, Some(master.clone()), None, config, self.key_name.clone());
        view.held = Mutex::new(self.held.lock().unwrap().clone());
        view.config_hash = self.config_hash;
        view
    }

    /// After this session rewrote `config` (a rotation's switch or its end): the key file now
    /// in use and the config's bytes; while the config names a previous generation, its keys
    /// read what is not yet rewritten.
    pub(crate) fn adopt_switch(&mut self, key_name: String, config_bytes: &[u8]) {
        self.key_name = key_name;
        self.config_hash = *blake3::hash(config_bytes).as_bytes();
        if let Some(p) = &self.config.previous_master {
            self.keys = self.keys.clone().with_previous(Keys::derive(&MasterKey::from_bytes(p.0)));
        }
    }

    /// The master key, for an admin key.
    pub(crate) fn master(&self) -> Option<&MasterKey> {
        self.master.as_ref()
    }

    /// Whether a key rotation is unfinished (format-spec/25): the config carries the previous
    /// generation's master key.
    pub fn rotation_unfinished(&self) -> bool {
        self.config.required_features & crate::format::config::FEATURE_ROTATION != 0
    }

    /// Refuse `action` while a key rotation is unfinished: it would write under the new keys
    /// what the rotation's accounting of the old generation does not expect.
    pub fn refuse_during_rotation(&self, action: &str) -> Result<()> {
        match self.rotation_unfinished() {
            true => Err(Error::InvalidArgument(format!(
                "a key rotation is unfinished: run `arca key rotate` to finish it before you {action}"
            ))),
            false => Ok(()),
        }
    }

    /// Fail unless the `config` file is byte for byte the one this session opened.
    pub fn ensure_config_as_opened(&self) -> Result<()> {
        let bytes = self.backend.read(FileType::Config, "config")?;
        match *blake3::hash(&bytes).as_bytes() == self.config_hash {
            true => Ok(()),
            false => Err(Error::Refused(
                "the repository's config changed since this run opened it: nothing was written; run the \
                 command again"
                    .into(),
            )),
        }
    }

    /// Fail if the `config` file no longer opens with this session's keys: a key rotation
    /// replaced them, and what this session would write would be sealed under keys that are
    /// going away (format-spec/25). Checked under every lock just taken.
    pub(crate) fn ensure_config_unchanged(&self) -> Result<()> {
        let bytes = self.backend.read(FileType::Config, "config")?;
        match config_still_ours(&self.keys, self.binding.is_some(), self.repo_id(), &self.config_hash, &bytes) {
            true => Ok(()),
            false => Err(Error::Refused(
                "the repository's keys changed since this run opened it (a key rotation): nothing was \
                 written; run the command again"
                    .into(),
            )),
        }
    }

    /// How this session seals new packs: `(None, K_enc)`, or for a backup key
    /// `(Some(E), K)` with one ephemeral key for the whole session (format-spec/24 §24.5).
    pub fn pack_sealer(&self) -> Result<(Option<[u8; 32]>, SymKey)> {
        if self.role() != Role::Backup {
            return Ok((None, self.keys.full()?.clone()));
        }
        let mut session = self.session.lock().unwrap();
        if session.is_none() {
            *session = Some(self.keys.new_sealed_key()?);
        }
        let (e, k) = session.as_ref().expect("just set");
        Ok((Some(*e), k.clone()))
    }

    /// How files of `kind` are sealed by this key in this repository (format-spec/24 §24.2).
    fn sealing_for(&self, kind: FileKind) -> Sealing {
        if !self.has_roles() {
            return Sealing::Full;
        }
        match kind {
            FileKind::Index | FileKind::Lock | FileKind::ParityPolicy => Sealing::Meta,
            FileKind::Snapshot | FileKind::Journal if self.role() == Role::Backup => Sealing::Reader,
            _ => Sealing::Full,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The derived keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The repository ID.
    pub fn repo_id(&self) -> &[u8; 32] {
        &self.config.repo_id
    }

    /// Name of the key file that opened the repository.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    // ---- keys -------------------------------------------------------------------------------

    /// Add an admin key file for `password`; returns its name.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams, label: &str) -> Result<String> {
        // A key made by a session whose keys a rotation replaced would hold the old master key.
        self.ensure_config_unchanged()?;
        self.add_key_unchecked(password, kdf, label)
    }

    /// [`Repository::add_key`] without the config check (a repository being created has none).
    fn add_key_unchecked(&self, password: &[u8], kdf: KdfParams, label: &str) -> Result<String> {
        self.require(&[Role::Admin], "add keys")?;
        let master = self.master.as_ref().ok_or_else(|| Error::InvalidArgument("no master key".into()))?;
        kdf.validate().map_err(as_invalid_argument)?;
        let kf = kdf::wrap(master, self.repo_id(), password, kdf, label, crate::sys::now_secs())?;
        self.write_key_file(&kf)
    }

    /// Add a key file of `role` for `password` (format-spec/24 §24.3); returns its name. The
    /// repository must have roles ([`Repository::enable_roles`]): a backup key carries the hash
    /// of the `config` file, which enabling them rewrites.
    pub fn add_role_key(&self, role: Role, password: &[u8], kdf: KdfParams, label: &str) -> Result<String> {
        if role == Role::Admin {
            return self.add_key(password, kdf, label);
        }
        self.require(&[Role::Admin], "add keys")?;
        self.ensure_config_unchanged()?;
        if !self.has_roles() {
            return Err(Error::InvalidArgument("the repository has no key roles yet (enable_roles first)".into()));
        }
        let master = self.master.as_ref().ok_or_else(|| Error::InvalidArgument("no master key".into()))?;
        kdf.validate().map_err(as_invalid_argument)?;
        let secret = match role {
            Role::Restore => kdf::restore_secret(self.repo_id(), &self.keys.restore_secrets()?),
            _ => {
                let config_bytes = self.backend.read(FileType::Config, "config")?;
                let binding = BackupBinding {
                    config_hash: *blake3::hash(&config_bytes).as_bytes(),
                    cache_key: crate::crypto::random_array()?,
                    config_body: self.config.encode(),
                };
                kdf::backup_secret(self.repo_id(), &self.keys.backup_secrets(master), &binding)
            }
        };
        let (salt, nonce) = (crate::crypto::random_array()?, crate::crypto::random_array()?);
        let kf = kdf::seal_secret(role, &secret, password, kdf, label, crate::sys::now_secs(), salt, nonce)?;
        self.write_key_file(&kf)
    }

    fn write_key_file(&self, kf: &KeyFile) -> Result<String> {
        let bytes = kf.encode();
        let name = Id::of_file_bytes(&bytes).to_hex();
        self.backend.write(FileType::Key, &name, &bytes)?;
        Ok(name)
    }

    /// All key files (those that fail to decode are reported as errors).
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for (name, _) in self.list_objects(FileType::Key)? {
            let file = KeyFile::decode(&self.read_named(FileType::Key, &name)?)?;
            out.push(KeyInfo { current: name == self.key_name, name, file });
        }
        Ok(out)
    }

    /// Remove a key file by name or unique prefix. The key in use is refused (so the last key
    /// can never be removed).
    pub fn remove_key(&self, prefix: &str) -> Result<String> {
        self.require(&[Role::Admin], "remove keys")?;
        let names: Vec<String> = self.list_objects(FileType::Key)?.into_iter().map(|(n, _)| n).collect();
        let name = unique_prefix(&names, prefix, "key")?;
        if name == self.key_name {
            return Err(Error::InvalidArgument("refusing to remove the key in use; open with another key".into()));
        }
        self.backend.remove(FileType::Key, &name)?;
        Ok(name)
    }

    /// Replace the key in use with one for `new_password`; returns the new key's name.
    pub fn change_password(&mut self, new_password: &[u8], kdf: KdfParams, label: &str) -> Result<String> {
        self.require(&[Role::Admin], "change passwords")?;
        let new = self.add_key(new_password, kdf, label)?;
        let old = std::mem::replace(&mut self.key_name, new.clone());
        self.backend.remove(FileType::Key, &old)?;
        Ok(new)
    }

    // ---- encrypted files --------------------------------------------------------------------

    /// Build an encrypted file of `kind` around `body` (zstd-compressed when that helps).
    pub fn encrypt_file(&self, kind: FileKind, body: &[u8]) -> Result<Vec<u8>> {
        let sealing = self.sealing_for(kind);
        encrypt_with(&self.keys, self.repo_id(), kind, sealing, body, self.config.compression_level.max(1))
    }

    /// An owned function that encrypts lock bodies, for the lock refresh thread.
    pub(crate) fn lock_sealer(&self) -> impl Fn(&[u8]) -> Result<Vec<u8>> + Send + 'static {
        let keys = self.keys.clone();
        let repo_id = *self.repo_id();
        let sealing = self.sealing_for(FileKind::Lock);
        move |body| encrypt_with(&keys, &repo_id, FileKind::Lock, sealing, body, 1)
    }

    /// Decrypt an encrypted file of `kind`; `what` names it in errors.
    pub fn decrypt_file(&self, kind: FileKind, bytes: &[u8], what: &str) -> Result<Vec<u8>> {
        Ok(self.decrypt_file_sealed(kind, bytes, what)?.1)
    }

    /// [`Repository::decrypt_file`], also saying how the file was sealed.
    pub fn decrypt_file_sealed(&self, kind: FileKind, bytes: &[u8], what: &str) -> Result<(Sealing, Vec<u8>)> {
        self.with_generations(|keys| decrypt_with(keys, self.repo_id(), kind, bytes, what, self.has_roles()))
    }

    /// Read a content-addressed file and check that its name is the BLAKE3 of its bytes.
    pub fn read_named(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let bytes = self.backend.read(t, name)?;
        if Id::of_file_bytes(&bytes).to_hex() != name {
            return Err(Error::integrity(format!("{} {name}", t.dir()), "content does not match its name"));
        }
        Ok(bytes)
    }

    /// Encrypt `body` as a file of `kind`, publish it under its hash, and return that ID.
    pub fn save_file(&self, kind: FileKind, body: &[u8]) -> Result<Id> {
        let bytes = self.encrypt_file(kind, body)?;
        let id = Id::of_file_bytes(&bytes);
        self.backend.write(file_type(kind), &id.to_hex(), &bytes)?;
        // Parity only once the file is durable (format-spec/22 §22.8).
        if crate::format::parity::protects(kind) {
            self.protect(kind, &id, &bytes).map_err(|e| match kind {
                // The snapshot is committed: say so rather than report the backup as lost.
                FileKind::Snapshot => Error::Io {
                    path: format!("parity/{}/{id}", &id.to_hex()[..2]).into(),
                    source: std::io::Error::other(format!(
                        "snapshot {id} was saved, but its parity file could not be written ({e}); \
                         `arca parity build` writes it"
                    )),
                },
                _ => e,
            })?;
        }
        Ok(id)
    }

    /// Read, verify and decrypt a content-addressed file of `kind`.
    pub fn load_file(&self, kind: FileKind, id: &Id) -> Result<Vec<u8>> {
        let t = file_type(kind);
        let bytes = self.read_named(t, &id.to_hex())?;
        self.decrypt_file(kind, &bytes, &format!("{} {id}", kind.name()))
    }

    // ---- snapshots --------------------------------------------------------------------------

    /// Store a snapshot (the commit point of a backup). One larger than readers accept is refused.
    pub fn save_snapshot(&self, s: &Snapshot) -> Result<Id> {
        self.require(&[Role::Admin, Role::Backup], "write snapshots")?;
        self.ensure_locks_fresh()?;
        let body = s.encode();
        if body.len() > crate::format::snapshot::MAX_SNAPSHOT_LEN {
            return Err(Error::InvalidArgument(format!(
                "snapshot of {} bytes ({} paths, {} tags) exceeds the format's limit; back up a parent directory instead",
                body.len(),
                s.paths.len(),
                s.tags.len()
            )));
        }
        self.save_file(FileKind::Snapshot, &body)
    }

    /// Load one snapshot.
    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        Snapshot::decode(&self.load_file(FileKind::Snapshot, id)?, &format!("snapshot {id}"))
    }

    /// All readable snapshots, oldest first. Damaged ones are left out (one bad file must not
    /// stop backups or listings); [`Repository::list_snapshots_and_damage`] names them.
    pub fn list_snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        Ok(self.list_snapshots_and_damage()?.0)
    }

    /// All readable snapshots, oldest first, and the names and errors of those that could not
    /// be read.
    pub fn list_snapshots_and_damage(&self) -> Result<SnapshotListing> {
        let names = self.list_objects(FileType::Snapshot)?;
        let loaded: Vec<(String, Result<(Id, Snapshot)>)> = self.io_scope(|| {
            names
                .into_par_iter()
                .map(|(n, _)| {
                    let id = Id::from_hex(&n).ok_or_else(|| Error::integrity(format!("snapshot {n}"), "bad file name"));
                    let loaded = id.and_then(|id| Ok((id, self.load_snapshot(&id)?)));
                    (n, loaded)
                })
                .collect()
        });
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for (name, r) in loaded {
            match r {
                Ok(v) => good.push(v),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => bad.push((name, e)),
            }
        }
        good.sort_by_key(|(id, s)| (s.time, *id));
        Ok((good, bad))
    }

    /// Resolve `latest` (any case) or an ID prefix to a snapshot, with no filter; see
    /// [`select::resolve`]. A damaged snapshot that may be the latest is an integrity error.
    pub fn find_snapshot(&self, reference: &str) -> Result<(Id, Snapshot)> {
        select::resolve(self, reference, &select::SnapshotFilter::default())
    }

    // ---- index and blobs --------------------------------------------------------------------

    /// Names and sizes of the files of type `t` whose names are object names; others (a stray
    /// `.DS_Store`, a sync tool's conflict copy) are not repository files and readers ignore them
    /// (format-spec/04 §4.2). [`Repository::stray_files`] lists them.
    pub fn list_objects(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        list_objects(self.backend.as_ref(), t)
    }

    /// Entries that are not repository files, for `check` to report (format-spec/04 §4.2): at
    /// the top level and in `data/` (see [`Backend::stray_entries`]), and files in `keys/`,
    /// `data/xx/`, `index/`, `snapshots/` and `locks/` whose names are not object names (in a
    /// shard, also an object name of another shard), as `dir/name`. `journal/` is reported with
    /// the journal's own check; `tmp/` holds writers' temporary files and is never reported.
    pub fn stray_files(&self) -> Result<Vec<String>> {
        let mut out = self.backend.stray_entries()?;
        let types =
            [FileType::Key, FileType::Pack, FileType::Index, FileType::Snapshot, FileType::Lock, FileType::Parity];
        // The listings at once: on a remote store each is a round trip or more.
        let lists: Vec<Result<Vec<(String, u64)>>> =
            self.io_scope(|| types.par_iter().map(|&t| self.backend.list(t)).collect());
        for (t, names) in types.into_iter().zip(lists) {
            out.extend(names?.into_iter().filter(|(n, _)| !is_object_name(n)).map(|(n, _)| format!("{}/{n}", t.dir())));
        }
        Ok(out)
    }

    /// Names of all index files.
    pub fn index_ids(&self) -> Result<Vec<Id>> {
        Ok(self.list_objects(FileType::Index)?.iter().filter_map(|(n, _)| Id::from_hex(n)).collect())
    }

    /// Load and decode one index file.
    pub fn load_index_file(&self, id: &Id) -> Result<Vec<findex::IndexPack>> {
        let bytes = self.read_named(FileType::Index, &id.to_hex())?;
        self.decode_index_file(&bytes, &format!("index {id}"))
    }

    /// Decrypt and decode an index file's bytes: its pack records are 40 bytes, or 72 in one
    /// sealed under `K_meta` (format-spec/24 §24.6).
    pub fn decode_index_file(&self, bytes: &[u8], what: &str) -> Result<Vec<findex::IndexPack>> {
        let (sealing, body) = self.decrypt_file_sealed(FileKind::Index, bytes, what)?;
        let layout = if sealing == Sealing::Meta { findex::Layout::WithEphemeral } else { findex::Layout::Plain };
        findex::decode_layout(&body, layout, what)
    }

    /// Load every index file (in parallel) into the in-memory index, skipping those that are
    /// damaged or not this repository's (format-spec/10): returns the index built from the rest
    /// and the integrity error of each skipped file. A blob listed only in a skipped file then
    /// reads as missing (an integrity error). I/O errors still fail the load. Code that deletes
    /// data must refuse when the list is not empty.
    pub fn load_index_reporting(&self) -> Result<IndexReport> {
        let ids = self.index_ids()?;
        let loaded: Vec<Result<Vec<findex::IndexPack>>> =
            self.io_scope(|| ids.par_iter().map(|id| self.load_index_file(id)).collect());
        let (mut packs, mut problems) = (Vec::new(), Vec::new());
        for r in loaded {
            match r {
                Ok(p) => packs.push(p),
                // Removed since the listing (a concurrent prune): nothing to report.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                // Unreadable (damaged) or sealed under K_enc, which a backup key lacks: written
                // before roles were enabled, or by an older program (format-spec/24 §24.6).
                Err(e @ (Error::Integrity { .. } | Error::RoleDenied { .. })) => problems.push(e),
                Err(e) => return Err(e),
            }
        }
        // A remote store then reads blobs without a length request per pack first.
        for p in packs.iter().flatten() {
            self.backend.size_hint(FileType::Pack, &p.id.to_hex(), p.size.into());
        }
        Ok((Index::from_packs(packs.into_iter().flatten()), problems))
    }

    /// [`Repository::load_index_reporting`], keeping the skipped files' errors for
    /// [`Repository::take_index_problems`].
    pub fn load_index(&self) -> Result<Index> {
        let (index, problems) = self.load_index_reporting()?;
        self.index_problems.lock().unwrap().extend(problems);
        Ok(index)
    }

    /// Errors of the index files that [`Repository::load_index`] skipped since the last call.
    pub fn take_index_problems(&self) -> Vec<Error> {
        std::mem::take(&mut *self.index_problems.lock().unwrap())
    }

    /// Write an index file listing `packs`.
    pub fn save_index(&self, packs: &[findex::IndexPack]) -> Result<Id> {
        self.ensure_locks_fresh()?;
        let layout = if self.sealing_for(FileKind::Index) == Sealing::Meta {
            findex::Layout::WithEphemeral
        } else {
            findex::Layout::Plain
        };
        if layout == findex::Layout::Plain && packs.iter().any(|p| p.ephemeral.is_some()) {
            return Err(Error::InvalidArgument("a pack sealed to the read key in a repository without roles".into()));
        }
        let body = findex::encode_layout(packs, layout);
        if body.len() > findex::MAX_INDEX_LEN {
            return Err(Error::InvalidArgument(format!(
                "an index file of {} bytes would exceed the format's limit",
                body.len()
            )));
        }
        self.save_file(FileKind::Index, &body)
    }

    /// Seal a blob's plaintext: compress (per config), encrypt with its AD. Returns the envelope.
    pub fn seal_blob(&self, t: BlobType, id: &Id, plain: &[u8]) -> Result<Vec<u8>> {
        self.seal_blob_with(&self.pack_sealer()?.1, t, id, plain)
    }

    /// [`Repository::seal_blob`] under `key`, the key of the pack it goes into.
    pub fn seal_blob_with(&self, key: &SymKey, t: BlobType, id: &Id, plain: &[u8]) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; crate::format::NONCE_LEN];
        compression::encode_into(&mut buf, plain, self.config.compression_level);
        key.seal_in_place(&mut buf, &blob::blob_ad(t, id, self.repo_id()))?;
        Ok(buf)
    }

    /// Open a blob envelope from a pack sealed as `ephemeral` says (format-spec/24 §24.5):
    /// authenticate, decompress, and check the plaintext hashes to `id`.
    pub fn open_blob(&self, ephemeral: Option<&[u8; 32]>, t: BlobType, id: &Id, envelope: &[u8]) -> Result<Vec<u8>> {
        self.open_blob_owned(ephemeral, t, id, envelope.to_vec())
    }

    /// [`Repository::open_blob`], decrypting in the envelope's own buffer.
    pub fn open_blob_owned(
        &self,
        ephemeral: Option<&[u8; 32]>,
        t: BlobType,
        id: &Id,
        envelope: Vec<u8>,
    ) -> Result<Vec<u8>> {
        let what = blob::describe(t, id);
        // Only an unfinished rotation may need a second try, and only then is a copy kept.
        let mut spare = self.keys.previous().map(|_| envelope.clone());
        let mut envelope = Some(envelope);
        self.with_generations(|keys| {
            let env = envelope.take().or_else(|| spare.take()).expect("tried at most twice");
            let key = self.pack_key_of(keys, ephemeral, &what)?;
            let framed = key.open_in_place(env, &blob::blob_ad(t, id, self.repo_id()), &what)?;
            let plain = compression::decode_owned(framed, self.plain_limit(t), &what)?;
            if keys.blob_id(&plain) != *id {
                return Err(Error::integrity(&what, "plaintext does not hash to the blob ID"));
            }
            Ok(plain)
        })
    }

    /// Read one blob through the index. A tree blob the index lists may come from the local
    /// cache of a remote repository; a cached envelope that does not authenticate as that blob
    /// is dropped and the pack read instead, so the cache never changes a result.
    pub fn read_blob(&self, index: &Index, t: BlobType, id: &Id) -> Result<Vec<u8>> {
        let loc = index.lookup(t, id);
        let cacheable = t == BlobType::Tree && loc.is_some();
        let ephemeral = loc.and_then(|l| l.ephemeral);
        if cacheable {
            if let Some(env) = self.backend.cached_blob(id) {
                match self.open_blob_owned(ephemeral.as_ref(), t, id, env) {
                    Ok(plain) => return Ok(plain),
                    Err(e @ Error::RoleDenied { .. }) => return Err(e),
                    Err(_) => self.backend.forget_blob(id),
                }
            }
        }
        let env = self.read_envelope(index, t, id)?;
        if cacheable && self.backend.caches_blobs() {
            let plain = self.open_blob_owned(ephemeral.as_ref(), t, id, env.clone())?;
            self.backend.keep_blob(id, &env);
            return Ok(plain);
        }
        self.open_blob_owned(ephemeral.as_ref(), t, id, env)
    }

    /// [`Repository::read_blob`], also returning the blob's framed plaintext (method byte and
    /// body as stored, format-spec/15), so that it can be sealed into another repository without
    /// compressing it again ([`Repository::seal_framed_blob`]). Returns `(framed, plaintext)`.
    pub fn read_blob_framed(&self, index: &Index, t: BlobType, id: &Id) -> Result<(Vec<u8>, Vec<u8>)> {
        let what = blob::describe(t, id);
        let env = self.read_envelope(index, t, id)?;
        let ephemeral = index.lookup(t, id).and_then(|l| l.ephemeral);
        let mut spare = self.keys.previous().map(|_| env.clone());
        let mut env = Some(env);
        self.with_generations(|keys| {
            let env = env.take().or_else(|| spare.take()).expect("tried at most twice");
            let key = self.pack_key_of(keys, ephemeral.as_ref(), &what)?;
            let framed = key.open_in_place(env, &blob::blob_ad(t, id, self.repo_id()), &what)?;
            let plain = compression::decode(&framed, self.plain_limit(t), &what)?;
            if keys.blob_id(&plain) != *id {
                return Err(Error::integrity(&what, "plaintext does not hash to the blob ID"));
            }
            Ok((framed, plain))
        })
    }

    /// Seal an already framed plaintext (method byte and body, format-spec/15) as blob `id`.
    pub fn seal_framed_blob(&self, t: BlobType, id: &Id, framed: &[u8]) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(crate::format::SEAL_OVERHEAD + framed.len());
        buf.resize(crate::format::NONCE_LEN, 0);
        buf.extend_from_slice(framed);
        self.pack_sealer()?.1.seal_in_place(&mut buf, &blob::blob_ad(t, id, self.repo_id()))?;
        Ok(buf)
    }

    /// Largest plaintext a blob of type `t` may have in this repository.
    fn plain_limit(&self, t: BlobType) -> usize {
        match t {
            BlobType::Data => self.config.chunker.max_size as usize,
            BlobType::Tree => crate::format::tree::MAX_TREE_LEN,
        }
    }

    /// The envelope of blob `id`, read from its pack at the place the index gives.
    fn read_envelope(&self, index: &Index, t: BlobType, id: &Id) -> Result<Vec<u8>> {
        let what = || blob::describe(t, id);
        let loc = index.lookup(t, id).ok_or_else(|| Error::integrity(what(), "missing: not in any index"))?;
        // The index is untrusted input: never allocate more than a blob of this type can take.
        let plain_max = self.plain_limit(t);
        if loc.len as usize > crate::format::SEAL_OVERHEAD + 1 + plain_max {
            return Err(Error::integrity(
                what(),
                format!("the index gives it {} bytes, more than a blob can be", loc.len),
            ));
        }
        self.backend.read_at(FileType::Pack, &loc.pack.to_hex(), loc.offset as u64, loc.len as usize).map_err(|e| {
            match e {
                // A missing or truncated pack: name the blob that was wanted too.
                Error::Integrity { object, reason } => {
                    Error::integrity(object, format!("{reason} (reading {} at offset {})", what(), loc.offset))
                }
                e => e,
            }
        })
    }

    /// Run `f`, whose parallel iterators read packs, on as many threads as the storage wants
    /// reads in flight ([`Backend::read_parallelism`]) when that is more than the CPU threads:
    /// on a remote store a thread mostly waits for its round trip.
    pub fn io_scope<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let want = self.backend.read_parallelism();
        if want <= rayon::current_num_threads() {
            return f();
        }
        let pool = self
            .io_pool
            .get_or_init(|| rayon::ThreadPoolBuilder::new().num_threads(want).stack_size(64 << 20).build().ok());
        match pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    /// Read and decode a tree blob.
    pub fn read_tree(&self, index: &Index, id: &Id) -> Result<Tree> {
        let plain = self.read_blob(index, BlobType::Tree, id)?;
        Tree::decode(&plain, &blob::describe(BlobType::Tree, id))
    }
}

fn encrypt_with(
    keys: &Keys,
    repo_id: &[u8; 32],
    kind: FileKind,
    sealing: Sealing,
    body: &[u8],
    level: i32,
) -> Result<Vec<u8>> {
    let hdr = header::encode_sealed(kind, sealing);
    let framed = compression::encode(body, level);
    let ad = header::file_ad(&hdr, repo_id);
    let mut out = hdr.to_vec();
    let sealed = match sealing {
        Sealing::Full => keys.seal(&framed, &ad)?,
        Sealing::Meta => keys.meta().seal(&framed, &ad)?,
        Sealing::Reader => {
            let (e, key) = keys.new_sealed_key()?;
            out.extend_from_slice(&e);
            key.seal(&framed, &ad)?
        }
    };
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The sealings a file of `kind` may have (format-spec/24 §24.2): only `K_enc` without roles.
fn allowed_sealings(kind: FileKind, roles: bool) -> &'static [Sealing] {
    match kind {
        _ if !roles => &[Sealing::Full],
        FileKind::Index | FileKind::Lock | FileKind::ParityPolicy => &[Sealing::Full, Sealing::Meta],
        FileKind::Snapshot | FileKind::Journal => &[Sealing::Full, Sealing::Reader],
        _ => &[Sealing::Full],
    }
}

fn decrypt_with(
    keys: &Keys,
    repo_id: &[u8; 32],
    kind: FileKind,
    bytes: &[u8],
    what: &str,
    roles: bool,
) -> Result<(Sealing, Vec<u8>)> {
    let parts = header::split_sealing(bytes, kind, allowed_sealings(kind, roles), what)?;
    let ad = header::file_ad(parts.header, repo_id);
    let framed = match (parts.sealing, parts.ephemeral) {
        (Sealing::Meta, _) => keys.meta().open(parts.sealed, &ad, what)?,
        (Sealing::Reader, Some(e)) => keys.sealed_key(&e, what)?.open(parts.sealed, &ad, what)?,
        _ => keys.open(parts.sealed, &ad, what)?,
    };
    Ok((parts.sealing, compression::decode(&framed, body_limit(kind), what)?))
}

/// Whether `config_bytes` is still a config these keys write for: the one opened, or one
/// rewritten under the same master key (key roles enabled; a rotation finished). A backup key,
/// which cannot decrypt the config, is bound to its exact bytes (format-spec/24 §24.3).
pub(crate) fn config_still_ours(
    keys: &Keys,
    backup_key: bool,
    repo_id: &[u8; 32],
    opened: &[u8; 32],
    config_bytes: &[u8],
) -> bool {
    if blake3::hash(config_bytes).as_bytes() == opened {
        return true;
    }
    !backup_key && decrypt_with(keys, repo_id, FileKind::Config, config_bytes, "config", false).is_ok()
}

fn list_objects(backend: &dyn Backend, t: FileType) -> Result<Vec<(String, u64)>> {
    Ok(backend.list(t)?.into_iter().filter(|(n, _)| is_object_name(n)).collect())
}

/// A failed validation of caller-chosen parameters is a usage error, not damage.
fn as_invalid_argument(e: Error) -> Error {
    match e {
        Error::Integrity { reason, .. } => Error::InvalidArgument(reason),
        e => e,
    }
}

/// The single name in `names` starting with `prefix` (case-insensitive hex).
pub fn unique_prefix(names: &[String], prefix: &str, what: &str) -> Result<String> {
    let p = prefix.to_ascii_lowercase();
    let mut hits = names.iter().filter(|n| n.starts_with(&p));
    match (hits.next(), hits.next()) {
        (Some(n), None) if !p.is_empty() => Ok(n.clone()),
        (Some(_), Some(_)) => Err(Error::InvalidArgument(format!("{what} prefix {prefix:?} is ambiguous"))),
        _ => Err(Error::NotFound(format!("no {what} matches {prefix:?}"))),
    }
}
