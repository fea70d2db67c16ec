//! Retention the storage enforces: S3 Object Lock (issue 22, "deletion enforced by the
//! storage"; format-spec/17-consistency.md §17.12).
//!
//! A bucket with Object Lock keeps every object version until its *retain-until date*; the
//! bucket's default retention (a mode and a number of days) gives each new version one, so
//! nothing depends on a client remembering to ask. Object Lock implies versioning, which
//! changes what a DELETE means:
//! - a DELETE that names no version never fails and destroys nothing: it adds a *delete
//!   marker*, which hides the object from listings and reads while its version stays (under
//!   its retention, billed). arca's ordinary removals (locks, `forget`'s snapshots, journal
//!   compaction) are such DELETEs: the repository no longer sees the file, the storage still
//!   holds it, and an administrator can bring it back by removing the marker;
//! - a DELETE of a version (`?versionId=`) destroys it, and the storage refuses it while the
//!   version is retained. `prune` frees space only this way, and only for versions whose
//!   retention has lapsed: what it reports as removed is gone.
//!
//! Every date is the store's: "now" is the `Date` header of the answer that carried the
//! retention, so a client whose clock is off neither extends too little nor deletes too early.

use super::FileType;
use crate::error::{Error, Result};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// An Object Lock retention mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Users with `s3:BypassGovernanceRetention` may shorten or remove the retention.
    Governance,
    /// Nobody, not even the account's root user, can shorten it before it ends.
    Compliance,
}

impl Mode {
    /// `governance` or `compliance`.
    pub fn parse(s: &str) -> Result<Mode> {
        match s.to_ascii_lowercase().as_str() {
            "governance" => Ok(Mode::Governance),
            "compliance" => Ok(Mode::Compliance),
            _ => Err(Error::InvalidArgument(format!("object lock mode {s:?}: governance or compliance"))),
        }
    }

    /// As S3 writes it: `GOVERNANCE`, `COMPLIANCE`.
    pub fn s3_name(self) -> &'static str {
        match self {
            Mode::Governance => "GOVERNANCE",
            Mode::Compliance => "COMPLIANCE",
        }
    }

    /// From S3's spelling.
    pub fn from_s3(s: &str) -> Option<Mode> {
        match s.trim() {
            "GOVERNANCE" => Some(Mode::Governance),
            "COMPLIANCE" => Some(Mode::Compliance),
            _ => None,
        }
    }
}

/// A bucket's default retention: every new object version is retained this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// The mode new versions get.
    pub mode: Mode,
    /// Whole days (S3 states default retention in days or years only).
    pub days: u32,
}

/// Longest default retention accepted: 100 years, as S3 allows.
pub const MAX_DAYS: u32 = 36_500;

/// A retained object whose listing date and retain-until date differ by less than this still
/// counts as retained for the whole policy: the store stamps both, but not at the same instant.
pub const SLACK: Duration = Duration::from_secs(300);

impl Policy {
    /// `--object-lock DURATION [--object-lock-mode MODE]`: a duration of whole days (`30d`,
    /// `90days`, `2weeks`, `1y` as 365 days), at least one.
    pub fn parse(duration: &str, mode: &str) -> Result<Policy> {
        let bad = |why: &str| Error::InvalidArgument(format!("--object-lock {duration:?}: {why}"));
        let t = duration.trim();
        // humantime's year is 365.25 days; S3's is 365.
        let secs = match t.strip_suffix('y').or_else(|| t.strip_suffix("years")).or_else(|| t.strip_suffix("year")) {
            Some(n) if n.trim().parse::<u64>().is_ok() => {
                n.trim().parse::<u64>().unwrap_or(0).checked_mul(365 * 86_400).ok_or_else(|| bad("too long"))?
            }
            _ => humantime::parse_duration(t).map_err(|_| bad("a duration in days, e.g. 30d or 1y"))?.as_secs(),
        };
        if secs == 0 || secs % 86_400 != 0 {
            return Err(bad("S3 retains for whole days: give a multiple of a day (30d, 1y)"));
        }
        let days =
            u32::try_from(secs / 86_400).ok().filter(|d| *d <= MAX_DAYS).ok_or_else(|| bad("at most 100 years"))?;
        Ok(Policy { mode: Mode::parse(mode)?, days })
    }

