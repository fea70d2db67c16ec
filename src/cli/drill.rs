//! `arca drill [SNAP[:PATH]]`: restore into a scratch directory, verify every byte and the
//! metadata, measure the restore time (RTO) and the snapshot's age (RPO), clean up.

use super::output::{escape, escape_str, plural};
use super::select::SelectArgs;
use super::{human, time_str, Global};
use anyhow::Result;
use arca::ops::drill::{self, DrillOptions, DrillRequest, Drilled, Sample, SampleBy};
use arca::restore::MetaOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

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
    /// Recovery time objective: the drill fails (exit 6) when the full-restore time it measures
    /// or extrapolates is longer (default: each component's max-rto).
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
    max_rto: Option<std::time::Duration>,
    #[command(flatten)]
    select: SelectArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum SampleByArg {
    Files,
    Bytes,
}

fn parse_share(s: &str) -> Result<f64, String> {
    Sample::parse_share(s).map_err(|e| e.to_string())
}

/// After SIGINT or SIGTERM (`super::interrupted`): remove the scratch directory of the drill
/// in progress, and say so.
pub(super) fn after_interrupt() -> Option<String> {
    drill::remove_active_scratch().map(|p| format!("interrupted; removed the scratch directory {}", p.display()))
}

/// Test hooks: `ARCA_TEST_DRILL_HOOK=corrupt` flips the first byte of one non-empty restored
/// file (keeping its mtime) before it is read back, to prove verification reads the bytes, and
/// `=chmod` flips one file's other-write bit, to prove the metadata is read back;
/// `=pause` creates `drill-paused` next to the scratch directory once all is restored and sleeps,
/// so a test can signal a drill in progress.
fn set_test_hooks(opts: &mut DrillOptions) {
    let once = |f: fn(&std::fs::File)| {
        let done = std::sync::atomic::AtomicBool::new(false);
        Some(Arc::new(move |file: &std::fs::File, _: &Path| {
            if !done.swap(true, Ordering::SeqCst) {
                f(file)
            }
        }) as arca::restore::VerifyHook)
    };
    match std::env::var("ARCA_TEST_DRILL_HOOK").as_deref() {
        Ok("corrupt") => {
            let done = std::sync::atomic::AtomicBool::new(false);
            opts.before_verify = Some(Arc::new(move |f: &std::fs::File, _: &Path| {
                if f.metadata().is_ok_and(|m| m.len() > 0) && !done.swap(true, Ordering::SeqCst) {
                    corrupt(f);
                }
            }));
        }
        Ok("chmod") => {
            // After the metadata is applied: a change made before it would be undone by it.
            opts.before_verify_meta = once(|f| {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(md) = f.metadata() {
                    let _ = f.set_permissions(std::fs::Permissions::from_mode(md.mode() ^ 0o002));
                }
            })
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
    let sample = a.sample.map(|share| Sample {
        share,
        by: match a.sample_by {
            SampleByArg::Files => SampleBy::Files,
            SampleByArg::Bytes => SampleBy::Bytes,
        },
        seed: a.seed.unwrap_or_else(drill::random_seed),
    });
    let mut options =
        DrillOptions { meta: MetaOptions { no_owner: a.no_owner, ..Default::default() }, ..Default::default() };
    set_test_hooks(&mut options);
    let mut req = DrillRequest {
        reference: a.snapshot,
        filter: a.select.filter(),
        sample,
        scratch: a.scratch.unwrap_or_else(std::env::temp_dir),
        keep: a.keep,
        max_rto: a.max_rto,
        options,
    };
    let runs = {
        let (progress, _live) = super::progress::start(g, super::progress::Kind::Restore, false);
        drill::drill(&g.scope, &mut req, &progress)?
    };
    super::restore::render(g, runs, show)
}

fn secs(ns: u64) -> String {
    let s = ns as f64 / 1e9;
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        humantime::format_duration(std::time::Duration::from_secs(s.round() as u64)).to_string()
    }
}

/// Print the text report (problems to stderr in any case); return the JSON report.
fn show(g: &Global, d: &Drilled) -> serde_json::Value {
    let r = &d.report;
    for x in &r.damage {
        eprintln!("damage: {}", escape_str(x));
    }
    for e in &r.errors {
        eprintln!("error: {}", escape_str(e));
    }
    if let Some(c) = d.verify_command.as_ref().filter(|c| !c.ok) {
        eprintln!("error: verify-command: {}", escape_str(c.error.as_deref().unwrap_or("failed")));
    }
    let mut v = serde_json::to_value(d).unwrap_or_default();
    v["ok"] = serde_json::json!(r.ok() && d.verify_command.as_ref().is_none_or(|c| c.ok));
    if g.json {
        return v;
    }
    for m in &r.mismatches {
        println!("mismatch {}: {}", m.kind, escape(m.path.as_os_str().as_bytes()));
    }
    if g.quiet {
        return v;
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
        "restored {}, {}, {} in {} ({}/s); verified in {}",
        plural(r.drilled.files, "file", "files"),
        plural(r.drilled.others, "other entry", "other entries"),
        human(r.drilled.bytes),
        secs(r.restore_ns),
        human(r.bytes_per_sec),
        secs(r.verify_ns)
    );
    let objective = match (d.max_rto_ns, d.rto_met) {
        (Some(m), Some(true)) => format!(", within max-rto {}", secs(m)),
        (Some(m), _) => format!(", MISSES max-rto {}", secs(m)),
        _ => String::new(),
    };
    match r.sample {
        Some(_) => println!(
            "RTO: {} for the full {} in {} (extrapolated, {} model){objective}",
            secs(r.rto_extrapolated_ns),
            human(r.scope.bytes),
            plural(r.scope.files, "file", "files"),
            r.model.kind
        ),
        None => println!("RTO: {} (measured){objective}", secs(r.rto_measured_ns)),
    }
    println!("RPO: snapshot age {}", secs(r.age_ns));
    if let Some(c) = &d.verify_command {
        println!("verify-command `{}`: {}", escape_str(&c.command), if c.ok { "passed" } else { "FAILED" });
    }
    if let Some(p) = &d.scratch_kept {
        println!("scratch directory kept: {} (the restore is in {}/)", p.display(), drill::RESTORE_DIR);
    }
    let problems = r.damage.len()
        + r.errors.len()
        + r.mismatches.len()
        + usize::from(!v["ok"].as_bool().unwrap_or(true) && r.ok());
    match problems {
        0 => println!("drill passed: every byte and all metadata match the snapshot"),
        n => println!("drill FAILED: {}", plural(n as u64, "problem", "problems")),
    }
    v
}
