//! `--limit-upload` and `--limit-download` (KiB/s, as restic): a backend that holds the bytes
//! it hands to, and takes from, the storage to an average rate. Each direction is a token
//! bucket of one second's worth: a transfer waits until the bytes before it have had their time,
//! so the rate holds over any stretch longer than a second or a transfer, whichever is longer.

use super::{Backend, FileType, StagedFile};
use crate::error::Result;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One direction's budget.
struct Bucket {
    /// Bytes per second.
    rate: f64,
    /// When the bytes granted so far will have had their time.
    free_at: Mutex<Instant>,
}

impl Bucket {
    fn new(kib_per_s: u64) -> Bucket {
        Bucket { rate: kib_per_s as f64 * 1024.0, free_at: Mutex::new(Instant::now()) }
    }

    /// Wait until `bytes` may go.
    fn take(&self, bytes: usize) {
        let wait = {
            let mut free_at = self.free_at.lock().unwrap();
            let now = Instant::now();
            // Up to a second of unused budget may be spent at once.
            let start = (*free_at).max(now.checked_sub(Duration::from_secs(1)).unwrap_or(now));
            *free_at = start + Duration::from_secs_f64(bytes as f64 / self.rate);
            start.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// A backend whose transfers are held to the given rates.
pub struct LimitedBackend {
    inner: Arc<dyn Backend>,
    up: Option<Arc<Bucket>>,
    down: Option<Bucket>,
}

impl LimitedBackend {
    /// `inner` with uploads limited to `up` and downloads to `down` KiB/s (`None`: unlimited).
    pub fn new(inner: Arc<dyn Backend>, up: Option<u64>, down: Option<u64>) -> LimitedBackend {
        LimitedBackend { inner, up: up.map(|r| Arc::new(Bucket::new(r))), down: down.map(Bucket::new) }
    }

    fn sent(&self, n: usize) {
        if let Some(b) = &self.up {
            b.take(n);
        }
    }

    fn received<T: AsRef<[u8]>>(&self, r: Result<T>) -> Result<T> {
        if let (Ok(bytes), Some(b)) = (&r, &self.down) {
            b.take(bytes.as_ref().len());
        }
        r
    }
}

/// A staged file whose bytes are counted against the upload budget as they are written.
struct LimitedStaged {
    inner: Box<dyn StagedFile>,
    up: Arc<Bucket>,
}

impl std::io::Write for LimitedStaged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.up.take(n);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl StagedFile for LimitedStaged {
    fn publish(self: Box<Self>, name: &str) -> Result<()> {
        self.inner.publish(name)
    }
}

impl Backend for LimitedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn exists(&self, t: FileType, name: &str) -> Result<bool> {
        self.inner.exists(t, name)
    }
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        self.received(self.inner.read(t, name))
    }
    fn read_at(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.received(self.inner.read_at(t, name, offset, len))
    }
    fn write(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        self.sent(bytes.len());
        self.inner.write(t, name, bytes)
    }
    fn replace(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        self.sent(bytes.len());
        self.inner.replace(t, name, bytes)
    }
    fn sync_name(&self, t: FileType, name: &str) -> Result<()> {
        self.inner.sync_name(t, name)
    }
    fn stage(&self, t: FileType) -> Result<Box<dyn StagedFile>> {
        let inner = self.inner.stage(t)?;
        Ok(match &self.up {
            Some(up) => Box::new(LimitedStaged { inner, up: up.clone() }),
            None => inner,
        })
    }
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        self.inner.list(t)
    }
    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        self.inner.remove(t, name)
    }
    fn stray_entries(&self) -> Result<Vec<String>> {
        self.inner.stray_entries()
    }
    fn read_parallelism(&self) -> usize {
        self.inner.read_parallelism()
    }
    fn settle(&self) -> Result<()> {
        self.inner.settle()
    }
    fn size_hint(&self, t: FileType, name: &str, len: u64) {
        self.inner.size_hint(t, name, len)
    }
    fn clean_tmp(&self, max_age: Duration) -> Result<usize> {
        self.inner.clean_tmp(max_age)
    }
    fn free_space(&self) -> Result<Option<(u64, u64)>> {
        self.inner.free_space()
    }
    fn object_lock(&self) -> Option<&dyn super::retention::ObjectLock> {
        self.inner.object_lock()
    }
    fn cached_blob(&self, id: &crate::id::Id) -> Option<Vec<u8>> {
        self.inner.cached_blob(id)
    }
    fn caches_blobs(&self) -> bool {
        self.inner.caches_blobs()
    }
    fn keep_blob(&self, id: &crate::id::Id, envelope: &[u8]) {
        self.inner.keep_blob(id, envelope)
    }
    fn forget_blob(&self, id: &crate::id::Id) {
        self.inner.forget_blob(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_the_average_rate() {
        // 64 KiB/s: after the first second's allowance, 128 KiB more take about two seconds.
        let b = Bucket::new(64);
        let t0 = Instant::now();
        for _ in 0..8 {
            b.take(16 << 10);
        }
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(1500), "{took:?}");
    }
}
