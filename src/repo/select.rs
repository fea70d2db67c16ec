//! Choosing a snapshot: `latest` (any case) or an ID prefix, narrowed by host, tag and path
//! filters with restic's semantics, and never silently past a snapshot that cannot be read.
//!
//! A damaged snapshot file cannot say when it was taken, so `latest` cannot know whether it is
//! newer than the newest readable one. It is only passed over when a readable snapshot no newer
//! than the candidate names it as its parent (a parent is always older than its child);
//! otherwise resolving `latest` fails with an integrity error naming it.

use super::Repository;
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::Id;

/// Which snapshots a command considers (all, when every list is empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Host names; a snapshot matches when its host is any of them.
    pub hosts: Vec<String>,
    /// Tag lists; a snapshot matches when it has every tag of any one list (an empty list
    /// matches the snapshots that have no tags).
    pub tags: Vec<Vec<String>>,
    /// Paths; a snapshot matches when its paths include all of them.
    pub paths: Vec<Vec<u8>>,
    /// A second tag filter, as `tags`, that must match too: the components of a profile (a
    /// snapshot of one of them), whatever `--tag` says.
    pub scope: Vec<Vec<String>>,
    /// Only snapshots taken at or before this time (Unix ns): `--as-of`, `--before`.
    pub until: Option<i64>,
}

impl SnapshotFilter {
    /// True when the filter selects every snapshot.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.tags.is_empty()
            && self.paths.is_empty()
            && self.scope.is_empty()
            && self.until.is_none()
    }

    /// Whether snapshot `s` is selected.
    pub fn matches(&self, s: &Snapshot) -> bool {
        let host = self.hosts.is_empty() || self.hosts.contains(&s.hostname);
        let paths = self.paths.iter().all(|p| s.paths.iter().any(|sp| same_path(sp, p)));
        let until = self.until.is_none_or(|t| s.time <= t);
        host && tags_match(&self.tags, &s.tags) && tags_match(&self.scope, &s.tags) && paths && until
    }
}

/// Whether `tags` has every tag of one of `lists` (any, when there are no lists; an empty list
/// matches no tags at all).
fn tags_match(lists: &[Vec<String>], tags: &[String]) -> bool {
    lists.is_empty()
        || lists.iter().any(|list| match list.is_empty() {
            true => tags.is_empty(),
            false => list.iter().all(|t| tags.contains(t)),
        })
}

/// Paths equal up to trailing slashes (`/srv/` names the same directory as `/srv`).
fn same_path(a: &[u8], b: &[u8]) -> bool {
    fn trim(p: &[u8]) -> &[u8] {
        let t = p.strip_suffix(b"/").map_or(p, trim);
        if t.is_empty() && !p.is_empty() {
            b"/"
        } else {
            t
        }
    }
    trim(a) == trim(b)
}

/// True for the reference `latest`, in any case (`LATEST` too).
pub fn is_latest(reference: &str) -> bool {
    reference.eq_ignore_ascii_case("latest")
}

/// `N` for `latest~N` (`0` for `latest`), any case; `None` for other references. A bad `N` is a
/// usage error.
pub fn latest_offset(reference: &str) -> Result<Option<usize>> {
    if is_latest(reference) {
        return Ok(Some(0));
    }
    let Some((head, n)) = reference.split_once('~') else { return Ok(None) };
    if !is_latest(head) {
        return Ok(None);
    }
    n.parse().map(Some).map_err(|_| {
        Error::InvalidArgument(format!("{reference:?}: `latest~N` takes a number of snapshots back, e.g. latest~1"))
    })
}

/// Resolve `reference` (`latest`, `latest~N` — the Nth before the latest —, or a unique prefix
/// of a snapshot ID) among the snapshots `filter` selects. An ID that names a snapshot the
/// filter does not select is refused rather than used. For `latest~N`, an unreadable snapshot
/// that might be newer than the match is an integrity error naming it, never a reason to fall
/// back to an older snapshot.
pub fn resolve(repo: &Repository, reference: &str, filter: &SnapshotFilter) -> Result<(Id, Snapshot)> {
    let Some(back) = latest_offset(reference)? else {
        let names: Vec<String> =
            repo.list_objects(crate::backend::FileType::Snapshot)?.into_iter().map(|(n, _)| n).collect();
        let name = super::unique_prefix(&names, reference, "snapshot")?;
        let id = Id::from_hex(&name).ok_or_else(|| Error::integrity(format!("snapshot {name}"), "bad file name"))?;
        let s = repo.load_snapshot(&id)?;
        if !filter.matches(&s) {
            return Err(Error::NotFound(format!(
                "snapshot {} does not match the --host/--tag/--path filters",
                id.short()
            )));
        }
        return Ok((id, s));
    };
    let (good, damaged) = repo.list_snapshots_and_damage()?;
    let matching: Vec<usize> = (0..good.len()).filter(|&i| filter.matches(&good[i].1)).collect();
    let candidate = back.checked_add(1).and_then(|n| matching.len().checked_sub(n)).map(|k| matching[k]);
    // Damaged files that may be newer than the candidate: not provably older through a parent link.
    let known_older = |name: &str| match (Id::from_hex(name), candidate) {
        (Some(d), Some(c)) => good[..=c].iter().any(|(_, s)| s.parent == Some(d)),
        _ => false,
    };
    if let Some((name, e)) = damaged.iter().find(|(name, _)| Id::from_hex(name).is_some() && !known_older(name)) {
        let than = match candidate {
            Some(c) => format!("newer than {}, the latest readable match", good[c].0.short()),
            None => "the only match".to_string(),
        };
        return Err(Error::integrity(
            format!("snapshot {name}"),
            format!(
                "cannot be read ({e}), and it may be {than}; `latest` is not resolved past it: name a \
                 snapshot by ID, or remove the damaged file after `arca check`"
            ),
        ));
    }
    match candidate {
        Some(c) => Ok(good[c].clone()),
        None if back > 0 && !matching.is_empty() => Err(Error::NotFound(format!(
            "{reference}: only {} snapshot(s) match, so there is none {back} before the latest",
            matching.len()
        ))),
        None if filter.is_empty() => Err(Error::NotFound("no snapshots".into())),
        None => Err(Error::NotFound(
            "no snapshot matches the filters (--host/--tag/--path/--before, or the component)".into(),
        )),
    }
}
