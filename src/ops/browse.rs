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
use std::io::Write;

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
    /// With [`ListRequest::group_by`]: each group's key and its snapshots' positions in
    /// `snapshots` (groups ordered by key, as `forget` orders them).
    pub groups: Vec<(group::GroupKey, Vec<usize>)>,
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
    /// Group the listing as restic's `snapshots --group-by` does; `--latest` then counts per
    /// group too.
    pub group_by: Option<GroupBy>,
}

/// `snapshots`: the selected snapshots, with their sizes.
pub fn snapshots(scope: &Scope, req: &ListRequest) -> Result<Listing> {
    let repo = scope.ctx.open_for(crate::ops::context::READERS, "list snapshots")?;
    let (all, damaged) = repo.list_snapshots_and_damage()?;
    let filter = scope.filter(&req.filter, None);
    let mut chosen: Vec<(Id, Snapshot)> = all.into_iter().filter(|(_, s)| filter.matches(s)).collect();
    if let Some(n) = req.latest {
        chosen = newest_per_group(scope, chosen, n, req.group_by);
    }
    let sizes = match req.sizes {
        true => snapshot_sizes(&repo, &chosen),
        false => vec![None; chosen.len()],
    };
    let groups = req.group_by.map_or_else(Vec::new, |by| group_positions(&chosen, by));
    let snapshots = chosen.into_iter().zip(sizes).map(|((id, snapshot), size)| Listed { id, snapshot, size }).collect();
    Ok(Listing { snapshots, damaged, groups })
}

/// The groups of `list` under `by`, each with its members' positions in `list`.
fn group_positions(list: &[(Id, Snapshot)], by: GroupBy) -> Vec<(group::GroupKey, Vec<usize>)> {
    let mut groups: std::collections::BTreeMap<group::GroupKey, Vec<usize>> = Default::default();
    for (i, (_, s)) in list.iter().enumerate() {
        groups.entry(group::GroupKey::of(s, by)).or_default().push(i);
    }
    groups.into_iter().collect()
}

