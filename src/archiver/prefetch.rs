//! Reading ahead of the CPU pool: a directory's entries are stat'ed, and the files it will read
//! opened and their first bytes asked of the storage, by the I/O pool ([`crate::iopool`]).
//!
//! Once a directory is listed, its entries are stat'ed by its own worker, joined by the I/O
//! threads when the first stats show the storage is cold ([`stat_all`]): many requests in
//! flight at once. The worker never waits for a pool thread: what the pool has not finished,
//! the worker does itself. The regular files that
//! must be read (not unchanged since the parent snapshot) then go to the pool as a background
//! batch ([`Opens`]): a thread opens each one exactly as the walk would — `openat(dir, name,
//! O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC)` through the directory's descriptor — checks that it
//! is the regular file that was stat'ed, and calls `posix_fadvise(WILLNEED)` on its first
//! [`AHEAD_PER_FILE`] bytes, which starts the reads without waiting for them. The worker that
//! reaches the file takes the open descriptor ([`Opens::take`]) and reads from the page cache;
//! a file the pool has not opened yet is opened by the worker itself, as before. On a cold disk
//! the subdirectories are read through ahead of the walk too.
//!
//! What this holds: at most [`ROOM_FILES`] opened-ahead descriptors (fewer if a quarter of the
//! open-file limit is less), plus the directory descriptors of batches in progress, and at most
//! [`ROOM_BYTES`] of data requested for files not yet taken by a worker — in the page cache,
//! not in this process's memory. A large file's reader asks [`LEAD`] bytes ahead of itself as
//! it reads ([`ReadAhead`]).

use super::fsmeta::Meta;
use super::walk::At;
use crate::iopool::{Batch, Claim, IoHandle, Room};
use rustix::fs::{Advice, FileType, OFlags};
use std::ffi::OsStr;
use std::fs::File;
use std::num::NonZeroU64;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// Bytes of each file asked for when it is opened ahead.
pub(crate) const AHEAD_PER_FILE: u64 = 16 << 20;
// The pool wakes room-starved threads when a quarter of the room is free again: the largest
// item must fit in that quarter, or a lone large file could stall the look-ahead for good.
const _: () = assert!(AHEAD_PER_FILE + 4096 < ROOM_BYTES / 4 && ROOM_FILES >= 4);
/// Bytes a large file's reader keeps asked for ahead of its position.
pub(crate) const LEAD: u64 = 32 << 20;
/// Bytes of opened-ahead files not yet taken by a worker (the room's byte budget).
pub(crate) const ROOM_BYTES: u64 = 128 << 20;
/// Descriptors of opened-ahead files not yet taken by a worker.
pub(crate) const ROOM_FILES: u64 = 1024;

/// Files in a row found cached after which the storage is taken to be warm.
const WARM_STREAK: u32 = 1024;
/// While warm, one directory in this many still has its files opened ahead, as a probe.
const WARM_PROBE: u32 = 16;

/// Whether reading ahead pays lately. On a warm page cache, opening files ahead only costs
/// system calls and wake-ups (measured: +0.2 s of CPU over a kernel tree). So each file opened
/// ahead is checked for its first page being cached (`preadv2(RWF_NOWAIT)` of one byte); after
/// [`WARM_STREAK`] cached ones in a row, only one directory in [`WARM_PROBE`] is looked ahead,
/// until a probe, or a worker's own slow read, finds the storage being read again.
#[derive(Default)]
pub(crate) struct Gauge {
    streak: std::sync::atomic::AtomicU32,
    dirs: std::sync::atomic::AtomicU32,
}

impl Gauge {
    fn saw(&self, cached: bool) {
        if cached {
            let _ = self.streak.fetch_update(SeqCst, SeqCst, |n| Some(n.saturating_add(1)));
        } else {
            self.streak.store(0, SeqCst);
        }
    }

    /// A worker waited for the storage (a read of a file not opened ahead was slow).
    pub(crate) fn slow_read(&self) {
        self.streak.store(0, SeqCst);
    }

    /// Whether to open the next directory's files ahead.
    fn wanted(&self) -> bool {
        self.streak.load(SeqCst) < WARM_STREAK || self.dirs.fetch_add(1, SeqCst) % WARM_PROBE == 0
    }
}

/// Whether the first byte of `f` is in the page cache (a read that must not wait for storage).
fn first_page_cached(f: &File) -> bool {
    let mut b = [0u8; 1];
    let r = rustix::io::preadv2(f, &mut [std::io::IoSliceMut::new(&mut b)], 0, rustix::io::ReadWriteFlags::NOWAIT);
    matches!(r, Ok(1))
}

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
}

