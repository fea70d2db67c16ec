//! `arca restore` and `arca verify`.

use super::output::{escape, escape_str, plural};
use super::select::SelectArgs;
use super::{component_error, human, progress, Global};
use anyhow::{Context, Result};
use arca::ops::outcome::Run;
use arca::ops::restore::{self, RestoreRequest, Restored};
use arca::ops::verify::{self, Verified, VerifyRequest};
use arca::ops::HasOutcome;
use arca::restore::{MetaOptions, Overwrite};
use serde_json::json;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// SNAP[:PATH]; with PATH, restore that directory's contents (or that file) into the target.
    snapshot: String,
    /// Directory to restore into (with --profile: each component into TARGET/COMPONENT). For a
    /// single file: an existing directory to put it in, or the path to restore it as.
    #[arg(short, long, required_unless_present = "in_place")]
    target: Option<PathBuf>,
    /// Restore back where the snapshot came from: files to their recorded paths (the directories
    /// above them are left as they are), a profile's database dumps into each component's
    /// restore-command.
    #[arg(long, conflicts_with = "target")]
    in_place: bool,
    /// Restore only paths matching GLOB (repeatable). A GLOB with `/` matches the path relative to
    /// the restored PATH (`/config`), one without matches names. A GLOB that matches nothing is a
    /// usage error (exit 2).
    #[arg(short, long = "include", value_name = "GLOB")]
    include: Vec<String>,
    /// Do not restore paths matching GLOB (repeatable; matched like --include).
    #[arg(short, long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
    /// Existing files: compare content and rewrite only if it differs (default), rewrite if size or
    /// mtime differ (fast, trusts metadata), never touch, or always rewrite.
    #[arg(long, value_enum, default_value_t = Overwrite::IfChanged)]
    overwrite: Overwrite,
    /// Remove files and directories that are not in the snapshot from the restored directories
    /// (also directories in the way of a restored entry). Not with --include.
    #[arg(long, conflicts_with = "include")]
    delete: bool,
    /// Show what would be restored, applying the overwrite policy's comparisons; write nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Re-read restored files and compare them with the snapshot.
    #[arg(long)]
    verify: bool,
    /// Never change ownership, even as root.
    #[arg(long)]
    no_owner: bool,
    /// Clear set-user-ID and set-group-ID bits from restored modes.
    #[arg(long)]
    no_setuid: bool,
    /// Do not create character or block device nodes.
    #[arg(long)]
    no_devices: bool,
    /// Do not create FIFOs.
    #[arg(long)]
    no_specials: bool,
    /// Do not restore extended attributes whose names match GLOB (repeatable), e.g.
    /// 'security.*' or 'trusted.*'; '*' restores none.
    #[arg(long = "exclude-xattr", value_name = "GLOB")]
    exclude_xattr: Vec<String>,
    #[command(flatten)]
    select: SelectArgs,
}

fn xattr_globs(pats: &[String]) -> Result<Option<globset::GlobSet>> {
    if pats.is_empty() {
        return Ok(None);
    }
    let mut b = globset::GlobSetBuilder::new();
    for p in pats {
        b.add(globset::Glob::new(p).with_context(|| format!("--exclude-xattr {p:?}"))?);
    }
    Ok(Some(b.build()?))
}

pub fn restore(g: &Global, a: RestoreArgs) -> Result<u8> {
    let req = RestoreRequest {
        reference: a.snapshot,
        filter: a.select.filter(),
        target: a.target,
        in_place: a.in_place,
        include: a.include,
        exclude: a.exclude,
        overwrite: a.overwrite,
        delete: a.delete,
        dry_run: a.dry_run,
        verify: a.verify,
        no_devices: a.no_devices,
        no_specials: a.no_specials,
        meta: MetaOptions {
            no_owner: a.no_owner,
            no_setuid: a.no_setuid,
            exclude_xattrs: xattr_globs(&a.exclude_xattr)?,
        },
    };
    let runs = {
        let (progress, _live) = progress::start(g, progress::Kind::Restore, false);
        restore::restore(&g.scope, &req, &progress)?
    };
    render(g, runs, show_restored)
}

