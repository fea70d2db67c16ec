//! `arca drill [SNAP[:PATH]]`: restore into a scratch directory, verify every byte and the
//! metadata, measure the restore time (RTO) and the snapshot's age (RPO), clean up.

use super::output::{escape, escape_str};
use super::select::SelectArgs;
use super::{code, human, snap, time_str, Global};
use anyhow::{anyhow, Result};
use arca::archiver::Progress;
use arca::ops::drill::{self, DrillOptions, DrillReport, Sample, SampleBy, Scratch};
use arca::restore::MetaOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

#[derive(clap::Args, Debug)]
pub struct DrillArgs {
    /// SNAP[:PATH]: the snapshot, or the directory or file in it, to drill.
    #[arg(default_value = "latest")]
    snapshot: String,
    /// Drill a random sample: this share of the files (or, with --sample-by bytes, of the bytes),
    /// e.g. `5%`. The full-restore time is then extrapolated.
    #[arg(long, value_name = "PERCENT", value_parser = parse_share)]
    sample: Option<f64>,
    /// What --sample's share is of.
    #[arg(long, value_enum, default_value_t = SampleByArg::Files, requires = "sample")]
    sample_by: SampleByArg,
    /// Seed of the random sample, to repeat a drill exactly (default: random, and reported).
    #[arg(long, value_name = "N", requires = "sample")]
    seed: Option<u64>,
    /// Where to make the scratch directory (default: the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
    /// Keep the scratch directory for inspection (its path is reported).
    #[arg(long)]
    keep: bool,
    /// Do not restore or compare ownership (it is only done as root anyway).
    #[arg(long)]
    no_owner: bool,
    #[command(flatten)]
    select: SelectArgs,
    /// With --profile: drill the snapshot (`latest`, or an ID) of each component.
    #[command(flatten)]
    profile: super::profile::ProfileArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum SampleByArg {
    Files,
    Bytes,
}

fn parse_share(s: &str) -> Result<f64, String> {
    Sample::parse_share(s).map_err(|e| e.to_string())
}

/// The scratch directory to remove if a signal ends the drill (`None` when kept or done).
static SCRATCH: Mutex<Option<PathBuf>> = Mutex::new(None);
/// The signal received, 0 for none.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe: only an atomic store; a watcher thread does the rest.
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// On SIGINT or SIGTERM, remove the scratch directory and exit 128+signal. The handler only
/// records the signal; a thread polls for it, since removing a tree is not signal-safe.
fn watch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    std::thread::spawn(|| loop {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let sig = SIGNAL.load(Ordering::SeqCst);
        if sig != 0 {
            if let Some(p) = SCRATCH.lock().unwrap().take() {
                // Restore threads may still be adding entries: try twice.
                if drill::remove_tree(&p).is_err() {
                    let _ = drill::remove_tree(&p);
                }
                eprintln!("interrupted; removed the scratch directory {}", p.display());
            }
            std::process::exit(128 + sig);
        }
    });
}

/// Test hooks: `ARCA_TEST_DRILL_HOOK=corrupt` flips the first byte of one non-empty restored
/// file (keeping its mtime) before it is read back, to prove verification reads the bytes, and
/// `=chmod` flips one file's other-write bit, to prove the metadata is read back;
/// `=pause` creates `drill-paused` next to the scratch directory once all is restored and sleeps,
/// so a test can signal a drill in progress.
fn set_test_hooks(opts: &mut DrillOptions) {
    match std::env::var("ARCA_TEST_DRILL_HOOK").as_deref() {
        Ok("corrupt") => {
            let done = std::sync::atomic::AtomicBool::new(false);
            opts.before_verify = Some(std::sync::Arc::new(move |f: &std::fs::File, _: &Path| {
                if f.metadata().is_ok_and(|m| m.len() > 0) && !done.swap(true, Ordering::SeqCst) {
                    corrupt(f);
                }
            }));
        }
        Ok("chmod") => {
            let done = std::sync::atomic::AtomicBool::new(false);
            opts.before_verify = Some(std::sync::Arc::new(move |f: &std::fs::File, _: &Path| {
                use std::os::unix::fs::PermissionsExt;
                if !done.swap(true, Ordering::SeqCst) {
                    if let Ok(md) = f.metadata() {
                        let _ = f.set_permissions(std::fs::Permissions::from_mode(md.mode() ^ 0o002));
                    }
                }
            }));
        }
        Ok("pause") => {
            opts.after_restore = Some(Box::new(|root: &Path| {
                if let Some(parent) = root.parent() {
                    let _ = std::fs::write(parent.join("drill-paused"), b"");
                }
                std::thread::sleep(std::time::Duration::from_secs(60));
            }))
        }
        _ => {}
    }
}

