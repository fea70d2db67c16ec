//! Live progress of a backup, restore or drill: counters the operation bumps (relaxed atomics,
//! a few per file), totals that may arrive while it runs (a backup's scan-ahead), and the
//! numbers a display wants from them ([`Progress::status`]: percent, throughput, ETA). Nothing
//! here prints; `cli/` renders a status line or JSON lines from it, a UI could poll the same.
//!
//! Totals as restic has them: a backup starts at once, and a second thread walks the same
//! selection counting files and bytes (only `stat`s, no reads), so "of how much" is known
//! long before the end. Until that walk is over the totals only grow, and so there is no ETA.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// How a file a backup saved compares with the parent snapshot (restic's `-v` words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileChange {
    /// Not in the parent snapshot.
    New,
    /// In the parent, with other metadata or content: read again.
    Modified,
    /// Taken from the parent (or read under `--force` and found the same).
    Unchanged,
}

impl FileChange {
    /// The word restic prints: `new`, `modified`, `unchanged`.
    pub fn word(self) -> &'static str {
        match self {
            FileChange::New => "new",
            FileChange::Modified => "modified",
            FileChange::Unchanged => "unchanged",
        }
    }
}

/// Told of each regular file a backup saved: its path, how it compares, its size.
pub type FileHook = Box<dyn Fn(&Path, FileChange, u64) + Send + Sync>;

/// Live counters a progress display can poll.
#[derive(Default)]
pub struct Progress {
    /// Files finished (every entry but directories).
    pub files: AtomicU64,
    /// Directories finished.
    pub dirs: AtomicU64,
    /// Content bytes done: read, written, or skipped as unchanged.
    pub bytes: AtomicU64,
    /// Files expected in all (so far, while totals are still being counted).
    pub total_files: AtomicU64,
    /// Content bytes expected in all (so far).
    pub total_bytes: AtomicU64,
    /// Counts of totals under way; totals are final when none is and one was.
    counting: AtomicU64,
    counted: AtomicBool,
    /// Someone shows this progress: a backup then counts its totals ahead and keeps
    /// [`Progress::current_files`]. Off, the backup costs nothing extra.
    pub watched: bool,
    /// Called for every regular file a backup saves (`-v`).
    pub on_file: Option<FileHook>,
    current: Mutex<Vec<PathBuf>>,
}

/// A moment's numbers, for a display.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    /// Time since the start.
    pub elapsed: Duration,
    /// Files done.
    pub files: u64,
    /// Bytes done.
    pub bytes: u64,
    /// Files expected (0: unknown).
    pub total_files: u64,
    /// Bytes expected (0: unknown).
    pub total_bytes: u64,
    /// Whether the totals are final (the scan-ahead is over).
    pub totals_final: bool,
    /// Fraction of the bytes done, 0 to 1 (of the totals so far while they are counted).
    pub percent: f64,
    /// Bytes per second since the start.
    pub rate: f64,
    /// Estimated time left: known once the totals are final and some bytes are done.
    pub remaining: Option<Duration>,
}

impl Progress {
    /// Progress that someone shows or not ([`Progress::watched`]), with a hook for `-v`.
    pub fn new(watched: bool, on_file: Option<FileHook>) -> Progress {
        Progress { watched, on_file, ..Progress::default() }
    }

    /// A count of totals starts (a backup's scan-ahead).
    pub fn counting_started(&self) {
        self.counting.fetch_add(1, Relaxed);
        self.counted.store(true, Relaxed);
    }

    /// Add to the totals.
    pub fn expect(&self, files: u64, bytes: u64) {
        self.total_files.fetch_add(files, Relaxed);
        self.total_bytes.fetch_add(bytes, Relaxed);
    }

    /// A count of totals is over (complete or abandoned).
    pub fn counting_finished(&self) {
        self.counting.fetch_sub(1, Relaxed);
    }

    /// Totals known in one go (a restore's, from the snapshot's trees).
    pub fn expect_all(&self, files: u64, bytes: u64) {
        self.counted.store(true, Relaxed);
        self.expect(files, bytes);
    }

    /// Whether the totals are final.
    pub fn totals_final(&self) -> bool {
        self.counted.load(Relaxed) && self.counting.load(Relaxed) == 0
    }

