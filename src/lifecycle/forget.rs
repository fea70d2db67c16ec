//! `forget`: remove snapshots, named one by one or chosen by a retention policy
//! (format-spec/17-consistency.md §17.5: a snapshot file is the only thing forget deletes; the
//! data only it used stays until `prune`).
//!
//! The work is split so that nothing is deleted before everything is decided: [`plan`] reads
//! the snapshots and returns a [`Decision`] value (what `--dry-run` and `--json` show), and
//! [`execute`] deletes what it names. A decision that would leave a group with no snapshot at
//! all is refused unless the caller allowed it: a policy such as `--keep-tag weekly` where no
//! snapshot carries the tag yet, or a mistyped `--keep-within`, would otherwise wipe a machine's
//! whole history in one command. Naming snapshots by ID is consent enough.
//!
//! Unreadable snapshot files are neither kept nor removed: they are reported, and the policy is
//! applied to the rest. Leaving one out can only make a rule reach further back (its count or
//! window is then spent on older snapshots), so damage never causes more to be removed.

use super::group::{group, GroupKey};
use super::policy::{self, Calendar, Candidate, KeepPolicy, Reason};
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::repo::select::{self, SnapshotFilter};
use crate::repo::Repository;
use serde::Serialize;

pub use super::group::GroupBy;

/// What to forget.
#[derive(Clone, Debug, Default)]
pub struct ForgetOptions {
    /// The retention policy (ignored when `ids` are given, and then it must be empty).
    pub policy: KeepPolicy,
    /// How snapshots are grouped before the policy is applied to each group.
    pub group_by: GroupBy,
    /// Which snapshots are considered at all; with `ids`, each named one must match it.
    pub filter: SnapshotFilter,
    /// Snapshots named explicitly (ID prefixes or `latest`): removed, whatever a policy says.
    pub ids: Vec<String>,
    /// Let a policy remove every snapshot of a group; with an empty policy and a non-empty
    /// filter, remove every snapshot the filter selects.
    pub allow_remove_all: bool,
    /// The current time (Unix ns), so that snapshots dated in the future are not taken as the
    /// newest one the `within` rules count back from; `None` trusts every snapshot's time.
    pub now: Option<i64>,
}

/// A snapshot in a decision: what a reader needs to recognise it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Its ID.
    pub id: Id,
    /// Its time, Unix ns.
    #[serde(rename = "time_ns")]
    pub time: i64,
    /// Its host name.
    pub host: String,
    /// Its backed-up paths (JSON: lossy UTF-8).
    #[serde(serialize_with = "super::group::lossy_paths")]
    pub paths: Vec<Vec<u8>>,
    /// Its tags.
    pub tags: Vec<String>,
}

impl Entry {
    fn of(id: Id, s: &Snapshot) -> Entry {
        Entry { id, time: s.time, host: s.hostname.clone(), paths: s.paths.clone(), tags: s.tags.clone() }
    }
}

/// A snapshot to be kept, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// The snapshot.
    #[serde(flatten)]
    pub snapshot: Entry,
    /// The rules that keep it (restic's wording).
    pub reasons: Vec<Reason>,
}

/// The policy's outcome for one group; both lists newest first.
#[derive(Clone, Debug, Serialize)]
pub struct GroupDecision {
    /// What the group's snapshots share.
    #[serde(flatten)]
    pub key: GroupKey,
    /// Snapshots kept.
    pub keep: Vec<Kept>,
    /// Snapshots removed.
    pub remove: Vec<Entry>,
}

/// An unreadable snapshot file, left alone.
#[derive(Clone, Debug, Serialize)]
pub struct Damaged {
    /// Its file name.
    pub name: String,
    /// Why it could not be read.
    pub error: String,
}

/// Everything `forget` will do, decided before anything is deleted.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    /// Policy mode: one entry per group, ordered by key.
    pub groups: Vec<GroupDecision>,
    /// Snapshots named explicitly, oldest first (then `groups` is empty).
    pub named: Vec<Entry>,
    /// Snapshot files that could not be read (policy mode), neither kept nor removed.
    pub damaged: Vec<Damaged>,
    #[serde(skip)]
    allow_remove_all: bool,
}

/// A decision that would remove every snapshot of some groups, which was not allowed.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to remove every snapshot of {}; nothing was removed (keep at least one with another \
     --keep-* rule, or pass --allow-remove-all)",
    describe(.groups)
)]
pub struct Refused {
    /// The groups that would be emptied.
    pub groups: Vec<GroupKey>,
}

fn describe(groups: &[GroupKey]) -> String {
    let names: Vec<String> = groups.iter().map(|k| format!("the group ({k})")).collect();
    names.join(" and ")
}

impl Decision {
    /// A decision that keeps and removes nothing.
    pub fn empty() -> Decision {
        Decision { groups: vec![], named: vec![], damaged: vec![], allow_remove_all: false }
    }

    /// Every snapshot to be removed.
    pub fn to_remove(&self) -> Vec<Id> {
        let by_policy = self.groups.iter().flat_map(|g| g.remove.iter());
        by_policy.chain(&self.named).map(|e| e.id).collect()
    }

