//! `init`, `key`, `cat`, `repoinfo`, `check`, `unlock`, `parity`, `repair`.

use super::output::{escape, escape_str, plural};
use super::select::SelectArgs;
use super::{human, short, time_str, Global};
use anyhow::Result;
use arca::backend::retention::Policy;
use arca::crypto::Role;
use arca::format::key::KdfParams;
use arca::lifecycle::heal::{BuildOptions, KindStatus};
use arca::lifecycle::repair::{Cut, IndexRepairOptions, SnapshotRepairOptions};
use arca::lifecycle::rotate;
use arca::ops::admin::{self, Cat, KeyAction, KeyResult};
use arca::ops::check::CheckRequest;
use arca::ops::{HasOutcome, Outcome, PasswordSource};
use arca::repo::lock::LockState;
use arca::repo::InitOptions;
use serde_json::json;
use std::io::Write;

/// Key-derivation cost options.
#[derive(clap::Args, Debug, Clone)]
pub struct KdfArgs {
    /// Argon2id memory for the new key, MiB (8–1024).
    #[arg(long, default_value_t = 64, value_name = "MIB", value_parser = clap::value_parser!(u32).range(8..=1024))]
    kdf_memory: u32,
    /// Argon2id iterations for the new key (1–10).
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10))]
    kdf_iterations: u32,
}

impl KdfArgs {
    fn params(&self) -> KdfParams {
        KdfParams { memory_kib: self.kdf_memory.saturating_mul(1024), time_cost: self.kdf_iterations, lanes: 1 }
    }
}

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    kdf: KdfArgs,
    /// zstd compression level (0 = none, 1–19; -7 to -1 are faster levels).
    #[arg(long, default_value_t = 3, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-7..=19))]
    compression: i32,
    /// Pack target size, MiB (1–1024).
    #[arg(long, default_value_t = 16, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pack_size: u32,
    /// Parity overhead for packs and index files: a percentage (`5%`, `0.5%`, up to `100%`) or
    /// `off`; snapshots get 100% when on. Change it later with `arca parity set`.
    #[arg(long, default_value = "5%", value_name = "P%|off", value_parser = parse_overhead)]
    parity: u16,
    /// S3 only: have the bucket retain every object this long (S3 Object Lock; whole days:
    /// `30d`, `1y`), so that no credentials arca uses can destroy data before then. The bucket
    /// is created with Object Lock if missing; an existing one must have it.
    #[arg(long, value_name = "DURATION")]
    object_lock: Option<String>,
    /// The Object Lock mode: `governance` (users with s3:BypassGovernanceRetention may shorten
    /// it) or `compliance` (nobody can).
    #[arg(long, default_value = "governance", value_name = "MODE", requires = "object_lock")]
    object_lock_mode: String,
}

pub fn init(g: &Global, a: InitArgs) -> Result<u8> {
    let opts = InitOptions {
        kdf: a.kdf.params(),
        compression_level: a.compression,
        pack_target_size: a.pack_size.saturating_mul(1 << 20),
        parity_overhead: a.parity,
        ..InitOptions::default()
    };
    let lock = a.object_lock.as_deref().map(|d| Policy::parse(d, &a.object_lock_mode)).transpose()?;
    let c = admin::init(&g.scope, &opts, lock.as_ref())?;
    if g.json {
        g.print_json(&c)?;
    } else if !g.quiet {
        println!("created repository {} at {}", &c.id[..16], escape_str(&c.repository));
        if let Some(p) = &c.object_lock {
            println!(
                "the storage keeps every object at least {} days after it is written ({} mode)",
                p.days,
                if p.mode == arca::backend::retention::Mode::Compliance { "compliance" } else { "governance" }
            );
        }
        println!("Keep the password safe: without it the data cannot be recovered.");
    }
    Ok(0)
}

