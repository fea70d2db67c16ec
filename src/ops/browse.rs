//! Looking into snapshots without changing anything: `snapshots`, `ls`, `find`, `diff` and
//! `dump` (which the journal records: reading a database dump out is a restore).
//!
//! Entries are handed to the caller as they are found (a listing of millions of entries is
//! never held whole); the caller renders them.

use super::journal::{set_label, Op, Recorder};
use super::locate::{self, Located};
use super::outcome::{HasOutcome, Outcome};
use super::scope::Scope;
use crate::browse::Change;
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::lifecycle::group::{self, GroupBy};
use crate::repo::select::SnapshotFilter;
use crate::repo::Repository;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

/// One snapshot of a listing.
#[derive(Debug)]
pub struct Listed {
    /// Its ID.
    pub id: Id,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Bytes of file content it holds (what a restore writes); `None` when a tree cannot be read.
    pub size: Option<u64>,
}

/// A listing of snapshots, oldest first.
#[derive(Debug, Default)]
pub struct Listing {
    /// The snapshots selected.
    pub snapshots: Vec<Listed>,
    /// Snapshot files that could not be read.
    pub damaged: Vec<(String, Error)>,
}

impl HasOutcome for Listing {
    fn outcome(&self) -> Outcome {
        if self.damaged.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Damage
        }
    }
}

/// Which snapshots `snapshots` lists.
#[derive(Clone, Debug, Default)]
pub struct ListRequest {
    /// The filters.
    pub filter: SnapshotFilter,
    /// Only the newest N of each group (each component, with a profile; else each host and
    /// paths, as restic's `--latest`).
    pub latest: Option<usize>,
    /// Measure each snapshot's size (reads its trees).
    pub sizes: bool,
}

/// `snapshots`: the selected snapshots, with their sizes.
pub fn snapshots(scope: &Scope, req: &ListRequest) -> Result<Listing> {
    let repo = scope.ctx.open_for(crate::ops::context::READERS, "list snapshots")?;
    let (all, damaged) = repo.list_snapshots_and_damage()?;
    let filter = scope.filter(&req.filter, None);
    let mut chosen: Vec<(Id, Snapshot)> = all.into_iter().filter(|(_, s)| filter.matches(s)).collect();
    if let Some(n) = req.latest {
        chosen = newest_per_group(scope, chosen, n);
    }
    let sizes = match req.sizes {
        true => snapshot_sizes(&repo, &chosen),
        false => vec![None; chosen.len()],
    };
    let snapshots = chosen.into_iter().zip(sizes).map(|((id, snapshot), size)| Listed { id, snapshot, size }).collect();
    Ok(Listing { snapshots, damaged })
}

/// The newest `n` snapshots of each component (with a profile) or of each host and paths.
fn newest_per_group(scope: &Scope, list: Vec<(Id, Snapshot)>, n: usize) -> Vec<(Id, Snapshot)> {
    let mut keep: Vec<(Id, Snapshot)> = Vec::new();
    if scope.has_profile() {
        for t in &scope.targets {
            let mine: Vec<&(Id, Snapshot)> = list.iter().filter(|(_, s)| t.filter.matches(s)).collect();
            keep.extend(mine.iter().rev().take(n).map(|x| (*x).clone()));
        }
    } else {
        for (_, members) in group::group(list, GroupBy { host: true, paths: true, tags: false }) {
            keep.extend(members.iter().rev().take(n).cloned());
        }
    }
    keep.sort_by_key(|(id, s)| (s.time, *id));
    keep.dedup_by_key(|(id, _)| *id);
    keep
}

/// Each snapshot's size: the bytes of file content it holds, summed from its trees, each
/// distinct tree read once for the whole listing.
fn snapshot_sizes(repo: &Repository, list: &[(Id, Snapshot)]) -> Vec<Option<u64>> {
    let Ok(index) = repo.load_index() else { return vec![None; list.len()] };
    let roots: Vec<Id> = list.iter().map(|(_, s)| s.tree).collect();
    crate::repo::walk::content_sizes(repo, &index, &roots)
}

