//! Snapshot selection shared by every command that takes a snapshot: `--host`, `--tag`,
//! `--path` (restic's semantics) and `--as-of`/`--before`.

use arca::repo::select::SnapshotFilter;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Which snapshots `latest` (and listings) consider.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SelectArgs {
    /// Only snapshots of this host (repeatable: any of them).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with these tags: `a,b` needs both, a repeated --tag means either, and
    /// `--tag ''` selects snapshots without tags.
    #[arg(long = "tag", value_name = "TAG[,TAG...]")]
    pub tags: Vec<String>,
    /// Only snapshots whose backed-up paths include this one (repeatable: all of them).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Only snapshots taken at or before TIME ('YYYY-MM-DD[ HH:MM:SS]' local time, or RFC
    /// 3339): `latest --as-of '2026-12-01 12:00'` is the backup as it was then.
    #[arg(long, value_name = "TIME", value_parser = arca::localtime::parse_time, conflicts_with = "before")]
    pub as_of: Option<i64>,
    /// Only snapshots taken before TIME (as --as-of, but not at it): the state before an
    /// incident.
    #[arg(long, value_name = "TIME", value_parser = arca::localtime::parse_time)]
    pub before: Option<i64>,
}

impl SelectArgs {
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
            scope: vec![],
            until: self.as_of.or(self.before.map(|t| t.saturating_sub(1))),
        }
    }
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