/// A new key's password and cost (key add, passwd, rotate).
#[derive(clap::Args, Debug)]
pub struct NewKeyArgs {
    #[command(flatten)]
    kdf: KdfArgs,
    /// File holding the new key's password.
    #[arg(long)]
    new_password_file: Option<std::path::PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a key file with a new password (from ARCA_NEW_PASSWORD, --new-password-file or a prompt).
    Add {
        #[command(flatten)]
        new: NewKeyArgs,
        /// Label, default user@host.
        #[arg(long)]
        label: Option<String>,
        /// What the key may do: admin (everything), backup (write new snapshots, read nothing
        /// stored, delete nothing) or restore (read everything, change nothing). The first
        /// backup or restore key turns key roles on (format-spec/24), under an exclusive lock.
        #[arg(long, default_value = "admin", value_parser = ["admin", "backup", "restore"])]
        role: String,
    },
    /// List key files.
    List,
    /// Remove a key file by ID prefix (not the one in use).
    Remove {
        /// ID or unique prefix.
        id: String,
    },
    /// Change the password of the key in use.
    Passwd {
        #[command(flatten)]
        new: NewKeyArgs,
    },
    /// Replace every key of the repository after an incident (format-spec/25): a new master
    /// key (data, index, chunker and blob-ID keys), one new admin key with the new password,
    /// and every stored object sealed again; every other key file is removed (give backup and
    /// restore keys out again afterwards). Runs under an exclusive lock; if interrupted, run it
    /// again with the new password (no other is asked) and it finishes. Old keys decrypt
    /// nothing written after the start, and nothing at all once it finishes.
    Rotate {
        #[command(flatten)]
        new: NewKeyArgs,
        /// Label of the new key, default user@host.
        #[arg(long)]
        label: Option<String>,
    },
}

/// A new password: `--new-password-file`, `ARCA_NEW_PASSWORD`, or a prompt (twice).
fn new_password(file: Option<std::path::PathBuf>) -> PasswordSource {
    PasswordSource {
        file,
        env: Some("ARCA_NEW_PASSWORD"),
        flags: ["--new-password-command", "--new-password-file"],
        what: "new key",
        prompt: Some(std::sync::Arc::new(super::prompt)),
        ..Default::default()
    }
}

pub fn key(g: &Global, k: KeyCommand) -> Result<u8> {
    let action = match k {
        KeyCommand::Add { new, label, role } => KeyAction::Add(
            new_password(new.new_password_file),
            new.kdf.params(),
            label.unwrap_or_else(arca::repo::default_label),
            match role.as_str() {
                "backup" => Role::Backup,
                "restore" => Role::Restore,
                _ => Role::Admin,
            },
        ),
        KeyCommand::List => KeyAction::List,
        KeyCommand::Remove { id } => KeyAction::Remove(id),
        KeyCommand::Passwd { new } => KeyAction::Passwd(new_password(new.new_password_file), new.kdf.params()),
        KeyCommand::Rotate { new, label } => KeyAction::Rotate(
            new_password(new.new_password_file),
            new.kdf.params(),
            label.unwrap_or_else(arca::repo::default_label),
            rotate_crash_hook(),
        ),
    };
    let (verb, name) = match admin::key(&g.scope, action)? {
        KeyResult::Listed(keys) => return list_keys(g, keys),
        KeyResult::Added(n, enabled) => {
            if let Some(e) = enabled.filter(|e| e.config_rewritten || e.index_files_resealed > 0) {
                let n = e.index_files_resealed;
                let s = if n == 1 { "" } else { "s" };
                let what = if e.config_rewritten { "enabled: config rewritten," } else { "finished enabling:" };
                eprintln!("key roles {what} {n} index file{s} sealed for every role");
            }
            ("added", n)
        }
        KeyResult::Removed(n) => ("removed", n),
        KeyResult::Changed(n) => ("key", n),
        KeyResult::Rotated(r) => return rotated(g, &r),
    };
    match (g.json, verb) {
        (true, _) => g.print_json(&json!({ verb: name }))?,
        (false, "key") => println!("password changed; new key {}", short(&name)),
        (false, _) => println!("{verb} key {}", short(&name)),
    }
    Ok(0)
}

