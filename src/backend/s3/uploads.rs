//! Pipelined uploads: a published pack is sent in the background, at most `connections` at a
//! time, so the threads that fill packs never wait for a round trip.
//!
//! The ordering rules that keep the repository consistent (format-spec/04 §4.5) live here:
//! - A pack being uploaded is readable from memory by this process (the parity writer reads a
//!   pack back right after publishing it), and counts as existing.
//! - A parity file of a pack still in flight is queued behind that pack's upload on the same
//!   task, so parity never reaches the store before the file it protects.
//! - [`Uploads::settle`] waits for every upload and fails if any of them failed; the backend
//!   calls it before writing an index file, a snapshot or anything else that names packs, so
//!   nothing is ever published that refers to a pack the store has not confirmed.
//! - A failure is sticky for the life of the backend: once a pack could not be stored (after
//!   the retry layer's attempts), every later write that could name it fails too.

use crate::error::{Error, Result};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

/// One object waiting to be sent, with the objects queued behind it.
struct Pending {
    bytes: Bytes,
    then: VecDeque<(String, Bytes)>,
}

#[derive(Default)]
struct State {
    pending: HashMap<String, Pending>,
    /// Upload tasks running (each may send several objects in turn).
    running: usize,
    /// The first upload that failed, as a message naming its object.
    failed: Option<String>,
}

/// The background uploads of one backend.
pub(super) struct Uploads {
    op: opendal::Operator,
    rt: tokio::runtime::Handle,
    limit: usize,
    state: Mutex<State>,
    changed: Condvar,
}

impl Uploads {
    pub(super) fn new(op: opendal::Operator, rt: tokio::runtime::Handle, limit: usize) -> Arc<Uploads> {
        Arc::new(Uploads { op, rt, limit: limit.max(1), state: Mutex::default(), changed: Condvar::new() })
    }

    /// Start uploading `bytes` as `key`, waiting first while `limit` uploads are running.
    pub(super) fn start(self: &Arc<Self>, key: String, bytes: Bytes) -> Result<()> {
        {
            let mut st = self.state.lock().unwrap();
            while st.running >= self.limit && st.failed.is_none() {
                st = self.changed.wait(st).unwrap();
            }
            if let Some(f) = &st.failed {
                return Err(Error::WriteFailed(f.clone()));
            }
            st.running += 1;
            st.pending.insert(key.clone(), Pending { bytes: bytes.clone(), then: VecDeque::new() });
        }
        let me = self.clone();
        self.rt.spawn(async move { me.run(key, bytes).await });
        Ok(())
    }

    /// Queue `bytes` as `key` behind the upload of `after` (parity behind its pack) if that one
    /// is still in flight, and return true; false if it is not (the caller writes it itself).
    pub(super) fn after(&self, after: &str, key: String, bytes: Bytes) -> Result<bool> {
        let mut st = self.state.lock().unwrap();
        if let Some(f) = &st.failed {
            return Err(Error::WriteFailed(f.clone()));
        }
        match st.pending.get_mut(after) {
            Some(p) => {
                p.then.push_back((key, bytes));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn run(self: Arc<Self>, first: String, bytes: Bytes) {
        let mut key = first.clone();
        let mut result = self.put(&key, bytes).await;
        loop {
            let next = {
                let mut st = self.state.lock().unwrap();
                match result {
                    Err(e) => {
                        let queued = st.pending.get(&first).map_or(0, |p| p.then.len());
                        let also = if queued > 0 {
                            format!(" ({queued} file(s) queued behind it not sent)")
                        } else {
                            String::new()
                        };
                        st.failed.get_or_insert(format!("upload of {key} failed: {e}{also}"));
                        None
                    }
                    Ok(()) => st.pending.get_mut(&first).and_then(|p| p.then.pop_front()),
                }
                .or_else(|| {
                    st.pending.remove(&first);
                    st.running -= 1;
                    self.changed.notify_all();
                    None
                })
            };
            let Some((k, b)) = next else { return };
            key = k;
            result = self.put(&key, b).await;
        }
    }

    async fn put(&self, key: &str, bytes: Bytes) -> std::result::Result<(), opendal::Error> {
        self.op.write(key, bytes).await.map(|_| ())
    }

    /// The bytes of `key` if it is being uploaded.
    pub(super) fn in_flight(&self, key: &str) -> Option<Bytes> {
        self.state.lock().unwrap().pending.get(key).map(|p| p.bytes.clone())
    }

    /// Wait until `key` is no longer in flight (before it is removed or replaced).
    pub(super) fn wait_for(&self, key: &str) {
        let mut st = self.state.lock().unwrap();
        while st.pending.contains_key(key) {
            st = self.changed.wait(st).unwrap();
        }
    }

    /// Wait for every upload; an error if any failed (now or earlier).
    pub(super) fn settle(&self) -> Result<()> {
        let mut st = self.state.lock().unwrap();
        while st.running > 0 {
            st = self.changed.wait(st).unwrap();
        }
        match &st.failed {
            Some(f) => Err(Error::WriteFailed(f.clone())),
            None => Ok(()),
        }
    }
}
