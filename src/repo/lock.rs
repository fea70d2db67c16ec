//! Repository locks (format-spec/13-lock.md): plain files in `locks/`, so they work on any
//! filesystem. A lock is stale once it has not been refreshed for [`STALE_AFTER`], or when its
//! holder ran on this host and is gone. The holder refreshes it every [`REFRESH_EVERY`].

use super::Repository;
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::header::FileKind;
use crate::format::lock::Lock;
use crate::id::Id;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

/// A lock not refreshed for this long is ignored.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How often a held lock is rewritten.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// A lock whose last successful write is older than this may be considered stale by others
/// (one refresh interval short of [`STALE_AFTER`]): its holder must not commit or delete.
pub const FRESH_FOR: Duration = Duration::from_secs(25 * 60);

/// A held lock; released on drop.
pub struct LockGuard {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
    /// When the lock file was last written successfully (Unix ns).
    written: Arc<AtomicI64>,
}

impl LockGuard {
    /// Fail unless the lock was written or refreshed less than [`FRESH_FOR`] ago
    /// (format-spec/17-consistency.md §17.5 rule 3). A process that was suspended, or could not
    /// refresh its lock, may have been considered gone by a prune; it must not commit.
    pub fn ensure_fresh(&self) -> Result<()> {
        let age = crate::sys::now_nanos().saturating_sub(self.written.load(Ordering::SeqCst));
        if age.unsigned_abs() >= FRESH_FOR.as_nanos() as u64 {
            return Err(Error::Locked(format!(
                "this process's lock was last refreshed {} s ago, so other processes may have \
                 ignored it; stopping before committing anything",
                age / 1_000_000_000
            )));
        }
        Ok(())
    }

    /// Test hook, not a stable API: pretend the lock was last written `by` earlier.
    #[doc(hidden)]
    pub fn backdate(&self, by: Duration) {
        self.written.fetch_sub(by.as_nanos() as i64, Ordering::SeqCst);
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn is_stale(l: &Lock) -> bool {
    let age = crate::sys::now_nanos().saturating_sub(l.time);
    // Far in the future counts as stale too: a wrong clock must not lock a repository forever.
    if age.abs() > STALE_AFTER.as_nanos() as i64 {
        return true;
    }
    l.hostname == crate::sys::hostname() && !crate::sys::process_alive(l.pid)
}

impl Repository {
    /// Locks held by others that are not stale.
    pub fn live_locks(&self) -> Result<Vec<(String, Lock)>> {
        Ok(self.lock_census()?.0)
    }

    /// Whether this process's lock is the only one: no other live lock, and none vanished while
    /// being read (a vanished lock may have been replaced by its holder's refresh).
    pub fn alone_in_repository(&self) -> Result<bool> {
        let (live, vanished) = self.lock_census()?;
        Ok(live.len() == 1 && vanished == 0)
    }

    /// Live locks, and how many listed locks vanished before they could be read.
    fn lock_census(&self) -> Result<(Vec<(String, Lock)>, usize)> {
        let mut out = Vec::new();
        let mut vanished = 0;
        for (name, _) in self.backend().list(FileType::Lock)? {
            let id = match Id::from_hex(&name) {
                Some(id) => id,
                None => continue,
            };
            // A lock that vanished meanwhile was released; one that fails to decode is reported.
            let body = match self.load_file(FileKind::Lock, &id) {
                Ok(b) => b,
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    vanished += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let lock = Lock::decode(&body).map_err(|e| match e {
                Error::Integrity { reason, .. } => {
                    Error::integrity(format!("lock {name} (remove it if no arca process runs)"), reason)
                }
                e => e,
            })?;
            if !is_stale(&lock) {
                out.push((name, lock));
            }
        }
        Ok((out, vanished))
    }

    /// Take a shared or exclusive lock, refreshed in the background until the guard drops.
    pub fn lock(&self, exclusive: bool) -> Result<LockGuard> {
        let conflict = |locks: &[(String, Lock)], mine: Option<&str>| {
            locks.iter().find(|(n, l)| Some(n.as_str()) != mine && (exclusive || l.exclusive)).map(|(n, l)| {
                Error::Locked(format!(
                    "{} lock {} held by {}@{} (pid {})",
                    if l.exclusive { "exclusive" } else { "shared" },
                    &n[..8],
                    l.username,
                    l.hostname,
                    l.pid
                ))
            })
        };
        if let Some(e) = conflict(&self.live_locks()?, None) {
            return Err(e);
        }
        let (name, time) = self.write_lock(exclusive)?;
        // Re-check: another process may have locked between our look and our write.
        if let Some(e) = conflict(&self.live_locks()?, Some(&name)) {
            let _ = self.backend().remove(FileType::Lock, &name);
            return Err(e);
        }
        let (tx, rx) = mpsc::channel::<()>();
        let backend = self.backend().clone();
        let refreshed = self.lock_bytes(exclusive);
        let written = Arc::new(AtomicI64::new(time));
        let stamp = written.clone();
        let thread = thread::spawn(move || {
            let mut current = name;
            // Until the guard drops (the sender disconnects), rewrite the lock periodically.
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(REFRESH_EVERY) {
                if let Ok((bytes, t)) = refreshed() {
                    let new = Id::of_file_bytes(&bytes).to_hex();
                    if backend.write(FileType::Lock, &new, &bytes).is_ok() {
                        stamp.store(t, Ordering::SeqCst);
                        let _ = backend.remove(FileType::Lock, &current);
                        current = new;
                    }
                }
            }
            let _ = backend.remove(FileType::Lock, &current);
        });
        Ok(LockGuard { stop: Some(tx), thread: Some(thread), written })
    }

    /// [`Repository::lock`], retrying while the repository is locked by others, for at most
    /// `max_wait` (zero: one attempt). `on_wait` is told about the conflict once, before the
    /// first wait, so a caller can say why it waits.
    pub fn lock_wait(&self, exclusive: bool, max_wait: Duration, on_wait: &dyn Fn(&Error)) -> Result<LockGuard> {
        let deadline = std::time::Instant::now() + max_wait;
        let mut pause = Duration::from_millis(200);
        let mut told = false;
        loop {
            match self.lock(exclusive) {
                Err(e @ Error::Locked(_)) => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return Err(e);
                    }
                    if !told {
                        on_wait(&e);
                        told = true;
                    }
                    // Jittered backoff up to 10 s, so waiting processes do not retry in step.
                    let jitter = Duration::from_millis(crate::sys::now_nanos().rem_euclid(250) as u64);
                    thread::sleep((pause + jitter).min(deadline - now));
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
                r => return r,
            }
        }
    }

    fn write_lock(&self, exclusive: bool) -> Result<(String, i64)> {
        let (bytes, time) = self.lock_bytes(exclusive)()?;
        let name = Id::of_file_bytes(&bytes).to_hex();
        self.backend().write(FileType::Lock, &name, &bytes)?;
        Ok((name, time))
    }

    /// A closure that builds a fresh, encrypted lock file and returns it with the time it
    /// records (usable from the refresh thread).
    fn lock_bytes(&self, exclusive: bool) -> impl Fn() -> Result<(Vec<u8>, i64)> + Send + 'static {
        let enc_key = self.lock_sealer();
        move || {
            let l = Lock {
                time: crate::sys::now_nanos(),
                exclusive,
                hostname: crate::sys::hostname(),
                username: crate::sys::username(),
                pid: std::process::id(),
            };
            Ok((enc_key(&l.encode())?, l.time))
        }
    }
}
