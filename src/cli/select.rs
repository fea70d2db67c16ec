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

/// Parser for `backup --tag`: a comma-separated list, as restic takes it (`--tag a,b` is two
/// tags; spaces around each are trimmed and empty ones dropped). Each tag must hold no control
/// character (tags are printed).
pub fn parse_tag(s: &str) -> Result<String, String> {
    for t in split_tags(std::slice::from_ref(&s.to_string())) {
        arca::lifecycle::tag::validate_tag(&t).map_err(|e| e.to_string())?;
    }
    Ok(s.to_string())
}

/// The tags of repeated, comma-separated `--tag` values (restic's `TagLists.Flatten`).
pub fn split_tags(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect()
}

/// Exclude patterns with restic's rules, shared by `backup` and `rewrite`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ExcludeArgs {
    /// Exclude a pattern (repeatable), restic's rules: without a leading `/` it matches at any
    /// depth (`docs/invoices` excludes every such directory and what is below it); `*`, `?`,
    /// `[...]` within a name, `**` across directories; `!PATTERN` takes back what earlier
    /// patterns excluded (not below an excluded directory).
    #[arg(long = "exclude", short = 'e', value_name = "PATTERN")]
    excludes: Vec<String>,
    /// As --exclude, ignoring case.
    #[arg(long = "iexclude", value_name = "PATTERN")]
    iexcludes: Vec<String>,
    /// Read exclude patterns from a file (repeatable): one per line, trimmed; blank lines and
    /// `#` comments skipped; `$VAR` and `${VAR}` expanded (`$$` is a dollar sign).
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_files: Vec<PathBuf>,
    /// As --exclude-file, ignoring case.
    #[arg(long = "iexclude-file", value_name = "FILE")]
    iexclude_files: Vec<PathBuf>,
}

impl ExcludeArgs {
    /// The library's options.
    pub fn options(self) -> arca::filter::ExcludeOptions {
        arca::filter::ExcludeOptions {
            excludes: self.excludes,
            iexcludes: self.iexcludes,
            exclude_files: self.exclude_files,
            iexclude_files: self.iexclude_files,
        }
    }
}