impl Stats {
    /// Stat the next entry nobody has taken; false when none is left.
    fn step(&self) -> bool {
        let i = self.next.fetch_add(1, SeqCst);
        if i >= self.range.len() {
            return false;
        }
        self.stat(i);
        true
    }

    /// Stat entry `i` and keep the result, unless someone else already has.
    fn stat(&self, i: usize) {
        let r = At { dir: self.dir.as_fd(), name: OsStr::from_bytes(&self.names[self.range.start + i]) }.stat();
        let mut slot = self.results[i].lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(r);
        }
    }
}

impl Batch for Stats {
    fn claim(&self, _: &mut Room) -> Claim {
        // Peek, then take in `run`: the directory's worker takes items too, without the lock.
        if self.next.load(SeqCst) >= self.range.len() {
            return Claim::Done;
        }
        Claim::Item(0)
    }

    fn run(&self, _: usize) {
        self.step();
    }
}

/// Stats slower than this on average mean the storage is being read (not the inode cache).
const COLD_STAT: std::time::Duration = std::time::Duration::from_micros(20);
/// Entries the calling thread stats itself to time them.
const PROBE: usize = 4;

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)` of every name of `names[range]`, in order, and
/// whether the storage looked cold.
///
/// The calling thread stats the first few entries and times them. Fast (inodes cached): it
/// stats the rest too, and no other thread is bothered. Slow: the I/O pool joins in, many
/// requests in flight. The caller never waits for the pool: once every entry is taken, it
/// stats again any entry a pool thread is still on (on a cold disk that waits for the same
/// read; on a warm one it beats waking the thread up).
pub(crate) fn stat_all(
    io: &IoHandle,
    dir: &Arc<OwnedFd>,
    names: &Arc<Vec<Vec<u8>>>,
    range: std::ops::Range<usize>,
) -> (Vec<std::io::Result<Meta>>, bool) {
    let n = range.len();
    let batch = Arc::new(Stats {
        dir: dir.clone(),
        names: names.clone(),
        range,
        next: AtomicUsize::new(0),
        results: (0..n).map(|_| Mutex::new(None)).collect(),
    });
    let t0 = std::time::Instant::now();
    let mut probed = 0;
    while probed < PROBE && batch.step() {
        probed += 1;
    }
    let cold = t0.elapsed() > COLD_STAT * probed as u32;
    let queued: Arc<dyn Batch> = batch.clone();
    if cold && probed < n {
        // Each helper stats a few entries at least; the calling thread is one of them.
        io.urgent(queued.clone(), ((n - probed) / 4).min(16));
    }
    while batch.step() {}
    if cold {
        io.forget(&queued);
    }
    let results = (0..n).map(|i| {
        let taken = batch.results[i].lock().unwrap_or_else(|e| e.into_inner()).take();
        taken.unwrap_or_else(|| {
            batch.stat(i);
            batch.results[i].lock().unwrap_or_else(|e| e.into_inner()).take().expect("just stat'ed")
        })
    });
    (results.collect(), cold)
}

/// Where an opened-ahead file is.
enum Slot {
    /// Not reached by the pool yet.
    Waiting,
    /// A pool thread is opening it.
    Opening,
    /// A pool thread is opening it, but its worker came first and opened it itself.
    Abandoned,
    /// Open, its first bytes asked for; the room it took.
    Ready(File, u64),
    /// Taken by its worker (with the descriptor, if there was one), or failed: nothing to do.
    Gone,
}

/// The regular files of one directory that the backup will read, opened ahead by the pool.
pub(crate) struct Opens {
    io: IoHandle,
    gauge: Arc<Gauge>,
    dir: Arc<OwnedFd>,
    names: Arc<Vec<Vec<u8>>>,
    /// (index in `names`, its stat), in name order.
    files: Vec<(usize, Meta)>,
    /// The next file the pool considers (only changed under the pool's lock).
    next: AtomicUsize,
    slots: Vec<Mutex<Slot>>,
    closed: AtomicBool,
}

impl Opens {
    /// Queue the files `files` (indexes into `names`, with their stats) of the directory `dir`
    /// (none while `gauge` says the cache is warm, but for a probe now and then).
    pub(crate) fn start(
        io: &IoHandle,
        gauge: &Arc<Gauge>,
        dir: &Arc<OwnedFd>,
        names: &Arc<Vec<Vec<u8>>>,
        mut files: Vec<(usize, Meta)>,
    ) -> Arc<Opens> {
        if !files.is_empty() && !gauge.wanted() {
            files.clear();
        }
        let batch = Arc::new(Opens {
            io: io.clone(),
            gauge: gauge.clone(),
            dir: dir.clone(),
            names: names.clone(),
            slots: files.iter().map(|_| Mutex::new(Slot::Waiting)).collect(),
            files,
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        });
        // One thread: the files were just stat'ed, so opening them reads no inode, and the reads
        // fadvise starts go on without it. Each new batch wakes one more (unless out of room).
        if !batch.files.is_empty() {
            io.background(batch.clone(), 1);
        }
        batch
    }

    /// The opened-ahead descriptor of entry `name_index`, if the pool has it. `None`: the
    /// caller opens the file itself — also when a pool thread is opening it right now, since
    /// waiting for that thread would put a wake-up on the worker's path (on a cold disk both
    /// opens wait for the same read).
    pub(crate) fn take(&self, name_index: usize) -> Option<File> {
        let k = self.files.binary_search_by_key(&name_index, |f| f.0).ok()?;
        let mut slot = self.slots[k].lock().unwrap_or_else(|e| e.into_inner());
        let was = std::mem::replace(&mut *slot, Slot::Gone);
        if matches!(was, Slot::Opening) {
            *slot = Slot::Abandoned;
        }
        // The pool's lock is never taken under a slot's: `claim` does the reverse.
        drop(slot);
        match was {
            Slot::Ready(f, cost) => {
                self.io.give_back(cost);
                Some(f)
            }
            _ => None,
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
            let was = std::mem::replace(&mut *slot, Slot::Gone);
            if matches!(was, Slot::Opening) {
                // The thread opening it sees `closed` and gives its room back itself.
                *slot = Slot::Abandoned;
            }
            drop(slot);
            if let Slot::Ready(f, cost) = was {
                drop(f);
                self.io.give_back(cost);
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
        // Exactly as the walk opens files.
        let at = At { dir: self.dir.as_fd(), name: OsStr::from_bytes(&self.names[*i]) };
        let f = File::from(at.open(OFlags::NONBLOCK).ok()?);
        let m = f.metadata().ok()?;
        if !m.is_file() || m.ino() != meta.ino || m.dev() != meta.dev {
            return None; // the worker opens it again and reports what happened
        }
        let ahead = NonZeroU64::new(m.len().min(AHEAD_PER_FILE));
        if let Some(len) = ahead {
            let cached = first_page_cached(&f);
            self.gauge.saw(cached);
            // A small file whose start is cached is cached whole, as a rule: nothing to ask.
            if !cached || len.get() > 64 << 10 {
                let _ = rustix::fs::fadvise(&f, 0, Some(len), Advice::WillNeed);
            }
        }
        Some(f)
    }
}

impl Opens {
    /// List the subdirectory `name` (through a descriptor opened as the walk will open it) and
    /// forget what was read: the point is the storage requests, not the names.
    fn warm_dir(&self, name: &[u8]) {
        let at = At { dir: self.dir.as_fd(), name: OsStr::from_bytes(name) };
        let Ok(fd) = at.open(OFlags::DIRECTORY) else { return };
        let Ok(mut dir) = rustix::fs::Dir::new(fd) else { return };
        // Bounded: a directory larger than a tree may hold is skipped by the walk anyway; and
        // it stops once the walk is done with the parent (a huge directory on a slow mount
        // must not hold up the end of the backup).
        for n in 1..=crate::format::tree::MAX_TREE_NODES {
            if !matches!(dir.read(), Some(Ok(_))) || (n % 1024 == 0 && self.closed.load(SeqCst)) {
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
            Some(f) if matches!(*slot, Slot::Opening) && !self.closed.load(SeqCst) => *slot = Slot::Ready(f, cost),
            _ => {
                *slot = Slot::Gone;
                drop(slot);
                self.io.give_back(cost);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_probes_one_directory_in_sixteen_once_warm_and_wakes_on_a_miss() {
        let g = Gauge::default();
        assert!((0..100).all(|_| g.wanted()), "cold until shown warm");
        for _ in 0..WARM_STREAK {
            g.saw(true);
        }
        let wanted = (0..160).filter(|_| g.wanted()).count();
        assert_eq!(wanted, 10);
        g.saw(false);
        assert!((0..100).all(|_| g.wanted()));
        for _ in 0..WARM_STREAK {
            g.saw(true);
        }
        g.slow_read();
        assert!((0..100).all(|_| g.wanted()));
    }

    #[test]
    fn a_file_just_written_is_cached_and_an_empty_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"data").unwrap();
        std::fs::write(dir.path().join("e"), b"").unwrap();
        assert!(first_page_cached(&File::open(dir.path().join("f")).unwrap()));
        assert!(!first_page_cached(&File::open(dir.path().join("e")).unwrap()));
    }
}
