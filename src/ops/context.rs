//! How an operation reaches its repository: the location, where the password comes from, how
//! many requests a remote store gets at once and how long to wait for locks — and who is told
//! about waits and warnings. The CLI builds one [`Context`] from its options (and a profile,
//! see [`super::scope`]); a web UI or a server would build the same value.

use crate::backend::Backend;
use crate::crypto::Role;
use crate::error::{Error, Result};
use crate::repo::lock::LockGuard;

/// Keys that may read stored data: restore, dump, mount, check, list, drill.
pub const READERS: &[Role] = &[Role::Admin, Role::Restore];
/// Keys that may write new snapshots.
pub const WRITERS: &[Role] = &[Role::Admin, Role::Backup];
/// Keys that may change or delete what is stored: forget, prune, tag, repair, keys, parity.
pub const ADMINS: &[Role] = &[Role::Admin];
use crate::repo::Repository;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// What an operation tells its caller while it runs, besides its report.
pub trait Notices: Send + Sync {
    /// Something worth knowing that does not fail the operation (named, unescaped).
    fn warn(&self, message: &str);
    /// The operation waits up to `patience` for a lock, for the reason `why`.
    fn waiting(&self, why: &Error, patience: Duration) {
        self.warn(&format!("{why}; waiting up to {} (--retry-lock)", humantime::format_duration(patience)));
    }
    /// A profile's component starts (a heading for what follows).
    fn component(&self, _name: &str) {}
}

/// Notices that go nowhere.
pub struct Silent;

impl Notices for Silent {
    fn warn(&self, _: &str) {}
}

/// Asks a person for a password: `(prompt, confirm)`; `None` when nobody can be asked.
pub type Prompt = Arc<dyn Fn(&str, bool) -> Option<std::io::Result<Zeroizing<Vec<u8>>>> + Send + Sync>;

/// Where a repository's password comes from, first match wins: a command's first output line,
/// a file's first line, an environment variable, a prompt.
#[derive(Clone, Default)]
pub struct PasswordSource {
    /// A shell command (`sh -c`) whose first output line is the password.
    pub command: Option<String>,
    /// A file whose first line is the password.
    pub file: Option<PathBuf>,
    /// An environment variable holding the password (`ARCA_PASSWORD`).
    pub env: Option<&'static str>,
    /// How the command and file are named in messages (`--password-command`, `--password-file`).
    pub flags: [&'static str; 2],
    /// What the password is for, in prompts and messages (`repository`).
    pub what: &'static str,
    /// Asks a person when nothing else gives a password.
    pub prompt: Option<Prompt>,
}

impl std::fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordSource").field("command", &self.command).field("file", &self.file).finish()
    }
}

impl PasswordSource {
    /// The password of the repository, from `ARCA_PASSWORD`, `--password-command` or
    /// `--password-file` (`command` and `file` as given), else a prompt.
    pub fn repository(command: Option<String>, file: Option<PathBuf>, prompt: Option<Prompt>) -> PasswordSource {
        PasswordSource {
            command,
            file,
            env: Some("ARCA_PASSWORD"),
            flags: ["--password-command", "--password-file"],
            what: "repository",
            prompt,
        }
    }

    /// Whether a command or file was given (an explicit choice, which a profile does not override).
    pub fn is_explicit(&self) -> bool {
        self.command.is_some() || self.file.is_some()
    }

    /// Read the password. `confirm`: a prompt asks twice (a new password). An empty password is
    /// a usage error: it would protect the keys with nothing.
    pub fn get(&self, confirm: bool) -> Result<Zeroizing<Vec<u8>>> {
        if let Some(cmd) = &self.command {
            let mut c = std::process::Command::new("sh");
            crate::sys::without_secrets(&mut c);
            let out = c
                .arg("-c")
                .arg(cmd)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| Error::CommandFailed(format!("{}: cannot run `sh -c {cmd}`: {e}", self.flags[0])))?;
            if !out.status.success() {
                return Err(Error::CommandFailed(format!("{} exited with {}", self.flags[0], out.status)));
            }
            return non_empty(first_line(out.stdout), &format!("{} (its first line is empty)", self.flags[0]));
        }
        if let Some(f) = &self.file {
            let bytes = std::fs::read(f).map_err(|e| Error::Io { path: f.clone(), source: e })?;
            return non_empty(first_line(bytes), &format!("{} {}", self.flags[1], f.display()));
        }
        if let Some(p) = self.env.and_then(std::env::var_os) {
            return non_empty(Zeroizing::new(p.into_encoded_bytes()), self.env.unwrap_or_default());
        }
        let text = format!("enter password for the {}: ", self.what);
        match self.prompt.as_ref().and_then(|p| p(&text, confirm)) {
            Some(Ok(pw)) => non_empty(pw, "the prompt"),
            Some(Err(e)) => Err(Error::InvalidArgument(format!("reading the password: {e}"))),
            None => Err(Error::InvalidArgument(format!(
                "no password given for the {}: set {}, {} or {}",
                self.what,
                self.env.unwrap_or("a password variable"),
                self.flags[1],
                self.flags[0]
            ))),
        }
    }
}

