//! Reading ahead of the CPU pool: a directory's entries are stat'ed, and the files it will read
//! opened and their first bytes asked of the storage, by the I/O pool ([`crate::iopool`]).
//!
//! Once a directory is listed, its entries are stat'ed by the I/O threads and the directory's
//! own worker together ([`stat_all`]), many requests in flight at once. The regular files that
//! must be read (not unchanged since the parent snapshot) then go to the pool as a background
//! batch ([`Opens`]): a thread opens each one exactly as the walk would — `openat(dir, name,
//! O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC)` through the directory's descriptor — checks that it
//! is the regular file that was stat'ed, and calls `posix_fadvise(WILLNEED)` on its first
//! [`AHEAD_PER_FILE`] bytes, which starts the reads without waiting for them. The worker that
//! reaches the file takes the open descriptor ([`Opens::take`]) and reads from the page cache;
//! a file the pool has not reached yet is opened by the worker itself, as before.
//!
//! What this holds: at most [`ROOM_FILES`] descriptors, and at most [`ROOM_BYTES`] of data
//! requested but not yet read — in the page cache, not in this process's memory. Large files
//! keep asking [`LEAD`] bytes ahead of the reader as they are read ([`ReadAhead`]).

use super::fsmeta::Meta;
use crate::iopool::{Batch, Claim, IoHandle, Room};
use rustix::fs::{Advice, AtFlags, FileType, Mode, OFlags};
use std::ffi::OsStr;
use std::fs::File;
use std::num::NonZeroU64;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};

/// Bytes of each file asked for when it is opened ahead.
pub(crate) const AHEAD_PER_FILE: u64 = 16 << 20;
/// Bytes a large file's reader keeps asked for ahead of its position.
pub(crate) const LEAD: u64 = 32 << 20;
/// Bytes of opened-ahead files not yet taken by a worker (the room's byte budget).
pub(crate) const ROOM_BYTES: u64 = 128 << 20;
/// Descriptors of opened-ahead files not yet taken by a worker.
pub(crate) const ROOM_FILES: u64 = 1024;

/// Room an item takes: for a file, what was asked for, in pages, plus a page for the inode; for
/// a directory (read through, then closed), a page.
fn cost(meta: &Meta) -> u64 {
    if meta.file_type() == FileType::Directory {
        return 4096;
    }
    meta.size.min(AHEAD_PER_FILE).div_ceil(4096) * 4096 + 4096
}

/// The entries `names[range]` of one directory to stat.
struct Stats {
    dir: Arc<OwnedFd>,
    names: Arc<Vec<Vec<u8>>>,
    range: std::ops::Range<usize>,
    next: AtomicUsize,
    results: Vec<Mutex<Option<std::io::Result<Meta>>>>,
    left: Mutex<usize>,
    finished: Condvar,
}

impl Stats {
    /// Stat the next entry nobody has taken; false when none is left.
    fn step(&self) -> bool {
        let i = self.next.fetch_add(1, SeqCst);
        if i >= self.range.len() {
            return false;
        }
        self.run(i);
        true
    }
}

impl Batch for Stats {
    fn claim(&self, _: &mut Room) -> Claim {
        // Peek, then take: the directory's worker takes items too, without the pool's lock.
        if self.next.load(SeqCst) >= self.range.len() {
            return Claim::Done;
        }
        Claim::Item(usize::MAX)
    }

