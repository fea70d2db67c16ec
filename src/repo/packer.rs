//! The packer: collects sealed blobs into packs of about the target size and publishes them.
//!
//! Blobs are sealed by the caller (in parallel); the packer only appends them, under a short
//! lock, to a staged file (see [`crate::backend::StagedFile`]) while hashing the bytes, so a pack
//! never sits in memory. When a pack reaches its target it is taken out of the lock, finished
//! (sealed TOC, trailer, BLAKE3 name) and published by the thread that filled it. Data and tree
//! blobs go to separate packs. Nothing is indexed until its pack is durable;
//! [`Packer::finish`] then writes one index file for everything this packer wrote.

use super::Repository;
use crate::backend::{FileType, StagedFile};
use crate::error::{IoContext, Result};
use crate::format::blob::BlobType;
use crate::format::header::FileKind;
use crate::format::index::IndexPack;
use crate::format::pack::{self, TocEntry};
use crate::id::Id;
use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;

struct OpenPack {
    file: Box<dyn StagedFile>,
    hasher: blake3::Hasher,
    len: u64,
    toc: Vec<TocEntry>,
}

impl OpenPack {
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).at("staged pack")?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }
}

#[derive(Default)]
struct State {
    open: [Option<OpenPack>; 2],
    reserved: HashSet<(BlobType, Id)>,
    written: Vec<IndexPack>,
    adopted: Vec<IndexPack>,
}

/// Counters of what a packer stored.
#[derive(Clone, Copy, Debug, Default)]
pub struct PackerStats {
    /// Blobs stored.
    pub blobs: u64,
    /// Plaintext bytes stored.
    pub plain_bytes: u64,
    /// Envelope bytes stored.
    pub stored_bytes: u64,
    /// Packs written.
    pub packs: u64,
}

/// Packs blobs for one repository session.
pub struct Packer<'r> {
    repo: &'r Repository,
    target: usize,
    state: Mutex<State>,
    stats: Mutex<PackerStats>,
    /// The first write failure: once set, [`Packer::finish`] refuses to index anything, so no
    /// snapshot can name blobs that were handed out but never became durable.
    failed: Mutex<Option<String>>,
}

