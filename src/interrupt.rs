//! Ctrl-C and SIGTERM. Every operation is already safe to kill at any moment (format-spec 17:
//! a backup is adopted by the next one, a prune finished by the next prune, a restore run
//! again), so an interrupted process stops at once, as a killed one would, after one thing a
//! killed process cannot do: removing the lock files it holds, so that other hosts need not
//! wait 30 minutes for them to go stale (a dead process's lock is stale at once on its own host).
//!
//! A signal handler may only do async-signal-safe things: it writes the signal number to a
//! pipe, and a watcher thread does the rest. A second signal while that runs (a lock on a
//! remote store that does not answer) ends the process at once.

use crate::backend::{Backend, FileType};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The signal received, 0 for none.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The write end of the watcher's pipe, -1 before [`watch`].
static PIPE: AtomicI32 = AtomicI32::new(-1);

/// A lock file this process holds.
struct Held {
    key: u64,
    backend: Arc<dyn Backend>,
    name: String,
}

static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());
static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

/// A lock file that is removed if the process is interrupted; forgotten when dropped.
pub struct Registered(u64);

impl Registered {
    /// Register the lock file `name` of `backend`.
    pub fn new(backend: Arc<dyn Backend>, name: &str) -> Registered {
        let key = NEXT_KEY.fetch_add(1, Ordering::SeqCst);
        HELD.lock().unwrap().push(Held { key, backend, name: name.to_string() });
        Registered(key)
    }

    /// The lock was rewritten under a new name. False when the process is being interrupted
    /// and its locks are already removed: the caller removes the new file itself.
    pub fn rename(&self, name: &str) -> bool {
        let mut held = HELD.lock().unwrap();
        match held.iter_mut().find(|h| h.key == self.0) {
            Some(h) if !requested() => {
                h.name = name.to_string();
                true
            }
            _ => false,
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        HELD.lock().unwrap().retain(|h| h.key != self.0);
    }
}

/// Whether a SIGINT or SIGTERM was received (long loops may stop early; nothing is required to).
pub fn requested() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

/// What the watcher did when the process was interrupted.
#[derive(Debug)]
pub struct Interrupted {
    /// The signal (`libc::SIGINT` or `libc::SIGTERM`).
    pub signal: i32,
    /// Lock files removed.
    pub locks_removed: usize,
    /// Lock files that could not be removed, with the error (they go stale in 30 minutes).
    pub lock_errors: Vec<String>,
}

impl Interrupted {
    /// The signal's name.
    pub fn signal_name(&self) -> &'static str {
        if self.signal == libc::SIGTERM {
            "SIGTERM"
        } else {
            "SIGINT"
        }
    }
}

/// Remove every lock file this process holds (each once).
pub fn release_locks() -> (usize, Vec<String>) {
    let held = std::mem::take(&mut *HELD.lock().unwrap());
    let mut removed = 0;
    let mut errors = Vec::new();
    for h in held {
        match h.backend.remove(FileType::Lock, &h.name) {
            Ok(()) => removed += 1,
            Err(crate::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => removed += 1,
            Err(e) => errors.push(format!("lock {}: {e}", &h.name[..h.name.len().min(8)])),
        }
    }
    (removed, errors)
}

extern "C" fn on_signal(sig: libc::c_int) {
    if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: `_exit` is async-signal-safe. A second signal: stop now.
        unsafe { libc::_exit(128 + sig) };
    }
    let byte = sig as u8;
    // SAFETY: `write` is async-signal-safe; the buffer is a live local byte.
    unsafe { libc::write(PIPE.load(Ordering::SeqCst), (&byte as *const u8).cast(), 1) };
}

/// Catch SIGINT and SIGTERM: on the first, flag the process as interrupted, remove its lock
/// files and call `then`, which should end the process (with exit code 128 + signal, by
/// convention); if it returns, the process exits so.
pub fn watch(then: impl FnOnce(Interrupted) + Send + 'static) -> std::io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the read end was just created and is owned here alone; the write end stays open
    // for the life of the process, for the handler.
    let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    PIPE.store(fds[1], Ordering::SeqCst);
    std::thread::Builder::new().name("interrupt".into()).spawn(move || {
        let mut byte = 0u8;
        let mut file = std::fs::File::from(read);
        if std::io::Read::read(&mut file, std::slice::from_mut(&mut byte)).unwrap_or(0) == 0 {
            return;
        }
        let signal = SIGNAL.load(Ordering::SeqCst);
        let (locks_removed, lock_errors) = release_locks();
        then(Interrupted { signal, locks_removed, lock_errors });
        std::process::exit(128 + signal);
    })?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only uses async-signal-safe calls; the struct is fully
        // initialised (zeroed mask and flags, then the handler).
        let rc = unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut act.sa_mask);
            act.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &act, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
