//! Comparing what is on disk with the snapshot: the `if-changed` overwrite policy, `arca verify`
//! and, for restores that verify, reading back what was just written.

use super::walk::{FileJob, Restorer};
use crate::browse::Change;
use crate::crypto::Keys;
use crate::error::{Error, IoContext, Result};
use crate::format::tree::{ChunkRef, Node, NodeKind};
use rustix::fs::{self as rfs, AtFlags, FileType};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Whether `file` holds exactly the chunks `content` (and nothing after them): each chunk is
/// read at its offset and named with the repository's keyed hash, as the backup named it.
pub(crate) fn content_matches(keys: &Keys, file: &File, content: &[ChunkRef], size: u64) -> io::Result<bool> {
    if file.metadata()?.len() != size {
        return Ok(false);
    }
    Ok(first_difference(keys, file, content)?.is_none())
}

/// The offset of the first chunk whose bytes in `file` differ from the snapshot's, if any.
pub(crate) fn first_difference(keys: &Keys, file: &File, content: &[ChunkRef]) -> io::Result<Option<u64>> {
    let mut buf = Vec::new();
    let mut offset = 0u64;
    for c in content {
        // The tree's length is not trusted to size a buffer: no data blob is larger than this.
        if c.len as usize > crate::format::config::CHUNK_MAX_LIMIT as usize {
            return Ok(Some(offset));
        }
        buf.resize(c.len as usize, 0);
        match file.read_exact_at(&mut buf, offset) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Some(offset)),
            Err(e) => return Err(e),
        }
        // A snapshot not yet rewritten by an unfinished rotation names chunks by the previous
        // blob-ID key (format-spec/25 §25.3).
        if keys.blob_id(&buf) != c.id && keys.previous().is_none_or(|p| p.blob_id(&buf) != c.id) {
            return Ok(Some(offset));
        }
        offset += c.len as u64;
    }
    Ok(None)
}

/// Whether the existing non-directory `name` already is the snapshot's symlink or special file.
pub(super) fn same_special(dir: &OwnedFd, name: &CString, n: &Node) -> bool {
    let Ok(st) = rfs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) else { return false };
    let ft = FileType::from_raw_mode(st.st_mode);
    match &n.kind {
        NodeKind::Symlink { target } => {
            ft == FileType::Symlink
                && rfs::readlinkat(dir, name.as_c_str(), Vec::new()).is_ok_and(|t| t.as_bytes() == target.as_slice())
        }
        NodeKind::Fifo => ft == FileType::Fifo,
        NodeKind::CharDevice { rdev } => ft == FileType::CharacterDevice && st.st_rdev == *rdev,
        NodeKind::BlockDevice { rdev } => ft == FileType::BlockDevice && st.st_rdev == *rdev,
        _ => true,
    }
}

impl Restorer<'_> {
    /// Verify a file just written, once its chunks were read back as it was written (see
    /// [`Restorer::write_content`]): its length and metadata, read back through its descriptor.
    pub(super) fn verify_written(&self, file: &File, f: &FileJob, hooked: bool) -> Result<()> {
        if !hooked {
            if let Some(hook) = &self.opts.before_verify {
                hook(file, &self.full(&f.rel));
            }
        }
        if let Some(hook) = &self.opts.before_verify_meta {
            hook(file, &self.full(&f.rel));
        }
        let st = rfs::fstat(file).map_err(io::Error::from).at(self.full(&f.rel))?;
        if let NodeKind::File { size, .. } = &f.node.kind {
            if st.st_size as u64 != *size {
                self.report.mismatch(Change::Modified, self.full(&f.rel));
            }
        }
        if super::meta::differs(&st, &f.node, &self.opts.meta) {
            self.report.mismatch(Change::Metadata, self.full(&f.rel));
        }
        Ok(())
    }

    /// Verify a symlink or special file just made: type, target, and what
    /// [`super::meta::apply_special`] sets (owner, mtime, and the permission bits of special
    /// files).
    pub(super) fn verify_special(&self, dir: &OwnedFd, name: &CString, rel: &Path, n: &Node) -> io::Result<()> {
        if !same_special(dir, name, n) {
            self.report.mismatch(Change::Modified, self.full(rel));
            return Ok(());
        }
        let st = rfs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        let mtime = crate::archiver::fsmeta::nanos(st.st_mtime, st.st_mtime_nsec as i64);
        let symlink = matches!(n.kind, NodeKind::Symlink { .. });
        if mtime != n.mtime
            || (!symlink && st.st_mode & 0o777 != n.mode & 0o777)
            || (self.opts.meta.chown_wanted() && (st.st_uid, st.st_gid) != (n.uid, n.gid))
        {
            self.report.mismatch(Change::Metadata, self.full(rel));
        }
        Ok(())
    }

    /// Re-read a restored file through its descriptor and check every chunk's hash and the length.
    pub(super) fn verify(&self, file: &File, f: &FileJob) -> Result<()> {
        let NodeKind::File { size, content } = &f.node.kind else { return Ok(()) };
        let full = self.full(&f.rel);
        let shown = full.display().to_string();
        if let Some(at) = first_difference(self.trees.repo().keys(), file, content).at(&full)? {
            return Err(Error::integrity(shown, format!("restored bytes at offset {at} differ from the snapshot")));
        }
        if file.metadata().at(&full)?.len() != *size {
            return Err(Error::integrity(shown, "restored file has the wrong length"));
        }
        Ok(())
    }
}
