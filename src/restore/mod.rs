//! Restore: recreate a snapshot (or part of it) under a target directory — or, in the modes
//! that write nothing, decide what a restore would do ([`Mode::Plan`]) or list how the target
//! differs from the snapshot ([`Mode::Compare`], `arca verify`).
//!
//! The snapshot is first measured ([`crate::repo::walk::Trees::measure`]): a tree that nests too
//! deep or expands too far is refused before anything is written; the trees measured stay
//! cached for the walk, so each is read once. Then one iterative pre-order walk ([`walk`]: an
//! explicit stack of directories, each held by an open descriptor) creates directories,
//! symlinks and special files as it meets them and queues regular files in a batch. A batch —
//! at most [`BATCH_FILES`] files, or as many open directories as the descriptor budget allows
//! (a share of `RLIMIT_NOFILE`, at most [`MAX_DIR_BUDGET`]) — is written in parallel ([`write`]),
//! ordered by where each file's first chunk is stored; then its hard links are made ([`links`])
//! and the directories finished so far get their metadata, deepest first. Memory therefore
//! follows the batch and the current directory path, not the size of the snapshot.
//!
//! Every chunk is authenticated and re-hashed before it is written at its offset; all-zero chunks
//! are left as holes. What restore will and will not touch is set out in [`target`] and in the
//! README ("What restore touches"): every file operation is relative to a directory descriptor,
//! nothing is followed, an existing inode is never written into, a directory in the way is a
//! conflict unless `--delete` is given, and directories *above* the snapshot's own paths (`/`,
//! `/etc` for a backup of `/etc/app`) are passed through: never taken over when no one but root
//! or the snapshot's owner can write them, their metadata never changed, nothing in them deleted.

mod compare;
mod links;
mod meta;
pub(crate) mod target;
mod walk;
mod write;

pub use meta::MetaOptions;

use crate::archiver::Progress;
use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::walk::Trees;
use crate::repo::Repository;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files written per batch: bounds the restore plan's memory (a few hundred bytes each).
pub const BATCH_FILES: usize = 32768;
/// Most finished directories (each an open descriptor) held before a batch is written.
pub const MAX_DIR_BUDGET: usize = 8192;

/// What to do with a file that already exists at the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Overwrite {
    /// Leave anything already there alone.
    Never,
    /// Compare the existing file's content with the snapshot chunk by chunk and rewrite it only
    /// if it differs; owner, mode and times are corrected either way (the default).
    #[default]
    IfChanged,
    /// Rewrite unless size and modification time match (fast, trusts metadata); owner, mode and
    /// times are corrected either way.
    IfSizeOrMtimeDiffer,
    /// Always rewrite.
    Always,
}

/// What a restore run does with the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Write the snapshot into the target.
    #[default]
    Write,
    /// Write, and read every restored entry back right after (through its descriptor, while the
    /// page cache is warm): every chunk's hash and the length of files, and the metadata set on
    /// files, directories, symlinks, special files and hard links. Differences go to
    /// [`RestoreStats::mismatched`] (`restore --verify`, drills).
    WriteVerified,
    /// Decide everything, including the overwrite policy's comparisons, and count; write nothing
    /// (`restore --dry-run`).
    Plan,
    /// Decide everything, write nothing, and list every entry that differs from the snapshot
    /// in [`RestoreStats::changes`] (content, type, mode, owner, mtime; with `delete`, extra
    /// entries). A target that does not exist is an error, never "matches" (`arca verify`).
    Compare,
}

impl Mode {
    /// Whether the target is changed.
    pub fn writes(self) -> bool {
        matches!(self, Mode::Write | Mode::WriteVerified)
    }

    /// Whether restored entries are read back.
    pub fn verifies(self) -> bool {
        self == Mode::WriteVerified
    }

    /// Whether differences are listed.
    pub fn lists(self) -> bool {
        self == Mode::Compare
    }
}

/// Restore options.
#[derive(Default)]
pub struct RestoreOptions {
    /// Directory to restore into (created if missing). When a single non-directory is restored
    /// and this is not an existing directory, it is the path of the restored file itself.
    pub target: PathBuf,
    /// What to do with the target.
    pub mode: Mode,
    /// The paths the snapshot records (its `paths`): directories that are neither one of them
    /// nor below one are the snapshot's ancestors (`/etc` of a backup of `/etc/app`) and are
    /// passed through (see the module documentation). Empty: every directory is the snapshot's.
    pub snapshot_paths: Vec<Vec<u8>>,
    /// Restore only entries matching these patterns (and what is below them). Patterns with a
    /// `/` match the path relative to the restored directory (`/config`); others match names.
    pub include: Vec<String>,
    /// Skip entries matching these patterns (same matching as `include`).
    pub exclude: Vec<String>,
    /// Policy for existing files.
    pub overwrite: Overwrite,
    /// With [`Mode::WriteVerified`]: called with each restored file and its path before it is
    /// read back (a test hook: lets a test change what was written).
    pub before_verify: Option<VerifyHook>,
    /// With [`Mode::WriteVerified`]: called with each restored file once its metadata is applied,
    /// before that is read back (a test hook: lets a test change the metadata written; one
    /// called before would see its change overwritten).
    pub before_verify_meta: Option<VerifyHook>,
    /// Remove what is in restored directories but not in the snapshot (and directories in the
    /// way of other entries). Not with `include`.
    pub delete: bool,
    /// Do not create character or block devices.
    pub no_devices: bool,
    /// Do not create FIFOs.
    pub no_specials: bool,
    /// Which metadata to apply.
    pub meta: MetaOptions,
    /// Restore only the entries this chooses, by path relative to the restored path and node
    /// (what is below a chosen directory is not implied; directories leading to a chosen entry
    /// are made). Instead of `include`'s inheritance; `arca drill`'s samples use it.
    pub only: Option<Selector>,
    /// With [`Mode::WriteVerified`]: unlink each regular file (and hard link) once it is verified
    /// and nothing links to it any more — a drill's scratch directory, emptied while the restore
    /// runs instead of walked again afterwards. The time goes to [`RestoreStats::discard_ns`].
    pub discard: bool,
}

