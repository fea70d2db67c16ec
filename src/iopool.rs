//! A pool of threads for blocking I/O, beside rayon's pool for the CPU.
//!
//! rayon keeps one thread per core: right for hashing, compressing and encrypting, wrong for
//! waiting. A worker blocked in `open`, `stat` or `read` on a cold disk leaves its core idle,
//! and storage that can serve many requests at once (SSDs, RAID, virtual and network disks,
//! object stores) is asked for one request per core. The threads of this pool spend their
//! time asleep in the kernel, so there can be many more of them than cores: they keep requests
//! in flight while the CPU pool works on what has already arrived.
//!
//! Work comes in *batches*: an ordered list of items that one user wants done ahead of use,
//! such as the entries of one directory to stat or its files to open and read ahead. A thread
//! does one item at a time, chosen in this order:
//!
//! 1. items of *urgent* batches, oldest batch first: someone is waiting for them (and helps);
//! 2. items of *background* batches, newest batch first: the walk goes depth first, so the
//!    newest directory is the one the CPU pool is working through now.
//!
//! A background item first takes its cost from the pool's [`Room`], a budget of bytes and
//! descriptors that its user gives back once the item is used. That bounds how far ahead of
//! use the pool runs, and so what it holds: prefetched data waits in the page cache (not in
//! this process's memory) and at most `Room::files` descriptors are held.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// What a batch can hand out now (see [`Batch::claim`]).
pub(crate) enum Claim {
    /// Do this item.
    Item(usize),
    /// Nothing until room is given back.
    Wait,
    /// Nothing more, ever: the batch leaves the pool.
    Done,
}

/// One user's list of items.
pub(crate) trait Batch: Send + Sync {
    /// Pick the next item to do, taking its cost from `room` if it has one. Called with the
    /// pool's lock held, so it must not block.
    fn claim(&self, room: &mut Room) -> Claim;
    /// Do item `i`, outside the pool's lock.
    fn run(&self, i: usize);
}

/// The budget background items take from: bytes expected to be read ahead, and descriptors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Room {
    /// Bytes still free.
    pub bytes: u64,
    /// Descriptors still free.
    pub files: u64,
}

impl Room {
    /// Take `bytes` and one descriptor if both are free.
    pub(crate) fn take(&mut self, bytes: u64) -> bool {
        if self.files == 0 || self.bytes < bytes {
            return false;
        }
        self.files -= 1;
        self.bytes -= bytes;
        true
    }
}

struct State {
    urgent: Vec<Arc<dyn Batch>>,
    background: Vec<Arc<dyn Batch>>,
    room: Room,
    /// The room the pool started with.
    full: Room,
    /// A background item waited for room since the threads were last woken for it.
    starved: bool,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// A handle on the pool that batches keep, to give room back.
#[derive(Clone)]
pub(crate) struct IoHandle(Arc<Shared>);

impl IoHandle {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue a batch that someone waits for, waking up to `helpers` threads for it.
    pub(crate) fn urgent(&self, b: Arc<dyn Batch>, helpers: usize) {
        self.lock().urgent.push(b);
        self.wake(helpers);
    }

    /// Queue a batch of work ahead of use, waking up to `helpers` threads for it (none while
    /// the room is full: they would find nothing to do).
    pub(crate) fn background(&self, b: Arc<dyn Batch>, helpers: usize) {
        let mut st = self.lock();
        st.background.push(b);
        let starved = st.starved;
        drop(st);
        if !starved {
            self.wake(helpers);
        }
    }

    /// Give back the room of one used (or abandoned) item. A thread that ran out of room is
    /// woken once a quarter of it is free again, not one per item: on a warm cache items are
    /// used as fast as they are done, and a wake-up per file costs more than the file.
    pub(crate) fn give_back(&self, bytes: u64) {
        let mut st = self.lock();
        st.room.bytes += bytes;
        st.room.files += 1;
        let wake = st.starved && st.room.bytes >= st.full.bytes / 4 && st.room.files >= st.full.files / 4;
        if wake {
            st.starved = false;
        }
        drop(st);
        if wake {
            self.0.wake.notify_one();
        }
    }

    /// Take a batch out of the pool (finished or abandoned): it and what it holds are dropped
    /// as soon as no thread is doing one of its items, not whenever the threads next look.
    pub(crate) fn forget(&self, b: &Arc<dyn Batch>) {
        let same = |x: &Arc<dyn Batch>| std::ptr::addr_eq(Arc::as_ptr(x), Arc::as_ptr(b));
        let mut st = self.lock();
        st.urgent.retain(|x| !same(x));
        st.background.retain(|x| !same(x));
    }

