//! Prune (format-spec/17-consistency.md §17.7): delete the packs no snapshot uses and repack
//! the partly used ones.
//!
//! [`plan`] reads the repository and decides, writing nothing; `--dry-run` stops there.
//! [`Plan::execute`] consumes the plan, so it runs once, through the steps of the spec's table
//! in order ([`Step`]). Backups keep running while the plan is made and packs are repacked
//! (under a shared lock); only the commit — reconcile with what backups wrote meanwhile, write
//! the new index, remove the old index and the packs — holds the exclusive lock.
//!
//! Memory: the index every command loads (40 B per distinct blob) plus one bit per blob for the
//! used set, and a few dozen bytes per pack. Trees are walked breadth-first, each tree once
//! (its bit is set when first reached), so a snapshot of shared subtrees costs what its distinct
//! trees cost, and no recursion depends on repository data.

mod execute;
mod plan;
mod reach;
mod retention;

pub use execute::PruneReport;
pub use plan::{plan, PackAction, PackPlan, Plan, PlanStats};
pub use retention::{Extended, RetentionStats};

use crate::error::{Error, Result};
use serde::Serialize;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How much unused space may remain after prune.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum MaxUnused {
    /// At most this percentage (0–100) of the repository after prune.
    Percent(f64),
    /// At most this many bytes.
    Bytes(u64),
    /// Any amount: only packs with no used blob are deleted; nothing is repacked.
    Unlimited,
}

impl MaxUnused {
    /// Parse `5%`, `0`, `200M`/`1G` (binary units) or `unlimited`.
    pub fn parse(s: &str) -> Result<MaxUnused> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("unlimited") {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if (0.0..100.0).contains(&v) => Ok(MaxUnused::Percent(v)),
                _ => Err(Error::InvalidArgument(format!("--max-unused {s:?}: a percentage from 0 to below 100"))),
            };
        }
        parse_size(t).map(MaxUnused::Bytes).map_err(|e| Error::InvalidArgument(format!("--max-unused {s:?}: {e}")))
    }

    /// Unused bytes tolerated when `used` bytes remain in use.
    pub fn allowed(&self, used: u64) -> u64 {
        match *self {
            MaxUnused::Percent(p) => (used as f64 * p / (100.0 - p)) as u64,
            MaxUnused::Bytes(b) => b,
            MaxUnused::Unlimited => u64::MAX,
        }
    }
}

/// Parse a size: a number with an optional binary unit `K`, `M`, `G`, `T` (optionally followed
/// by `iB` or `B`).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| "expected a number with an optional unit K, M, G or T".to_string())?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        u => return Err(format!("unknown unit {u:?} (K, M, G, T)")),
    };
    n.checked_mul(1 << shift).ok_or_else(|| "too large".to_string())
}

/// The steps of a prune, in the order of the spec's table (§17.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// 1: used blobs marked, every pack classified; nothing written.
    Plan,
    /// 2: the used blobs of partly used packs copied into new packs.
    Repack,
    /// 3: index files for the new packs written; the shared lock released.
    IndexRepacks,
    /// 4: the exclusive lock taken.
    Lock,
    /// 5: snapshots and index files written meanwhile accounted for.
    Reconcile,
    /// 6: the new index written.
    WriteIndex,
    /// 7: the old index files removed.
    RemoveIndex,
    /// 8: the unused packs removed.
    RemovePacks,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 8] = [
        Step::Plan,
        Step::Repack,
        Step::IndexRepacks,
        Step::Lock,
        Step::Reconcile,
        Step::WriteIndex,
        Step::RemoveIndex,
        Step::RemovePacks,
    ];

    /// The step's name, as in `--json` and the crash-injection hook.
    pub fn name(self) -> &'static str {
        match self {
            Step::Plan => "plan",
            Step::Repack => "repack",
            Step::IndexRepacks => "index-repacks",
            Step::Lock => "lock",
            Step::Reconcile => "reconcile",
            Step::WriteIndex => "write-index",
            Step::RemoveIndex => "remove-index",
            Step::RemovePacks => "remove-packs",
        }
    }

    /// The step called `name`.
    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Called after each step; an error stops the prune there, as a crash would (test hook).
pub type StepHook = Arc<dyn Fn(Step) -> Result<()> + Send + Sync>;

/// Options of a prune.
#[derive(Clone)]
pub struct PruneOptions {
    /// Unused space tolerated after prune (default 5%).
    pub max_unused: MaxUnused,
    /// Read at most this many bytes of packs for repacking.
    pub max_repack_bytes: Option<u64>,
    /// How long to wait for the locks (the exclusive one waits for running backups).
    pub retry_lock: Duration,
    /// Test hook, not a stable API: run after each step.
    #[doc(hidden)]
    pub after_step: Option<StepHook>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: MaxUnused::Percent(5.0),
            max_repack_bytes: None,
            retry_lock: Duration::ZERO,
            after_step: None,
        }
    }
}

impl PruneOptions {
    fn reached(&self, step: Step) -> Result<()> {
        match &self.after_step {
            Some(hook) => hook(step),
            None => Ok(()),
        }
    }
}

/// Live counters a progress display can poll.
#[derive(Default)]
pub struct Progress {
    /// What prune is doing now.
    pub phase: Mutex<&'static str>,
    /// Snapshots walked.
    pub snapshots: AtomicU64,
    /// Trees read.
    pub trees: AtomicU64,
    /// Bytes of packs read for repacking, of those to repack.
    pub repack: crate::progress::Meter,
    /// Files removed.
    pub removed: AtomicU64,
}

impl Progress {
    fn phase(&self, p: &'static str) {
        *self.phase.lock().unwrap() = p;
    }
}
