//! A repository in a local directory, or anything mounted as one (USB disk, NFS, SMB, sshfs).
//!
//! Publishing is "write to `tmp/`, fsync, rename into place, fsync the directory": after a crash
//! a file is either complete under its final name or an orphan in `tmp/`, which readers never
//! look at and writers clean up once it is older than [`TMP_MAX_AGE`]. No advisory locks, hard
//! links or O_EXCL tricks are needed, so network filesystems that lack them work too.

use super::{Backend, BlockWriter, FileType, StagedFile};
use crate::error::{Error, IoContext, Result};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Age after which a file in `tmp/` is taken to be left over from a crash.
pub const TMP_MAX_AGE: Duration = Duration::from_secs(3600);
const OPEN_FILE_CACHE: usize = 64;

/// A directory backend.
pub struct LocalBackend {
    root: PathBuf,
    open_files: Mutex<HashMap<String, Arc<File>>>,
}

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist until [`Backend::create`]).
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend { root: root.into(), open_files: Mutex::new(HashMap::new()) }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a file of type `t` named `name` lives.
    pub fn path(&self, t: FileType, name: &str) -> PathBuf {
        match t {
            FileType::Config => self.root.join("config"),
            FileType::Pack => self.root.join("data").join(name.get(..2).unwrap_or("00")).join(name),
            _ => self.root.join(t.dir()).join(name),
        }
    }

    fn remove_old_tmp(&self, max_age: Duration) -> Result<usize> {
        let dir = self.root.join("tmp");
        let mut removed = 0;
        for e in fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let old = e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
            if old.is_some_and(|age| age >= max_age) {
                fs::remove_file(e.path()).at(e.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn tmp_path(&self) -> Result<PathBuf> {
        let name = format!("{}.tmp", crate::id::hex(&crate::crypto::random_array::<16>()?));
        Ok(self.root.join("tmp").join(name))
    }

    fn cached_open(&self, path: &Path, key: &str) -> Result<Arc<File>> {
        if let Some(f) = self.open_files.lock().unwrap().get(key) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(path).at(path)?);
        let mut cache = self.open_files.lock().unwrap();
        if cache.len() >= OPEN_FILE_CACHE {
            cache.clear();
        }
        cache.insert(key.to_string(), f.clone());
        Ok(f)
    }
}

/// A file in `tmp/` on its way to its final name.
struct LocalStaged {
    file: Option<BlockWriter<File>>,
    tmp: PathBuf,
    dest: Box<dyn Fn(&str) -> PathBuf + Send>,
}

impl Write for LocalStaged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("not yet published").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("not yet published").flush()
    }
}

impl StagedFile for LocalStaged {
    fn publish(mut self: Box<Self>, name: &str) -> Result<()> {
        let f = self.file.take().expect("published once");
        let durable = f.finish().and_then(|f| f.sync_all());
        if let Err(e) = durable {
            let _ = fs::remove_file(&self.tmp);
            return Err(Error::Io { path: self.tmp.clone(), source: e });
        }
        let dest = (self.dest)(name);
        publish_tmp(&self.tmp, &dest)
    }
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Rename a durable tmp file into place (creating a missing `data/xx` shard) and fsync the directory.
fn publish_tmp(tmp: &Path, dest: &Path) -> Result<()> {
    let dir = dest.parent().expect("repository files live in a directory");
    if let Err(e) = fs::rename(tmp, dest) {
        if e.kind() != std::io::ErrorKind::NotFound || dir.exists() {
            let _ = fs::remove_file(tmp);
            return Err(Error::Io { path: dest.to_path_buf(), source: e });
        }
        let retry = fs::create_dir_all(dir)
            .and_then(|_| File::open(dir.parent().expect("shards live in data/"))?.sync_all())
            .and_then(|_| fs::rename(tmp, dest));
        if let Err(e) = retry {
            let _ = fs::remove_file(tmp);
            return Err(Error::Io { path: dest.to_path_buf(), source: e });
        }
    }
    sync_dir(dir)
}

fn content_addressed(t: FileType) -> bool {
    matches!(t, FileType::Pack | FileType::Index | FileType::Snapshot | FileType::Key)
}

/// fsync a directory so a rename into it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<()> {
        if self.root.join("config").exists() {
            return Err(Error::InvalidArgument(format!("{}: a repository already exists here", self.location())));
        }
        if let Ok(mut rd) = fs::read_dir(&self.root) {
            if rd.next().is_some() {
                return Err(Error::InvalidArgument(format!("{}: directory is not empty", self.location())));
            }
        }
        // data/xx shards are created on first use: 256 empty directories cost 1 MiB on most filesystems.
        for d in ["keys", "index", "snapshots", "locks", "tmp", "data"] {
            fs::create_dir_all(self.root.join(d)).at(self.root.join(d))?;
        }
        sync_dir(&self.root)
    }

    fn exists(&self, t: FileType, name: &str) -> Result<bool> {
        Ok(self.path(t, name).exists())
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let p = self.path(t, name);
        fs::read(&p).at(&p)
    }

    fn read_at(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let p = self.path(t, name);
        let f = self.cached_open(&p, name)?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset).at(&p)?;
        Ok(buf)
    }

    fn write(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        let dest = self.path(t, name);
        if dest.exists() {
            if content_addressed(t) {
                return Ok(());
            }
            return Err(Error::InvalidArgument(format!("{} already exists", dest.display())));
        }
        let tmp = self.tmp_path()?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Io { path: tmp, source: e });
        }
        publish_tmp(&tmp, &dest)
    }

    fn stage(&self, t: FileType) -> Result<Box<dyn StagedFile>> {
        let tmp = self.tmp_path()?;
        let file = File::create(&tmp).at(&tmp)?;
        let root = self.root.clone();
        let dest = Box::new(move |name: &str| LocalBackend::new(root.clone()).path(t, name));
        Ok(Box::new(LocalStaged { file: Some(BlockWriter::new(file)), tmp, dest }))
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let dirs: Vec<PathBuf> = match t {
            FileType::Config => return Ok(vec![]),
            FileType::Pack => (0..256).map(|i| self.root.join("data").join(format!("{i:02x}"))).collect(),
            _ => vec![self.root.join(t.dir())],
        };
        let mut out = Vec::new();
        for d in dirs {
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::Io { path: d, source: e }),
            };
            for e in rd {
                let e = e.at(&d)?;
                if let Some(name) = e.file_name().to_str() {
                    // A file removed between readdir and stat (a lock being refreshed) is just gone.
                    let len = match e.metadata() {
                        Ok(m) => m.len(),
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(err) => return Err(Error::Io { path: e.path(), source: err }),
                    };
                    out.push((name.to_string(), len));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn clean_tmp(&self, max_age: Duration) -> Result<usize> {
        self.remove_old_tmp(max_age)
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        let p = self.path(t, name);
        self.open_files.lock().unwrap().remove(name);
        fs::remove_file(&p).at(&p)?;
        sync_dir(p.parent().expect("repository files live in a directory"))
    }
}
