//! Hard links: the first file of a group (same device and inode in the snapshot) is restored as
//! a file; later members are linked to the very inode restore made or kept for it — checked by
//! device and inode and linked through its descriptor — never to whatever bears its name by
//! then. A member whose content differs from the first's, or that comes after the group's
//! recorded link count is used up (a hostile snapshot, or a backup racing `ln`), is restored as
//! a file of its own.

use super::walk::{FileJob, Restorer};
use super::write::{Ino, Written};
use super::{target, Overwrite};
use crate::browse::Change;
use crate::format::tree::{Node, NodeKind};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

/// A hard link to make once the batch's files are written.
pub(super) struct LinkJob {
    file: FileJob,
    key: (u64, u64),
}

/// The first file of a hard-link group.
pub(super) struct HardSource {
    dir: Option<Arc<OwnedFd>>,
    name: CString,
    /// Content identity: size and chunk list (a member with other content is restored apart).
    digest: [u8; 32],
    /// The inode once the file is restored (and known good).
    ino: Option<Ino>,
    ok: bool,
    /// Members still to come; the entry is dropped at zero, so memory follows open groups.
    remaining: u64,
}

fn content_digest(n: &Node) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    if let NodeKind::File { size, content } = &n.kind {
        h.update(&size.to_le_bytes());
        for c in content {
            h.update(&c.id.0);
            h.update(&c.len.to_le_bytes());
        }
    }
    *h.finalize().as_bytes()
}

impl Restorer<'_> {
    /// Queue a file, or a link to an earlier file of the same hard-link group.
    pub(super) fn queue_file(&mut self, mut job: FileJob) {
        let n = &job.node;
        if n.links > 1 && n.inode != 0 {
            let key = (n.device, n.inode);
            if self.hard.contains_key(&key) {
                self.links.push(LinkJob { file: job, key });
                return;
            }
            let dir_key = job.dir.as_ref().map_or(0, |d| Arc::as_ptr(d) as usize);
            if self.hard_dirs.len() < self.dir_budget || self.hard_dirs.contains(&dir_key) {
                self.hard_dirs.insert(dir_key);
                let src = HardSource {
                    dir: job.dir.clone(),
                    name: job.name.clone(),
                    digest: content_digest(n),
                    ino: None,
                    ok: false,
                    remaining: n.links - 1,
                };
                self.hard.insert(key, src);
                job.hard_key = Some(key);
            }
        }
        self.files.push(job);
    }

    /// Note that the first file of a group was restored (or kept), and as which inode.
    pub(super) fn source_done(&mut self, f: &FileJob, o: &Option<Written>) {
        if let (Some(key), Some(Written::New(_, ino) | Written::UpToDate(ino))) = (f.hard_key, o) {
            if let Some(src) = self.hard.get_mut(&key) {
                src.ok = true;
                src.ino = *ino;
            }
        }
    }

    /// Link a later member of a hard-link group to its first file — only if that file now has the
    /// snapshot's content and the same chunk list; otherwise restore it as a file of its own.
    pub(super) fn link(&mut self, l: LinkJob) {
        // More members than the group's link count said: the group is gone already.
        let Some(src) = self.hard.get_mut(&l.key) else { return self.restore_alone(&l.file) };
        src.remaining = src.remaining.saturating_sub(1);
        let (ok, digest, ino, sdir, sname) = (src.ok, src.digest, src.ino, src.dir.clone(), src.name.clone());
        if src.remaining == 0 {
            self.hard.remove(&l.key);
        }
        if !(ok && digest == content_digest(&l.file.node)) || self.opts.mode.lists() {
            return self.restore_alone(&l.file);
        }
        let (Some(sdir), Some(ddir), Some(ino), true) = (sdir, &l.file.dir, ino, self.opts.mode.writes()) else {
            self.stats.others += 1; // not writing
            return;
        };
        match self.link_to(&sdir, &sname, ino, ddir, &l.file.name) {
            Ok(true) => {
                self.stats.others += 1;
                if self.opts.mode.verifies() {
                    let st = self.report.timed(|| rfs::statat(ddir, l.file.name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW));
                    if !st.is_ok_and(|st| (st.st_dev, st.st_ino) == ino) {
                        self.report.mismatch(Change::Metadata, self.full(&l.file.rel));
                    }
                    if self.opts.discard {
                        self.report.discard(ddir, &l.file.name);
                    }
                }
            }
            Ok(false) => self.stats.files_skipped += 1,
            // The first file is gone or replaced: restore this member on its own.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESTALE) => {
                self.restore_alone(&l.file)
            }
            Err(e) => self.report.io(&self.full(&l.file.rel), &e),
        }
    }

    fn restore_alone(&mut self, f: &FileJob) {
        let o = self.file(f);
        self.count(&o);
    }

    /// Make `name` in `ddir` a link to inode `ino`, reached as `sname` in `sdir`.
    fn link_to(
        &self,
        sdir: &OwnedFd,
        sname: &CString,
        ino: Ino,
        ddir: &OwnedFd,
        name: &CString,
    ) -> std::io::Result<bool> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let src = rfs::openat(sdir, sname.as_c_str(), flags, Mode::empty())?;
        let st = rfs::fstat(&src)?;
        if (st.st_dev, st.st_ino) != ino {
            return Err(std::io::Error::from_raw_os_error(libc::ESTALE));
        }
        match rfs::statat(ddir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(b) if (b.st_dev, b.st_ino) == ino => return Ok(true),
            Ok(_) if self.opts.overwrite == Overwrite::Never => return Ok(false),
            Ok(_) => target::remove(ddir.as_fd(), name, self.opts.delete)?,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        // Link the checked inode itself, through its descriptor.
        let magic = target::proc_path(&src);
        rfs::linkat(rfs::CWD, magic.as_str(), ddir, name.as_c_str(), AtFlags::SYMLINK_FOLLOW)?;
        Ok(true)
    }
}
