//! A repository in a local directory, or anything mounted as one (USB disk, NFS, SMB, sshfs).
//!
//! Publishing is "write to `tmp/`, fsync, rename into place, fsync the directory": after a crash
//! a file is either complete under its final name or an orphan in `tmp/`, which readers never
//! look at and writers clean up once it is older than [`TMP_MAX_AGE`]. No advisory locks, hard
//! links or O_EXCL tricks are needed, so network filesystems that lack them work too.

use super::{is_object_name, Backend, BlockWriter, FileType, StagedFile};
use crate::error::{Error, IoContext, Result};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The names a repository's top level may hold (format-spec/04 §4.1); anything else is stray.
pub const TOP_LEVEL: [&str; 9] = ["config", "data", "index", "journal", "keys", "locks", "parity", "snapshots", "tmp"];

/// Age after which a file in `tmp/` is taken to be left over from a crash.
pub const TMP_MAX_AGE: Duration = Duration::from_secs(3600);
const OPEN_FILE_CACHE: usize = 64;
/// Mode of every directory a writer creates: repository contents are private whatever the umask
/// (key files are the material for offline password guessing).
pub const DIR_MODE: u32 = 0o700;
/// Mode of repository files other than key files.
pub const FILE_MODE: u32 = 0o600;
/// Mode of key files (read-only: they are never rewritten).
pub const KEY_MODE: u32 = 0o400;

fn file_mode(t: FileType) -> u32 {
    if t == FileType::Key {
        KEY_MODE
    } else {
        FILE_MODE
    }
}