fn first_line(bytes: Vec<u8>) -> Zeroizing<Vec<u8>> {
    let bytes = Zeroizing::new(bytes);
    let end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
    let line = &bytes[..end];
    Zeroizing::new(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

fn non_empty(pw: Zeroizing<Vec<u8>>, source: &str) -> Result<Zeroizing<Vec<u8>>> {
    if pw.is_empty() {
        return Err(Error::InvalidArgument(format!("empty password from {source}")));
    }
    Ok(pw)
}

/// Everything an operation needs to reach its repository.
#[derive(Clone)]
pub struct Context {
    /// The repository: a directory, or `s3:…`. `None`: none was given (opening is an error).
    pub location: Option<PathBuf>,
    /// Where its password comes from.
    pub password: PasswordSource,
    /// Requests in flight at once to a remote repository, and how long one may stall.
    pub remote: crate::backend::remote::RemoteOptions,
    /// How long to wait for a conflicting lock.
    pub retry_lock: Duration,
    /// Where remote repositories' key files, index files and snapshots are cached (`None`: not
    /// at all); see [`crate::backend::cache`].
    pub cache: Option<PathBuf>,
    /// Operations that only read take no lock (`--no-lock`: read-only storage, a mounted
    /// snapshot of the backup disk); operations that write always lock.
    pub no_lock: bool,
    /// Who hears about waits and warnings.
    pub notices: Arc<dyn Notices>,
    /// Keys unlocked by an earlier [`Context::open`] of this context, kept by a long-running
    /// front end (`arca ui`) so that each operation pays the key derivation once, not per
    /// request; `None`: every open asks for the password and derives again.
    pub unlocked: Option<Arc<Unlocked>>,
}

/// The repository a context opened last, and its storage backend (a remote one holds
/// connections and a runtime), kept for reuse (see [`Context::unlocked`]).
#[derive(Default)]
pub struct Unlocked(std::sync::Mutex<Option<Repository>>, std::sync::Mutex<Option<Arc<dyn Backend>>>);

impl Context {
    /// A context for `location` with `password`, default connections and lock patience, silent.
    pub fn new(location: Option<PathBuf>, password: PasswordSource) -> Context {
        Context {
            location,
            password,
            remote: crate::backend::remote::RemoteOptions::default(),
            retry_lock: Duration::from_secs(600),
            no_lock: false,
            cache: None,
            notices: Arc::new(Silent),
            unlocked: None,
        }
    }

    /// The repository's location, or a usage error saying how to give one.
    pub fn location(&self) -> Result<&Path> {
        self.location.as_deref().ok_or_else(|| {
            Error::InvalidArgument(
                "no repository given: use -r DIR, set ARCA_REPOSITORY, or name one repository in the \
                 configuration file"
                    .into(),
            )
        })
    }

    /// The storage backend at the location: a remote one behind the cache, if there is one.
    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        if let Some(memo) = &self.unlocked {
            let mut kept = memo.1.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(b) = kept.as_ref() {
                return Ok(b.clone());
            }
            let b = self.open_backend()?;
            *kept = Some(b.clone());
            return Ok(b);
        }
        self.open_backend()
    }

    fn open_backend(&self) -> Result<Arc<dyn Backend>> {
        let location = self.location()?;
        let backend = crate::backend::open(location, self.remote)?;
        Ok(match (&self.cache, crate::backend::scheme_of(location)) {
            (Some(dir), Some(_)) => Arc::new(crate::backend::cache::CachedBackend::new(backend, dir.clone())),
            _ => backend,
        })
    }

    /// This context without the cache: for operations that must see the storage as it is
    /// (check, repair), where a cached copy would hide damage.
    pub fn uncached(&self) -> Context {
        Context { cache: None, unlocked: None, ..self.clone() }
    }

    /// Open the repository: the config and key files are fetched first (at once), so that a
    /// missing repository is reported before a password is asked for.
    pub fn open(&self) -> Result<Repository> {
        let opening = Repository::fetch(self.backend()?)?;
        let Some(memo) = &self.unlocked else {
            return opening.unlock(&self.password.get(false)?);
        };
        let mut kept = memo.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(repo) = kept.as_ref().and_then(|r| opening.reuse(r)) {
            return Ok(repo);
        }
        let mut repo = opening.unlock(&self.password.get(false)?)?;
        repo.share_trees();
        *kept = repo.duplicate_on(repo.backend().clone());
        Ok(repo)
    }

    /// [`Context::open`] for an operation that only keys of `roles` may run (format-spec/24):
    /// another key is refused, naming its role and `action`, before anything is locked or
    /// written ([`Error::RoleDenied`], exit 13).
    pub fn open_for(&self, roles: &[Role], action: &str) -> Result<Repository> {
        let repo = self.open()?;
        repo.require(roles, action)?;
        Ok(repo)
    }

    /// Take a lock, waiting up to [`Context::retry_lock`] for others to release theirs.
    pub fn lock(&self, repo: &Repository, exclusive: bool) -> Result<LockGuard> {
        let (notices, wait) = (self.notices.clone(), self.retry_lock);
        repo.lock_wait(exclusive, wait, &|e| notices.waiting(e, wait))
    }

    /// A shared lock for a long read (check, restore, dump, verify, mount, copy's source), so
    /// that a prune's commit waits for it; none with `--no-lock`, and none, with a warning,
    /// where `locks/` cannot be written (read-only media, read-only credentials).
    pub fn lock_for_reading(&self, repo: &Repository) -> Result<Option<LockGuard>> {
        if self.no_lock {
            return Ok(None);
        }
        match self.lock(repo, false) {
            Ok(l) => Ok(Some(l)),
            Err(Error::Io { path, source }) => {
                self.notices.warn(&format!("cannot take a lock ({}: {source}); reading without one", path.display()));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Load the index, warning about each index file that had to be skipped.
    pub fn load_index(&self, repo: &Repository) -> Result<crate::repo::index::Index> {
        let index = repo.load_index()?;
        self.warn_index_problems(repo);
        Ok(index)
    }

    /// Warn about index files the repository skipped (damaged, or from another repository): the
    /// operation goes on with the rest, and a blob only they listed reads as missing.
    pub fn warn_index_problems(&self, repo: &Repository) {
        for e in repo.take_index_problems() {
            self.notices.warn(&format!("{e}; skipped it and used the rest of the index (run `arca check`)"));
        }
    }
}