/// Test hook: `ARCA_TEST_ROTATE_CRASH_AFTER=<step>` aborts the process right after that step of
/// `key rotate`, leaving what a kill -9 would leave.
fn rotate_crash_hook() -> Option<rotate::StepHook> {
    let step = rotate::Step::from_name(&std::env::var("ARCA_TEST_ROTATE_CRASH_AFTER").ok()?)?;
    Some(std::sync::Arc::new(move |s| {
        if s == step {
            std::process::abort();
        }
        Ok(())
    }))
}

fn rotated(g: &Global, r: &rotate::RotateReport) -> Result<u8> {
    if g.json {
        g.print_json(r)?;
        return Ok(r.outcome().exit_code());
    }
    println!(
        "{} key rotation: new admin key {}; {} and {} sealed under the new keys ({}, {} stored)",
        if r.resumed { "finishing a" } else { "started a" },
        short(&r.new_key),
        plural(r.snapshots.len(), "snapshot", "snapshots"),
        plural(r.journal_files, "journal file", "journal files"),
        plural(r.blobs, "blob", "blobs"),
        human(r.stored_bytes),
    );
    for (old, new) in &r.snapshots {
        println!("  snapshot {} is now {}", old.short(), new.short());
    }
    for k in &r.removed_keys {
        println!("  removed {} key {} {}", k.role, short(&k.id), escape_str(&k.label));
    }
    for (id, e) in &r.damaged {
        eprintln!("snapshot {} cannot be read completely: {}", id.short(), escape_str(e));
    }
    if !r.finished {
        eprintln!(
            "the rotation is unfinished: nothing of the old generation was removed, and everything still reads. \
             Remove or repair the snapshots above (`arca forget`), then run `arca key rotate` again"
        );
        return Ok(r.outcome().exit_code());
    }
    println!(
        "removed {}, {} and {} of the old keys; rotation finished",
        plural(r.index_files_removed, "index file", "index files"),
        plural(r.packs_removed, "pack", "packs"),
        plural(r.locks_removed, "stale lock", "stale locks"),
    );
    if r.removed_keys.iter().any(|k| k.role == "backup" || k.role == "restore") {
        println!("give backup and restore keys out again: `arca key add --role backup|restore`");
    }
    Ok(0)
}