    /// The groups this decision would leave without a snapshot.
    pub fn emptied_groups(&self) -> Vec<&GroupKey> {
        self.groups.iter().filter(|g| g.keep.is_empty() && !g.remove.is_empty()).map(|g| &g.key).collect()
    }

    /// `Err` when the decision empties a group and that was not allowed; [`execute`] refuses
    /// such a decision too.
    pub fn check(&self) -> std::result::Result<(), Refused> {
        let emptied = self.emptied_groups();
        if self.allow_remove_all || emptied.is_empty() {
            return Ok(());
        }
        Err(Refused { groups: emptied.into_iter().cloned().collect() })
    }
}

/// Check the options without touching a repository. Usage errors ([`Error::InvalidArgument`]):
/// no policy and no IDs; both a policy and IDs; `allow_remove_all` with no policy and no filter.
pub fn validate(opts: &ForgetOptions) -> Result<()> {
    if !opts.ids.is_empty() {
        if !opts.policy.is_empty() {
            return Err(Error::InvalidArgument(
                "give snapshot IDs or a --keep-* policy, not both (IDs are removed whatever a policy says)".into(),
            ));
        }
        return Ok(());
    }
    if opts.policy.is_empty() {
        if !opts.allow_remove_all {
            return Err(Error::InvalidArgument(
                "no policy given: nothing would be kept, so nothing is removed; give --keep-* rules, \
                 or snapshot IDs to remove"
                    .into(),
            ));
        }
        if opts.filter.is_empty() {
            return Err(Error::InvalidArgument(
                "--allow-remove-all without a --keep-* policy removes every snapshot it selects: \
                 select them with --host, --tag or --path"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Decide what to forget: resolve named snapshots (every one before anything else happens, so
/// an unknown ID changes nothing), or group the snapshots the filter selects and apply the
/// policy to each group in `cal`'s time zone. Reads only. Fails as [`validate`] does.
pub fn plan(repo: &Repository, opts: &ForgetOptions, cal: &dyn Calendar) -> Result<Decision> {
    validate(opts)?;
    if !opts.ids.is_empty() {
        return plan_named(repo, opts);
    }
    // Each snapshot not yet rewritten and its copy would count as two (format-spec/25 §25.4).
    repo.refuse_during_rotation("apply keep-* rules (forget snapshots by ID meanwhile)")?;
    let (all, damaged) = repo.list_snapshots_and_damage()?;
    let selected: Vec<(Id, Snapshot)> = all.into_iter().filter(|(_, s)| opts.filter.matches(s)).collect();
    let groups = group(selected, opts.group_by)
        .into_iter()
        .map(|(key, members)| decide_group(key, &members, &opts.policy, cal, opts.now))
        .collect();
    let damaged = damaged.into_iter().map(|(name, e)| Damaged { name, error: e.to_string() }).collect();
    Ok(Decision { groups, named: Vec::new(), damaged, allow_remove_all: opts.allow_remove_all })
}

fn plan_named(repo: &Repository, opts: &ForgetOptions) -> Result<Decision> {
    let mut named: Vec<Entry> = Vec::new();
    for reference in &opts.ids {
        let (id, s) = select::resolve(repo, reference, &opts.filter)?;
        if !named.iter().any(|e| e.id == id) {
            named.push(Entry::of(id, &s));
        }
    }
    named.sort_by_key(|e| (e.time, e.id));
    Ok(Decision { groups: Vec::new(), named, damaged: Vec::new(), allow_remove_all: true })
}

fn decide_group(
    key: GroupKey,
    members: &[(Id, Snapshot)],
    policy: &KeepPolicy,
    cal: &dyn Calendar,
    now: Option<i64>,
) -> GroupDecision {
    let candidates: Vec<Candidate> =
        members.iter().map(|(id, s)| Candidate { id: *id, time: s.time, tags: &s.tags }).collect();
    let by_id: std::collections::HashMap<Id, &Snapshot> = members.iter().map(|(id, s)| (*id, s)).collect();
    let snapshot = |id: Id| Entry::of(id, by_id[&id]);
    let (mut keep, mut remove) = (Vec::new(), Vec::new());
    for v in policy::apply(&candidates, policy, cal, now) {
        match v.keep() {
            true => keep.push(Kept { snapshot: snapshot(v.id), reasons: v.reasons }),
            false => remove.push(snapshot(v.id)),
        }
    }
    GroupDecision { key, keep, remove }
}

/// What [`execute`] did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Snapshots removed.
    pub removed: Vec<Id>,
    /// Snapshots whose file could not be removed, and why (the others were still removed).
    pub failed: Vec<(Id, Error)>,
}

/// Delete the snapshot files the decision removes. The caller holds an exclusive lock, taken
/// before [`plan`], so no backup adds a snapshot the decision did not see. A decision that
/// [`Decision::check`] refuses is refused here too ([`Error::InvalidArgument`]), before anything
/// is deleted.
pub fn execute(repo: &Repository, decision: &Decision) -> Result<Outcome> {
    decision.check().map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let mut out = Outcome::default();
    for id in decision.to_remove() {
        repo.ensure_locks_fresh()?;
        match repo.remove_file(FileType::Snapshot, &id.to_hex()) {
            Ok(()) => out.removed.push(id),
            Err(e) => out.failed.push((id, e)),
        }
    }
    Ok(out)
}