/// [`RestoreOptions::before_verify`]: called with a restored file and its path.
pub type VerifyHook = Arc<dyn Fn(&File, &Path) + Send + Sync>;

/// A per-entry choice for [`RestoreOptions::only`].
pub type Selector = Box<dyn Fn(&Path, &Node) -> bool + Send + Sync>;

/// One difference between the target and the snapshot, found by [`Mode::Compare`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetChange {
    /// `added`: missing from the target; `removed`: only in the target; `modified`: content or
    /// type differs; `metadata`: mode, owner or mtime differ.
    pub change: crate::browse::Change,
    /// Path in the target.
    pub path: PathBuf,
}

/// What a restore did (or, without writing, would do).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RestoreStats {
    /// Files written.
    pub files: u64,
    /// Files left as they were (already correct, or `--overwrite never`).
    pub files_skipped: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symlinks, hard links and special files.
    pub others: u64,
    /// Entries not created by choice (`--no-devices`, `--no-specials`, sockets).
    pub others_skipped: u64,
    /// Entries removed by `--delete`.
    pub deleted: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Entries not restored because something restore does not remove is in the way.
    pub conflicts: u64,
    /// Problems: path and message. Integrity problems name the blob.
    pub errors: Vec<String>,
    /// How many of those are integrity errors (damaged or missing data).
    pub damaged: u64,
    /// Entries not restored because the target's file system was full (ENOSPC or EDQUOT):
    /// restore stops at the first, whose error alone is in `errors`.
    #[serde(skip_serializing_if = "is_zero")]
    pub no_space: u64,
    /// Include patterns that matched nothing (a usage error: nothing was restored for them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmatched: Vec<String>,
    /// Differences found by [`Mode::Compare`], sorted by path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<TargetChange>,
    /// With [`Mode::WriteVerified`]: restored entries whose content or metadata, read back,
    /// differ from the snapshot (`modified`: content, length, type or symlink target;
    /// `metadata`: mode, owner, mtime, or a hard link that is not one), sorted by path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mismatched: Vec<TargetChange>,
    /// With [`Mode::WriteVerified`]: time spent verifying, summed over the threads that did it.
    pub verify_ns: u64,
    /// With [`RestoreOptions::discard`]: time spent unlinking verified files, summed likewise.
    pub discard_ns: u64,
    /// Time spent restoring regular files (verification included), summed over the threads.
    pub file_ns: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The node at `path` inside the tree `root` (path components separated by `/`).
pub fn resolve(repo: &Repository, index: &Index, root: Id, path: &str) -> Result<Node> {
    let mut node = Node::bare_dir(b"", root);
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        let subtree = match node.kind {
            NodeKind::Dir { subtree } => subtree,
            _ => return Err(Error::NotFound(format!("{path}: {comp:?} is below a non-directory"))),
        };
        let tree = repo.read_tree(index, &subtree)?;
        node = tree
            .nodes
            .into_iter()
            .find(|n| n.name == comp.as_bytes())
            .ok_or_else(|| Error::NotFound(format!("{path}: no entry {comp:?} in the snapshot")))?;
    }
    Ok(node)
}

/// Restore `node` (found at snapshot path `snap_path`): a directory's contents go directly into
/// the target; a file or other entry is restored as `target/<name>`, or as `target` itself when
/// `target` is not an existing directory.
pub fn restore(
    repo: &Repository,
    index: &Index,
    node: &Node,
    snap_path: &str,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreStats> {
    restore_with(&Trees::new(repo, index), node, snap_path, opts, progress)
}

/// [`restore`] reading trees through `trees`, so that several passes over one snapshot (a
/// drill's) read each tree once.
pub fn restore_with(
    trees: &Trees,
    node: &Node,
    snap_path: &str,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreStats> {
    if opts.delete && !opts.include.is_empty() {
        return Err(Error::InvalidArgument("--delete cannot be combined with --include".into()));
    }
    let mut r = walk::Restorer::new(trees, opts, progress)?;
    r.start(node, snap_path)?;
    // Totals for progress, from the trees just measured; with patterns they are not known.
    if opts.include.is_empty() && opts.exclude.is_empty() && opts.only.is_none() {
        let (files, bytes) = trees.content(node)?;
        progress.expect_all(files, bytes);
    }
    r.run();
    Ok(r.finish())
}
