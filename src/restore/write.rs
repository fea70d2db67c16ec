//! Restoring one regular file: the overwrite policy for what is already there, the content
//! (authenticated and re-hashed chunk by chunk, holes left for zeros), then the metadata —
//! everything through the descriptor of a file restore created itself.

use super::walk::{FileJob, Restorer};
use super::{compare, meta, target, Overwrite};
use crate::browse::Change;
use crate::error::{Error, IoContext, Result};
use crate::format::blob::BlobType;
use crate::format::tree::{ChunkRef, NodeKind};
use rustix::fs as rfs;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::Relaxed;

/// A file's (device, inode) on the target.
pub(super) type Ino = (u64, u64);

/// What happened to one file (with the inode it now is, where one was made or kept).
#[derive(Clone, Copy, Debug)]
pub(super) enum Written {
    /// Written (or would be), this many bytes.
    New(u64, Option<Ino>),
    /// Already had the snapshot's content (or size and mtime, by policy).
    UpToDate(Option<Ino>),
    /// Left as it was by `--overwrite never`.
    Kept,
}

impl Restorer<'_> {
    /// Restore one file, reporting a failure.
    pub(super) fn file(&self, f: &FileJob) -> Option<Written> {
        if self.report.disk_full() && self.opts.mode.writes() {
            self.report.no_space.fetch_add(1, Relaxed);
            return None;
        }
        let t = std::time::Instant::now();
        let r = self.restore_file(f);
        self.report.file_ns.fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
        if let Ok(o) = &r {
            self.progress.files.fetch_add(1, Relaxed);
            // A file found up to date is done too: its bytes count towards the total.
            let n = match (o, &f.node.kind) {
                (Written::New(n, _), _) => *n,
                (_, NodeKind::File { size, .. }) => *size,
                _ => 0,
            };
            self.progress.bytes.fetch_add(n, Relaxed);
        }
        r.map_err(|e| self.report.error(&self.full(&f.rel), &e)).ok()
    }

    /// Count one file's outcome.
    pub(super) fn count(&mut self, o: &Option<Written>) {
        match o {
            Some(Written::New(n, _)) => {
                self.stats.files += 1;
                self.stats.bytes += n;
            }
            Some(Written::UpToDate(_) | Written::Kept) => self.stats.files_skipped += 1,
            None => {}
        }
    }

    fn restore_file(&self, f: &FileJob) -> Result<Written> {
        let full = || self.full(&f.rel);
        let NodeKind::File { size, content } = &f.node.kind else { unreachable!("only files are queued") };
        let Some(dir) = &f.dir else { return Ok(Written::New(*size, None)) }; // not writing, absent dir
        if !self.opts.mode.writes() {
            return self.decide_existing(dir, f).map(|o| o.unwrap_or(Written::New(*size, None)));
        }
        let file = match target::create_file(dir.as_fd(), &f.name) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Some(o) = self.decide_existing(dir, f)? {
                    return Ok(o);
                }
                target::remove(dir.as_fd(), &f.name, self.opts.delete).at(full())?;
                target::create_file(dir.as_fd(), &f.name).at(full())?
            }
            Err(e) => return Err(Error::Io { path: full(), source: e }),
        };
        let hooked = self.write_content(&file, f, content, *size)?;
        meta::apply_fd(file.as_fd(), &f.node, &self.opts.meta, f.inherits_acl).at(full())?;
        if self.opts.mode.verifies() {
            self.report.timed(|| self.verify_written(&file, f, hooked))?;
        }
        // Only the first file of a hard-link group needs its inode recorded (and kept).
        let ino = match f.hard_key {
            Some(_) => rfs::fstat(&file).ok().map(|st| (st.st_dev, st.st_ino)),
            None => None,
        };
        if self.opts.discard && f.hard_key.is_none() && self.opts.mode.verifies() {
            drop(file);
            self.report.discard(dir, &f.name);
        }
        Ok(Written::New(*size, ino))
    }

    /// The overwrite policy for an existing entry: `Some` outcome to leave it (with its owner,
    /// mode and times corrected), `None` to replace it. An existing inode is only ever kept
    /// whole, never written into, and only if it is a regular file with a single link.
    fn decide_existing(&self, dir: &OwnedFd, f: &FileJob) -> Result<Option<Written>> {
        let full = || self.full(&f.rel);
        let NodeKind::File { size, content } = &f.node.kind else { unreachable!("only files are queued") };
        let what = target::existing(dir, &f.name).at(full())?;
        match (&what, self.opts.overwrite) {
            (target::Existing::Nothing, _) => {
                self.note(Change::Added, &f.rel);
                return Ok(None);
            }
            (target::Existing::Dir, _) if !self.opts.delete => {
                return Err(target::conflict("a directory is in the way (use --delete to replace it)")).at(full())
            }
            (_, Overwrite::Never) => return Ok(Some(Written::Kept)),
            (target::Existing::Dir, _) => {
                self.note(Change::Modified, &f.rel);
                return Ok(None);
            }
            (_, Overwrite::Always) => return Ok(None),
            _ => {}
        }
        let Some(file) = target::open_existing_file(dir, &f.name).at(full())? else {
            self.note(Change::Modified, &f.rel);
            return Ok(None);
        };
        let st = rfs::fstat(&file).map_err(std::io::Error::from).at(full())?;
        // Keep an inode only if nobody else can still be writing to it: a single link, owned by
        // us or already by the snapshot's owner (someone else's file with the right bytes may be
        // mapped writable by them; made root's and set-ID, it would be theirs to change).
        let (euid, _) = crate::sys::ids();
        let trusted =
            st.st_nlink == 1 && (st.st_uid == euid || (self.opts.meta.chown_wanted() && st.st_uid == f.node.uid));
        if !trusted && !self.opts.mode.lists() {
            return Ok(None);
        }
        let writes = self.opts.mode.writes();
        let same = match self.opts.overwrite {
            Overwrite::IfSizeOrMtimeDiffer => {
                st.st_size as u64 == *size
                    && crate::archiver::fsmeta::nanos(st.st_mtime, st.st_mtime_nsec as i64) == f.node.mtime
                    && !(self.opts.mode.verifies() && self.verify(&file, f).is_err())
            }
            _ => compare::content_matches(self.trees.repo().keys(), &file, content, *size).at(full())?,
        };
        if !same {
            self.note(Change::Modified, &f.rel);
            return Ok(None);
        }
        if !writes {
            if meta::differs(&st, &f.node, &self.opts.meta) {
                self.note(Change::Metadata, &f.rel);
            }
        } else {
            meta::apply_fd(file.as_fd(), &f.node, &self.opts.meta, true).at(full())?;
        }
        Ok(Some(Written::UpToDate(Some((st.st_dev, st.st_ino)))))
    }

    /// Write the file's chunks at their offsets, leaving all-zero chunks as holes. Verifying,
    /// each chunk is read back right after it is written and compared with the bytes written —
    /// bytes that were authenticated and whose keyed hash matched the chunk's ID — and holes are
    /// read back as zeros once the length is set. Returns whether the test hook ran.
    fn write_content(&self, file: &File, f: &FileJob, content: &[ChunkRef], size: u64) -> Result<bool> {
        let full = || self.full(&f.rel);
        let (repo, index) = (self.trees.repo(), self.trees.index());
        let check = self.opts.mode.verifies();
        let mut back = ReadBack { buf: Vec::new(), holes: Vec::new(), hooked: false, differs: false };
        let mut offset = 0u64;
        let mut data_end = 0u64;
        for c in content {
            let data = repo.read_blob(index, BlobType::Data, &c.id).map_err(|e| match e {
                Error::Integrity { object, reason } => {
                    Error::integrity(object, format!("{reason} (needed by {})", full().display()))
                }
                e => e,
            })?;
            if data.len() != c.len as usize {
                return Err(Error::integrity(
                    format!("data blob {}", c.id),
                    format!("length differs from the tree's record (needed by {})", full().display()),
                ));
            }
            if data.iter().any(|&b| b != 0) {
                file.write_all_at(&data, offset).at(full())?;
                data_end = offset + c.len as u64;
                if check {
                    self.report
                        .timed(|| self.read_back(file, f, Some(&data), data.len(), offset, &mut back))
                        .at(full())?;
                }
            } else if check {
                back.holes.push((offset, data.len()));
            }
            offset += c.len as u64;
        }
        // Only a file that ends in a hole needs its length set. Extending with ftruncate would make
        // the full size durable before delayed-allocation data: after a power cut the file could
        // have the right size and time but zeros.
        if data_end < size {
            file.set_len(size).at(full())?;
        }
        for (at, len) in std::mem::take(&mut back.holes) {
            self.report.timed(|| self.read_back(file, f, None, len, at, &mut back)).at(full())?;
        }
        if back.differs {
            self.report.mismatch(Change::Modified, full());
        }
        Ok(back.hooked)
    }

    /// Compare `data` (`None`: `len` zeros, a hole) with what the file holds at `offset` (running
    /// the test hook first, once).
    fn read_back(
        &self,
        file: &File,
        f: &FileJob,
        data: Option<&[u8]>,
        len: usize,
        at: u64,
        back: &mut ReadBack,
    ) -> std::io::Result<()> {
        if !back.hooked {
            back.hooked = true;
            if let Some(hook) = &self.opts.before_verify {
                hook(file, &self.full(&f.rel));
            }
        }
        if back.differs {
            return Ok(());
        }
        back.buf.resize(len, 0);
        match file.read_exact_at(&mut back.buf, at) {
            Ok(()) => back.differs = data.map_or_else(|| back.buf.iter().any(|&b| b != 0), |d| back.buf != d),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => back.differs = true,
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// The state of reading back one file as it is written.
struct ReadBack {
    buf: Vec<u8>,
    /// All-zero chunks left as holes, checked once the length is set.
    holes: Vec<(u64, usize)>,
    /// The test hook ran.
    hooked: bool,
    /// A difference was found (one is enough).
    differs: bool,
}
