//! Read-ahead for ranged reads on object storage (packs, parity files, parts of index files):
//! reads are served from aligned windows of [`WINDOW`] bytes, fetched whole and kept in a
//! bounded cache.
//!
//! Every round trip to a remote store costs 20–100 ms, and the readers of packs (restore, dump,
//! mount, the tree walks) ask for one blob at a time, often only a few KiB. Blobs were appended
//! to packs in the order the backup read them, so a reader going through a snapshot in order
//! reads each pack mostly front to back. A miss fetches the blob's window and the next one; a
//! hit (the access is sequential) keeps up to `depth` windows in flight ahead of the reader, so
//! a single reader streams at the link's rate instead of one blob per round trip.
//!
//! Each fetch carries a ticket. Forgetting a key (it is being replaced or removed) drops its
//! windows, loading ones included, and a fetch that finds its ticket gone discards what it
//! read: bytes fetched before a replace never enter the cache after it. A window is accepted
//! only if the store sent exactly the bytes of its range (a server that ignores `Range` would
//! otherwise shift every blob).
//!
//! Memory is bounded: once more than `capacity` windows are held, arrivals evict settled ones,
//! windows a reader has used first (least recently used first), then prefetched ones nobody has
//! read yet (oldest first). Loading windows are never evicted; they number at most `depth`
//! prefetches plus one per waiting reader.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

/// Size of a read-ahead window; reads are aligned to it.
pub const WINDOW: u64 = 4 << 20;

/// Why a window could not be read: OpenDAL's error kind (so "not found" stays recognisable)
/// and its message.
pub type Failure = (opendal::ErrorKind, String);

/// A window: object key and window number.
type Id = (String, u64);

enum Fill {
    Loading,
    Ready(Bytes),
    Failed(Failure),
}

struct Slot {
    /// The fetch that fills this slot.
    ticket: u64,
    fill: Fill,
    /// Whether a reader has taken bytes from it.
    used: bool,
    /// Clock at arrival or last use, for eviction.
    last: u64,
}

#[derive(Default)]
struct State {
    windows: HashMap<Id, Slot>,
    /// Fetches running in the background.
    loading: usize,
    /// Ticket and use clock.
    clock: u64,
}

impl State {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

/// The window cache of one backend.
pub(super) struct ReadAhead {
    op: opendal::Operator,
    rt: tokio::runtime::Handle,
    depth: usize,
    capacity: usize,
    /// Fetches windows instead of the operator, if the service has its own way.
    reader: Option<Arc<dyn super::RangeReader>>,
    state: Mutex<State>,
    changed: Condvar,
}

impl ReadAhead {
    /// `connections` bounds the fetches in flight; the cache keeps room for them and as many
    /// again being read.
    pub(super) fn new(
        op: opendal::Operator,
        rt: tokio::runtime::Handle,
        connections: usize,
        reader: Option<Arc<dyn super::RangeReader>>,
    ) -> Arc<ReadAhead> {
        let depth = connections.max(1);
        let capacity = 2 * depth + 8;
        Arc::new(ReadAhead { op, rt, depth, capacity, reader, state: Mutex::default(), changed: Condvar::new() })
    }

    /// `len` bytes at `off` of object `key`, which is `size` bytes long (`off + len <= size`).
    pub(super) fn read(self: &Arc<Self>, key: &str, size: u64, off: u64, len: usize) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::with_capacity(len);
        if len == 0 {
            return Ok(out);
        }
        let end = off + len as u64;
        let (first, last) = (off / WINDOW, (end - 1) / WINDOW);
        let mut sequential = false;
        for k in first..=last {
            let (bytes, hit) = self.window(key, size, k)?;
            let start = k * WINDOW;
            let want = (off.max(start) - start) as usize..(end.min(start + WINDOW) - start) as usize;
            let part = bytes.get(want).ok_or_else(|| {
                (opendal::ErrorKind::Unexpected, format!("{key}: the store sent {} bytes of window {k}", bytes.len()))
            })?;
            out.extend_from_slice(part);
            sequential = hit;
        }
        let ahead = if sequential { self.depth } else { 1 } as u64;
        for j in last + 1..=last + ahead {
            if j * WINDOW >= size || !self.prefetch(key, size, j) {
                break;
            }
        }
        Ok(out)
    }