    /// Report a saved file to [`Progress::on_file`].
    pub(crate) fn file_saved(&self, path: &Path, change: FileChange, size: u64) {
        if let Some(f) = &self.on_file {
            f(path, change, size);
        }
    }

    /// Mark `path` as being read until the guard is dropped (only when watched).
    pub(crate) fn reading(&self, path: &Path) -> Reading<'_> {
        if !self.watched {
            return Reading(None);
        }
        self.current.lock().unwrap().push(path.to_path_buf());
        Reading(Some((self, path.to_path_buf())))
    }

    /// The files being read now (restic's `current_files`).
    pub fn current_files(&self) -> Vec<PathBuf> {
        let mut v = self.current.lock().unwrap().clone();
        v.sort();
        v
    }

    /// The numbers at `elapsed` since the start.
    pub fn status(&self, elapsed: Duration) -> Status {
        let (files, bytes) = (self.files.load(Relaxed), self.bytes.load(Relaxed));
        let (total_files, total_bytes) = (self.total_files.load(Relaxed), self.total_bytes.load(Relaxed));
        let totals_final = self.totals_final();
        let percent = if total_bytes > 0 {
            (bytes as f64 / total_bytes as f64).min(1.0)
        } else if totals_final && total_files > 0 {
            // Only empty files: count them instead.
            (files as f64 / total_files as f64).min(1.0)
        } else {
            0.0
        };
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
        // As restic: the time so far, scaled by what is left over what is done.
        let remaining = (totals_final && bytes > 0 && secs > 0.0)
            .then(|| Duration::from_secs_f64(secs * total_bytes.saturating_sub(bytes) as f64 / bytes as f64));
        Status { elapsed, files, bytes, total_files, total_bytes, totals_final, percent, rate, remaining }
    }
}

/// Bytes done of a total known when the work starts: prune's repack, `check --read-data`,
/// `copy`, `parity build`.
#[derive(Debug, Default)]
pub struct Meter {
    /// Bytes done.
    pub done: AtomicU64,
    /// Bytes to do.
    pub total: AtomicU64,
    started: std::sync::OnceLock<std::time::Instant>,
}

impl Meter {
    /// The work starts: `total` bytes to do.
    pub fn start(&self, total: u64) {
        self.total.store(total, Relaxed);
        let _ = self.started.set(std::time::Instant::now());
    }

    /// More work found as it goes (a copy, snapshot by snapshot): `n` bytes more to do.
    pub fn more(&self, n: u64) {
        self.total.fetch_add(n, Relaxed);
        let _ = self.started.set(std::time::Instant::now());
    }

    /// `n` more bytes done.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Relaxed);
    }

    /// The numbers now (`None` before the work started).
    pub fn status(&self) -> Option<Status> {
        let elapsed = self.started.get()?.elapsed();
        let p = Progress::default();
        p.expect_all(0, self.total.load(Relaxed));
        p.bytes.store(self.done.load(Relaxed), Relaxed);
        Some(p.status(elapsed))
    }
}

/// A file being read, listed in [`Progress::current_files`] while this lives.
pub(crate) struct Reading<'p>(Option<(&'p Progress, PathBuf)>);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        if let Some((p, path)) = self.0.take() {
            let mut cur = p.current.lock().unwrap();
            if let Some(i) = cur.iter().position(|c| *c == path) {
                cur.swap_remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_only_with_final_totals() {
        let p = Progress::default();
        p.counting_started();
        p.expect(4, 1000);
        p.bytes.store(250, Relaxed);
        let s = p.status(Duration::from_secs(10));
        assert_eq!((s.percent, s.remaining), (0.25, None));
        p.counting_finished();
        let s = p.status(Duration::from_secs(10));
        assert_eq!(s.remaining, Some(Duration::from_secs(30)));
        assert_eq!(s.rate, 25.0);
    }

    #[test]
    fn percent_never_above_one() {
        let p = Progress::default();
        p.expect_all(1, 10);
        p.bytes.store(15, Relaxed);
        let s = p.status(Duration::from_secs(1));
        assert_eq!((s.percent, s.remaining), (1.0, Some(Duration::ZERO)));
    }
}
