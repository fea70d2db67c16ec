//! `arca tag`: change the tags of snapshots (restic's `--add`, `--remove`, `--set`), and move a
//! label such as `last-good` to one snapshot (`--move`).
//!
//! A snapshot is immutable, so a snapshot whose tags change is replaced: a new snapshot with the
//! same fields, the new tags and `original` set is written durably, then the old file is removed
//! (format-spec/17-consistency.md §17.8). Snapshots whose tags do not change keep their IDs.
//! The caller holds an exclusive lock (section 13.2: the command removes snapshots).

use super::rewrite::{self, Existing};
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::repo::Repository;
use serde::Serialize;
use std::collections::HashMap;

/// How to change the tags of the selected snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagAction {
    /// Replace all tags (an empty list removes them all).
    Set(Vec<String>),
    /// Add tags, then remove tags (a tag in both lists ends up removed, as in restic).
    Change {
        /// Tags to add.
        add: Vec<String>,
        /// Tags to remove.
        remove: Vec<String>,
    },
}

/// Check a tag that is about to be written: non-empty, no comma (filters split on commas, so
/// such a tag could never be selected), no control character (C0, DEL, C1: tags are printed).
/// Tags to remove are not checked, so that a bad tag written by another program can go.
pub fn validate_tag(tag: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidArgument(format!("tag {tag:?}: {why}")));
    if tag.is_empty() {
        return bad("a tag must not be empty");
    }
    if tag.contains(',') {
        return bad("a tag must not contain a comma (commas separate tags in --tag filters)");
    }
    if tag.chars().any(char::is_control) {
        return bad("a tag must not contain control characters");
    }
    Ok(())
}

impl TagAction {
    /// Check every tag the action would write.
    pub fn validate(&self) -> Result<()> {
        let written = match self {
            TagAction::Set(tags) => tags,
            TagAction::Change { add, .. } => add,
        };
        written.iter().try_for_each(|t| validate_tag(t))
    }

    /// The tags a snapshot with `current` tags gets: strictly ascending (section 11.2).
    pub fn apply(&self, current: &[String]) -> Vec<String> {
        let mut tags = match self {
            TagAction::Set(tags) => tags.clone(),
            TagAction::Change { add, remove } => {
                let mut t: Vec<String> = current.iter().chain(add).cloned().collect();
                t.retain(|x| !remove.contains(x));
                t
            }
        };
        tags.sort();
        tags.dedup();
        tags
    }
}

/// One snapshot whose tags changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Retagged {
    /// The snapshot that was replaced (and removed).
    pub old: Id,
    /// Its replacement.
    pub new: Id,
    /// The replacement's tags.
    pub tags: Vec<String>,
}

/// What a tag command did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TagReport {
    /// Replaced snapshots, in the order they were replaced.
    pub changed: Vec<Retagged>,
    /// Selected snapshots whose tags already were what the command asked for.
    pub unchanged: usize,
}

/// Apply `action` to the snapshots `targets` (IDs among `all`, every readable snapshot of the
/// repository, read under the caller's exclusive lock).
pub fn tag(repo: &Repository, all: &[(Id, Snapshot)], targets: &[Id], action: &TagAction) -> Result<TagReport> {
    repo.refuse_during_rotation("change tags")?;
    action.validate()?;
    let plan: Vec<(Id, &TagAction)> = targets.iter().map(|id| (*id, action)).collect();
    retag(repo, all, &plan)
}

/// Give `label` to snapshot `target` and take it from every other snapshot in `all` that
/// `within` selects (a component's snapshots: a label such as `last-good` is per component;
/// an empty filter: the whole repository). The target is rewritten first, so that a crash
/// part-way leaves the label on two snapshots (a rerun finishes the move), never on none.
pub fn move_label(
    repo: &Repository,
    all: &[(Id, Snapshot)],
    target: &Id,
    label: &str,
    within: &crate::repo::select::SnapshotFilter,
) -> Result<TagReport> {
    repo.refuse_during_rotation("change tags")?;
    validate_tag(label)?;
    let add = TagAction::Change { add: vec![label.to_string()], remove: vec![] };
    let remove = TagAction::Change { add: vec![], remove: vec![label.to_string()] };
    let mut plan = vec![(*target, &add)];
    plan.extend(
        all.iter()
            .filter(|(id, s)| id != target && within.matches(s) && s.tags.iter().any(|t| t == label))
            .map(|(id, _)| (*id, &remove)),
    );
    retag(repo, all, &plan)
}

/// Replace each planned snapshot whose tags change (each at most once, in plan order).
fn retag(repo: &Repository, all: &[(Id, Snapshot)], plan: &[(Id, &TagAction)]) -> Result<TagReport> {
    let by_id: HashMap<Id, &Snapshot> = all.iter().map(|(id, s)| (*id, s)).collect();
    let mut existing = Existing::new(all);
    let mut report = TagReport::default();
    let mut done = std::collections::HashSet::new();
    for (id, action) in plan {
        // A snapshot this run already produced is final: e.g. the new holder of a moved label
        // that was found as an existing copy must not then lose the label as an "other".
        if !done.insert(*id) || existing.produced(id) {
            continue;
        }
        let old = by_id.get(id).ok_or_else(|| Error::NotFound(format!("snapshot {}", id.short())))?;
        let tags = action.apply(&old.tags);
        if tags == old.tags {
            report.unchanged += 1;
            continue;
        }
        let new = Snapshot { tags: tags.clone(), ..rewrite::derived(id, old) };
        let new_id = existing.save(repo, &new)?;
        // Only now that the replacement is durable may the old snapshot go.
        existing.remove(repo, id)?;
        report.changed.push(Retagged { old: *id, new: new_id, tags });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn actions_give_sorted_unique_tags() {
        let change = TagAction::Change { add: s(&["z", "a", "a"]), remove: s(&["m", "z"]) };
        assert_eq!(change.apply(&s(&["m", "k"])), s(&["a", "k"]));
        assert_eq!(TagAction::Set(s(&["b", "a", "b"])).apply(&s(&["x"])), s(&["a", "b"]));
        assert_eq!(TagAction::Set(vec![]).apply(&s(&["x"])), Vec::<String>::new());
    }

    #[test]
    fn written_tags_are_validated_removed_ones_are_not() {
        for bad in ["", "a,b", "a\nb", "esc\x1b[2J", "c1\u{9b}", "del\x7f"] {
            assert!(validate_tag(bad).is_err(), "{bad:?}");
            assert!(TagAction::Set(s(&[bad])).validate().is_err());
        }
        assert!(validate_tag("last-good").is_ok() && validate_tag("with space/ünï").is_ok());
        assert!(TagAction::Change { add: vec![], remove: s(&["a\nb"]) }.validate().is_ok());
    }
}
