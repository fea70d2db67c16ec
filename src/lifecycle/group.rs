//! Groups of snapshots that a retention policy treats as one history (`--group-by`).
//!
//! A policy such as "keep 7 daily" only makes sense for backups of the same thing: applied to
//! the snapshots of two machines together, the busier one would push the other's history out.
//! So, as in restic, snapshots are grouped by host and backed-up paths unless told otherwise,
//! and each group is judged on its own. `status` and `copy` group the same way.

use crate::format::snapshot::Snapshot;
use crate::id::Id;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Which snapshot fields make up a group: `host,paths` by default; none puts every snapshot in
/// one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    /// Same host name.
    pub host: bool,
    /// Same set of backed-up paths.
    pub paths: bool,
    /// Same set of tags.
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy { host: true, paths: true, tags: false }
    }
}

impl FromStr for GroupBy {
    type Err = String;

    /// A comma-separated subset of `host`, `paths`, `tags` (singular forms too); `""` or `none`
    /// for a single group.
    fn from_str(s: &str) -> Result<GroupBy, String> {
        let mut g = GroupBy { host: false, paths: false, tags: false };
        if s.trim() == "none" {
            return Ok(g);
        }
        for part in s.split(',').map(str::trim) {
            match part {
                "host" | "hosts" => g.host = true,
                "path" | "paths" => g.paths = true,
                "tag" | "tags" => g.tags = true,
                "" => {}
                _ => return Err(format!("unknown grouping {part:?} (host, paths, tags, or none)")),
            }
        }
        Ok(g)
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = [(self.host, "host"), (self.paths, "paths"), (self.tags, "tags")]
            .iter()
            .filter(|p| p.0)
            .map(|p| p.1)
            .collect();
        match parts.is_empty() {
            true => f.write_str("none"),
            false => f.write_str(&parts.join(",")),
        }
    }
}

/// What the snapshots of one group share. A field is `None` when the grouping ignores it (in
/// JSON: `null`), so "grouped by tags, no tags" (`[]`) differs from "not grouped by tags".
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GroupKey {
    /// Host name.
    pub host: Option<String>,
    /// Backed-up paths, sorted (raw bytes; JSON shows them as lossy UTF-8, like `snapshots`).
    #[serde(serialize_with = "lossy_paths_opt")]
    pub paths: Option<Vec<Vec<u8>>>,
    /// Tags, sorted.
    pub tags: Option<Vec<String>>,
}

impl GroupKey {
    /// The key of snapshot `s` under grouping `by`.
    pub fn of(s: &Snapshot, by: GroupBy) -> GroupKey {
        GroupKey {
            host: by.host.then(|| s.hostname.clone()),
            paths: by.paths.then(|| {
                let mut p = s.paths.clone();
                p.sort();
                p
            }),
            tags: by.tags.then(|| s.tags.clone()),
        }
    }

    /// True for the key of the single group of `--group-by none`.
    pub fn is_everything(&self) -> bool {
        self.host.is_none() && self.paths.is_none() && self.tags.is_none()
    }
}

impl fmt::Display for GroupKey {
    /// `host h, paths [/a, /b], tags [x]` (raw: callers printing to a terminal escape it), or
    /// `all snapshots` for the single group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("host {h}"));
        }
        if let Some(p) = &self.paths {
            let p: Vec<_> = p.iter().map(|p| String::from_utf8_lossy(p)).collect();
            parts.push(format!("paths [{}]", p.join(", ")));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags [{}]", t.join(", ")));
        }
        match parts.is_empty() {
            true => f.write_str("all snapshots"),
            false => f.write_str(&parts.join(", ")),
        }
    }
}

fn lossy_paths_opt<S: Serializer>(paths: &Option<Vec<Vec<u8>>>, s: S) -> Result<S::Ok, S::Error> {
    match paths {
        Some(p) => lossy_paths(p, s),
        None => s.serialize_none(),
    }
}

/// Serialize raw paths as lossy UTF-8 strings, as `snapshots --json` shows them.
pub(crate) fn lossy_paths<S: Serializer>(paths: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(|p| String::from_utf8_lossy(p)))
}

/// Split snapshots into groups, ordered by key; each group keeps the input order.
pub fn group(snapshots: Vec<(Id, Snapshot)>, by: GroupBy) -> Vec<(GroupKey, Vec<(Id, Snapshot)>)> {
    let mut groups: BTreeMap<GroupKey, Vec<(Id, Snapshot)>> = BTreeMap::new();
    for (id, s) in snapshots {
        groups.entry(GroupKey::of(&s, by)).or_default().push((id, s));
    }
    groups.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_by_parses_subsets() {
        assert_eq!("host,paths".parse::<GroupBy>().unwrap(), GroupBy::default());
        assert_eq!("".parse::<GroupBy>().unwrap(), GroupBy { host: false, paths: false, tags: false });
        assert_eq!("none".parse::<GroupBy>().unwrap().to_string(), "none");
        assert_eq!("tags,host".parse::<GroupBy>().unwrap().to_string(), "host,tags");
        assert!("hosts,colour".parse::<GroupBy>().is_err());
    }
}
