//! Parity in a repository (format-spec/22-parity.md): the policy, writing a parity file after
//! the file it protects is durable, removing it before that file, and rebuilding a damaged file.
//!
//! Parity is never needed to read a healthy repository. Writers make it for every pack and index
//! file at the policy's overhead, and for every snapshot with as many recovery shards as data
//! shards (snapshots are small, and nothing else could rebuild one: even a deleted one comes back
//! byte-identical). A file's parity
//! is written only once the file itself is durable, so a crash leaves at worst a file without
//! parity (`arca parity build` adds it), never parity claiming a file that was never complete;
//! and it is removed before the file, so parity without its file always means the file was lost.

use super::Repository;
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::header::FileKind;
use crate::format::parity::{self, Parity, FULL};
use crate::id::Id;
use rayon::prelude::*;

/// The parity state of one protected file, as [`Repository::parity_of`] found it.
#[derive(Debug)]
pub enum ParityFile {
    /// No parity file.
    Absent,
    /// A parity file that cannot be used: why.
    Damaged(String),
    /// The parity file's bytes (decode with [`Parity::decode`]).
    Present(Vec<u8>),
}

/// The kinds of file parity protects.
pub const PROTECTED_KINDS: [FileKind; 3] = [FileKind::Pack, FileKind::Index, FileKind::Snapshot];

/// A pack, index file or snapshot, and its length as listed.
pub type Protected = (FileKind, Id, u64);

/// The kind of file a [`FileType`] holds, if parity protects it.
pub fn protected_kind(t: FileType) -> Option<FileKind> {
    match t {
        FileType::Pack => Some(FileKind::Pack),
        FileType::Index => Some(FileKind::Index),
        FileType::Snapshot => Some(FileKind::Snapshot),
        _ => None,
    }
}

/// The directory type of a protected kind.
pub fn protected_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Pack => FileType::Pack,
        FileKind::Index => FileType::Index,
        FileKind::Snapshot => FileType::Snapshot,
        other => unreachable!("parity protects no {} files (format::parity::protects)", other.name()),
    }
}

impl Repository {
    /// The pack overhead writers use, in basis points (0: parity off). Read from `parity/policy`
    /// once; a repository without one (made before parity existed) has parity off; a damaged one
    /// counts as the default, so that damage never turns protection off (`check` reports it).
    pub fn parity_overhead(&self) -> u16 {
        *self.parity.lock().unwrap().get_or_insert_with(|| match self.load_parity_policy() {
            Ok(bp) => bp.unwrap_or(0),
            Err(_) => parity::DEFAULT_OVERHEAD,
        })
    }

    /// Read `parity/policy`: `None` when there is none.
    pub fn load_parity_policy(&self) -> Result<Option<u16>> {
        let bytes = match self.backend.read(FileType::ParityPolicy, "policy") {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            r => r?,
        };
        let body = self.decrypt_file(FileKind::ParityPolicy, &bytes, "parity policy")?;
        parity::decode_policy(&body, "parity policy").map(Some)
    }

    /// Set the pack overhead writers use from now on (0 turns parity off); existing parity files
    /// keep their geometry until `arca parity build` rewrites them.
    pub fn set_parity_overhead(&self, bp: u16) -> Result<()> {
        if bp > FULL {
            return Err(Error::InvalidArgument(format!("parity overhead {bp} basis points is over 100%")));
        }
        let bytes = self.encrypt_file(FileKind::ParityPolicy, &parity::encode_policy(bp))?;
        self.backend.replace(FileType::ParityPolicy, "policy", &bytes)?;
        *self.parity.lock().unwrap() = Some(bp);
        Ok(())
    }

    /// The overhead, in basis points, that a file of `kind` gets under the current policy:
    /// the policy's for packs and index files (a lost index file is rebuilt from the packs by
    /// `repair index`), as many recovery shards as data shards for snapshots (they are small,
    /// nothing else can rebuild one, and so even a deleted one comes back).
    pub fn parity_overhead_for(&self, kind: FileKind) -> u16 {
        match self.parity_overhead() {
            0 => 0,
            _ if kind == FileKind::Snapshot => FULL,
            bp => bp,
        }
    }