    /// The retention period.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.days) * 86_400)
    }

    /// Whether a version retained `until`, as the store says `now`, should be extended: less
    /// than half the period remains (or none at all).
    pub fn wants_extension(&self, until: Option<SystemTime>, now: SystemTime) -> bool {
        until.is_none_or(|u| u < now + self.duration() / 2)
    }

    /// The mode an extension sets on a version that has `current`: never weaker than it was
    /// (S3 refuses compliance → governance).
    pub fn extension_mode(&self, current: Option<Mode>) -> Mode {
        match current {
            Some(Mode::Compliance) => Mode::Compliance,
            _ => self.mode,
        }
    }

    /// Why a version's retention falls short of the policy, if it does: none at all, or a
    /// retain-until date earlier than its write date plus the period.
    pub fn shortfall(&self, s: &ObjectState) -> Option<String> {
        let Some(until) = s.until else {
            return Some(format!("no retention: the storage does not protect it (policy: {})", self.describe()));
        };
        let written = s.written?;
        if until + SLACK >= written + self.duration() {
            return None;
        }
        let held = until.duration_since(written).unwrap_or_default();
        Some(format!(
            "retained {} after it was written, until {}; the policy is {}",
            days_str(held),
            date_str(until),
            self.describe()
        ))
    }

    /// `governance, 30 days`.
    pub fn describe(&self) -> String {
        let mode = match self.mode {
            Mode::Governance => "governance",
            Mode::Compliance => "compliance",
        };
        format!("{mode}, {} days", self.days)
    }
}

/// What the store says about one object's current version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectState {
    /// Its version ID (`None` on a store without versioning).
    pub version: Option<String>,
    /// Its retention mode, if it has one.
    pub mode: Option<Mode>,
    /// Its retain-until date, if it has one.
    pub until: Option<SystemTime>,
    /// When it was written (`Last-Modified`), if said.
    pub written: Option<SystemTime>,
    /// The store's clock when it answered (`Date`; the local clock if it sent none).
    pub store_now: SystemTime,
}

impl ObjectState {
    /// Whether the store would refuse to destroy this version now.
    pub fn retained(&self) -> bool {
        self.until.is_some_and(|u| u > self.store_now)
    }
}

/// Retention operations of a storage with Object Lock. Blocking, like [`super::Backend`].
pub trait ObjectLock: Send + Sync {
    /// Make the storage retain every new object by `policy`, before `init` writes anything:
    /// create the bucket with Object Lock if it does not exist, refuse one without it, and set
    /// its default retention.
    fn set_up(&self, policy: &Policy) -> Result<()>;
    /// The bucket's default retention; `None` if it has no Object Lock (or no default).
    fn policy(&self) -> Result<Option<Policy>>;
    /// The current version of a file and its retention; `None` if there is no such file.
    fn state(&self, t: FileType, name: &str) -> Result<Option<ObjectState>>;
    /// Retain `version` of a file until `until` in `mode` (only ever later: S3 refuses to
    /// shorten a retention without a bypass).
    fn extend(&self, t: FileType, name: &str, version: Option<&str>, mode: Mode, until: SystemTime) -> Result<()>;
    /// Destroy one version of a file (refused by the store while it is retained).
    fn delete_version(&self, t: FileType, name: &str, version: &str) -> Result<()>;
}

/// A date as `2026-12-07 10:00:00 UTC`, for messages.
pub fn date_str(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} UTC", s.trim_end_matches('Z').replacen('T', " ", 1))
}

fn days_str(d: Duration) -> String {
    let days = d.as_secs_f64() / 86_400.0;
    format!("{days:.1} days")
}

/// Whether `e` is the store refusing a request (HTTP 403), as it refuses to destroy a
/// retained version, or a caller whose credentials lack the permission.
pub fn is_refusal(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_days_and_modes_are_named() {
        let p = Policy::parse("30d", "governance").unwrap();
        assert_eq!((p.days, p.mode), (30, Mode::Governance));
        assert_eq!(Policy::parse("1y", "COMPLIANCE").unwrap().days, 365);
        assert_eq!(Policy::parse("2weeks", "governance").unwrap().days, 14);
        for bad in ["0d", "36h", "1h", "abc", "101y", ""] {
            assert!(matches!(Policy::parse(bad, "governance"), Err(Error::InvalidArgument(_))), "{bad}");
        }
        assert!(Policy::parse("30d", "legal").is_err());
    }

    #[test]
    fn extension_and_shortfall_use_the_stores_clock() {
        let p = Policy { mode: Mode::Governance, days: 10 };
        let day = Duration::from_secs(86_400);
        // The store's clock, years away from the local one: only it decides.
        let now = SystemTime::UNIX_EPOCH + 20_000 * day;
        assert!(p.wants_extension(None, now));
        assert!(p.wants_extension(Some(now + 4 * day), now));
        assert!(!p.wants_extension(Some(now + 6 * day), now));
        let written = now - 2 * day;
        let state = |until| ObjectState { version: None, mode: None, until, written: Some(written), store_now: now };
        assert!(p.shortfall(&state(Some(written + 10 * day))).is_none());
        assert!(p.shortfall(&state(Some(written + 3 * day))).unwrap().contains("3.0 days"));
        assert!(p.shortfall(&state(None)).unwrap().starts_with("no retention"));
        assert!(state(Some(now + day)).retained() && !state(Some(now - day)).retained());
        assert_eq!(p.extension_mode(Some(Mode::Compliance)), Mode::Compliance);
        assert_eq!(p.extension_mode(None), Mode::Governance);
    }
}
