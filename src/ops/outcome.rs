//! How an operation ended, and what that means wherever it is read: the process exit code, the
//! outcome byte of its journal record (format-spec/21-journal.md §21.2) and how `status` counts
//! the record (§21.6). One table, so the three can never disagree.
//!
//! Operations return reports; each report says which [`Outcome`] it stands for, an error is
//! mapped by [`Outcome::of_error`], and the CLI only turns the outcome into an exit code.

use crate::error::Error;
use crate::format::journal::Outcome as Recorded;
use serde::Serialize;

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It did what was asked.
    Ok,
    /// It completed, but some entries were skipped (files a backup could not read, restore
    /// conflicts): what was produced is usable and says what it lacks.
    Partial,
    /// Refused before doing anything: a bad option, or a request that names nothing (an
    /// include pattern that matches nothing). A user error, never a backup failure.
    Usage,
    /// It failed: nothing (or nothing usable) was produced.
    Failed,
    /// Damage: stored data failed to authenticate or is missing, or restored data differs from
    /// the snapshot it came from.
    Damage,
    /// `verify`: live files differ from the snapshot. The repository is not damaged.
    Differs,
    /// An objective is missed: a recovery point older than its maximum age, a drill slower than
    /// its maximum restore time, a failing group, storage below its free-space threshold.
    Missed,
    /// `status`: a snapshot's size looks wrong (it shrank past the threshold, or is an empty
    /// stream).
    Anomaly,
    /// Damage that `arca repair packs` rebuilds from parity, and nothing worse: damaged parity
    /// files (the data is intact), or packs, index files and snapshots their parity rebuilds.
    /// Recorded in the journal as damage with the metric `repairable` (format-spec/21.6).
    Repairable,
    /// No repository at the location given.
    NoRepository,
    /// Another process holds a conflicting lock.
    Locked,
    /// No key opens with the password given.
    WrongPassword,
    /// The key's role may not do this (format-spec/24): refused before anything was written.
    Forbidden,
    /// Stopped by SIGINT (Ctrl-C) after removing its locks; safe to run again.
    Interrupted,
    /// Stopped by SIGTERM after removing its locks; safe to run again.
    Terminated,
}

/// One row of the table.
struct Row {
    outcome: Outcome,
    exit: u8,
    recorded: Recorded,
    name: &'static str,
}

/// The table: exit code (the README's table), journal outcome, name. Ordered by how bad an
/// outcome is when several operations (the components of a profile) report one each.
const TABLE: [Row; 15] = [
    Row { outcome: Outcome::Ok, exit: 0, recorded: Recorded::Ok, name: "ok" },
    Row { outcome: Outcome::Partial, exit: 3, recorded: Recorded::Partial, name: "partial" },
    Row { outcome: Outcome::Anomaly, exit: 7, recorded: Recorded::Missed, name: "anomaly" },
    Row { outcome: Outcome::Differs, exit: 5, recorded: Recorded::Differs, name: "differs" },
    Row { outcome: Outcome::Usage, exit: 2, recorded: Recorded::Refused, name: "usage" },
    Row { outcome: Outcome::Missed, exit: 6, recorded: Recorded::Missed, name: "missed" },
    Row { outcome: Outcome::Locked, exit: 11, recorded: Recorded::Failed, name: "locked" },
    Row { outcome: Outcome::WrongPassword, exit: 12, recorded: Recorded::Failed, name: "wrong_password" },
    Row { outcome: Outcome::Forbidden, exit: 13, recorded: Recorded::Refused, name: "forbidden" },
    Row { outcome: Outcome::NoRepository, exit: 10, recorded: Recorded::Failed, name: "no_repository" },
    Row { outcome: Outcome::Repairable, exit: 8, recorded: Recorded::Damage, name: "repairable" },
    Row { outcome: Outcome::Interrupted, exit: 130, recorded: Recorded::Failed, name: "interrupted" },
    Row { outcome: Outcome::Terminated, exit: 143, recorded: Recorded::Failed, name: "terminated" },
    Row { outcome: Outcome::Failed, exit: 1, recorded: Recorded::Failed, name: "failed" },
    Row { outcome: Outcome::Damage, exit: 4, recorded: Recorded::Damage, name: "damage" },
];

