//! Turning key roles on in a repository (format-spec/24-roles.md §24.7): the config gets the
//! required feature bit, and every index file and the parity policy are sealed again under
//! `K_meta`, which backup keys hold, so that a backup key can deduplicate against everything
//! stored before it existed. Runs under an exclusive lock, like prune.

use super::Repository;
use crate::backend::FileType;
use crate::crypto::Role;
use crate::error::{Error, Result};
use crate::format::config::FEATURE_ROLES;
use crate::format::header::{FileKind, Sealing};
use crate::id::Id;

/// What enabling roles did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolesEnabled {
    /// Whether the config was rewritten now (false: roles were already on).
    pub config_rewritten: bool,
    /// Index files sealed again under `K_meta` (written new, the old ones removed).
    pub index_files_resealed: usize,
}

impl Repository {
    /// Enable key roles; the caller holds an exclusive lock. Safe to run again after a crash at
    /// any point: the config is rewritten first (a repository with the bit accepts index files
    /// of either sealing), then each index file is written again before the old one goes.
    pub fn enable_roles(&mut self) -> Result<RolesEnabled> {
        self.require(&[Role::Admin], "enable key roles")?;
        let mut done = RolesEnabled::default();
        // Read the config again under the lock: another process may have enabled roles since
        // this one opened the repository, and rewriting it again would unbind its backup keys.
        self.refuse_during_rotation("add role keys")?;
        let bytes = self.backend.read(FileType::Config, "config")?;
        let (_, body) = super::decrypt_with(&self.keys, self.repo_id(), FileKind::Config, &bytes, "config", false)?;
        self.config = crate::format::config::Config::decode(&body)?;
        self.config_hash = *blake3::hash(&bytes).as_bytes();
        if !self.has_roles() {
            let mut config = self.config.clone();
            config.required_features |= FEATURE_ROLES;
            let bytes =
                super::encrypt_with(&self.keys, self.repo_id(), FileKind::Config, Sealing::Full, &config.encode(), 1)?;
            self.backend.replace(FileType::Config, "config", &bytes)?;
            self.config_hash = *blake3::hash(&bytes).as_bytes();
            self.config = config;
            done.config_rewritten = true;
        }
        done.index_files_resealed = self.reseal_index_files()?;
        // The policy tells a backup key's writer how much parity to make; it must read it.
        if let Some(bp) = self.load_parity_policy()? {
            self.set_parity_overhead(bp)?;
        }
        Ok(done)
    }

    /// Seal every index file still under `K_enc` again under `K_meta`; returns how many.
    fn reseal_index_files(&self) -> Result<usize> {
        let mut old = Vec::new();
        for id in self.index_ids()? {
            let bytes = self.read_named(FileType::Index, &id.to_hex())?;
            let what = format!("index {id}");
            let (sealing, _) = self.decrypt_file_sealed(FileKind::Index, &bytes, &what)?;
            if sealing != Sealing::Full {
                continue;
            }
            let packs = self.decode_index_file(&bytes, &what)?;
            let new: Id = self.save_index(&packs)?;
            self.backend.sync_name(FileType::Index, &new.to_hex())?;
            old.push(id);
        }
        for id in &old {
            match self.remove_file(FileType::Index, &id.to_hex()) {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                r => r?,
            }
        }
        Ok(old.len())
    }
}