/// The newest `n` snapshots of each component (with a profile), of each `by` group, or of
/// each host and paths.
fn newest_per_group(scope: &Scope, list: Vec<(Id, Snapshot)>, n: usize, by: Option<GroupBy>) -> Vec<(Id, Snapshot)> {
    let mut keep: Vec<(Id, Snapshot)> = Vec::new();
    if scope.has_profile() && by.is_none() {
        for t in &scope.targets {
            let mine: Vec<&(Id, Snapshot)> = list.iter().filter(|(_, s)| t.filter.matches(s)).collect();
            keep.extend(mine.iter().rev().take(n).map(|x| (*x).clone()));
        }
    } else {
        for (_, members) in group::group(list, by.unwrap_or_default()) {
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
    /// Snapshots not searched because [`FindRequest::deadline`] passed, in search order.
    pub unsearched: Vec<Id>,
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

/// Where `find` hands each hit: `(snapshot, path, entry, the ID found in it)`.
pub type FindHit<'a> = dyn FnMut(&Id, &[u8], &Node, Option<&Id>) + 'a;

/// What `find` looks for, and where.
pub struct FindRequest {
    /// Names, paths or IDs.
    pub by: crate::browse::FindBy,
    /// Only entries modified at or after this time (Unix ns; restic's `--oldest`).
    pub oldest: Option<i64>,
    /// Only entries modified at or before this time (restic's `--newest`).
    pub newest: Option<i64>,
    /// Only these snapshots (`SNAP` references); none: every one the filter selects.
    pub snapshots: Vec<String>,
    /// The filters.
    pub filter: SnapshotFilter,
    /// Search the newest snapshot first (a front end showing results as they come).
    pub newest_first: bool,
    /// Only snapshots at or before this one in (time, ID) order: where the previous page's
    /// [`Found::unsearched`] began.
    pub up_to: Option<(i64, Id)>,
    /// Start no further snapshot after this instant: the rest are listed in
    /// [`Found::unsearched`] (a web page answers in bounded time and offers to go on).
    pub deadline: Option<std::time::Instant>,
}

/// `find`: entries that match (by name, by path, or by an ID they refer to), in the named
/// snapshots or every selected one; `f(snapshot, path, entry, id found)`. A damaged snapshot
/// is reported and the others searched.
pub fn find(scope: &Scope, req: &FindRequest, f: &mut FindHit) -> Result<Found> {
    let ctx = &scope.ctx;
    let repo = ctx.open_for(crate::ops::context::READERS, "search snapshots")?;
    let filter = scope.filter(&req.filter, None);
    let mut found = Found::default();
    // Snapshots before the index: a backup publishes its index first.
    let snaps = match req.snapshots.is_empty() {
        false => {
            let mut v = Vec::new();
            for r in &req.snapshots {
                let s = locate::resolve(&repo, r, &filter, &|m| ctx.notices.warn(m))?;
                if !v.iter().any(|(id, _): &(Id, Snapshot)| *id == s.0) {
                    v.push(s);
                }
            }
            v
        }
        true => {
            let (all, damaged) = repo.list_snapshots_and_damage()?;
            found.damaged.extend(damaged.iter().map(|(_, e)| e.to_string()));
            all.into_iter().filter(|(_, s)| filter.matches(s)).collect()
        }
    };
    let mut snaps = snaps;
    if let Some(last) = req.up_to {
        snaps.retain(|(id, s)| (s.time, *id) <= last);
    }
    snaps.sort_by_key(|(id, s)| (s.time, *id));
    if req.newest_first {
        snaps.reverse();
    }
    let index = ctx.load_index(&repo)?;
    let in_time = |n: &Node| req.oldest.is_none_or(|t| n.mtime >= t) && req.newest.is_none_or(|t| n.mtime <= t);
    for (i, (id, s)) in snaps.iter().enumerate() {
        if i > 0 && req.deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            found.unsearched.extend(snaps[i..].iter().map(|(id, _)| *id));
            break;
        }
        // The root tree itself, for `--tree`/`--pack`.
        let root = Node::bare_dir(b"", s.tree);
        if let Some(Some(hit)) = req.by.hit(&index, b"/", &root) {
            f(id, b"/", &root, Some(&hit));
        }
        let res = crate::browse::walk(&repo, &index, s.tree, b"/", true, &mut |p, n| {
            match req.by.hit(&index, p, n) {
                Some(hit) if in_time(n) => f(id, p, n, hit.as_ref()),
                _ => {}
            }
            Ok(())
        });
        match res {
            Err(e) if e.is_integrity() && req.snapshots.is_empty() => {
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
    /// What came, went and changed (restic's diff statistics).
    pub stats: crate::browse::DiffStats,
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
    let mut counter = crate::browse::DiffCounter::default();
    if la.path == "/" && lb.path == "/" {
        let (ta, tb) = (Some(la.snapshot.tree), Some(lb.snapshot.tree));
        crate::browse::diff_counted(&repo, &index, ta, tb, b"/", &mut emit, &mut counter)?;
    } else {
        // Paths shown below the first side's path.
        crate::browse::diff_nodes(&repo, &index, &la.node, &lb.node, la.path.as_bytes(), &mut emit, &mut counter)?;
    }
    Ok(Compared { a: (la.id, la.path), b: (lb.id, lb.path), stats: counter.finish() })
}

/// What `dump` writes: a file's content as it is, or an archive of any entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Archive {
    /// The content of a regular file, raw; anything else is refused.
    #[default]
    None,
    /// A tar stream (GNU headers) of the entry and everything below it.
    Tar,
    /// A ZIP archive (stored, streamed with data descriptors, ZIP64 where needed) of the entry
    /// and everything below it; the same entry gives the same bytes every time.
    Zip,
}

impl Archive {
    /// The usual file name extension (`tar`, `zip`), `None` for raw content.
    pub fn extension(self) -> Option<&'static str> {
        match self {
            Archive::None => None,
            Archive::Tar => Some("tar"),
            Archive::Zip => Some("zip"),
        }
    }

    /// The media type of what `dump` writes.
    pub fn media_type(self) -> &'static str {
        match self {
            Archive::None => "application/octet-stream",
            Archive::Tar => "application/x-tar",
            Archive::Zip => "application/zip",
        }
    }
}

impl std::str::FromStr for Archive {
    type Err = Error;

    /// `tar` or `zip` (what `--archive` takes).
    fn from_str(s: &str) -> Result<Archive> {
        match s {
            "tar" => Ok(Archive::Tar),
            "zip" => Ok(Archive::Zip),
            _ => Err(Error::InvalidArgument(format!("unknown archive format {s:?} (tar or zip)"))),
        }
    }
}

/// `dump SNAP:PATH`: a file's content, or a directory (or anything) as a tar or ZIP archive, to
/// `w`, which is only written to, in order (it may be a pipe or an HTTP response). Recorded in
/// the journal as a dump; a failure to write (the reader went away) is the caller's, not the
/// repository's.
pub fn dump(
    scope: &Scope,
    reference: &str,
    filter: &SnapshotFilter,
    archive: Archive,
    w: &mut dyn Write,
) -> Result<Located> {
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
        let name = || at.path.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or(".").to_string();
        match (&at.node.kind, archive) {
            (_, Archive::Tar) => crate::browse::dump_tar(&repo, &index, &at.node, name().as_bytes(), w)?,
            (_, Archive::Zip) => crate::browse::dump_zip(&repo, &index, &at.node, name().as_bytes(), w)?,
            (NodeKind::File { size, .. }, Archive::None) => {
                let mut r = crate::browse::ContentReader::new(&repo, &index, &at.node)?;
                std::io::copy(&mut r, w).map_err(|e| crate::browse::from_io(e, "<stdout>"))?;
                rec.fill(|r| (r.bytes, r.files) = (*size, 1));
            }
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "{} is not a regular file: use --archive tar or zip",
                    at.path
                )))
            }
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
