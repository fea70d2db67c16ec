//! Showing an operation's [`Progress`] while it runs, as restic does: on a terminal a status
//! line on stderr (done of total, percent, throughput, ETA); with `--json` restic's status
//! lines on stdout (`"message_type":"status"`, one per interval, before the summary object);
//! `-v` lists new and modified files, `-vv` every file. Nothing on a non-terminal without
//! `--json`, nothing with `--quiet`.
//!
//! The interval is a second for JSON and a tenth of one on a terminal; `ARCA_PROGRESS_FPS`
//! (restic's `RESTIC_PROGRESS_FPS`) sets the updates per second for both, at most 60.

use super::output::escape;
use super::{duration_str, human, Global};
use arca::progress::{FileChange, FileHook, Meter, Progress, Status};
use serde_json::json;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which operation's words and JSON fields.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Files saved, with totals from the scan-ahead.
    Backup,
    /// Files restored (or, for verify and drill, compared and restored).
    Restore,
}

/// Where progress goes.
#[derive(Clone, Copy, PartialEq)]
enum Sink {
    Nowhere,
    Terminal,
    Json,
}

/// The display of one run; dropping it stops the updates (before the summary is printed).
pub struct Live {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    bar: Option<indicatif::ProgressBar>,
}

/// Progress for an operation of `kind`, and its display. `verbose` says whether the operation
/// reports files for `-v` (backup does).
pub fn start(g: &Global, kind: Kind, verbose: bool) -> (Arc<Progress>, Live) {
    let sink = match () {
        _ if g.quiet => Sink::Nowhere,
        _ if g.json => Sink::Json,
        _ if std::io::stderr().is_terminal() => Sink::Terminal,
        _ => Sink::Nowhere,
    };
    let bar = (sink == Sink::Terminal).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").unwrap());
        bar
    });
    let on_file = (verbose && !g.quiet && g.verbose > 0).then(|| file_lines(g.json, g.verbose, bar.clone()));
    let progress = Arc::new(Progress::new(sink != Sink::Nowhere, on_file));
    if sink == Sink::Nowhere {
        return (progress, Live { stop: None, thread: None, bar });
    }
    let (tx, rx) = mpsc::channel();
    let (p, b) = (progress.clone(), bar.clone());
    let thread = std::thread::spawn(move || tick(&p, kind, b, &rx, interval(sink)));
    (progress, Live { stop: Some(tx), thread: Some(thread), bar })
}

impl Drop for Live {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// The time between updates.
fn interval(sink: Sink) -> Duration {
    let fps = std::env::var("ARCA_PROGRESS_FPS").ok().and_then(|v| v.trim().parse::<f64>().ok());
    match fps {
        Some(f) if f > 0.0 => Duration::from_secs_f64(1.0 / f.min(60.0)),
        _ if sink == Sink::Json => Duration::from_secs(1),
        _ => Duration::from_millis(100),
    }
}

/// Update the display every `every` until the sender is dropped.
fn tick(p: &Progress, kind: Kind, bar: Option<indicatif::ProgressBar>, stop: &mpsc::Receiver<()>, every: Duration) {
    let t0 = Instant::now();
    // Totals still being counted may grow: the percentage shown never goes back.
    let mut floor = 0.0f64;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let mut s = p.status(t0.elapsed());
        floor = floor.max(s.percent);
        s.percent = floor;
        match &bar {
            Some(b) => {
                b.set_message(line(kind, &s));
                b.tick();
            }
            None => println!("{}", status_json(kind, &s, p)),
        }
    }
    // As restic does, a last status line with the final counts before the summary: a run
    // shorter than one interval still reports its totals.
    if bar.is_none() {
        let mut s = p.status(t0.elapsed());
        s.percent = floor.max(s.percent);
        println!("{}", status_json(kind, &s, p));
    }
}

/// One status line for the terminal.
fn line(kind: Kind, s: &Status) -> String {
    let verb = match kind {
        Kind::Backup => "",
        Kind::Restore => " restored",
    };
    if s.total_bytes == 0 && s.total_files == 0 {
        return format!("{} files{verb}, {}, {}/s", s.files, human(s.bytes), human(s.rate as u64));
    }
    let more = if s.totals_final { "" } else { "+" };
    let eta = s.remaining.map_or(String::new(), |r| format!(", ETA {}", duration_str(r.as_nanos() as u64)));
    format!(
        "{:.1}%  {} of {}{more} files{verb}, {} of {}{more}, {}/s{eta}",
        s.percent * 100.0,
        s.files,
        s.total_files,
        human(s.bytes),
        human(s.total_bytes),
        human(s.rate as u64)
    )
}

/// Bytes done of a total, for the status line of a step that has one: `1.20 GiB of 3.40 GiB
/// (35.3%), 40.00 MiB/s, ETA 56s`; `0 B` before the step starts.
pub fn meter(m: &Meter) -> String {
    let Some(s) = m.status() else { return human(0) };
    let eta = s.remaining.map_or(String::new(), |r| format!(", ETA {}", duration_str(r.as_nanos() as u64)));
    format!(
        "{} of {} ({:.1}%), {}/s{eta}",
        human(s.bytes),
        human(s.total_bytes),
        s.percent * 100.0,
        human(s.rate as u64)
    )
}

/// One status object, with restic's field names.
fn status_json(kind: Kind, s: &Status, p: &Progress) -> serde_json::Value {
    let mut v = match kind {
        Kind::Backup => json!({
            "message_type": "status", "seconds_elapsed": s.elapsed.as_secs(), "percent_done": s.percent,
            "total_files": s.total_files, "files_done": s.files, "total_bytes": s.total_bytes,
            "bytes_done": s.bytes,
            "current_files": p.current_files().iter().map(|f| f.to_string_lossy().into_owned()).collect::<Vec<_>>(),
        }),
        Kind::Restore => json!({
            "message_type": "status", "seconds_elapsed": s.elapsed.as_secs(), "percent_done": s.percent,
            "total_files": s.total_files, "files_restored": s.files, "total_bytes": s.total_bytes,
            "bytes_restored": s.bytes,
        }),
    };
    // As restic, only when known.
    if let Some(r) = s.remaining {
        v["seconds_remaining"] = json!(r.as_secs());
    }
    v
}

/// `-v`: `new`/`modified` files; `-vv`: `unchanged` ones too. A line each on stdout (restic's
/// words, padded), or with `--json` restic's `verbose_status` objects.
fn file_lines(as_json: bool, level: u8, bar: Option<indicatif::ProgressBar>) -> FileHook {
    Box::new(move |path: &Path, change: FileChange, size: u64| {
        if change == FileChange::Unchanged && level < 2 {
            return;
        }
        let text = if as_json {
            json!({"message_type": "verbose_status", "action": change.word(),
                   "item": path.to_string_lossy(), "data_size": size})
            .to_string()
        } else {
            format!("{:<9} {}", change.word(), escape(path.as_os_str().as_encoded_bytes()))
        };
        match &bar {
            Some(b) => b.suspend(|| println!("{text}")),
            None => println!("{text}"),
        }
    })
}