/// An open repository, its index and one located snapshot path.
pub struct Opened {
    /// The repository.
    pub repo: Repository,
    /// Its index.
    pub index: crate::repo::index::Index,
    /// What the reference named.
    pub at: Located,
}

/// Open the repository and resolve `SNAP[:PATH]` among the snapshots `filter` selects.
pub fn open_at(scope: &Scope, reference: &str, filter: &SnapshotFilter) -> Result<Opened> {
    let ctx = &scope.ctx;
    let repo = ctx.open_for(crate::ops::context::READERS, "read snapshots")?;
    let index = ctx.load_index(&repo)?;
    let warn = |m: &str| ctx.notices.warn(m);
    let at = locate::locate(&repo, &index, reference, &scope.filter(filter, None), &warn)?;
    Ok(Opened { repo, index, at })
}

/// `ls SNAP[:PATH]`: every entry below the path (only its own with `recursive` false), or the
/// entry itself when it is not a directory.
pub fn ls(
    scope: &Scope,
    reference: &str,
    filter: &SnapshotFilter,
    recursive: bool,
    f: &mut dyn FnMut(&[u8], &Node),
) -> Result<Located> {
    let o = open_at(scope, reference, filter)?;
    match o.at.node.kind {
        NodeKind::Dir { subtree } => {
            crate::browse::walk(&o.repo, &o.index, subtree, o.at.path.as_bytes(), recursive, &mut |p, n| {
                f(p, n);
                Ok(())
            })?
        }
        _ => f(o.at.path.as_bytes(), &o.at.node),
    }
    Ok(o.at)
}

/// What `find` could not search.
#[derive(Debug, Default)]
pub struct Found {
    /// Snapshots that could not be read or walked (each named).
    pub damaged: Vec<String>,
}

impl HasOutcome for Found {
    fn outcome(&self) -> Outcome {
        if self.damaged.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Damage
        }
    }
}

/// `find PATTERN`: entries whose name (or path, for a pattern with `/`) matches, in one
/// snapshot or every selected one. A damaged snapshot is reported and the others searched.
pub fn find(
    scope: &Scope,
    pattern: &str,
    snapshot: Option<&str>,
    filter: &SnapshotFilter,
    f: &mut dyn FnMut(&Id, &[u8], &Node),
) -> Result<Found> {
    let ctx = &scope.ctx;
    let repo = ctx.open_for(crate::ops::context::READERS, "search snapshots")?;
    let m = crate::archiver::Excludes::new(std::slice::from_ref(&pattern.to_string()), vec![])?;
    let filter = scope.filter(filter, None);
    let mut found = Found::default();
    // Snapshots before the index: a backup publishes its index first.
    let snaps = match snapshot {
        Some(r) => vec![locate::resolve(&repo, r, &filter, &|m| ctx.notices.warn(m))?],
        None => {
            let (all, damaged) = repo.list_snapshots_and_damage()?;
            found.damaged.extend(damaged.iter().map(|(_, e)| e.to_string()));
            all.into_iter().filter(|(_, s)| filter.matches(s)).collect()
        }
    };
    let index = ctx.load_index(&repo)?;
    for (id, s) in &snaps {
        let res = crate::browse::walk(&repo, &index, s.tree, b"/", true, &mut |p, n| {
            if m.matches(std::path::Path::new(OsStr::from_bytes(p)), OsStr::from_bytes(&n.name)) {
                f(id, p, n);
            }
            Ok(())
        });
        match res {
            Err(e) if e.is_integrity() && snapshot.is_none() => {
                found.damaged.push(format!("snapshot {}: {e}", id.short()))
            }
            r => r?,
        }
    }
    Ok(found)
}