fn list_keys(g: &Global, keys: Vec<arca::repo::KeyInfo>) -> Result<u8> {
    if g.json {
        let v: Vec<_> = keys.iter().map(|k| admin::key_json(&k.name, &k.file, k.current)).collect();
        g.print_json(&v)?;
        return Ok(0);
    }
    println!("{:<2} {:<16} {:<8} {:<20} {:<30} KDF", "", "ID", "role", "created", "label");
    for k in keys {
        let f = &k.file;
        println!(
            "{:<2} {:<16} {:<8} {:<20} {:<30} argon2id m={}MiB t={} p={}",
            if k.current { "*" } else { "" },
            short(&k.name),
            f.role.name(),
            time_str(f.created.saturating_mul(1_000_000_000)),
            escape_str(&f.label),
            f.kdf.memory_kib / 1024,
            f.kdf.time_cost,
            f.kdf.lanes
        );
    }
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct CatArgs {
    /// config, key, index, snapshot, pack or blob.
    #[arg(value_parser = ["config", "key", "index", "snapshot", "pack", "blob"])]
    what: String,
    /// ID or unique prefix (snapshot also takes `latest`).
    id: Option<String>,
}

pub fn cat(g: &Global, a: CatArgs) -> Result<u8> {
    match admin::cat(&g.scope, &a.what, a.id.as_deref())? {
        Cat::Json(v) => g.print_json(&v)?,
        Cat::Bytes(b) => std::io::stdout().write_all(&b)?,
    }
    Ok(0)
}

pub fn repoinfo(g: &Global) -> Result<u8> {
    let i = admin::repoinfo(&g.scope)?;
    if g.json {
        g.print_json(&i)?;
        return Ok(0);
    }
    println!("repository   {} ({})", escape_str(&i.repository), &i.id[..16]);
    println!(
        "snapshots    {}\nkeys         {}\npacks        {} ({})",
        i.snapshots,
        i.keys,
        i.packs,
        human(i.pack_bytes)
    );
    println!(
        "data blobs   {} ({} plain, {} stored)",
        i.data_blobs,
        human(i.data_plain_bytes),
        human(i.data_stored_bytes)
    );
    println!(
        "tree blobs   {} ({} plain, {} stored)",
        i.tree_blobs,
        human(i.tree_plain_bytes),
        human(i.tree_stored_bytes)
    );
    println!("compression  {:.2}x\nindex memory {}", i.compression_ratio, human(i.index_memory_bytes as u64));
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Also decrypt and verify every blob.
    #[arg(long)]
    read_data: bool,
    /// Verify only a subset of packs: N/M or P%.
    #[arg(long, value_name = "N/M|P%")]
    read_data_subset: Option<String>,
}

pub fn check(g: &Global, a: CheckArgs) -> Result<u8> {
    let progress = (a.read_data || a.read_data_subset.is_some()).then(std::sync::Arc::<arca::progress::Meter>::default);
    let req = CheckRequest { read_data: a.read_data, read_data_subset: a.read_data_subset, progress: progress.clone() };
    let c = {
        let line = |m: std::sync::Arc<_>| move || format!("reading packs: {}", super::progress::meter(&m));
        let _bar = progress.map(|m| super::Spinner::new(g, line(m)));
        arca::ops::check::check(&g.scope, &req)?
    };
    let r = &c.report;
    if g.json {
        g.print_json(r)?;
        return Ok(c.outcome().exit_code());
    }
    for w in &r.warnings {
        eprintln!("warning: {}: {}", escape_str(&w.object), escape_str(&w.message));
    }
    if c.none_read {
        eprintln!(
            "warning: --read-data-subset {} selected none of the {} packs: no data was read",
            req.read_data_subset.as_deref().unwrap_or_default(),
            r.packs
        );
    }
    for e in &r.errors {
        println!("error: {}: {}", escape_str(&e.object), escape_str(&e.message));
    }
    for (snap, paths) in &r.affected {
        println!("snapshot {} is damaged; affected paths:", &snap[..8.min(snap.len())]);
        for p in paths {
            println!("  {}", escape_str(p));
        }
    }
    for d in &r.damaged_files {
        let verdict = if d.repairable { "REPAIRABLE from parity" } else { "NOT repairable from parity" };
        println!("{}: {verdict}: {}", escape_str(&d.object), escape_str(&d.detail));
    }
    if r.damaged_files.iter().any(|d| d.repairable) {
        println!("run `arca repair packs` to rebuild the repairable files");
    }
    if !g.quiet {
        let data = match req.subset()? {
            None => "data not read".to_string(),
            Some(_) => format!(
                "data of {} of {} read ({}), {} verified",
                r.packs_read,
                count(r.packs as usize, "pack"),
                human(r.bytes_read),
                count(r.blobs_read as usize, "blob")
            ),
        };
        let verdict = if r.ok() {
            "no errors".to_string()
        } else if r.repairable_only() {
            format!("REPAIRABLE DAMAGE: {}, run `arca repair packs`", count(r.repairable_files() as usize, "file"))
        } else {
            format!("ERRORS FOUND ({} repairable from parity)", r.repairable_files())
        };
        let (snaps, trees) = (count(r.snapshots as usize, "snapshot"), count(r.trees as usize, "tree"));
        println!("checked {snaps}, {trees}, {}; {data}: {verdict}", count(r.packs as usize, "pack"));
    }
    Ok(c.outcome().exit_code())
}

#[derive(clap::Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, also live ones of running processes and unreadable ones. Only when no
    /// arca process uses the repository: a removed live lock no longer protects its holder.
    #[arg(long)]
    remove_all: bool,
}