    /// Write the parity file of `bytes`, the durable file `id` of `kind`, if the policy asks
    /// for parity; it replaces an older parity file of the same file.
    pub fn protect(&self, kind: FileKind, id: &Id, bytes: &[u8]) -> Result<()> {
        let bp = self.parity_overhead_for(kind);
        if bp == 0 || bytes.is_empty() {
            return Ok(());
        }
        let p = parity::encode_file(kind, id, bytes, bp);
        self.backend.replace(FileType::Parity, &id.to_hex(), &p)
    }

    /// [`Repository::protect`] for a file of `len` bytes already in the repository, read back
    /// from it a piece at a time (a pack is streamed to storage and never held in memory).
    pub fn protect_stored(&self, kind: FileKind, id: &Id, len: u64) -> Result<()> {
        let bp = self.parity_overhead_for(kind);
        if bp == 0 || len == 0 {
            return Ok(());
        }
        // Hashed as it is read: parity of bytes that changed since the write could never repair
        // the file, and the write would look protected when it is not.
        let (t, name) = (protected_type(kind), id.to_hex());
        let mut hasher = blake3::Hasher::new();
        let mut read = |at: u64, n: usize| {
            let b = self.backend.read_at(t, &name, at, n)?;
            hasher.update(&b);
            Ok(b)
        };
        let p = parity::encode_from(kind, id, parity::Geometry::plan(len, bp), &mut read)?;
        if Id(*hasher.finalize().as_bytes()) != *id {
            return Err(Error::integrity(
                format!("{} {id}", kind.name()),
                "read back after it was written, it no longer matches its name",
            ));
        }
        self.backend.replace(FileType::Parity, &name, &p)
    }

    /// The object names and lengths of the files of each protected kind, and of all parity
    /// files. `parity/` is listed first: a writer publishes a file before its parity and removes
    /// parity before its file, so a parity file seen here without its file was lost, not just
    /// being written (format-spec/22 §22.8, listing order).
    pub fn parity_listing(&self) -> Result<(Vec<Protected>, std::collections::HashSet<Id>)> {
        let parity = self.list_objects(FileType::Parity)?.iter().filter_map(|(n, _)| Id::from_hex(n)).collect();
        // Parity first (writers remove it first), then the protected files, those at once.
        let lists: Vec<Result<Vec<(String, u64)>>> =
            self.io_scope(|| PROTECTED_KINDS.par_iter().map(|&kind| self.list_objects(protected_type(kind))).collect());
        let mut files = Vec::new();
        for (kind, listed) in PROTECTED_KINDS.into_iter().zip(lists) {
            for (name, len) in listed? {
                files.extend(Id::from_hex(&name).map(|id| (kind, id, len)));
            }
        }
        Ok((files, parity))
    }

    /// The fixed part of a parity file, if it decodes.
    pub fn parity_fixed(&self, id: &Id) -> Option<parity::Fixed> {
        let head = self.backend.read_at(FileType::Parity, &id.to_hex(), 0, parity::FIXED_LEN).ok()?;
        parity::Fixed::decode(&head, "parity file").ok()
    }

    /// Files that are missing while their parity files remain — lost, since writers remove
    /// parity first — with their kinds (`None` when the parity file's fixed part is damaged too).
    pub fn lost_files(&self) -> Result<Vec<(Option<FileKind>, Id)>> {
        let (files, parity) = self.parity_listing()?;
        Ok(self.lost_among(&files, &parity))
    }

    /// [`Repository::lost_files`] from a [`Repository::parity_listing`] already taken.
    pub fn lost_among(
        &self,
        files: &[Protected],
        parity: &std::collections::HashSet<Id>,
    ) -> Vec<(Option<FileKind>, Id)> {
        let present: std::collections::HashSet<&Id> = files.iter().map(|(_, id, _)| id).collect();
        let lost = parity.iter().filter(|id| !present.contains(id));
        lost.map(|id| (self.parity_fixed(id).map(|f| f.kind), *id)).collect()
    }

    /// Remove a repository file, its parity file first (format-spec/22 §22.8), so that parity
    /// without its file always means the file was lost, never that it was deleted on purpose.
    pub fn remove_file(&self, t: FileType, name: &str) -> Result<()> {
        if protected_kind(t).is_some() {
            match self.backend.remove(FileType::Parity, name) {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                r => r?,
            }
        }
        self.backend.remove(t, name)
    }

