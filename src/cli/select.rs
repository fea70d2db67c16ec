//! Snapshot selection shared by every command that takes a snapshot: `latest` (or `LATEST`)
//! and ID prefixes, narrowed by `--host`, `--tag` and `--path` (restic's semantics).

use anyhow::Result;
use arca::format::snapshot::Snapshot;
use arca::repo::select::SnapshotFilter;
use arca::repo::Repository;
use arca::Id;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// `--host`, `--tag`, `--path`: which snapshots `latest` (and listings) consider.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SelectArgs {
    /// Only snapshots of this host (repeatable: any of them).
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Only snapshots with these tags: `a,b` needs both, a repeated --tag means either, and
    /// `--tag ''` selects snapshots without tags.
    #[arg(long = "tag", value_name = "TAG[,TAG...]")]
    tags: Vec<String>,
    /// Only snapshots whose backed-up paths include this one (repeatable: all of them).
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<PathBuf>,
}

impl SelectArgs {
    /// These arguments with their tag filter replaced by `lists` (each: all of its tags), as
    /// `--profile` narrows a command to one component's snapshots.
    pub fn with_tags(mut self, lists: &[Vec<String>]) -> SelectArgs {
        self.tags = lists.iter().map(|l| l.join(",")).collect();
        self
    }

    /// The library filter these arguments describe.
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self
                .tags
                .iter()
                .map(|list| list.split(',').filter(|t| !t.is_empty()).map(String::from).collect())
                .collect(),
            paths: self.paths.iter().map(|p| p.as_os_str().as_bytes().to_vec()).collect(),
        }
    }
}

/// Resolve `latest`, `latest-verified` or an ID prefix among the snapshots `sel` selects (see
/// [`arca::repo::select::resolve`]: a damaged snapshot that may be the latest is an error).
pub fn resolve(repo: &Repository, reference: &str, sel: &SelectArgs) -> Result<(Id, Snapshot)> {
    if reference.eq_ignore_ascii_case(LATEST_VERIFIED) {
        return latest_verified(repo, sel);
    }
    Ok(arca::repo::select::resolve(repo, reference, &sel.filter())?)
}

/// The reference naming the newest snapshot with a verification on record.
pub const LATEST_VERIFIED: &str = "latest-verified";

/// The newest selected snapshot that the journal shows verified: a successful whole drill of
/// it, or a successful full `check --read-data` that checked it.
fn latest_verified(repo: &Repository, sel: &SelectArgs) -> Result<(Id, Snapshot)> {
    let filter = sel.filter();
    let snaps: Vec<(Id, Snapshot)> = repo.list_snapshots()?.into_iter().filter(|(_, s)| filter.matches(s)).collect();
    let journal = arca::ops::journal::load(repo)?;
    for (name, e) in &journal.damaged {
        eprintln!("warning: journal file {name} skipped: {e}");
    }
    let ids: Vec<Id> = snaps.iter().map(|(id, _)| *id).collect();
    let verified = arca::ops::journal::verified(&journal.records, &ids);
    snaps.into_iter().rev().find(|(id, _)| verified.contains(id)).ok_or_else(|| {
        arca::Error::NotFound(
            "no selected snapshot has a verification on record (a successful whole `arca drill` of it, \
             or a full `arca check --read-data` after it); see `arca journal`"
                .into(),
        )
        .into()
    })
}

/// Parser for `backup --tag`: a tag must be non-empty and hold no comma (a comma separates
/// tags in filters, so such a tag could never be selected).
pub fn parse_tag(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("a tag must not be empty".into());
    }
    if s.contains(',') {
        return Err("a tag must not contain a comma (give --tag once per tag)".into());
    }
    Ok(s.to_string())
}

/// What a command that takes `[SNAPSHOT...]` and filters acts on.
pub struct Targets {
    /// Every readable snapshot, oldest first.
    pub all: Vec<(Id, Snapshot)>,
    /// The snapshots chosen, without repeats, in the order given (oldest first for a filter).
    pub chosen: Vec<(Id, Snapshot)>,
    /// Snapshot files that could not be read, when they may be among those chosen (no
    /// references given): reported by the caller, which then exits 4.
    pub damaged: Vec<(String, arca::Error)>,
}

/// Resolve `refs` (ID prefixes or `latest`) among the snapshots `sel` selects, or with no
/// references take every snapshot `sel` selects. Read after the caller's lock is taken.
pub fn targets(repo: &Repository, refs: &[String], sel: &SelectArgs) -> Result<Targets> {
    let (all, mut damaged) = repo.list_snapshots_and_damage()?;
    let mut chosen: Vec<(Id, Snapshot)> = if refs.is_empty() {
        let filter = sel.filter();
        all.iter().filter(|(_, s)| filter.matches(s)).cloned().collect()
    } else {
        damaged.clear();
        refs.iter().map(|r| resolve(repo, r, sel)).collect::<Result<_>>()?
    };
    let mut seen = std::collections::HashSet::new();
    chosen.retain(|(id, _)| seen.insert(*id));
    Ok(Targets { all, chosen, damaged })
}