impl<'r> Packer<'r> {
    /// A packer writing into `repo`.
    pub fn new(repo: &'r Repository) -> Packer<'r> {
        Packer {
            repo,
            target: repo.config().pack_target_size as usize,
            state: Mutex::default(),
            stats: Mutex::default(),
            failed: Mutex::default(),
        }
    }

    /// Claim the right to store blob `id`: false if it is already stored or claimed.
    pub fn reserve(&self, index: &super::index::Index, t: BlobType, id: &Id) -> bool {
        if index.contains(t, id) {
            return false;
        }
        self.state.lock().unwrap().reserved.insert((t, *id))
    }

    /// Seal and store `plain` as blob `id` if it is not stored yet; returns whether it was added.
    pub fn store(&self, index: &super::index::Index, t: BlobType, id: &Id, plain: &[u8]) -> Result<bool> {
        if !self.reserve(index, t, id) {
            return Ok(false);
        }
        // Reserved but not stored would make later duplicates point at nothing: poison on failure.
        let env = self.repo.seal_blob(t, id, plain).inspect_err(|e| self.fail(e))?;
        self.add_sealed(t, *id, plain.len() as u32, &env)?;
        Ok(true)
    }

    /// Seal and append `plain` as blob `id` whether or not it is stored yet (prune copying a
    /// blob out of a pack sealed to the read key into one sealed under `K_enc`).
    pub fn store_again(&self, t: BlobType, id: Id, plain: &[u8]) -> Result<()> {
        let env = self.repo.seal_blob(t, &id, plain).inspect_err(|e| self.fail(e))?;
        self.add_sealed(t, id, plain.len() as u32, &env)
    }

    /// Append an already sealed blob.
    pub fn add_sealed(&self, t: BlobType, id: Id, plain_len: u32, envelope: &[u8]) -> Result<()> {
        self.add_sealed_inner(t, id, plain_len, envelope).inspect_err(|e| self.fail(e))
    }

    fn fail(&self, e: &crate::Error) {
        self.failed.lock().unwrap().get_or_insert_with(|| e.to_string());
    }

    fn add_sealed_inner(&self, t: BlobType, id: Id, plain_len: u32, envelope: &[u8]) -> Result<()> {
        let full = {
            let mut st = self.state.lock().unwrap();
            let slot = &mut st.open[t as usize];
            if slot.is_none() {
                let file = self.repo.backend().stage(FileType::Pack)?;
                let mut p = OpenPack { file, hasher: blake3::Hasher::new(), len: 0, toc: Vec::new() };
                // A pack sealed to the read key has its ephemeral key after the header (format-spec/24 §24.5).
                let (ephemeral, _) = self.repo.pack_sealer()?;
                p.append(&pack::header_for(ephemeral.as_ref()))?;
                if let Some(e) = ephemeral {
                    p.append(&e)?;
                }
                *slot = Some(p);
            }
            let p = slot.as_mut().expect("just opened");
            if let Err(e) = p.append(envelope) {
                // A partly appended envelope would corrupt every later offset: drop the pack.
                *slot = None;
                return Err(e);
            }
            p.toc.push(TocEntry { blob_type: t, id, stored_len: envelope.len() as u32, plain_len });
            if p.len >= self.target as u64 || p.toc.len() >= MAX_PACK_BLOBS {
                slot.take()
            } else {
                None
            }
        };
        {
            let mut s = self.stats.lock().unwrap();
            s.blobs += 1;
            s.plain_bytes += plain_len as u64;
            s.stored_bytes += envelope.len() as u64;
        }
        if let Some(p) = full {
            self.write_pack(p)?;
        }
        Ok(())
    }

    fn write_pack(&self, mut p: OpenPack) -> Result<()> {
        let (ephemeral, key) = self.repo.pack_sealer()?;
        let toc = key.seal(&pack::encode_toc(&p.toc), &pack::toc_ad_for(ephemeral.as_ref(), self.repo.repo_id()))?;
        p.append(&toc)?;
        p.append(&(toc.len() as u32).to_le_bytes())?;
        let id = Id(*p.hasher.finalize().as_bytes());
        let size = p.len as u32;
        p.file.publish(&id.to_hex())?;
        self.repo.protect_stored(FileKind::Pack, &id, p.len)?;
        let blobs = pack::locate_blobs_from(&p.toc, pack::first_blob_at(ephemeral.as_ref()));
        self.state.lock().unwrap().written.push(IndexPack { id, size, ephemeral, blobs });
        self.stats.lock().unwrap().packs += 1;
        Ok(())
    }

    /// Index these already published packs (adopted from their TOCs) together with this
    /// packer's own, after them.
    pub fn adopt(&self, packs: Vec<IndexPack>) {
        self.state.lock().unwrap().adopted.extend(packs);
    }

    /// Counters so far.
    pub fn stats(&self) -> PackerStats {
        *self.stats.lock().unwrap()
    }

    /// Write the partly filled packs, then the index file(s) for everything this packer wrote
    /// (split so that none exceeds [`INDEX_FILE_BLOBS`] blobs). Returns the index files written
    /// (none if nothing was written).
    pub fn finish(&self) -> Result<Vec<Id>> {
        let open = std::mem::take(&mut self.state.lock().unwrap().open);
        for p in open.into_iter().flatten() {
            self.write_pack(p).inspect_err(|e| self.fail(e))?;
        }
        if let Some(why) = self.failed.lock().unwrap().clone() {
            return Err(crate::Error::WriteFailed(why));
        }
        let written = {
            let mut st = self.state.lock().unwrap();
            let mut w = std::mem::take(&mut st.written);
            w.append(&mut st.adopted);
            w
        };
        split_for_index(&written).into_iter().map(|part| self.repo.save_index(part)).collect()
    }
}

/// Most blobs one pack holds, so that one pack's entries always fit an index file.
pub const MAX_PACK_BLOBS: usize = 1 << 18;

/// Most blobs one index file lists (45 MiB of body, well below the reader's 256 MiB limit).
pub const INDEX_FILE_BLOBS: usize = 1 << 20;

/// Consecutive runs of packs holding at most [`INDEX_FILE_BLOBS`] blobs each.
fn split_for_index(packs: &[IndexPack]) -> Vec<&[IndexPack]> {
    let mut parts = Vec::new();
    let (mut start, mut blobs) = (0, 0);
    for (i, p) in packs.iter().enumerate() {
        if blobs + p.blobs.len() > INDEX_FILE_BLOBS && i > start {
            parts.push(&packs[start..i]);
            (start, blobs) = (i, 0);
        }
        blobs += p.blobs.len();
    }
    if start < packs.len() {
        parts.push(&packs[start..]);
    }
    parts
}