impl Outcome {
    fn row(self) -> &'static Row {
        TABLE.iter().find(|r| r.outcome == self).expect("every outcome has a row")
    }

    /// The process exit code (README, "Exit codes").
    pub fn exit_code(self) -> u8 {
        self.row().exit
    }

    /// The outcome an exit code stands for (1 for codes no row has).
    pub fn from_exit_code(code: u8) -> Outcome {
        TABLE.iter().find(|r| r.exit == code).map_or(Outcome::Failed, |r| r.outcome)
    }

    /// The outcome byte of the operation's journal record.
    pub fn recorded(self) -> Recorded {
        self.row().recorded
    }

    /// Its name in JSON output.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// What an error means: integrity failures are damage, bad arguments are usage errors.
    pub fn of_error(e: &Error) -> Outcome {
        match e.innermost() {
            Error::NotARepository(_) => Outcome::NoRepository,
            Error::Locked(_) => Outcome::Locked,
            Error::WrongPassword => Outcome::WrongPassword,
            Error::RoleDenied { .. } => Outcome::Forbidden,
            Error::Integrity { .. } => Outcome::Damage,
            Error::InvalidArgument(_) => Outcome::Usage,
            _ => Outcome::Failed,
        }
    }

    /// The worse of two outcomes (for a profile run: its exit code is its worst component's).
    pub fn worse(self, other: Outcome) -> Outcome {
        let rank = |o: Outcome| TABLE.iter().position(|r| r.outcome == o).unwrap_or(0);
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    /// How a process stopped by `signal` ends (128 + signal, as a shell reports it).
    pub fn of_signal(signal: i32) -> Outcome {
        if signal == libc::SIGTERM {
            Outcome::Terminated
        } else {
            Outcome::Interrupted
        }
    }

    /// Whether the operation did what was asked (possibly with skipped entries).
    pub fn succeeded(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Partial)
    }
}

/// The outcome of `Result`s whose value knows its own.
pub trait HasOutcome {
    /// The outcome this value stands for.
    fn outcome(&self) -> Outcome;
}

impl<T: HasOutcome> HasOutcome for crate::Result<T> {
    fn outcome(&self) -> Outcome {
        match self {
            Ok(v) => v.outcome(),
            Err(e) => Outcome::of_error(e),
        }
    }
}

/// One pass of an operation: the component (with a profile) and how it went. A profile run is
/// one per selected component, and ends as its worst.
pub struct Run<T> {
    /// The component, with a profile.
    pub component: Option<String>,
    /// What happened.
    pub result: crate::Result<T>,
}

impl<T: HasOutcome> HasOutcome for Run<T> {
    fn outcome(&self) -> Outcome {
        self.result.outcome()
    }
}

impl<T: HasOutcome> HasOutcome for Vec<Run<T>> {
    fn outcome(&self) -> Outcome {
        worst(self.iter().map(Run::outcome))
    }
}

/// The worst outcome of many (`Ok` for none).
pub fn worst(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
    outcomes.into_iter().fold(Outcome::Ok, Outcome::worse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_one_exit_code_and_back() {
        for r in &TABLE {
            assert_eq!(Outcome::from_exit_code(r.exit), r.outcome);
            assert_eq!(TABLE.iter().filter(|x| x.exit == r.exit).count(), 1);
        }
        assert_eq!(Outcome::from_exit_code(99), Outcome::Failed);
    }

    #[test]
    fn failures_are_worse_than_partial_and_damage_is_worst() {
        assert_eq!(Outcome::Ok.worse(Outcome::Partial), Outcome::Partial);
        assert_eq!(Outcome::Partial.worse(Outcome::Failed), Outcome::Failed);
        assert_eq!(Outcome::Failed.worse(Outcome::Damage), Outcome::Damage);
        assert_eq!(Outcome::Damage.worse(Outcome::Usage), Outcome::Damage);
        assert_eq!(worst([Outcome::Ok, Outcome::Differs, Outcome::Partial]), Outcome::Differs);
        // A verify difference is not damage, and a typo is not a failed backup.
        assert_eq!(Outcome::Differs.recorded(), Recorded::Differs);
        assert_eq!(Outcome::Usage.recorded(), Recorded::Refused);
    }
}
