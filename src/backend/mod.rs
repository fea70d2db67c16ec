//! Storage backends: where repository files live (format-spec/04-repository-layout.md).
//!
//! The trait is deliberately small — whole-file writes that are atomic and write-once, whole or
//! ranged reads, listing and removal — so that an object store can implement it later.

pub mod local;

use crate::error::Result;

/// The kinds of files a repository stores, each in its own directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// The single `config` file.
    Config,
    /// `keys/`.
    Key,
    /// `data/xx/` (packs).
    Pack,
    /// `index/`.
    Index,
    /// `snapshots/`.
    Snapshot,
    /// `locks/`.
    Lock,
}

impl FileType {
    /// The directory name for this type.
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Pack => "data",
            FileType::Index => "index",
            FileType::Snapshot => "snapshots",
            FileType::Lock => "locks",
        }
    }
}

/// A file being written that becomes visible only when published.
pub trait StagedFile: std::io::Write + Send {
    /// Make the bytes durable and publish them atomically under `name`. Dropping a staged file
    /// without publishing discards it.
    fn publish(self: Box<Self>, name: &str) -> Result<()>;
}

/// A place that stores repository files.
pub trait Backend: Send + Sync {
    /// Human-readable location, for messages.
    fn location(&self) -> String;
    /// Create the directory structure of a new, empty repository; fails if one exists.
    fn create(&self) -> Result<()>;
    /// Whether the file exists.
    fn exists(&self, t: FileType, name: &str) -> Result<bool>;
    /// The whole file.
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>>;
    /// `len` bytes at `offset`; a short file is an error.
    fn read_at(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// Durably publish a file: afterwards it is complete under `name` or absent, never partial.
    /// Writing a name that already exists fails unless `t` is content-addressed (then it is a no-op).
    fn write(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()>;
    /// Start a file of type `t` whose name is known only at the end (packs are named by their
    /// hash); see [`StagedFile`].
    fn stage(&self, t: FileType) -> Result<Box<dyn StagedFile>>;
    /// Names and sizes of all files of a type.
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>>;
    /// Remove a file.
    fn remove(&self, t: FileType, name: &str) -> Result<()>;
    /// Remove temporary files left behind by crashed writers; returns how many.
    fn clean_tmp(&self, _max_age: std::time::Duration) -> Result<usize> {
        Ok(0)
    }
}