    /// Window `k`, fetched now if it is neither cached nor loading; also whether it was there.
    fn window(self: &Arc<Self>, key: &str, size: u64, k: u64) -> Result<(Bytes, bool), Failure> {
        let id = (key.to_string(), k);
        let mut st = self.state.lock().unwrap();
        let mut hit = true;
        loop {
            let now = st.clock + 1;
            match st.windows.get_mut(&id) {
                Some(Slot { fill: Fill::Ready(b), used, last, .. }) => {
                    let b = b.clone();
                    (*used, *last) = (true, now);
                    st.clock = now;
                    return Ok((b, hit));
                }
                Some(Slot { fill: Fill::Failed(f), .. }) => {
                    let f = f.clone();
                    // The next reader tries again (the retry layer already did, within a request).
                    st.windows.remove(&id);
                    return Err(f);
                }
                Some(Slot { fill: Fill::Loading, .. }) => st = self.changed.wait(st).unwrap(),
                None => {
                    hit = false;
                    self.spawn(&mut st, id.clone(), size);
                }
            }
        }
    }

    /// Start fetching window `k` unless it is cached or loading; false if the fetches in flight
    /// are at their limit (the caller stops looking further ahead).
    fn prefetch(self: &Arc<Self>, key: &str, size: u64, k: u64) -> bool {
        let id = (key.to_string(), k);
        let mut st = self.state.lock().unwrap();
        if st.windows.contains_key(&id) {
            return true;
        }
        if st.loading >= self.depth {
            return false;
        }
        self.spawn(&mut st, id, size);
        true
    }

    fn spawn(self: &Arc<Self>, st: &mut State, id: Id, size: u64) {
        let ticket = st.tick();
        st.windows.insert(id.clone(), Slot { ticket, fill: Fill::Loading, used: false, last: ticket });
        st.loading += 1;
        let start = id.1 * WINDOW;
        let range = start..(start + WINDOW).min(size);
        let (me, key) = (self.clone(), id.0.clone());
        let task = self.rt.spawn(async move {
            let read = match me.reader.clone() {
                Some(reader) => reader.read_range(key.clone(), range.clone()).await,
                None => {
                    let opts = opendal::options::ReadOptions { range: range.clone().into(), ..Default::default() };
                    me.op.read_options(&key, opts).await.map(|b| b.to_bytes()).map_err(|e| (e.kind(), e.to_string()))
                }
            };
            match read {
                Ok(b) if b.len() as u64 == range.end - range.start => Fill::Ready(b),
                Ok(b) => Fill::Failed((
                    opendal::ErrorKind::Unexpected,
                    format!(
                        "{key}: the store sent {} bytes for the {} of range {range:?}",
                        b.len(),
                        range.end - range.start
                    ),
                )),
                Err(f) => Fill::Failed(f),
            }
        });
        // A fetch that panics or is cancelled still settles its slot, so no reader waits forever.
        let me = self.clone();
        self.rt.spawn(async move {
            let fill =
                task.await.unwrap_or_else(|e| Fill::Failed((opendal::ErrorKind::Unexpected, super::task_failure(e))));
            me.settle(id, ticket, fill);
        });
    }

    /// A fetch finished: fill its slot unless the slot was forgotten or fetched again since.
    fn settle(&self, id: Id, ticket: u64, fill: Fill) {
        let mut st = self.state.lock().unwrap();
        st.loading -= 1;
        let now = st.tick();
        if let Some(slot) = st.windows.get_mut(&id).filter(|s| s.ticket == ticket) {
            (slot.fill, slot.last) = (fill, now);
            self.evict(&mut st, &id);
        }
        self.changed.notify_all();
    }

    /// Drop settled windows beyond the capacity (see the module comment for which); `keep` has
    /// just arrived for its readers and stays.
    fn evict(&self, st: &mut State, keep: &Id) {
        while st.windows.len() > self.capacity {
            let victim = st
                .windows
                .iter()
                .filter(|(id, s)| *id != keep && !matches!(s.fill, Fill::Loading))
                .min_by_key(|(_, s)| (!s.used, s.last))
                .map(|(id, _)| id.clone());
            match victim {
                Some(id) => st.windows.remove(&id),
                None => break,
            };
        }
    }

    /// Forget the windows of `key` (it is being replaced or removed), fetches in flight included.
    pub(super) fn forget(&self, key: &str) {
        let mut st = self.state.lock().unwrap();
        st.windows.retain(|(k, _), _| k != key);
        // Readers waiting on a dropped slot fetch it again.
        self.changed.notify_all();
    }
}