/// Flip a file's first byte, keeping its mtime.
fn corrupt(f: &std::fs::File) {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8];
    let Ok(md) = f.metadata() else { return };
    if f.read_exact_at(&mut b, 0).is_ok() && f.write_all_at(&[b[0] ^ 0xff], 0).is_ok() {
        if let Ok(t) = md.modified() {
            let _ = f.set_modified(t);
        }
    }
}

pub fn run(g: &Global, a: DrillArgs) -> Result<u8> {
    if a.profile.is_set() {
        return super::profile::each_component(g, &a.profile, Some(arca::ops::journal::Op::Drill), |g, t| {
            let sel = a.select.clone().with_tags(&t.filter.tags);
            drill_selected(g, &a.snapshot, &sel, &a)
        });
    }
    let (status, doc) = drill_selected(g, &a.snapshot, &a.select, &a)?;
    if g.json {
        g.print_json(&doc)?;
    }
    Ok(status)
}

/// Drill `reference` among the snapshots `sel` selects, with the settings of `a` (its own
/// `snapshot` and `select` are not used): a component's drill passes a tag filter here. Prints
/// the text report; returns the exit code and the JSON report.
fn drill_selected(g: &Global, reference: &str, sel: &SelectArgs, a: &DrillArgs) -> Result<(u8, serde_json::Value)> {
    let ((repo, index, id, snapshot, node, path), _lock) = snap::locate_locked(g, reference, sel)?;
    let sample = a.sample.map(|share| Sample {
        share,
        by: match a.sample_by {
            SampleByArg::Files => SampleBy::Files,
            SampleByArg::Bytes => SampleBy::Bytes,
        },
        seed: a.seed.unwrap_or_else(drill::random_seed),
    });
    let parent = a.scratch.clone().unwrap_or_else(std::env::temp_dir);
    let mut scratch = Scratch::create(&parent).map_err(|e| {
        anyhow!("cannot create a scratch directory in {}: {}", parent.display(), super::error_text(&e.into()))
    })?;
    if a.keep {
        scratch.keep();
    } else {
        *SCRATCH.lock().unwrap() = Some(scratch.path().to_path_buf());
    }
    watch_signals();
    let mut opts = DrillOptions {
        scratch: scratch.path().to_path_buf(),
        sample,
        meta: MetaOptions { no_owner: a.no_owner, ..Default::default() },
        ..Default::default()
    };
    set_test_hooks(&mut opts);
    let progress: &'static Progress = Box::leak(Box::default());
    let bar = snap::progress_bar(g, progress);
    let res = drill::drill(&repo, &index, id, &snapshot, &node, &path, &opts, progress);
    if let Some((b, h)) = bar {
        b.finish_and_clear();
        let _ = h.join();
    }
    // From here the scratch directory is removed by this thread (or kept), not by a signal.
    SCRATCH.lock().unwrap().take();
    let kept = a.keep.then(|| scratch.path().to_path_buf());
    let removal = if a.keep { Ok(()) } else { scratch.remove() };
    let report = res?;
    g.journal(|r| journal_drill(r, &report));
    if let Err(e) = removal {
        eprintln!("warning: could not remove the scratch directory: {e}");
    }
    let doc = print(g, &report, kept.as_deref())?;
    let status = if report.damage.is_empty() && report.mismatches.is_empty() && !report.errors.is_empty() {
        code::ERROR
    } else if report.ok() {
        code::OK
    } else {
        code::INTEGRITY
    };
    Ok((status, doc))
}