    /// A parity file's bytes, read only once its fixed part is valid and its length is what the
    /// geometry gives (§22.2: a hostile file cannot make a reader allocate more than its
    /// geometry states). `Ok(None)`: there is none; `Err(why)` inside: it is damaged.
    fn read_parity_bounded(&self, name: &str) -> Result<std::result::Result<Option<Vec<u8>>, String>> {
        let t = FileType::Parity;
        let head = match self.backend.read_at(t, name, 0, parity::FIXED_LEN) {
            Ok(h) => h,
            // `read_at` reports a missing file as damage: tell absence apart.
            Err(e @ Error::Integrity { .. }) => {
                return Ok(if self.backend.exists(t, name)? { Err(e.to_string()) } else { Ok(None) })
            }
            Err(e) => return Err(e),
        };
        let len = match parity::Fixed::decode(&head, &format!("parity file {name}")) {
            Ok(f) => f.geometry.file_len(),
            Err(e) if e.is_integrity() || matches!(e, Error::NotARepository(_) | Error::Unsupported(_)) => {
                return Ok(Err(e.to_string()))
            }
            Err(e) => return Err(e),
        };
        let bytes = match self.backend.read_at(t, name, 0, len as usize) {
            Ok(b) => b,
            Err(e @ Error::Integrity { .. }) => return Ok(Err(e.to_string())),
            Err(e) => return Err(e),
        };
        if self.backend.read_at(t, name, len, 1).is_ok() {
            return Ok(Err(format!("parity file {name}: longer than the {len} bytes its geometry gives")));
        }
        Ok(Ok(Some(bytes)))
    }

    /// The parity file of the file named `name`, read and checked (fixed part, length, and that
    /// it protects a file of `kind` named `name`; the checksum table's hash is not required,
    /// see [`Parity::decode_for_repair`]).
    pub fn parity_of(&self, kind: FileKind, name: &str) -> Result<ParityFile> {
        let bytes = match self.read_parity_bounded(name)? {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(ParityFile::Absent),
            Err(why) => return Ok(ParityFile::Damaged(why)),
        };
        let what = format!("parity file {name}");
        let decoded = Parity::decode_for_repair(&bytes, &what).and_then(|p| {
            if p.fixed.id.to_hex() != name || p.fixed.kind != kind {
                return Err(Error::integrity(&what, format!("protects {} {}", p.fixed.kind.name(), p.fixed.id)));
            }
            Ok(())
        });
        Ok(match decoded {
            Ok(()) => ParityFile::Present(bytes),
            Err(e) if e.is_integrity() => ParityFile::Damaged(e.to_string()),
            Err(e) => return Err(e),
        })
    }
}

/// What rebuilding a file from its parity would give (see [`Repository::assess`]).
#[derive(Debug)]
pub enum Assessment {
    /// The file is there and hashes to its name.
    Healthy,
    /// The file is damaged or missing and its parity rebuilds it: the rebuilt bytes (verified
    /// against the name) and the damage found.
    Repairable {
        /// The file's bytes, hashing to its name.
        bytes: Vec<u8>,
        /// Damaged shards found.
        damage: parity::Damage,
        /// The file was missing altogether.
        missing: bool,
    },
    /// The file is damaged or missing and cannot be rebuilt: why.
    Unrepairable(String),
}

impl Repository {
    /// Read the file `id` of `kind` and, if it does not hash to its name (or is missing, or is
    /// no regular file), try to rebuild it from its parity file, in memory.
    pub fn assess(&self, kind: FileKind, id: &Id) -> Result<Assessment> {
        let name = id.to_hex();
        let (bytes, missing) = match self.read_to_assess(kind, id, &name) {
            Ok(b) if Id::of_file_bytes(&b) == *id => return Ok(Assessment::Healthy),
            Ok(b) => (b, false),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => (Vec::new(), true),
            // Not a regular file, or longer than any file of its kind: nothing of it is usable.
            Err(Error::Integrity { .. }) => (Vec::new(), false),
            Err(e) => return Err(e),
        };
        self.rebuild(kind, id, &bytes, missing)
    }

