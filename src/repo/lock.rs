//! Repository locks (format-spec/13-lock.md): plain files in `locks/`, so they work on any
//! filesystem. A lock is stale once it has not been refreshed for [`STALE_AFTER`], or when its
//! holder ran on this host and is gone. The holder refreshes it every [`REFRESH_EVERY`].

use super::Repository;
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::header::FileKind;
use crate::format::lock::Lock;
use crate::id::Id;
use rayon::prelude::*;
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
    fresh: Freshness,
}

/// Whether a held lock may still be relied on (format-spec/17-consistency.md §17.5 rule 3): a
/// cheap handle, cloned into whatever must check before it commits or deletes.
#[derive(Clone, Debug)]
pub struct Freshness {
    /// When the lock file was last written successfully (Unix ns, wall clock, so time spent
    /// suspended counts); `i64::MIN` once the lock expired, which is final.
    written: Arc<AtomicI64>,
}

impl Freshness {
    /// Fail unless the lock was written or refreshed less than [`FRESH_FOR`] ago. A process
    /// that was suspended, or could not refresh its lock, may have been considered gone by a
    /// prune; it must not commit or delete anything.
    pub fn ensure(&self) -> Result<()> {
        let written = self.written.load(Ordering::SeqCst);
        let age = crate::sys::now_nanos().saturating_sub(written);
        if written == i64::MIN || age.unsigned_abs() >= FRESH_FOR.as_nanos() as u64 {
            return Err(Error::Locked(
                "this process's lock went unrefreshed for too long (suspended?), so other processes \
                 may have ignored it; stopping before committing or deleting anything"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Called by the refresh thread before it rewrites the lock: once the lock has expired it
    /// stays expired, so a refresh after a long suspension cannot revive it.
    fn expired_now(&self) -> bool {
        if self.ensure().is_err() {
            self.written.store(i64::MIN, Ordering::SeqCst);
            return true;
        }
        false
    }
}

/// A [`Freshness`] that does not keep the lock's state alive: dropped guards are forgotten.
#[derive(Clone)]
pub struct WeakFreshness(std::sync::Weak<AtomicI64>);

impl LockGuard {
    /// See [`Freshness::ensure`].
    pub fn ensure_fresh(&self) -> Result<()> {
        self.fresh.ensure()
    }

    /// A handle for checking this lock's freshness later (e.g. before each index file).
    pub fn freshness(&self) -> Freshness {
        self.fresh.clone()
    }

    /// Test hook, not a stable API: refresh the lock now (asynchronously).
    #[doc(hidden)]
    pub fn refresh_now(&self) {
        if let Some(tx) = &self.stop {
            let _ = tx.send(());
        }
    }

    /// Test hook, not a stable API: pretend the lock was last written `by` earlier.
    #[doc(hidden)]
    pub fn backdate(&self, by: Duration) {
        let by = by.as_nanos() as i64;
        let _ = self.fresh.written.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| Some(w.saturating_sub(by)));
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

/// Whether a lock is stale (format-spec/13-lock.md §13.2): older than [`STALE_AFTER`] or dated
/// more than that in the future, or held by a process of this host that no longer exists.
pub fn is_stale(l: &Lock) -> bool {
    let age = crate::sys::now_nanos().saturating_sub(l.time);
    // Far in the future counts as stale too: a wrong clock must not lock a repository forever.
    if age.abs() > STALE_AFTER.as_nanos() as i64 {
        return true;
    }
    l.hostname == crate::sys::hostname() && !crate::sys::process_alive(l.pid)
}

/// What a lock file holds (format-spec/13-lock.md §13.2).
#[derive(Debug)]
pub enum LockState {
    /// A lock whose holder may still run: it conflicts as its kind says.
    Live(Lock),
    /// A lock every reader ignores: not refreshed for [`STALE_AFTER`] (or dated that far in the
    /// future), or held by a process of this host that no longer exists.
    Stale(Lock),
    /// A file that fails to authenticate or decode; it blocks every lock operation, since it
    /// may be a live lock of a writer this program cannot read.
    Unreadable(Error),
}

/// A lock file in `locks/` and its state.
#[derive(Debug)]
pub struct LockFile {
    /// File name (the lock's ID).
    pub name: String,
    /// What it holds.
    pub state: LockState,
}

/// What [`Repository::remove_locks`] did with one lock file.
#[derive(Debug)]
pub struct LockOutcome {
    /// The lock file.
    pub file: LockFile,
    /// Whether it was removed (or found gone); otherwise it was kept.
    pub removed: bool,
}

impl Repository {
    /// Locks held by others that are not stale.
    pub fn live_locks(&self) -> Result<Vec<(String, Lock)>> {
        Ok(self.lock_census()?.0)
    }

    /// Live locks other than `mine`, which is known and not read back.
    fn live_locks_besides(&self, mine: &str) -> Result<Vec<(String, Lock)>> {
        Ok(self.lock_census_besides(Some(mine))?.0)
    }

    /// Whether this process's lock is the only one: no other live lock, and none vanished while
    /// being read (a vanished lock may have been replaced by its holder's refresh).
    pub fn alone_in_repository(&self) -> Result<bool> {
        let (live, vanished) = self.lock_census()?;
        Ok(live.len() == 1 && vanished == 0)
    }

    /// Live locks, and how many listed locks vanished before they could be read. A lock file
    /// that cannot be read is an error (section 13.2): it may be a live lock.
    fn lock_census(&self) -> Result<(Vec<(String, Lock)>, usize)> {
        self.lock_census_besides(None)
    }

    fn lock_census_besides(&self, mine: Option<&str>) -> Result<(Vec<(String, Lock)>, usize)> {
        let (files, vanished) = self.lock_files_besides(mine)?;
        let mut out = Vec::new();
        for f in files {
            match f.state {
                LockState::Live(l) => out.push((f.name, l)),
                LockState::Stale(_) => {}
                LockState::Unreadable(e) => return Err(e),
            }
        }
        Ok((out, vanished))
    }

    /// Every lock file in `locks/` (names that are not 64 hex digits are skipped, section 13.3)
    /// with its state, and how many vanished between listing and reading (released). I/O errors
    /// other than a vanished file fail the listing.
    pub fn lock_files(&self) -> Result<(Vec<LockFile>, usize)> {
        self.lock_files_besides(None)
    }

    /// [`Repository::lock_files`] without `mine`; the others are read at once (on remote
    /// storage, one round trip for all of them).
    fn lock_files_besides(&self, mine: Option<&str>) -> Result<(Vec<LockFile>, usize)> {
        let names: Vec<(String, Id)> = self
            .list_objects(FileType::Lock)?
            .into_iter()
            .filter(|(name, _)| Some(name.as_str()) != mine)
            .filter_map(|(name, _)| Id::from_hex(&name).map(|id| (name, id)))
            .collect();
        let read: Vec<_> = self.io_scope(|| names.par_iter().map(|(name, id)| self.read_lock(name, id)).collect());
        let mut out = Vec::new();
        let mut vanished = 0;
        for ((name, _), read) in names.into_iter().zip(read) {
            let state = match read {
                Ok(Some(l)) if is_stale(&l) => LockState::Stale(l),
                Ok(Some(l)) => LockState::Live(l),
                Ok(None) => {
                    vanished += 1;
                    continue;
                }
                Err(e @ Error::Integrity { .. }) => LockState::Unreadable(e),
                Err(e) => return Err(e),
            };
            out.push(LockFile { name, state });
        }
        Ok((out, vanished))
    }

    /// One lock file, `None` if it vanished (was released) before it could be read. Any file
    /// that is not a readable lock — damaged, foreign (no magic) or of an unknown version — is
    /// an integrity error naming it: it may be a live lock this program cannot read, and it
    /// must not make the repository look like something else (section 13.2).
    fn read_lock(&self, name: &str, id: &Id) -> Result<Option<Lock>> {
        let hint = |e: Error| {
            let object = format!("lock {name} (remove it with `arca unlock --remove-all` if no arca process runs)");
            match e {
                Error::Integrity { reason, .. } => Error::integrity(object, reason),
                Error::NotARepository(reason) | Error::Unsupported(reason) => Error::integrity(object, reason),
                // Sealed under K_enc (an older program, or written before roles): a backup key
                // cannot tell what it is, so it counts as a lock it cannot read.
                Error::RoleDenied { .. } => Error::integrity(object, "sealed with a key this key's role lacks"),
                e => e,
            }
        };
        let body = match self.load_file(FileKind::Lock, id) {
            Ok(b) => b,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(hint(e)),
        };
        Lock::decode(&body).map(Some).map_err(hint)
    }

    /// Remove stale lock files, or with `all` every lock file, including live and unreadable
    /// ones (`arca unlock`). Takes no lock itself: it would have to ignore the locks it removes.
    /// Returns every lock file seen, each marked removed or kept.
    pub fn remove_locks(&self, all: bool) -> Result<Vec<LockOutcome>> {
        self.require(&[crate::crypto::Role::Admin], "remove locks")?;
        let (files, _) = self.lock_files()?;
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            let remove = all || matches!(file.state, LockState::Stale(_));
            if remove {
                match self.backend().remove(FileType::Lock, &file.name) {
                    Ok(()) => {}
                    // Released by its holder meanwhile: gone either way.
                    Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            out.push(LockOutcome { file, removed: remove });
        }
        Ok(out)
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
        // An exclusive locker looks first, so that its attempts (a prune waiting for a backup
        // to finish) never leave a lock in passing for a starting backup to trip over. A shared
        // locker only needs the look after its write: one round trip less on remote storage.
        if exclusive {
            if let Some(e) = conflict(&self.live_locks()?, None) {
                return Err(e);
            }
        }
        // A session whose keys a rotation replaced must not even leave a lock behind that
        // nobody could read (format-spec/25): checked before the write, and again under it.
        self.ensure_config_unchanged()?;
        let (name, time) = self.write_lock(exclusive)?;
        let checked = (|| {
            // Re-check: another process may have locked between our look and our write.
            if let Some(e) = conflict(&self.live_locks_besides(&name)?, Some(&name)) {
                return Err(e);
            }
            // Under the lock nothing can replace the config any more; before it, a rotation may
            // have, and this session's keys would then write what nobody can read.
            self.ensure_config_unchanged()
        })();
        if let Err(e) = checked {
            // Every failure removes the file just written: a lock left by a failed attempt
            // would block everyone.
            let _ = self.backend().remove(FileType::Lock, &name);
            return Err(e);
        }
        let (tx, rx) = mpsc::channel::<()>();
        let backend = self.backend().clone();
        let refreshed = self.lock_bytes(exclusive);
        let fresh = Freshness { written: Arc::new(AtomicI64::new(time)) };
        let stamp = fresh.clone();
        // Removed by the interrupt watcher if the process gets SIGINT or SIGTERM.
        let registered = crate::interrupt::Registered::new(backend.clone(), &name);
        let thread = thread::spawn(move || {
            let mut current = name;
            // Until the guard drops (the sender disconnects), rewrite the lock periodically.
            // A message asks for a refresh now (test hook).
            while let Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(REFRESH_EVERY) {
                if stamp.expired_now() {
                    continue;
                }
                if let Ok((bytes, t)) = refreshed() {
                    let new = Id::of_file_bytes(&bytes).to_hex();
                    if backend.write(FileType::Lock, &new, &bytes).is_ok() {
                        stamp.written.store(t, Ordering::SeqCst);
                        let _ = backend.remove(FileType::Lock, &current);
                        current = new;
                        if !registered.rename(&current) {
                            break; // interrupted: the old name is removed, the new one below
                        }
                    }
                }
            }
            let _ = backend.remove(FileType::Lock, &current);
        });
        self.held.lock().unwrap().push(WeakFreshness(Arc::downgrade(&fresh.written)));
        Ok(LockGuard { stop: Some(tx), thread: Some(thread), fresh })
    }

    /// [`Repository::lock`], retrying while the repository is locked by others, for at most
    /// `max_wait` (zero: one attempt). `on_wait` is told about the conflict once, before the
    /// first wait, so a caller can say why it waits.
    pub fn lock_wait(&self, exclusive: bool, max_wait: Duration, on_wait: &dyn Fn(&Error)) -> Result<LockGuard> {
        if exclusive {
            // Exclusive locks are for operations that change or delete what is stored.
            self.require(&[crate::crypto::Role::Admin], "take an exclusive lock")?;
        }
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

    /// Fail unless every lock this process holds on the repository is still fresh
    /// (format-spec/17-consistency.md §17.5 rule 3): called before every index file and
    /// snapshot is written, and before deleting operations remove a file.
    pub fn ensure_locks_fresh(&self) -> Result<()> {
        // Uploads still in flight are confirmed first: the write that follows would wait for
        // them anyway, and the lock must still be fresh when it happens, not only before.
        self.backend().settle()?;
        let mut held = self.held.lock().unwrap();
        held.retain(|w| w.0.strong_count() > 0);
        for w in held.iter() {
            if let Some(written) = w.0.upgrade() {
                Freshness { written }.ensure()?;
            }
        }
        Ok(())
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