/// `exclusive lock of user@host (pid N), refreshed TIME`, names escaped.
fn describe(l: &arca::format::lock::Lock) -> String {
    let kind = if l.exclusive { "exclusive" } else { "shared" };
    let (user, host) = (escape_str(&l.username), escape_str(&l.hostname));
    format!("{kind} lock of {user}@{host} (pid {}), refreshed {}", l.pid, time_str(l.time))
}

/// Run `arca unlock`. Exit 4 when an unreadable lock file is left in place (it blocks every
/// command that locks).
pub fn unlock(g: &Global, a: UnlockArgs) -> Result<u8> {
    let outcomes = admin::unlock(&g.scope, a.remove_all)?;
    let state = |s: &LockState| match s {
        LockState::Live(_) => "live",
        LockState::Stale(_) => "stale",
        LockState::Unreadable(_) => "unreadable",
    };
    let kept_unreadable = outcomes.iter().any(|o| !o.removed && matches!(o.file.state, LockState::Unreadable(_)));
    let status = if kept_unreadable { Outcome::Damage } else { Outcome::Ok }.exit_code();
    for o in &outcomes {
        match (&o.file.state, o.removed) {
            (LockState::Live(l), true) => eprintln!(
                "warning: removed the live {}: if that process still runs, the repository no longer protects it \
                 from conflicting operations",
                describe(l)
            ),
            (LockState::Unreadable(e), true) => {
                eprintln!("warning: removed unreadable lock {}: {}", o.file.name, escape_str(&e.to_string()))
            }
            (LockState::Unreadable(e), false) if !g.json => eprintln!(
                "error: {}; kept (remove it with --remove-all once no arca process uses the repository)",
                escape_str(&e.to_string())
            ),
            _ => {}
        }
    }
    if g.json {
        let locks: Vec<_> = outcomes
            .iter()
            .map(|o| {
                let mut v = json!({"name": o.file.name, "state": state(&o.file.state), "removed": o.removed});
                match &o.file.state {
                    LockState::Live(l) | LockState::Stale(l) => {
                        v["lock"] = json!({"time": l.time, "exclusive": l.exclusive, "hostname": l.hostname,
                                           "username": l.username, "pid": l.pid})
                    }
                    LockState::Unreadable(e) => v["error"] = json!(e.to_string()),
                }
                v
            })
            .collect();
        g.print_json(&json!({ "locks": locks }))?;
        return Ok(status);
    }
    if g.quiet {
        return Ok(status);
    }
    for o in &outcomes {
        match (&o.file.state, o.removed) {
            (LockState::Live(l), false) => {
                println!("kept lock {}: live {} (--remove-all removes it)", short(&o.file.name), describe(l))
            }
            (LockState::Live(l) | LockState::Stale(l), true) => {
                println!("removed lock {}: {} {}", short(&o.file.name), state(&o.file.state), describe(l))
            }
            (LockState::Unreadable(_), true) => println!("removed lock {}: unreadable", short(&o.file.name)),
            _ => {}
        }
    }
    match outcomes.iter().filter(|o| o.removed).count() {
        0 => println!("no lock removed"),
        n => println!("{n} lock{} removed", if n == 1 { "" } else { "s" }),
    }
    Ok(status)
}

/// `arca parity ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ParityCommand {
    /// Set the parity overhead writers use for packs and index files from now on (snapshots
    /// always get as much parity as data); `arca parity build` applies it to existing files.
    Set {
        /// Overhead: a percentage of each file (`5%`, `0.5%`, up to `100%`), or `off`.
        #[arg(long, value_name = "P%|off", value_parser = parse_overhead)]
        overhead: u16,
    },
    /// Write parity for files that have none or whose parity predates the current setting;
    /// with parity off, remove all parity files.
    Build {
        /// Also remove parity files of missing files (removed on purpose by a writer that does
        /// not know parity); by default they are kept for `arca repair packs`.
        #[arg(long)]
        drop_orphans: bool,
        /// Report what would be written or removed; change nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// How much of the repository parity protects, and at what overhead.
    Status,
}