/// Print each run (`show` for a success, which returns its JSON document), then the JSON: one
/// object, or with a profile one per component. A plain run that failed is the command's error.
pub(super) fn render<T: HasOutcome>(
    g: &Global,
    runs: Vec<Run<T>>,
    show: fn(&Global, &T) -> serde_json::Value,
) -> Result<u8> {
    let code = runs.outcome().exit_code();
    let mut docs = Vec::new();
    for r in runs {
        if let (Some(c), true) = (&r.component, g.talk()) {
            println!("component {c}:");
        }
        let mut doc = match r.result {
            Ok(v) => show(g, &v),
            Err(e) if !g.scope.has_profile() => return Err(e.into()),
            Err(e) => component_error(g, r.component.as_deref(), &e),
        };
        if let Some(c) = &r.component {
            doc["component"] = json!(c);
        }
        docs.push(doc);
    }
    if g.json {
        match (&g.scope.profile, docs.len()) {
            (None, 1) => g.print_json(&docs[0])?,
            (p, _) => {
                g.print_json(&json!({"profile": p.as_ref().map(|p| &p.name), "components": docs, "exit_code": code}))?
            }
        }
    }
    Ok(code)
}

fn show_restored(g: &Global, r: &Restored) -> serde_json::Value {
    let s = &r.stats;
    let mut doc = serde_json::to_value(r).unwrap_or_default();
    // The last of the JSON lines: restic's summary after its status lines.
    doc["message_type"] = json!("summary");
    for e in &s.errors {
        eprintln!("error: {}", escape_str(e));
    }
    if s.no_space > 0 {
        let n = plural(s.no_space, "entry", "entries");
        eprintln!("error: the target's file system is full: restore stopped, {n} not restored");
    }
    for m in &s.mismatched {
        let what = if m.change == arca::browse::Change::Metadata { "metadata" } else { "content" };
        eprintln!("error: {}: restored {what} differs from the snapshot", escape(m.path.as_os_str().as_bytes()));
    }
    if !g.talk() {
        return doc;
    }
    if let Some(p) = &r.piped {
        let verb = if r.dry_run { "would pipe" } else { "piped" };
        println!("{verb} {} into `{}`; {:.1} s", human(p.bytes), escape_str(&p.command), r.seconds);
        return doc;
    }
    let extra = match (s.deleted, r.dry_run) {
        (0, _) => String::new(),
        (n, true) => format!(", {n} to delete"),
        (n, false) => format!(", {n} deleted"),
    };
    println!(
        "{} {} ({}), {}, {} other; {} already up to date{extra}; {:.1} s",
        if r.dry_run { "would restore" } else { "restored" },
        plural(s.files, "file", "files"),
        human(s.bytes),
        plural(s.dirs, "dir", "dirs"),
        s.others,
        plural(s.files_skipped, "file", "files"),
        r.seconds
    );
    if s.conflicts > 0 {
        let n = plural(s.conflicts, "entry", "entries");
        println!("{n} not restored: something restore does not remove is in the way");
    }
    doc
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// SNAP[:PATH]: the snapshot, or the directory or file in it, to compare with.
    #[arg(default_value = "latest")]
    snapshot: String,
    /// The directory (or file) to check, as `restore --target` would have written it (default:
    /// the live files where the snapshot came from).
    dir: Option<PathBuf>,
    /// Compare only paths matching GLOB (repeatable; as for restore). Extra entries are then not
    /// reported.
    #[arg(short, long = "include", value_name = "GLOB")]
    include: Vec<String>,
    /// Ignore paths matching GLOB (repeatable; as for restore).
    #[arg(short, long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
    /// Do not compare ownership (it is compared only when run as root anyway).
    #[arg(long)]
    no_owner: bool,
    #[command(flatten)]
    select: SelectArgs,
}

pub fn verify(g: &Global, a: VerifyArgs) -> Result<u8> {
    let req = VerifyRequest {
        reference: a.snapshot,
        filter: a.select.filter(),
        dir: a.dir,
        include: a.include,
        exclude: a.exclude,
        no_owner: a.no_owner,
    };
    let runs = {
        let (progress, _live) = progress::start(g, progress::Kind::Restore, false);
        verify::verify(&g.scope, &req, &progress)?
    };
    render(g, runs, show_verified)
}

fn show_verified(g: &Global, v: &Verified) -> serde_json::Value {
    for e in &v.stats.errors {
        eprintln!("error: {}", escape_str(e));
    }
    let doc = json!({"snapshot": v.snapshot, "dir": v.dir, "identical": v.identical(), "changes": v.stats.changes,
                     "skipped": v.skipped});
    if g.json {
        return doc;
    }
    for c in &v.stats.changes {
        println!("{} {}", c.change.marker(), escape(c.path.as_os_str().as_bytes()));
    }
    if !g.quiet {
        match (&v.skipped, v.stats.changes.len()) {
            (Some(why), _) => println!("skipped: {why}"),
            (None, 0) => println!("{} matches snapshot {}", escape(v.dir.as_os_str().as_bytes()), v.snapshot.short()),
            (None, n) => {
                println!("{} from snapshot {}", plural(n as u64, "difference", "differences"), v.snapshot.short())
            }
        }
    }
    doc
}
