//! The chunk cache of a mount: decrypted data blobs, least recently used evicted first, bounded
//! by bytes. One load per blob at a time: a reader that wants a blob another thread (or a
//! prefetch) is loading waits for it instead of reading the pack again.

use crate::error::Result;
use crate::id::Id;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A decrypted blob, shared between the cache and the readers copying out of it.
pub(crate) type Blob = Arc<Vec<u8>>;

#[derive(Default)]
struct State {
    /// Blob, and its last use (a key of `order`).
    map: HashMap<Id, (Blob, u64)>,
    /// Last use → blob: the first entry is the least recently used.
    order: BTreeMap<u64, Id>,
    bytes: usize,
    tick: u64,
    /// Blobs being loaded now.
    loading: HashSet<Id>,
}

/// Decrypted blobs, at most `limit` bytes of them (a single blob larger than the limit is
/// handed to its reader but not kept).
pub(crate) struct ChunkCache {
    state: Mutex<State>,
    loaded: Condvar,
    limit: usize,
}

impl ChunkCache {
    pub(crate) fn new(limit: usize) -> ChunkCache {
        ChunkCache { state: Mutex::default(), loaded: Condvar::new(), limit }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent maps (no update spans a panic point).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The blob `id`, from the cache or from `load` (run without the lock held).
    pub(crate) fn get(&self, id: &Id, load: impl FnOnce() -> Result<Vec<u8>>) -> Result<Blob> {
        let mut st = self.lock();
        loop {
            if let Some(b) = touch(&mut st, id) {
                return Ok(b);
            }
            if !st.loading.contains(id) {
                break;
            }
            st = self.loaded.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.loading.insert(*id);
        drop(st);
        let r = load().map(Arc::new);
        self.finish(id, r.as_ref().ok().cloned());
        r
    }

    /// Whether `id` is cached or being loaded; if neither, mark it as being loaded and return
    /// false: the caller then loads it and calls [`ChunkCache::finish`].
    pub(crate) fn claim(&self, id: &Id) -> bool {
        let mut st = self.lock();
        if st.map.contains_key(id) || st.loading.contains(id) {
            return true;
        }
        st.loading.insert(*id);
        false
    }

    /// End a load of `id` (claimed or started by `get`): keep the blob if it was read.
    pub(crate) fn finish(&self, id: &Id, blob: Option<Blob>) {
        let mut st = self.lock();
        st.loading.remove(id);
        if let Some(b) = blob.filter(|b| b.len() <= self.limit) {
            st.tick += 1;
            let tick = st.tick;
            st.bytes += b.len();
            if let Some((old, t)) = st.map.insert(*id, (b, tick)) {
                st.bytes -= old.len();
                st.order.remove(&t);
            }
            st.order.insert(tick, *id);
            while st.bytes > self.limit {
                let Some((_, victim)) = st.order.pop_first() else { break };
                if let Some((b, _)) = st.map.remove(&victim) {
                    st.bytes -= b.len();
                }
            }
        }
        drop(st);
        self.loaded.notify_all();
    }
}

/// The cached blob `id`, marked as just used.
fn touch(st: &mut State, id: &Id) -> Option<Blob> {
    st.tick += 1;
    let tick = st.tick;
    let (b, t) = st.map.get_mut(id)?;
    let old = std::mem::replace(t, tick);
    let b = b.clone();
    st.order.remove(&old);
    st.order.insert(tick, *id);
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        Id([n; 32])
    }

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let c = ChunkCache::new(10);
        let loads = std::cell::Cell::new(0);
        let get = |n: u8, len: usize| {
            c.get(&id(n), || {
                loads.set(loads.get() + 1);
                Ok(vec![n; len])
            })
            .unwrap()
        };
        get(1, 4);
        get(2, 4);
        get(1, 4); // 1 is now the most recent
        get(3, 4); // over 10 bytes: 2 goes
        assert_eq!(loads.get(), 3);
        get(1, 4);
        assert_eq!(loads.get(), 3, "1 stayed");
        get(2, 4);
        assert_eq!(loads.get(), 4, "2 was evicted");
        assert!(c.lock().bytes <= 10);
        // Larger than the whole cache: returned, not kept.
        assert_eq!(get(9, 11).len(), 11);
        get(9, 11);
        assert_eq!(loads.get(), 6);
    }

    #[test]
    fn a_failed_load_is_not_kept() {
        let c = ChunkCache::new(10);
        assert!(c.get(&id(1), || Err(crate::Error::integrity("x", "y"))).is_err());
        assert_eq!(*c.get(&id(1), || Ok(vec![7])).unwrap(), vec![7]);
        assert!(!c.claim(&id(2)));
        assert!(c.claim(&id(2)), "being loaded");
        c.finish(&id(2), None);
        assert!(!c.claim(&id(2)));
    }
}