/// The drill's journal record (format-spec 21.2: labels `path`, `sample`, `seed`; metrics
/// `rto_ns`, `rto_full_ns`, `bytes_per_sec`, `sample_permille`).
fn journal_drill(r: &mut arca::ops::journal::Record, d: &DrillReport) {
    use arca::ops::journal::{set_label, set_metric};
    // The snapshot and `path` are already on the record (`locate_locked`).
    (r.bytes, r.files) = (d.drilled.bytes, d.drilled.files);
    r.errors.extend(d.damage.iter().chain(&d.errors).cloned());
    r.errors.extend(d.mismatches.iter().map(|m| format!("{}: {} differs", m.path.display(), m.kind)));
    if let Some(s) = &d.sample {
        let by = if s.by == SampleBy::Files { "files" } else { "bytes" };
        set_label(r, "sample", format!("{}% {by}", s.share * 100.0));
        set_label(r, "seed", s.seed.to_string());
        set_metric(r, "sample_permille", s.permille());
    }
    set_metric(r, "rto_ns", d.rto_measured_ns);
    set_metric(r, "rto_full_ns", d.rto_extrapolated_ns);
    set_metric(r, "bytes_per_sec", d.bytes_per_sec);
}

fn secs(ns: u64) -> String {
    let s = ns as f64 / 1e9;
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        humantime::format_duration(std::time::Duration::from_secs(s.round() as u64)).to_string()
    }
}

/// Print the text report (errors to stderr in any case); return the JSON report.
fn print(g: &Global, r: &DrillReport, kept: Option<&Path>) -> Result<serde_json::Value> {
    for d in &r.damage {
        eprintln!("damage: {}", escape_str(d));
    }
    for e in &r.errors {
        eprintln!("error: {}", escape_str(e));
    }
    let mut v = serde_json::to_value(r)?;
    v["ok"] = serde_json::json!(r.ok());
    v["scratch_kept"] = serde_json::json!(kept);
    if g.json {
        return Ok(v);
    }
    for m in &r.mismatches {
        println!("mismatch {}: {}", m.kind, escape(m.path.as_os_str().as_bytes()));
    }
    if g.quiet {
        return Ok(v);
    }
    let what = match &r.sample {
        None => "all".to_string(),
        Some(s) => format!(
            "sample of {:.1}% by {} (seed {})",
            s.share * 100.0,
            if s.by == SampleBy::Files { "files" } else { "bytes" },
            s.seed
        ),
    };
    println!(
        "drill of snapshot {} {} ({}), {what}",
        r.snapshot.short(),
        escape_str(&r.path),
        time_str(r.snapshot_time)
    );
    println!(
        "restored {} files, {} other entries, {} in {} ({}/s); verified in {}",
        r.drilled.files,
        r.drilled.others,
        human(r.drilled.bytes),
        secs(r.restore_ns),
        human(r.bytes_per_sec),
        secs(r.verify_ns)
    );
    if r.sample.is_some() {
        println!(
            "RTO: {} for the full {} in {} files (extrapolated, {} model)",
            secs(r.rto_extrapolated_ns),
            human(r.scope.bytes),
            r.scope.files,
            r.model.kind
        );
    } else {
        println!("RTO: {} (measured)", secs(r.rto_measured_ns));
    }
    println!("RPO: snapshot age {}", secs(r.age_ns));
    if let Some(p) = kept {
        println!("scratch directory kept: {} (the restore is in {}/)", p.display(), drill::RESTORE_DIR);
    }
    let problems = r.damage.len() + r.errors.len() + r.mismatches.len();
    if problems == 0 {
        println!("drill passed: every byte and all metadata match the snapshot");
    } else {
        println!("drill FAILED: {problems} problem(s)");
    }
    Ok(v)
}