/// Create `dir` and any missing parents with mode [`DIR_MODE`]. The mode is set explicitly on
/// each directory created here, because `mkdir`'s mode is filtered through the umask.
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        make_private_dir(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// What kind of non-regular file `m` describes, for messages.
fn kind_of(m: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    match () {
        _ if t.is_dir() => "a directory",
        _ if t.is_symlink() => "a symbolic link",
        _ if t.is_fifo() => "a FIFO",
        _ if t.is_socket() => "a socket",
        _ if t.is_char_device() => "a character device",
        _ if t.is_block_device() => "a block device",
        _ => "not a regular file",
    }
}

/// The error for a repository file that is not a regular file. `config` that is not a file means
/// the directory is not a repository; any other such file is damage.
fn not_regular(t: FileType, name: &str, location: &str, what: &str) -> Error {
    match t {
        FileType::Config => Error::NotARepository(format!("{location}: config is {what}, not a regular file")),
        _ => Error::integrity(t.describe(name), format!("is {what}, not a regular file")),
    }
}

/// A directory backend.
pub struct LocalBackend {
    root: PathBuf,
    open_files: Mutex<HashMap<PathBuf, Arc<File>>>,
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
            FileType::Pack | FileType::Parity => self.root.join(t.dir()).join(name.get(..2).unwrap_or("00")).join(name),
            FileType::ParityPolicy => self.root.join("parity").join("policy"),
            _ => self.root.join(t.dir()).join(name),
        }
    }

    fn remove_old_tmp(&self, max_age: Duration) -> Result<usize> {
        let dir = self.root.join("tmp");
        let mut removed = 0;
        let rd = match fs::read_dir(&dir) {
            // A repository copied without its empty tmp/ has nothing to clean.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            r => r.at(&dir)?,
        };
        for e in rd {
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

    /// Create a new temporary file for a file of type `t`, private (mode set explicitly, not
    /// left to the umask). A missing `tmp/` (a repository copied by a tool that drops empty
    /// directories) is recreated.
    fn create_tmp(&self, t: FileType) -> Result<(File, PathBuf)> {
        let tmp = self.tmp_path()?;
        let open = || OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(&tmp);
        let f = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.root.join("config").is_file() => {
                let dir = self.root.join("tmp");
                make_private_dir(&dir).at(&dir)?;
                open().at(&tmp)?
            }
            r => r.at(&tmp)?,
        };
        if let Err(e) = f.set_permissions(fs::Permissions::from_mode(file_mode(t))) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Io { path: tmp, source: e });
        }
        Ok((f, tmp))
    }

    /// Open a repository file for reading: never through a symbolic link in the last component,
    /// never blocking (a FIFO), and only a regular file. Returns the file and its length.
    fn open_regular(&self, t: FileType, name: &str, path: &Path) -> Result<(File, u64)> {
        let f = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(not_regular(t, name, &self.location(), "a symbolic link"))
            }
            Err(e) => return Err(Error::Io { path: path.to_path_buf(), source: e }),
        };
        let m = f.metadata().at(path)?;
        if !m.is_file() {
            return Err(not_regular(t, name, &self.location(), kind_of(&m)));
        }
        Ok((f, m.len()))
    }

    /// Up to `max` bytes at `offset` of a regular file (fewer where it ends), and its length:
    /// the read `arca serve` answers (format-spec/23). A missing file is an I/O error of kind
    /// `NotFound`.
    pub fn read_upto(&self, t: FileType, name: &str, offset: u64, max: usize) -> Result<(u64, Vec<u8>)> {
        use std::os::unix::fs::FileExt;
        let p = self.path(t, name);
        let (f, len) = self.open_regular(t, name, &p)?;
        let want = len.saturating_sub(offset).min(max as u64) as usize;
        let mut buf = vec![0u8; want];
        let mut got = 0;
        while got < want {
            match f.read_at(&mut buf[got..], offset + got as u64).at(&p)? {
                0 => break,
                n => got += n,
            }
        }
        buf.truncate(got);
        Ok((len, buf))
    }

    /// Open a file for ranged reads through a small cache of descriptors, keyed by path (a
    /// pack and its parity file share a name).
    fn cached_open(&self, t: FileType, path: &Path, name: &str) -> Result<Arc<File>> {
        if let Some(f) = self.open_files.lock().unwrap().get(path) {
            return Ok(f.clone());
        }
        let f = Arc::new(self.open_regular(t, name, path)?.0);
        let mut cache = self.open_files.lock().unwrap();
        if cache.len() >= OPEN_FILE_CACHE {
            cache.clear();
        }
        cache.insert(path.to_path_buf(), f.clone());
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
        if e.kind() != std::io::ErrorKind::NotFound {
            let _ = fs::remove_file(tmp);
            return Err(Error::Io { path: dest.to_path_buf(), source: e });
        }
        // A missing shard (`data/xx`, `parity/xx`), or `parity/` itself in a repository made
        // before parity existed: create it and flush the directories above. Another writer may
        // have created it since this rename failed (parallel packers publishing into one new
        // shard): then creating is a no-op and the rename is simply tried again.
        let parent = dir.parent().expect("shards live in a directory");
        let created_parent = !parent.exists();
        let retry = make_private_dir(dir)
            .and_then(|_| File::open(parent)?.sync_all())
            .and_then(|_| match (created_parent, parent.parent()) {
                (true, Some(root)) => File::open(root)?.sync_all(),
                _ => Ok(()),
            })
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

    fn free_space(&self) -> Result<Option<(u64, u64)>> {
        let st =
            rustix::fs::statvfs(&self.root).map_err(|e| Error::Io { path: self.root.clone(), source: e.into() })?;
        let unit = st.f_frsize.max(1);
        Ok(Some((st.f_bavail.saturating_mul(unit), st.f_blocks.saturating_mul(unit))))
    }

    fn create(&self) -> Result<()> {
        // Only a regular `config` makes a repository; anything else there (a `config/`
        // directory) is just a non-empty directory.
        if self.root.join("config").is_file() {
            return Err(Error::InvalidArgument(format!("{}: a repository already exists here", self.location())));
        }
        if let Ok(mut rd) = fs::read_dir(&self.root) {
            if rd.next().is_some() {
                return Err(Error::InvalidArgument(format!(
                    "{}: directory is not empty (and not an arca repository); choose an empty or new directory",
                    self.location()
                )));
            }
        }
        // Directories above the repository get the usual modes; the repository itself is private.
        if let Some(parent) = self.root.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).at(parent)?;
        }
        make_private_dir(&self.root).at(&self.root)?;
        // data/xx shards are created on first use: 256 empty directories cost 1 MiB on most filesystems.
        for d in ["keys", "index", "snapshots", "locks", "tmp", "data", "parity"] {
            make_private_dir(&self.root.join(d)).at(self.root.join(d))?;
        }
        sync_dir(&self.root)
    }

    fn exists(&self, t: FileType, name: &str) -> Result<bool> {
        Ok(self.path(t, name).exists())
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let p = self.path(t, name);
        let (f, len) = self.open_regular(t, name, &p)?;
        let max = t.max_len();
        let too_long =
            |len: u64| Error::integrity(t.describe(name), format!("{len} bytes, longer than the {max} allowed"));
        if len > max {
            return Err(too_long(len));
        }
        // Bounded even if the file grows while it is read.
        let mut buf = Vec::with_capacity(len as usize);
        f.take(max + 1).read_to_end(&mut buf).at(&p)?;
        if buf.len() as u64 > max {
            return Err(too_long(buf.len() as u64));
        }
        Ok(buf)
    }

    fn read_at(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let p = self.path(t, name);
        // A file the caller was told exists (a pack the index names) that is gone, or shorter
        // than the range, is damage; other I/O errors stay I/O errors.
        let f = match self.cached_open(t, &p, name) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::integrity(t.describe(name), "missing from the repository"))
            }
            r => r?,
        };
        let mut buf = vec![0u8; len];
        match f.read_exact_at(&mut buf, offset) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let size = f.metadata().map(|m| m.len().to_string()).unwrap_or_else(|_| "?".into());
                Err(Error::integrity(
                    t.describe(name),
                    format!("truncated: {size} bytes long, but {len} bytes are wanted at offset {offset}"),
                ))
            }
            r => r.at(&p).map(|_| buf),
        }
    }

    fn write(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        let dest = self.path(t, name);
        if dest.exists() {
            if content_addressed(t) {
                return Ok(());
            }
            return Err(Error::InvalidArgument(format!("{} already exists", dest.display())));
        }
        let (mut f, tmp) = self.create_tmp(t)?;
        if let Err(e) = f.write_all(bytes).and_then(|_| f.sync_all()) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Io { path: tmp, source: e });
        }
        publish_tmp(&tmp, &dest)
    }

    fn sync_name(&self, t: FileType, name: &str) -> Result<()> {
        sync_dir(self.path(t, name).parent().expect("repository files live in a directory"))
    }

    fn replace(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        let dest = self.path(t, name);
        self.open_files.lock().unwrap().remove(&dest);
        let (f, tmp) = self.create_tmp(t)?;
        // In fixed blocks like a staged pack (format-spec/18 §18.3).
        let mut w = BlockWriter::new(f);
        if let Err(e) = w.write_all(bytes).and_then(|_| w.finish()).and_then(|f| f.sync_all()) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Io { path: tmp, source: e });
        }
        publish_tmp(&tmp, &dest)?;
        // Later ranged reads must see the new file, not a cached descriptor of the old one.
        self.open_files.lock().unwrap().remove(&dest);
        Ok(())
    }

    fn stage(&self, t: FileType) -> Result<Box<dyn StagedFile>> {
        let (file, tmp) = self.create_tmp(t)?;
        let root = self.root.clone();
        let dest = Box::new(move |name: &str| LocalBackend::new(root.clone()).path(t, name));
        Ok(Box::new(LocalStaged { file: Some(BlockWriter::new(file)), tmp, dest }))
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let dirs: Vec<PathBuf> = match t {
            FileType::Config => return Ok(vec![]),
            FileType::ParityPolicy => return Ok(vec![]),
            FileType::Pack | FileType::Parity => {
                (0..256).map(|i| self.root.join(t.dir()).join(format!("{i:02x}"))).collect()
            }
            _ => vec![self.root.join(t.dir())],
        };
        let mut out = Vec::new();
        for d in dirs {
            // A pack lives in the shard named by its first two digits; anything else in a shard
            // (a `README`, a pack file moved into the wrong shard) is listed as `xx/name`, which
            // is not an object name, so readers ignore it and `check` reports it as stray.
            let shard = matches!(t, FileType::Pack | FileType::Parity)
                .then(|| d.file_name().unwrap().to_string_lossy().into_owned());
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::Io { path: d, source: e }),
            };
            for e in rd {
                if out.len() >= super::MAX_LISTED {
                    return Err(super::too_many_listed(&self.location(), t));
                }
                let e = e.at(&d)?;
                if let Some(name) = e.file_name().to_str() {
                    // A file removed between readdir and stat (a lock being refreshed) is just gone.
                    let len = match e.metadata() {
                        Ok(m) => m.len(),
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(err) => return Err(Error::Io { path: e.path(), source: err }),
                    };
                    match &shard {
                        Some(s) if !(is_object_name(name) && name.starts_with(s.as_str())) => {
                            out.push((format!("{s}/{name}"), len))
                        }
                        _ => out.push((name.to_string(), len)),
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn clean_tmp(&self, max_age: Duration) -> Result<usize> {
        self.remove_old_tmp(max_age)
    }

    fn stray_entries(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut scan = |dir: &Path, prefix: &str, known: &dyn Fn(&str) -> bool| -> Result<()> {
            let rd = match fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::Io { path: dir.to_path_buf(), source: e }),
            };
            for e in rd {
                let name = e.at(dir)?.file_name();
                let name = name.to_string_lossy();
                if !known(&name) {
                    out.push(format!("{prefix}{name}"));
                }
            }
            Ok(())
        };
        scan(&self.root, "", &|n| TOP_LEVEL.contains(&n))?;
        let shard = |n: &str| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        scan(&self.root.join("data"), "data/", &shard)?;
        scan(&self.root.join("parity"), "parity/", &|n| shard(n) || n == "policy")?;
        out.sort();
        Ok(out)
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        let p = self.path(t, name);
        self.open_files.lock().unwrap().remove(&p);
        fs::remove_file(&p).at(&p)?;
        sync_dir(p.parent().expect("repository files live in a directory"))
    }
}