/// `5%`, `0.25%` or `off` as basis points (0 = off), at most 100%.
pub fn parse_overhead(s: &str) -> std::result::Result<u16, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t == "0" || t == "0%" {
        return Ok(0);
    }
    let num = t.strip_suffix('%').ok_or_else(|| format!("{s:?}: give a percentage such as 5% or 0.5%, or off"))?;
    let p: f64 = num.trim().parse().map_err(|_| format!("{s:?}: not a percentage"))?;
    if !(0.01..=100.0).contains(&p) {
        return Err(format!("{s:?}: between 0.01% and 100%, or off"));
    }
    Ok((p * 100.0).round() as u16)
}

/// `5%`, `0.5%`, `off`.
fn overhead_str(bp: u16) -> String {
    match bp {
        0 => "off".into(),
        bp if bp % 100 == 0 => format!("{}%", bp / 100),
        bp => format!("{}%", bp as f64 / 100.0),
    }
}

pub fn parity(g: &Global, c: ParityCommand) -> Result<u8> {
    match c {
        ParityCommand::Set { overhead } => {
            admin::parity_set(&g.scope, overhead)?;
            if g.json {
                g.print_json(&json!({ "overhead_basis_points": overhead }))?;
            } else if !g.quiet {
                let o = overhead_str(overhead);
                println!("parity overhead for packs set to {o}; run `arca parity build` to apply it to existing files");
            }
            Ok(0)
        }
        ParityCommand::Build { drop_orphans, dry_run } => {
            let meter = std::sync::Arc::new(arca::progress::Meter::default());
            let r = {
                let m = meter.clone();
                let _bar = super::Spinner::new(g, move || format!("reading files: {}", super::progress::meter(&m)));
                admin::parity_build(&g.scope, BuildOptions { drop_orphans, dry_run, progress: Some(&meter) })?
            };
            for d in &r.damaged {
                eprintln!("error: {}: {}", escape_str(&d.file), escape_str(&d.detail));
            }
            for o in &r.orphans {
                eprintln!("warning: {}: {}", escape_str(&o.file), escape_str(&o.detail));
            }
            if g.json {
                g.print_json(&r)?;
            } else if !g.quiet {
                println!(
                    "parity {}: {} {} new and {} rewritten parity files ({}), {} up to date, {} removed",
                    overhead_str(r.overhead),
                    if dry_run { "would write" } else { "wrote" },
                    r.written,
                    r.rewritten,
                    human(r.bytes_written),
                    r.up_to_date,
                    r.removed
                );
            }
            Ok(if r.damaged.is_empty() { Outcome::Ok } else { Outcome::Damage }.exit_code())
        }
        ParityCommand::Status => {
            let r = admin::parity_status(&g.scope)?;
            if g.json {
                g.print_json(&r)?;
                return Ok(0);
            }
            let overhead = match (r.overhead, r.policy_file) {
                (None, _) => "policy file damaged (writers use 5%)".to_string(),
                (Some(0), false) => "off (no policy: the repository predates parity)".to_string(),
                (Some(bp), _) => overhead_str(bp),
            };
            println!("parity for packs and index files: {overhead}; snapshots: 100% when on");
            let pct = |a: u64, b: u64, none: f64| if b == 0 { none } else { 100.0 * a as f64 / b as f64 };
            let line = |what: &str, s: &KindStatus| {
                println!(
                    "  {what:<10} {:>7} files {:>11}   protected {:>7} ({:>5.1}%)   parity {:>11} ({:.1}%){}",
                    s.files,
                    human(s.bytes),
                    s.protected,
                    pct(s.protected, s.files, 100.0),
                    human(s.parity_bytes),
                    pct(s.parity_bytes, s.bytes, 0.0),
                    if s.stale == 0 { String::new() } else { format!("   {} at an older setting", s.stale) }
                );
            };
            line("packs", &r.packs);
            line("index", &r.index);
            line("snapshots", &r.snapshots);
            if r.orphans > 0 {
                println!(
                    "  {} parity files protect missing files: `arca repair packs` restores what it can",
                    r.orphans
                );
            }
            for s in &r.stray {
                eprintln!("warning: {}: stray file (not a repository file name); ignored", escape_str(s));
            }
            Ok(0)
        }
    }
}

