//! Read-ahead for packs on object storage: ranged reads are served from aligned windows of
//! [`WINDOW`] bytes, fetched whole and kept in a bounded cache.
//!
//! Every round trip to a remote store costs 20–100 ms, and the readers of packs (restore, dump,
//! mount, the tree walks) ask for one blob at a time, often only a few KiB. Blobs were appended
//! to packs in the order the backup read them, so a reader going through a snapshot in order
//! reads each pack mostly front to back. A miss fetches the blob's window and the next one; a
//! hit (the access is sequential) keeps up to `depth` windows in flight ahead of the reader, so
//! a single reader streams at the link's rate instead of one blob per round trip. Packs are
//! immutable, so cached windows never go stale (a repaired pack is re-written with the same
//! bytes, and its windows are dropped anyway).
//!
//! Memory is bounded: at most `capacity` windows are kept, loading ones included.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

/// Size of a read-ahead window; reads are aligned to it.
pub const WINDOW: u64 = 4 << 20;

/// Why a window could not be read: OpenDAL's error kind (so "not found" stays recognisable)
/// and its message.
pub(super) type Failure = (opendal::ErrorKind, String);

enum Slot {
    Loading,
    Ready(Bytes),
    Failed(Failure),
}

#[derive(Default)]
struct State {
    windows: HashMap<(String, u64), Slot>,
    /// Insertion order, for eviction (oldest first).
    order: VecDeque<(String, u64)>,
    /// Fetches running in the background.
    loading: usize,
}

/// The window cache of one backend.
pub(super) struct ReadAhead {
    op: opendal::Operator,
    rt: tokio::runtime::Handle,
    depth: usize,
    capacity: usize,
    state: Mutex<State>,
    changed: Condvar,
}

impl ReadAhead {
    /// `connections` bounds the fetches in flight; the cache keeps room for them and as many
    /// again being read.
    pub(super) fn new(op: opendal::Operator, rt: tokio::runtime::Handle, connections: usize) -> Arc<ReadAhead> {
        let depth = connections.max(1);
        Arc::new(ReadAhead { op, rt, depth, capacity: 2 * depth + 8, state: Mutex::default(), changed: Condvar::new() })
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
            match st.windows.get(&id) {
                Some(Slot::Ready(b)) => return Ok((b.clone(), hit)),
                Some(Slot::Failed(f)) => {
                    let f = f.clone();
                    // The next reader tries again (the retry layer already did, within a request).
                    st.windows.remove(&id);
                    return Err(f);
                }
                Some(Slot::Loading) => st = self.changed.wait(st).unwrap(),
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

    fn spawn(self: &Arc<Self>, st: &mut State, id: (String, u64), size: u64) {
        st.windows.insert(id.clone(), Slot::Loading);
        st.order.push_back(id.clone());
        st.loading += 1;
        let me = self.clone();
        self.rt.spawn(async move {
            let start = id.1 * WINDOW;
            let range = start..(start + WINDOW).min(size);
            let opts = opendal::options::ReadOptions { range: range.into(), ..Default::default() };
            let slot = match me.op.read_options(&id.0, opts).await {
                Ok(b) => Slot::Ready(b.to_bytes()),
                Err(e) => Slot::Failed((e.kind(), e.to_string())),
            };
            let mut st = me.state.lock().unwrap();
            st.loading -= 1;
            st.windows.insert(id.clone(), slot);
            me.evict(&mut st, &id);
            me.changed.notify_all();
        });
    }

    /// Drop the oldest settled windows beyond the capacity; a loading one is kept (a reader
    /// waits for it), and so is `keep`, which has just arrived for its readers.
    fn evict(&self, st: &mut State, keep: &(String, u64)) {
        let mut passes = st.order.len();
        while st.windows.len() > self.capacity && passes > 0 {
            passes -= 1;
            let Some(id) = st.order.pop_front() else { break };
            match st.windows.get(&id) {
                Some(Slot::Loading) => st.order.push_back(id),
                Some(_) if id == *keep => st.order.push_back(id),
                Some(_) => {
                    st.windows.remove(&id);
                }
                None => {}
            }
        }
    }

    /// Forget the windows of `key` (it is being replaced or removed).
    pub(super) fn forget(&self, key: &str) {
        let mut st = self.state.lock().unwrap();
        st.windows.retain(|(k, _), s| k != key || matches!(s, Slot::Loading));
    }
}