/// One side of a `diff`: `SNAP[:PATH]` among the snapshots its own filters select.
#[derive(Clone, Debug, Default)]
pub struct Side {
    /// `SNAP[:PATH]`.
    pub reference: String,
    /// Its filters.
    pub filter: SnapshotFilter,
}

/// The two snapshots (and paths) a diff compared.
#[derive(Debug)]
pub struct Compared {
    /// First side: snapshot and path.
    pub a: (Id, String),
    /// Second side.
    pub b: (Id, String),
}

/// `diff A B`: what changed from A to B, each side resolved with its own filters, each
/// optionally a path in its snapshot (`latest:/etc latest~1:/etc`).
pub fn diff(scope: &Scope, a: &Side, b: &Side, f: &mut dyn FnMut(Change, &[u8])) -> Result<Compared> {
    let ctx = &scope.ctx;
    let repo = ctx.open_for(crate::ops::context::READERS, "compare snapshots")?;
    let index = ctx.load_index(&repo)?;
    let warn = |m: &str| ctx.notices.warn(m);
    let la = locate::locate(&repo, &index, &a.reference, &scope.filter(&a.filter, None), &warn)?;
    let lb = locate::locate(&repo, &index, &b.reference, &scope.filter(&b.filter, None), &warn)?;
    let mut emit = |c: Change, p: &[u8]| {
        f(c, p);
        Ok(())
    };
    if la.path == "/" && lb.path == "/" {
        crate::browse::diff(&repo, &index, Some(la.snapshot.tree), Some(lb.snapshot.tree), b"/", &mut emit)?;
    } else {
        // Paths shown below the first side's path.
        crate::browse::diff_nodes(&repo, &index, &la.node, &lb.node, la.path.as_bytes(), &mut emit)?;
    }
    Ok(Compared { a: (la.id, la.path), b: (lb.id, lb.path) })
}

/// `dump SNAP:PATH`: a file's content, or a directory (or anything) as a tar archive, to `w`.
/// Recorded in the journal as a dump; a failure to write (the reader went away) is the
/// caller's, not the repository's.
pub fn dump(scope: &Scope, reference: &str, filter: &SnapshotFilter, tar: bool, w: &mut dyn Write) -> Result<Located> {
    let ctx = &scope.ctx;
    let mut rec = Recorder::start(Some(Op::Dump));
    let result = (|| {
        let repo = ctx.open_for(crate::ops::context::READERS, "dump files")?;
        rec.attach(&repo);
        let _lock = ctx.lock_for_reading(&repo)?;
        let index = ctx.load_index(&repo)?;
        let warn = |m: &str| ctx.notices.warn(m);
        let at = locate::locate(&repo, &index, reference, &scope.filter(filter, None), &warn)?;
        rec.fill(|r| {
            r.snapshots.push(at.id);
            set_label(r, "path", at.path.clone());
        });
        match (&at.node.kind, tar) {
            (_, true) => {
                let name = at.path.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or(".").to_string();
                crate::browse::dump_tar(&repo, &index, &at.node, name.as_bytes(), w)?;
            }
            (NodeKind::File { size, .. }, false) => {
                let mut r = crate::browse::ContentReader::new(&repo, &index, &at.node)?;
                std::io::copy(&mut r, w).map_err(|e| crate::browse::from_io(e, "<stdout>"))?;
                rec.fill(|r| (r.bytes, r.files) = (*size, 1));
            }
            _ => return Err(Error::InvalidArgument(format!("{} is not a regular file: use --archive tar", at.path))),
        }
        w.flush().map_err(|e| Error::Io { path: "<stdout>".into(), source: e })?;
        Ok(at)
    })();
    let outcome = match &result {
        Ok(_) => Outcome::Ok,
        Err(e) => Outcome::of_error(e),
    };
    if let Some(w) = rec.finish(outcome, result.as_ref().err()) {
        ctx.notices.warn(&w);
    }
    result
}