/// `arca repair ...`.
#[derive(clap::Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild damaged or lost packs, index files and snapshots from their parity files
    /// (reads everything); exit 4 if something could not be rebuilt.
    Packs {
        /// Find and rebuild in memory, report, but write nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// Rebuild the index from the packs' own tables of contents (after index files were damaged
    /// or lost, or packs went missing); exit 4 if a pack cannot be indexed.
    Index {
        /// Read every pack whole and index it only if it hashes to its name and every blob in it
        /// authenticates (slow: reads all data); otherwise only tables of contents are read.
        #[arg(long)]
        read_all_packs: bool,
    },
    /// Rewrite damaged snapshots without what they lost: unreadable directories become empty,
    /// files keep the chunks that remain. Run `repair index` first.
    Snapshots {
        /// Snapshots to repair: ID prefixes or `latest` (default: every snapshot the filters select).
        snapshots: Vec<String>,
        /// Remove each damaged snapshot once its repaired replacement is written.
        #[arg(long)]
        forget: bool,
        /// Show what would be cut; write and remove nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
        #[command(flatten)]
        select: SelectArgs,
    },
}

/// `1 pack`, `2 packs`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

pub fn repair(g: &Global, c: RepairCommand) -> Result<u8> {
    let damaged = |bad: bool| if bad { Outcome::Damage } else { Outcome::Ok }.exit_code();
    match c {
        RepairCommand::Packs { dry_run } => {
            let r = admin::repair_packs(&g.scope, dry_run)?;
            for n in &r.unrepairable {
                eprintln!("error: {}: cannot be repaired: {}", escape_str(&n.file), escape_str(&n.detail));
            }
            if g.json {
                g.print_json(&r)?;
                return Ok(damaged(!r.ok()));
            }
            for (snap, paths) in &r.affected {
                println!("snapshot {} is damaged; affected paths:", &snap[..8.min(snap.len())]);
                for p in paths {
                    println!("  {}", escape(p.as_bytes()));
                }
            }
            if !g.quiet {
                let (verb, reverb) = if dry_run { ("would rebuild", "would rewrite") } else { ("rebuilt", "rewrote") };
                for n in &r.repaired {
                    println!("{verb} {}: {}", escape_str(&n.file), escape_str(&n.detail));
                }
                for n in &r.parity_rewritten {
                    println!("{reverb} {}: {}", escape_str(&n.file), escape_str(&n.detail));
                }
                let unprotected = match r.unprotected {
                    0 => String::new(),
                    n => format!("; {n} healthy files have no parity (`arca parity build`)"),
                };
                println!(
                    "read {} ({}): {verb} {}, {} not repairable{unprotected}",
                    count(r.files_checked as usize, "file"),
                    human(r.bytes_read),
                    count(r.repaired.len(), "file"),
                    r.unrepairable.len()
                );
                if !r.unrepairable.is_empty() {
                    println!("next: `arca repair index` for lost packs or index files, then `arca repair snapshots`");
                }
            }
            Ok(damaged(!r.ok()))
        }
        RepairCommand::Index { read_all_packs } => {
            let r = admin::repair_index(&g.scope, IndexRepairOptions { read_all_packs })?;
            for e in &r.damaged_index_files {
                eprintln!("warning: {}; replaced", escape_str(e));
            }
            for b in &r.unreadable {
                let lost = match b.blobs_lost {
                    0 => "any blobs it holds are missing now".to_string(),
                    n => format!("the {n} blobs the old index listed in it are missing now"),
                };
                eprintln!(
                    "error: {}; left out of the index: {lost} (run `arca repair snapshots`)",
                    escape_str(&b.error)
                );
            }
            if g.json {
                g.print_json(&r)?;
            } else if !g.quiet {
                let (packs, files) = (count(r.packs, "pack"), count(r.written.len(), "new index file"));
                println!(
                    "indexed {packs} ({} blobs) in {files}; removed {}",
                    r.blobs,
                    count(r.removed, "old index file")
                );
                if !r.adopted.is_empty() {
                    println!("adopted {} that no readable index file named", count(r.adopted.len(), "pack"));
                }
                if !r.dropped.is_empty() {
                    let n = count(r.dropped.len(), "pack");
                    println!("dropped the entries of {n} the old index named but that do not exist:");
                    for id in &r.dropped {
                        println!("  {id}");
                    }
                }
            }
            Ok(damaged(!r.unreadable.is_empty()))
        }
        RepairCommand::Snapshots { snapshots, forget, dry_run, select } => {
            let opts = SnapshotRepairOptions { dry_run, forget };
            let done = admin::repair_snapshots(&g.scope, &snapshots, &select.filter(), opts)?;
            let r = &done.report;
            for (_, e) in &done.damaged {
                let e = escape_str(&e.to_string());
                eprintln!("error: {e}; it cannot be repaired (remove the file once `arca check` has named it)");
            }
            for (id, why) in &r.failed {
                eprintln!("error: snapshot {}: {}; left as it is", id.short(), escape_str(why));
            }
            if g.json {
                let cut = |c: &arca::lifecycle::repair::CutPath| {
                    let mut v = serde_json::to_value(&c.cut).unwrap_or_default();
                    v["path"] = json!(String::from_utf8_lossy(&c.path));
                    v
                };
                let repaired: Vec<_> = r
                    .repaired
                    .iter()
                    .map(|s| {
                        json!({"old": s.old, "new": s.new, "forgotten": s.forgotten,
                                    "cuts": s.cuts.iter().map(cut).collect::<Vec<_>>(), "more_cuts": s.more_cuts})
                    })
                    .collect();
                let failed: Vec<_> = r.failed.iter().map(|(id, why)| json!({"snapshot": id, "error": why})).collect();
                g.print_json(&json!({"dry_run": dry_run, "repaired": repaired, "intact": r.intact, "failed": failed}))?;
            } else if !g.quiet {
                for s in &r.repaired {
                    match s.new {
                        Some(new) => println!(
                            "snapshot {} -> {} (tagged {})",
                            s.old.short(),
                            new.short(),
                            arca::lifecycle::repair::REPAIRED_TAG
                        ),
                        None => println!("snapshot {} would be rewritten", s.old.short()),
                    }
                    for c in &s.cuts {
                        match &c.cut {
                            Cut::EmptiedDir { error } => {
                                println!("  dir  {}: unreadable, now empty ({})", escape(&c.path), escape_str(error))
                            }
                            Cut::FileContent { missing, chunks, lost_bytes } => println!(
                                "  file {}: {missing} of {chunks} chunks missing ({}), dropped from its content",
                                escape(&c.path),
                                human(*lost_bytes)
                            ),
                        }
                    }
                    if s.more_cuts > 0 {
                        println!("  … and {} more", s.more_cuts);
                    }
                    if s.forgotten {
                        println!("  removed damaged snapshot {}", s.old.short());
                    } else if dry_run && forget {
                        println!("  would remove damaged snapshot {}", s.old.short());
                    }
                }
                let n = r.repaired.len();
                let verb = if dry_run { "would repair" } else { "repaired" };
                println!("{verb} {n} snapshot{}, {} intact", if n == 1 { "" } else { "s" }, r.intact);
            }
            Ok(damaged(!done.damaged.is_empty() || !r.failed.is_empty()))
        }
    }
}
