//! The library's error type.
//!
//! Integrity failures (an object whose bytes do not authenticate, whose hash does not match its name,
//! or whose decoded structure breaks a MUST rule) are kept apart from I/O and usage errors, so that a
//! verification job can tell "the disk is full" from "the backup is damaged".

use std::path::PathBuf;

/// Every failure the library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds no arca repository (no `config`, or a file that is not arca's).
    #[error("not an arca repository: {0}")]
    NotARepository(String),
    /// No key file of the repository opens with the given password.
    #[error("wrong password or no key file matches it")]
    WrongPassword,
    /// A format version or required feature this program does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A stored object failed authentication, hashing or a MUST-reject rule.
    #[error("integrity error in {object}: {reason}")]
    Integrity {
        /// What object: e.g. `pack 3fa2…`, `blob 91c0… (tree)`, `snapshot 77ab…`.
        object: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Something the repository should hold is not there.
    #[error("not found: {0}")]
    NotFound(String),
    /// Another process holds a conflicting lock.
    #[error("repository is locked: {0}")]
    Locked(String),
    /// An earlier repository write of this session failed, so nothing may be committed.
    #[error("a repository write failed earlier ({0}); no snapshot was written")]
    WriteFailed(String),
    /// A stream backup's source failed (a command exited non-zero, was killed or could not
    /// start) or gave nothing: no snapshot was written.
    #[error("{0}; no snapshot was written")]
    StreamRejected(String),
    /// A command arca runs for the user (a hook, a restore or verify command, an alert) could
    /// not start or did not succeed.
    #[error("{0}")]
    CommandFailed(String),
    /// An operation declined to do what it was asked because it would lose data (a retention
    /// policy that would remove every snapshot of a group); nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// An error about something the message names (`destination repository /mnt/x: wrong
    /// password`); it means what the inner error means.
    #[error("{0}: {1}")]
    Within(String, Box<Error>),
    /// The key that opened the repository has a role that may not do this (format-spec/24).
    #[error("this key's role ({role}) cannot {action}; use a key with the {needed} role")]
    RoleDenied {
        /// The key's role.
        role: String,
        /// What was refused.
        action: String,
        /// The role that can.
        needed: String,
    },
    /// The storage's retention (S3 Object Lock) is not what the repository needs: a bucket
    /// without Object Lock for `init --object-lock`, or a default retention that differs.
    #[error("object lock: {0}")]
    ObjectLock(String),
    /// A caller-supplied value is out of range or malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Shorthand used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An integrity error about `object`.
    pub fn integrity(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Integrity { object: object.into(), reason: reason.into() }
    }

    /// True for failures that mean stored data is damaged or forged.
    pub fn is_integrity(&self) -> bool {
        matches!(self.innermost(), Error::Integrity { .. })
    }

    /// `self` with what it is about: `what: self`.
    pub fn within(self, what: impl Into<String>) -> Error {
        Error::Within(what.into(), Box::new(self))
    }

    /// The error a [`Error::Within`] chain wraps.
    pub fn innermost(&self) -> &Error {
        match self {
            Error::Within(_, e) => e.innermost(),
            e => e,
        }
    }
}

/// Attach a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io { path: path.into(), source })
    }
}
