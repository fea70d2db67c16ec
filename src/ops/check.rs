//! `check`: the repository's structure, and with `--read-data` (or a subset) every byte,
//! recorded in the journal with what was read and found.

use super::journal::{set_label, set_metric, Op, Recorder};
use super::outcome::{HasOutcome, Outcome};
use super::scope::Scope;
use crate::check::{CheckOptions, CheckReport, Subset};
use crate::error::Result;

/// What to read.
#[derive(Clone, Debug, Default)]
pub struct CheckRequest {
    /// `--read-data`.
    pub read_data: bool,
    /// `--read-data-subset N/M|P%`.
    pub read_data_subset: Option<String>,
    /// Bytes of packs read, of those to read (for a progress display).
    pub progress: Option<std::sync::Arc<crate::progress::Meter>>,
}

impl CheckRequest {
    /// The data subset to read, if any (a bad subset is a usage error).
    pub fn subset(&self) -> Result<Option<Subset>> {
        Ok(match (&self.read_data_subset, self.read_data) {
            (Some(s), _) => Some(Subset::parse(s)?),
            (None, true) => Some(Subset::All),
            (None, false) => None,
        })
    }

    /// The journal's `read_data` label: `none`, `all` or the subset.
    pub fn label(&self) -> String {
        match (&self.read_data_subset, self.read_data) {
            (Some(s), _) => s.clone(),
            (None, true) => "all".into(),
            (None, false) => "none".into(),
        }
    }
}

/// A check's result.
pub struct Checked {
    /// The report.
    pub report: CheckReport,
    /// Data was asked for, yet the subset selected no pack (`1/30` of ten packs).
    pub none_read: bool,
}

impl HasOutcome for Checked {
    fn outcome(&self) -> Outcome {
        if self.report.ok() {
            Outcome::Ok
        } else if self.report.repairable_only() {
            Outcome::Repairable
        } else {
            Outcome::Damage
        }
    }
}

/// Run a check under a shared lock (none on read-only storage or with `--no-lock`).
pub fn check(scope: &Scope, req: &CheckRequest) -> Result<Checked> {
    // What the storage holds, not what a cache remembers.
    let ctx = &scope.ctx.uncached();
    let read_data = req.subset()?;
    let mut rec = Recorder::start(Some(Op::Check));
    let result = (|| {
        let repo = ctx.open_for(crate::ops::context::READERS, "check the repository")?;
        rec.attach(&repo);
        let _lock = ctx.lock_for_reading(&repo)?;
        let report = crate::check::check(&repo, &CheckOptions { read_data, progress: req.progress.as_deref() })?;
        let none_read = read_data.is_some() && report.packs > 0 && report.packs_read == 0;
        Ok(Checked { report, none_read })
    })();
    rec.fill(|r| {
        set_label(r, "read_data", req.label());
        if let Ok(c) = &result {
            let c = &c.report;
            r.bytes = c.bytes_read;
            // Every snapshot checked: with all data read and no problem, these are verified.
            r.snapshots.extend(c.snapshot_ids.iter().copied());
            set_metric(r, "problems", c.errors.len() as u64);
            // format-spec/21.6: how status tells repairable damage from the rest.
            set_metric(r, "repairable", c.repairable_files() as u64);
            set_metric(r, "unrepairable", c.unrepairable_problems() as u64);
            set_metric(r, "packs_read", c.packs_read as u64);
            set_metric(r, "snapshots", c.snapshots as u64);
            r.errors.extend(c.errors.iter().map(|e| format!("{}: {}", e.object, e.message)));
        }
    });
    if let Some(w) = rec.finish(result.outcome(), result.as_ref().err()) {
        ctx.notices.warn(&w);
    }
    result
}