    fn run(&self, i: usize) {
        if i == usize::MAX {
            self.step();
            return;
        }
        let name = OsStr::from_bytes(&self.names[self.range.start + i]);
        let r = rustix::fs::statat(&*self.dir, name, AtFlags::SYMLINK_NOFOLLOW);
        *self.results[i].lock().unwrap_or_else(|e| e.into_inner()) =
            Some(r.map(|st| Meta::from_stat(&st)).map_err(Into::into));
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        *left -= 1;
        if *left == 0 {
            self.finished.notify_all();
        }
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)` of every name of `names[range]`, by the I/O pool
/// and the calling thread together; results in the order of the names.
pub(crate) fn stat_all(
    io: &IoHandle,
    dir: &Arc<OwnedFd>,
    names: &Arc<Vec<Vec<u8>>>,
    range: std::ops::Range<usize>,
) -> Vec<std::io::Result<Meta>> {
    let n = range.len();
    let batch = Arc::new(Stats {
        dir: dir.clone(),
        names: names.clone(),
        range,
        next: AtomicUsize::new(0),
        results: (0..n).map(|_| Mutex::new(None)).collect(),
        left: Mutex::new(n),
        finished: Condvar::new(),
    });
    // Each helper stats a few entries at least; the calling thread is one of them.
    let queued: Arc<dyn Batch> = batch.clone();
    io.urgent(queued.clone(), (n / 4).min(16));
    while batch.step() {}
    let mut left = batch.left.lock().unwrap_or_else(|e| e.into_inner());
    while *left > 0 {
        left = batch.finished.wait(left).unwrap_or_else(|e| e.into_inner());
    }
    drop(left);
    io.forget(&queued);
    // Every item ran (`left` is 0), so every result is there.
    let taken = batch.results.iter().map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).take());
    taken.map(|r| r.unwrap_or_else(|| Err(std::io::Error::other("not stat'ed")))).collect()
}

/// Where an opened-ahead file is.
enum Slot {
    /// Not reached by the pool yet.
    Waiting,
    /// A pool thread is opening it.
    Opening,
    /// Open, its first bytes asked for; the room it took.
    Ready(File, u64),
    /// Taken by its worker, failed, or abandoned: the worker opens it itself.
    Gone,
}

/// The regular files of one directory that the backup will read, opened ahead by the pool.
pub(crate) struct Opens {
    io: IoHandle,
    dir: Arc<OwnedFd>,
    names: Arc<Vec<Vec<u8>>>,
    /// (index in `names`, its stat), in name order.
    files: Vec<(usize, Meta)>,
    /// The next file the pool considers (only changed under the pool's lock).
    next: AtomicUsize,
    slots: Vec<Mutex<Slot>>,
    opened: Condvar,
    closed: AtomicBool,
}

impl Opens {
    /// Queue the files `files` (indexes into `names`, with their stats) of the directory `dir`.
    pub(crate) fn start(
        io: &IoHandle,
        dir: &Arc<OwnedFd>,
        names: &Arc<Vec<Vec<u8>>>,
        files: Vec<(usize, Meta)>,
    ) -> Arc<Opens> {
        let batch = Arc::new(Opens {
            io: io.clone(),
            dir: dir.clone(),
            names: names.clone(),
            slots: files.iter().map(|_| Mutex::new(Slot::Waiting)).collect(),
            files,
            next: AtomicUsize::new(0),
            opened: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        if !batch.files.is_empty() {
            io.background(batch.clone(), batch.files.len().min(16));
        }
        batch
    }

    /// The opened-ahead descriptor of entry `name_index`, if the pool has it (waiting for a
    /// thread that is opening it now). `None`: the caller opens the file itself.
    pub(crate) fn take(&self, name_index: usize) -> Option<File> {
        let k = self.files.binary_search_by_key(&name_index, |f| f.0).ok()?;
        let mut slot = self.slots[k].lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match std::mem::replace(&mut *slot, Slot::Gone) {
                Slot::Opening => {
                    *slot = Slot::Opening;
                    slot = self.opened.wait(slot).unwrap_or_else(|e| e.into_inner());
                }
                Slot::Ready(f, cost) => {
                    self.io.give_back(cost);
                    return Some(f);
                }
                Slot::Waiting | Slot::Gone => return None,
            }
        }
    }

    /// Stop: files not taken are closed and their room given back, and the batch leaves the
    /// pool (with the directory descriptor it holds).
    pub(crate) fn close(self: &Arc<Self>) {
        self.closed.store(true, SeqCst);
        let queued: Arc<dyn Batch> = self.clone();
        self.io.forget(&queued);
        for s in &self.slots {
            let mut slot = s.lock().unwrap_or_else(|e| e.into_inner());
            match std::mem::replace(&mut *slot, Slot::Gone) {
                Slot::Ready(f, cost) => {
                    drop(f);
                    self.io.give_back(cost);
                }
                // The thread opening it sees `closed` and gives its room back itself.
                Slot::Opening => *slot = Slot::Opening,
                Slot::Waiting | Slot::Gone => {}
            }
        }
    }

    /// Open entry `k` as the walk would, check it is the file stat'ed, and ask for its start.
    /// A directory is read through instead, so its blocks are cached when the walk lists it.
    fn open(&self, k: usize) -> Option<File> {
        let (i, meta) = &self.files[k];
        if meta.file_type() == FileType::Directory {
            self.warm_dir(&self.names[*i]);
            return None;
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&*self.dir, OsStr::from_bytes(&self.names[*i]), flags, Mode::empty()).ok()?;
        let f = File::from(fd);
        let m = f.metadata().ok()?;
        if !m.is_file() || m.ino() != meta.ino || m.dev() != meta.dev {
            return None; // the worker opens it again and reports what happened
        }
        let ahead = NonZeroU64::new(m.len().min(AHEAD_PER_FILE));
        if let Some(len) = ahead {
            let _ = rustix::fs::fadvise(&f, 0, Some(len), Advice::WillNeed);
        }
        Some(f)
    }
}

impl Opens {
    /// List the subdirectory `name` (through a descriptor opened as the walk will open it) and
    /// forget what was read: the point is the storage requests, not the names.
    fn warm_dir(&self, name: &[u8]) {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let Ok(fd) = rustix::fs::openat(&*self.dir, OsStr::from_bytes(name), flags, Mode::empty()) else { return };
        let Ok(mut dir) = rustix::fs::Dir::new(fd) else { return };
        // Bounded: a directory larger than a tree may hold is skipped by the walk anyway.
        let mut left = crate::format::tree::MAX_TREE_NODES;
        while let Some(Ok(_)) = dir.read() {
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
}

impl Batch for Opens {
    fn claim(&self, room: &mut Room) -> Claim {
        if self.closed.load(SeqCst) {
            return Claim::Done;
        }
        loop {
            let k = self.next.load(SeqCst);
            let Some((_, meta)) = self.files.get(k) else { return Claim::Done };
            let mut slot = self.slots[k].lock().unwrap_or_else(|e| e.into_inner());
            if !matches!(*slot, Slot::Waiting) {
                // Its worker got there first.
                self.next.store(k + 1, SeqCst);
                continue;
            }
            if !room.take(cost(meta)) {
                return Claim::Wait;
            }
            *slot = Slot::Opening;
            self.next.store(k + 1, SeqCst);
            return Claim::Item(k);
        }
    }

    fn run(&self, k: usize) {
        let cost = cost(&self.files[k].1);
        let file = if self.closed.load(SeqCst) { None } else { self.open(k) };
        let mut slot = self.slots[k].lock().unwrap_or_else(|e| e.into_inner());
        match file {
            Some(f) if !self.closed.load(SeqCst) => *slot = Slot::Ready(f, cost),
            _ => {
                *slot = Slot::Gone;
                self.io.give_back(cost);
            }
        }
        drop(slot);
        self.opened.notify_all();
    }
}

/// A large file's reader that keeps the storage [`LEAD`] bytes ahead of it.
pub(crate) struct ReadAhead<'f> {
    file: &'f File,
    pos: u64,
    asked: u64,
}

impl<'f> ReadAhead<'f> {
    /// Read `file` from its start; its first `asked` bytes were already asked for.
    pub(crate) fn new(file: &'f File, asked: u64) -> ReadAhead<'f> {
        ReadAhead { file, pos: 0, asked }
    }
}

impl std::io::Read for ReadAhead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Ask for a whole lead once less than half of one is left: few, large requests.
        if self.asked < self.pos + LEAD / 2 {
            let from = self.asked.max(self.pos);
            let _ = rustix::fs::fadvise(self.file, from, NonZeroU64::new(LEAD), Advice::WillNeed);
            self.asked = from + LEAD;
        }
        let n = std::io::Read::read(&mut self.file, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}