    /// Wake sleeping threads one by one: waking all of them for every event costs more than
    /// the work (a futex storm, measured at 6 s of system time over a kernel tree).
    fn wake(&self, n: usize) {
        for _ in 0..n {
            self.0.wake.notify_one();
        }
    }
}

/// The pool; dropping it stops and joins its threads (queued items are abandoned).
pub(crate) struct IoPool {
    handle: IoHandle,
    threads: Vec<JoinHandle<()>>,
}

impl IoPool {
    /// Start `threads` threads sharing `room`.
    pub(crate) fn new(threads: usize, room: Room) -> std::io::Result<IoPool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                urgent: Vec::new(),
                background: Vec::new(),
                room,
                full: room,
                starved: false,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let handle = IoHandle(shared);
        let mut pool = IoPool { handle: handle.clone(), threads: Vec::new() };
        for n in 0..threads {
            let h = handle.clone();
            // The threads only make system calls: a small stack is plenty.
            let t = std::thread::Builder::new()
                .name(format!("arca-io-{n}"))
                .stack_size(256 << 10)
                .spawn(move || work(h))?;
            pool.threads.push(t);
        }
        Ok(pool)
    }

    /// The handle batches keep.
    pub(crate) fn handle(&self) -> &IoHandle {
        &self.handle
    }
}

impl Drop for IoPool {
    fn drop(&mut self) {
        let mut st = self.handle.lock();
        st.stop = true;
        // Batches hold a handle on the pool: dropping them here breaks that cycle.
        let queued = (std::mem::take(&mut st.urgent), std::mem::take(&mut st.background));
        drop(st);
        drop(queued);
        self.handle.0.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A pool thread: take the next item, do it, repeat; sleep when there is none.
fn work(h: IoHandle) {
    let mut st = h.lock();
    loop {
        if st.stop {
            return;
        }
        match pick(&mut st) {
            Some((batch, i)) => {
                drop(st);
                batch.run(i);
                drop(batch);
                st = h.lock();
            }
            None => st = h.0.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// The next item: urgent batches oldest first, then background batches newest first.
fn pick(st: &mut State) -> Option<(Arc<dyn Batch>, usize)> {
    let State { urgent, background, room, starved, .. } = st;
    let mut i = 0;
    while i < urgent.len() {
        match urgent[i].claim(room) {
            Claim::Item(n) => return Some((urgent[i].clone(), n)),
            Claim::Wait => i += 1,
            Claim::Done => {
                urgent.remove(i);
            }
        }
    }
    let mut i = background.len();
    while i > 0 {
        i -= 1;
        match background[i].claim(room) {
            Claim::Item(n) => return Some((background[i].clone(), n)),
            // The room is shared: the older batches would wait as well.
            Claim::Wait => {
                *starved = true;
                return None;
            }
            Claim::Done => {
                background.remove(i);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// Items that cost 10 bytes each; counts what was done.
    struct Counted {
        next: AtomicUsize,
        len: usize,
        done: AtomicUsize,
    }

    impl Batch for Counted {
        fn claim(&self, room: &mut Room) -> Claim {
            let i = self.next.load(SeqCst);
            if i == self.len {
                return Claim::Done;
            }
            if !room.take(10) {
                return Claim::Wait;
            }
            self.next.store(i + 1, SeqCst);
            Claim::Item(i)
        }
        fn run(&self, _: usize) {
            self.done.fetch_add(1, SeqCst);
        }
    }

    fn wait_for(f: impl Fn() -> bool) {
        let t0 = std::time::Instant::now();
        while !f() {
            assert!(t0.elapsed().as_secs() < 10, "pool made no progress");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn room_bounds_background_work_until_given_back() {
        let pool = IoPool::new(4, Room { bytes: 30, files: 100 }).unwrap();
        let b = Arc::new(Counted { next: AtomicUsize::new(0), len: 10, done: AtomicUsize::new(0) });
        pool.handle().background(b.clone(), 4);
        wait_for(|| b.done.load(SeqCst) == 3);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(b.done.load(SeqCst), 3, "ran past its room");
        for _ in 0..7 {
            pool.handle().give_back(10);
        }
        wait_for(|| b.done.load(SeqCst) == 10);
    }

    #[test]
    fn descriptor_budget_bounds_too() {
        let pool = IoPool::new(2, Room { bytes: 1000, files: 2 }).unwrap();
        let b = Arc::new(Counted { next: AtomicUsize::new(0), len: 5, done: AtomicUsize::new(0) });
        pool.handle().background(b.clone(), 4);
        wait_for(|| b.done.load(SeqCst) == 2);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(b.done.load(SeqCst), 2);
        pool.handle().give_back(10);
        wait_for(|| b.done.load(SeqCst) == 3);
        drop(pool); // joins with work still queued
    }
}