    /// The file to assess. A pack is read no further than the length its parity file protects
    /// (when this repository could have written a pack that long): a pack swapped for a huge
    /// sparse file, which anyone with write access to the storage can do, costs no memory. A
    /// shorter file is read whole (it is shorter than that length).
    fn read_to_assess(&self, kind: FileKind, id: &Id, name: &str) -> Result<Vec<u8>> {
        let t = protected_type(kind);
        let claimed = self.parity_fixed(id).map(|f| f.geometry.len).filter(|&n| n <= self.max_pack_len());
        match (kind, claimed) {
            (FileKind::Pack, Some(len)) => match self.backend.read_at(t, name, 0, len as usize) {
                Err(Error::Integrity { .. }) => self.backend.read(t, name),
                r => r,
            },
            _ => self.backend.read(t, name),
        }
    }

    /// Rebuild the file `id` of `kind` from `damaged` (its bytes as read) and its parity file.
    pub fn rebuild(&self, kind: FileKind, id: &Id, damaged: &[u8], missing: bool) -> Result<Assessment> {
        self.rebuild_expecting(kind, id, damaged, missing, None)
    }

    /// The longest pack this repository's writers make: the target size, then the largest blob
    /// that can end a pack (a tree blob, or a data blob of the chunker's maximum, in its
    /// envelope), the longest table of contents, header and trailer. Parity that claims a longer
    /// pack is not read (anyone who can write to the storage can plant such a file).
    pub fn max_pack_len(&self) -> u64 {
        use crate::format::pack::{TOC_ENTRY_LEN, TRAILER_LEN};
        let blob = (crate::format::tree::MAX_TREE_LEN as u64).max(u64::from(self.config().chunker.max_size));
        let envelope = crate::format::blob::MIN_STORED_LEN as u64;
        let toc = 44 + (crate::repo::packer::MAX_PACK_BLOBS * TOC_ENTRY_LEN) as u64;
        let n = u64::from(self.config().pack_target_size) + blob + envelope + toc + 8 + TRAILER_LEN as u64;
        n.min(u32::MAX as u64)
    }

    /// [`Repository::rebuild`], where the index may say how long the file is (`expected`, a
    /// pack's indexed size). The parity file is read only if the length it claims to protect is
    /// that one, or, unknown, within what a file of its kind in this repository can be: so a
    /// planted parity file (a few sparse megabytes claiming a 4 GiB pack) costs a 96-byte read,
    /// not gigabytes of memory.
    pub fn rebuild_expecting(
        &self,
        kind: FileKind,
        id: &Id,
        damaged: &[u8],
        missing: bool,
        expected: Option<u64>,
    ) -> Result<Assessment> {
        if let Some(f) = self.parity_fixed(id) {
            let claimed = f.geometry.len;
            let limit = match (kind, expected) {
                (_, Some(e)) if claimed != e => {
                    return Ok(Assessment::Unrepairable(format!(
                        "its parity file protects {claimed} bytes, but the index says the file has {e}; not read"
                    )))
                }
                (_, Some(e)) => e,
                (FileKind::Pack, None) => self.max_pack_len(),
                (k, None) => parity::max_protected_len(k),
            };
            if claimed > limit {
                return Ok(Assessment::Unrepairable(format!(
                    "its parity file claims {claimed} bytes, more than a {} of this repository can have \
                     ({limit}); not read",
                    kind.name()
                )));
            }
        }
        let pbytes = match self.parity_of(kind, &id.to_hex())? {
            ParityFile::Absent => return Ok(Assessment::Unrepairable("no parity file".into())),
            ParityFile::Damaged(why) => {
                return Ok(Assessment::Unrepairable(format!("its parity file is damaged: {why}")))
            }
            ParityFile::Present(b) => b,
        };
        let p = Parity::decode_for_repair(&pbytes, "parity file")?;
        Ok(match parity::repair(&p, damaged) {
            (Ok(bytes), damage) => Assessment::Repairable { bytes, damage, missing },
            (Err(why), _) => Assessment::Unrepairable(why),
        })
    }
}

/// Whether a parity file is whole: it decodes and every recovery shard matches its checksum.
pub fn parity_intact(bytes: &[u8]) -> bool {
    let Ok(p) = Parity::decode(bytes, "parity file") else { return false };
    let g = p.fixed.geometry;
    (0..g.segments).all(|i| (0..g.recovery).all(|j| p.recovery_shard(i, j).1))
}
