//! Pipelined uploads: a published pack is sent in the background, at most `connections` at a
//! time, so the threads that fill packs never wait for a round trip.
//!
//! The ordering rules that keep the repository consistent (format-spec/04 §4.5) live here:
//! - A pack being uploaded is readable from memory by this process (the parity writer reads a
//!   pack back right after publishing it), and counts as existing.
//! - A parity file of a pack still in flight is queued behind that pack's upload on the same
//!   task, so parity never reaches the store before the file it protects; until it is sent it
//!   too is readable from memory, and removing or replacing it waits for it.
//! - [`Uploads::settle`] waits for every upload and fails if any of them failed; the backend
//!   calls it before writing an index file, a snapshot or anything else that names packs, so
//!   nothing is ever published that refers to a pack the store has not confirmed.
//! - A task that panics or is cancelled ends its chain as a failure, so no waiter is left.
//! - A failure is sticky for the life of the backend: once a pack could not be stored (after
//!   the retry layer's attempts), every later write that could name it fails too.

use crate::error::{Error, Result};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

/// One upload task's work: the object it is sending, then the objects queued behind it.
struct Chain {
    sending: (String, Bytes),
    then: VecDeque<(String, Bytes)>,
}

impl Chain {
    /// The bytes of `key` if this chain has yet to confirm it.
    fn holds(&self, key: &str) -> Option<&Bytes> {
        std::iter::once(&self.sending).chain(&self.then).find(|(k, _)| k == key).map(|(_, b)| b)
    }
}

#[derive(Default)]
struct State {
    /// The running upload tasks, by number.
    chains: HashMap<u64, Chain>,
    next: u64,
    /// The first upload that failed, as a message naming its object.
    failed: Option<String>,
}

impl State {
    fn holds(&self, key: &str) -> Option<&Bytes> {
        self.chains.values().find_map(|c| c.holds(key))
    }

    /// Record why chain `id` stopped and drop it with what was queued behind it.
    fn fail(&mut self, id: u64, why: impl std::fmt::Display) {
        if let Some(c) = self.chains.remove(&id) {
            let also = match c.then.len() {
                0 => String::new(),
                n => format!(" ({n} file(s) queued behind it not sent)"),
            };
            self.failed.get_or_insert(format!("upload of {} failed: {why}{also}", c.sending.0));
        }
    }
}

/// The background uploads of one backend.
pub(super) struct Uploads {
    op: opendal::Operator,
    publish: super::Publish,
    rt: tokio::runtime::Handle,
    limit: usize,
    state: Mutex<State>,
    changed: Condvar,
}

impl Uploads {
    pub(super) fn new(
        op: opendal::Operator,
        rt: tokio::runtime::Handle,
        limit: usize,
        publish: super::Publish,
    ) -> Arc<Uploads> {
        Arc::new(Uploads { op, publish, rt, limit: limit.max(1), state: Mutex::default(), changed: Condvar::new() })
    }

    /// The operator uploads go through (for writes the backend makes itself).
    pub(super) fn operator(&self) -> opendal::Operator {
        self.op.clone()
    }

    /// Start uploading `bytes` as `key`, waiting first while `limit` uploads are running (or
    /// an earlier upload of the same key is).
    pub(super) fn start(self: &Arc<Self>, key: String, bytes: Bytes) -> Result<()> {
        let id = {
            let mut st = self.state.lock().unwrap();
            while (st.chains.len() >= self.limit || st.holds(&key).is_some()) && st.failed.is_none() {
                st = self.changed.wait(st).unwrap();
            }
            if let Some(f) = &st.failed {
                return Err(Error::WriteFailed(f.clone()));
            }
            st.next += 1;
            let id = st.next;
            st.chains.insert(id, Chain { sending: (key, bytes), then: VecDeque::new() });
            id
        };
        let me = self.clone();
        let task = self.rt.spawn(async move { me.run(id).await });
        // A task that panics or is cancelled still ends its chain, so nothing waits forever.
        let me = self.clone();
        self.rt.spawn(async move {
            if let Err(e) = task.await {
                let mut st = me.state.lock().unwrap();
                st.fail(id, super::task_failure(e));
                me.changed.notify_all();
            }
        });
        Ok(())
    }

    /// Queue `bytes` as `key` behind the upload of `after` (parity behind its pack) if that one
    /// is still in flight, and return true; false if it is not (the caller writes it itself).
    pub(super) fn after(&self, after: &str, key: String, bytes: Bytes) -> Result<bool> {
        let mut st = self.state.lock().unwrap();
        if let Some(f) = &st.failed {
            return Err(Error::WriteFailed(f.clone()));
        }
        match st.chains.values_mut().find(|c| c.holds(after).is_some()) {
            Some(c) => {
                c.then.push_back((key, bytes));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Send chain `id`'s objects in turn; the first failure ends it.
    async fn run(self: Arc<Self>, id: u64) {
        loop {
            // (Not in a `while let`: its guard would live across the write.)
            let next = self.state.lock().unwrap().chains.get(&id).map(|c| c.sending.clone());
            let Some((key, bytes)) = next else { return };
            let result = super::put(&self.op, self.publish, &key, bytes).await;
            let mut st = self.state.lock().unwrap();
            match (result, st.chains.get_mut(&id)) {
                (Err(e), _) => st.fail(id, e),
                (Ok(_), Some(c)) => match c.then.pop_front() {
                    Some(next) => c.sending = next,
                    None => drop(st.chains.remove(&id)),
                },
                (Ok(_), None) => {}
            }
            // Waiters for the object just confirmed (or for the end of the chain) go on.
            self.changed.notify_all();
        }
    }

    /// The bytes of `key` if it is being uploaded or queued behind an upload.
    pub(super) fn in_flight(&self, key: &str) -> Option<Bytes> {
        self.state.lock().unwrap().holds(key).cloned()
    }

    /// Wait until `key` is no longer in flight (before it is removed or replaced).
    pub(super) fn wait_for(&self, key: &str) {
        let mut st = self.state.lock().unwrap();
        while st.holds(key).is_some() {
            st = self.changed.wait(st).unwrap();
        }
    }

    /// Wait for every upload; an error if any failed (now or earlier).
    pub(super) fn settle(&self) -> Result<()> {
        let mut st = self.state.lock().unwrap();
        while !st.chains.is_empty() {
            st = self.changed.wait(st).unwrap();
        }
        match &st.failed {
            Some(f) => Err(Error::WriteFailed(f.clone())),
            None => Ok(()),
        }
    }
}
