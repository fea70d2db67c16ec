//! Retention policy: which snapshots of one group `forget` keeps, and why.
//!
//! The rules are restic's (0.16 and later), so that a policy written for restic means the same
//! here, down to the reason strings:
//!
//! - Snapshots are visited newest first. A counting rule (`last`, `hourly` … `yearly`) keeps the
//!   newest snapshot of each calendar bucket (hour, day, ISO week, month, year) until it has kept
//!   `n` of them; only buckets that hold a snapshot count, so a week without backups costs
//!   nothing. Each rule counts on its own: one snapshot kept by `daily` and `weekly` uses one of
//!   each count.
//! - If a counting rule still has counts left when the group's oldest snapshot is reached, that
//!   snapshot is kept too ("oldest daily snapshot"): history then reaches as far back as it can.
//! - `within D` keeps everything newer than the group's newest snapshot minus `D`; the
//!   `within_*` rules keep one snapshot per bucket inside that window. The window hangs off the
//!   newest snapshot, not the clock, so a machine that stopped backing up does not see its last
//!   backups expire one by one. Snapshots dated after `now` (a wrong clock) are not used as the
//!   newest, and the window keeps them.
//! - `tags` keeps every snapshot that has all tags of one of the lists.
//!
//! Buckets are civil time in a [`Calendar`] chosen by the caller: the command line uses the
//! process's time zone, as restic does, since "one per day" means the user's days. This module
//! reads no clock, zone or repository, so its results depend only on its arguments and can be
//! checked against hand-worked cases.

use crate::id::Id;
use std::fmt;
use std::str::FromStr;

/// A wall-clock reading: what a calendar shows at some instant.
///
/// Produced by [`Calendar::civil`] with every field in range (month 1–12, day 1–31, hour 0–23).
/// Given to [`Calendar::instant`], fields may be out of range and carry over as `mktime` does:
/// month 0 is December of the year before, day 0 the last day of the month before, and 31 April
/// is 1 May. Shifting a date back by months and days relies on this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Year (proleptic Gregorian).
    pub year: i64,
    /// Month, 1–12.
    pub month: i64,
    /// Day of the month, 1–31.
    pub day: i64,
    /// Hour, 0–23.
    pub hour: i64,
    /// Minute, 0–59.
    pub minute: i64,
    /// Second, 0–60.
    pub second: i64,
}

/// A time zone: the mapping between instants and wall-clock readings.
pub trait Calendar {
    /// The reading at `secs` (Unix seconds).
    fn civil(&self, secs: i64) -> Civil;
    /// The Unix second at which the calendar shows `c` (fields normalised as described on
    /// [`Civil`]); `None` when it cannot be represented. A reading that a daylight-saving change
    /// skips or repeats maps to either side of the change.
    fn instant(&self, c: &Civil) -> Option<i64>;
}

/// Coordinated Universal Time: pure arithmetic, for tests and for users who want UTC buckets.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utc;

impl Calendar for Utc {
    fn civil(&self, secs: i64) -> Civil {
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        Civil { year, month, day, hour: rem / 3600, minute: rem / 60 % 60, second: rem % 60 }
    }

    fn instant(&self, c: &Civil) -> Option<i64> {
        let year = c.year.checked_add((c.month - 1).div_euclid(12))?;
        if year.abs() > 1 << 40 {
            return None;
        }
        let month = (c.month - 1).rem_euclid(12) + 1;
        let days = days_from_civil(year, month, 1).checked_add(c.day.checked_sub(1)?)?;
        let secs = days.checked_mul(86_400)?.checked_add(c.hour.checked_mul(3600)?)?;
        secs.checked_add(c.minute.checked_mul(60)?)?.checked_add(c.second)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1–12; any day, counted on from
/// the first of the month). Era arithmetic after H. Hinnant's `days_from_civil`.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12; // March = 0, so the leap day ends the year
    let doy = (153 * mp + 2) / 5 + day - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// The date (year, month 1–12, day) `days` after 1970-01-01; inverse of [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// ISO 8601 (year, week) of a date: weeks run Monday to Sunday and belong to the year that holds
/// their Thursday, so 2024-12-30 is in week 1 of 2025 and 2021-01-03 in week 53 of 2020.
pub fn iso_week(year: i64, month: i64, day: i64) -> (i64, i64) {
    let days = days_from_civil(year, month, day);
    let monday_based = (days + 3).rem_euclid(7); // 1970-01-01 was a Thursday
    let thursday = days - monday_based + 3;
    let (iso_year, _, _) = civil_from_days(thursday);
    (iso_year, (thursday - days_from_civil(iso_year, 1, 1)) / 7 + 1)
}

// ---- policy values --------------------------------------------------------------------------

/// How many buckets a counting rule keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// At most this many (0: the rule is off).
    N(u32),
    /// Every bucket (`unlimited`, or restic's `-1`).
    Unlimited,
}

impl Default for Count {
    fn default() -> Self {
        Count::N(0)
    }
}

impl Count {
    fn is_off(self) -> bool {
        self == Count::N(0)
    }
}

impl FromStr for Count {
    type Err = String;

    /// A count: `N`, or `unlimited` (also `-1`, as restic 0.16 wrote it).
    fn from_str(s: &str) -> Result<Count, String> {
        match s {
            "unlimited" | "-1" => Ok(Count::Unlimited),
            _ if s.starts_with('-') => Err(format!("{s:?}: a count cannot be negative (use 'unlimited' to keep all)")),
            _ => s.parse().map(Count::N).map_err(|_| format!("{s:?}: expected a number or 'unlimited'")),
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::N(n) => write!(f, "{n}"),
            Count::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// A calendar duration in restic's syntax, `1y2m3d4h`: years, months and days go back on the
/// calendar (31 March minus one month is 3 March, like Go's `AddDate`), hours in real time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl Span {
    /// True for the zero span, which turns its rule off.
    pub fn is_zero(&self) -> bool {
        *self == Span::default()
    }

    /// Nanoseconds of the instant this span before `ns`, in `cal` (`i128`: a span of 9999 years
    /// reaches past what an `i64` of nanoseconds holds). Unrepresentable readings count as the
    /// beginning of time.
    pub fn before(&self, ns: i64, cal: &dyn Calendar) -> i128 {
        let (secs, frac) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
        let c = cal.civil(secs);
        let shifted = Civil {
            year: c.year - i64::from(self.years),
            month: c.month - i64::from(self.months),
            day: c.day - i64::from(self.days),
            ..c
        };
        match cal.instant(&shifted) {
            Some(s) => i128::from(s) * 1_000_000_000 + i128::from(frac) - i128::from(self.hours) * 3_600_000_000_000,
            None => i128::MIN,
        }
    }
}

impl FromStr for Span {
    type Err = String;

    /// `6y5m234d37h`: a number before each unit `y`, `m` (months), `d`, `h`, each unit at most
    /// once, in any order; the empty string is the zero span. Weeks, minutes and signs are errors.
    fn from_str(text: &str) -> Result<Span, String> {
        let mut span = Span::default();
        let mut seen = String::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if rest.starts_with('-') {
                return Err(format!("{text:?}: a duration cannot be negative"));
            }
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let (number, tail) = rest.split_at(digits);
            let unit = tail.chars().next();
            let n: u32 = match (number, unit) {
                ("", _) => return Err(format!("{text:?}: expected a number at {rest:?} (e.g. 1y6m, 7d, 12h)")),
                (_, None) => return Err(format!("{text:?}: no unit after {number} (y, m, d or h)")),
                _ => number.parse().map_err(|_| format!("{text:?}: {number} is too large"))?,
            };
            let unit = unit.expect("checked above");
            let field = match unit {
                'y' => &mut span.years,
                'm' => &mut span.months,
                'd' => &mut span.days,
                'h' => &mut span.hours,
                _ => return Err(format!("{text:?}: unknown unit {unit:?} (y, m, d or h; 1w is 7d)")),
            };
            if seen.contains(unit) {
                return Err(format!("{text:?}: unit {unit:?} given twice"));
            }
            seen.push(unit);
            *field = n;
            rest = &tail[unit.len_utf8()..];
        }
        Ok(span)
    }
}

impl fmt::Display for Span {
    /// restic's form: `1y2m3d4h`, zero parts left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, unit) in [(self.years, 'y'), (self.months, 'm'), (self.days, 'd'), (self.hours, 'h')] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// What to keep. The default keeps nothing ([`KeepPolicy::is_empty`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    /// The newest `n` snapshots.
    pub last: Count,
    /// The newest snapshot of each of the newest `n` hours that have one.
    pub hourly: Count,
    /// … days.
    pub daily: Count,
    /// … ISO weeks (Monday to Sunday).
    pub weekly: Count,
    /// … months.
    pub monthly: Count,
    /// … years.
    pub yearly: Count,
    /// Every snapshot newer than the newest minus this span.
    pub within: Span,
    /// The newest snapshot of each hour within this span of the newest.
    pub within_hourly: Span,
    /// … of each day.
    pub within_daily: Span,
    /// … of each ISO week.
    pub within_weekly: Span,
    /// … of each month.
    pub within_monthly: Span,
    /// … of each year.
    pub within_yearly: Span,
    /// Every snapshot that has all tags of one of these lists (an empty list: no tags at all).
    pub tags: Vec<Vec<String>>,
}

impl KeepPolicy {
    /// True when no rule is set: applying it would keep nothing.
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(_, c)| c.is_off())
            && self.within.is_zero()
            && self.spans().iter().all(|(_, s)| s.is_zero())
            && self.tags.is_empty()
    }

    fn counts(&self) -> [(Rule, Count); 6] {
        [
            (Rule::Last, self.last),
            (Rule::Hourly, self.hourly),
            (Rule::Daily, self.daily),
            (Rule::Weekly, self.weekly),
            (Rule::Monthly, self.monthly),
            (Rule::Yearly, self.yearly),
        ]
    }

    fn spans(&self) -> [(Rule, Span); 5] {
        [
            (Rule::Hourly, self.within_hourly),
            (Rule::Daily, self.within_daily),
            (Rule::Weekly, self.within_weekly),
            (Rule::Monthly, self.within_monthly),
            (Rule::Yearly, self.within_yearly),
        ]
    }
}

impl fmt::Display for KeepPolicy {
    /// A sentence for the user: `keep 7 daily, 4 weekly snapshots, daily snapshots within 7d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let counts: Vec<String> = self
            .counts()
            .iter()
            .filter(|(_, c)| !c.is_off())
            .map(|(rule, c)| match c {
                Count::N(n) => format!("{n} {}", rule.counted_name()),
                Count::Unlimited => format!("all {}", rule.counted_name()),
            })
            .collect();
        if !counts.is_empty() {
            parts.push(format!("{} snapshots", counts.join(", ")));
        }
        for (rule, span) in self.spans().iter().filter(|(_, s)| !s.is_zero()) {
            parts.push(format!("{} snapshots within {span}", rule.name()));
        }
        if !self.tags.is_empty() {
            let lists: Vec<String> = self.tags.iter().map(|l| format!("[{}]", l.join(", "))).collect();
            parts.push(format!("all snapshots with tags {}", lists.join(" or ")));
        }
        if !self.within.is_zero() {
            parts.push(format!("all snapshots within {} of the newest", self.within));
        }
        match parts.is_empty() {
            true => f.write_str("keep nothing"),
            false => write!(f, "keep {}", parts.join(", ")),
        }
    }
}

/// The calendar unit of a counting or `within_*` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// Each snapshot is its own bucket (`keep_last`).
    Last,
    /// Hour.
    Hourly,
    /// Day.
    Daily,
    /// ISO week.
    Weekly,
    /// Month.
    Monthly,
    /// Year.
    Yearly,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
        }
    }

    /// As restic words it in a policy sentence ("3 latest").
    fn counted_name(self) -> &'static str {
        match self {
            Rule::Last => "latest",
            r => r.name(),
        }
    }

    /// The bucket of a snapshot: equal for snapshots in the same hour, day, …; `position` (its
    /// place in newest-first order) makes every snapshot its own bucket for `Last`.
    fn bucket(self, c: &Civil, position: usize) -> i64 {
        match self {
            Rule::Last => position as i64,
            Rule::Hourly => ((c.year * 100 + c.month) * 100 + c.day) * 100 + c.hour,
            Rule::Daily => (c.year * 100 + c.month) * 100 + c.day,
            Rule::Weekly => {
                let (y, w) = iso_week(c.year, c.month, c.day);
                y * 100 + w
            }
            Rule::Monthly => c.year * 100 + c.month,
            Rule::Yearly => c.year,
        }
    }
}

/// Why a snapshot is kept; shown as restic shows it (`daily snapshot`, `oldest monthly
/// snapshot`, `weekly within 1m`, `within 2d`, `has tags [a, b]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// It has every tag of this list.
    Tags(Vec<String>),
    /// It is within this span of the newest snapshot.
    Within(Span),
    /// A counting rule kept it; `oldest` when it is the group's oldest snapshot, kept because
    /// the rule had counts left although its bucket already had a newer snapshot.
    Count {
        /// The rule.
        rule: Rule,
        /// Kept as the oldest snapshot.
        oldest: bool,
    },
    /// A `within_*` rule kept it (`oldest` as for [`Reason::Count`]).
    CountWithin {
        /// The rule.
        rule: Rule,
        /// Its span.
        span: Span,
        /// Kept as the oldest snapshot.
        oldest: bool,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let oldest = |o: bool| if o { "oldest " } else { "" };
        match self {
            Reason::Tags(list) => write!(f, "has tags [{}]", list.join(", ")),
            Reason::Within(span) => write!(f, "within {span}"),
            Reason::Count { rule, oldest: o } => write!(f, "{}{} snapshot", oldest(*o), rule.name()),
            Reason::CountWithin { rule, span, oldest: o } => write!(f, "{}{} within {span}", oldest(*o), rule.name()),
        }
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---- applying a policy ----------------------------------------------------------------------

/// What the policy needs to know about a snapshot.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// Its ID (breaks ties between equal times: the larger ID counts as newer).
    pub id: Id,
    /// Its time, Unix nanoseconds.
    pub time: i64,
    /// Its tags.
    pub tags: &'a [String],
}

/// The policy's verdict on one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The snapshot.
    pub id: Id,
    /// Its time, Unix nanoseconds.
    pub time: i64,
    /// Why it is kept, in rule order (tags, within, counts, within_*); empty: it is removed.
    pub reasons: Vec<Reason>,
}

impl Verdict {
    /// True when some rule keeps it.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// The state of one counting or `within_*` rule while snapshots are visited newest first.
struct Counter {
    rule: Rule,
    /// Buckets it may still keep (`None`: unlimited); a `within_*` rule is unlimited inside its
    /// window.
    left: Option<u32>,
    /// The bucket of the last snapshot it kept.
    last: Option<i64>,
    /// `within_*`: its span and the instant it reaches back to (exclusive).
    window: Option<(Span, i128)>,
}

impl Counter {
    /// Whether this rule keeps the snapshot at `position` (newest first) in bucket terms, and
    /// if so, as what. The newest snapshot of a bucket is kept; another snapshot of a bucket
    /// only when it is the group's oldest and the rule has counts left.
    fn visit(&mut self, c: &Civil, time: i64, position: usize, oldest: bool) -> Option<Reason> {
        if self.left == Some(0) || self.window.is_some_and(|(_, cut)| i128::from(time) <= cut) {
            return None;
        }
        let bucket = self.rule.bucket(c, position);
        let repeat = self.last == Some(bucket);
        if repeat && !oldest {
            return None;
        }
        self.last = Some(bucket);
        if let Some(n) = &mut self.left {
            *n -= 1;
        }
        Some(match self.window {
            Some((span, _)) => Reason::CountWithin { rule: self.rule, span, oldest: repeat },
            None => Reason::Count { rule: self.rule, oldest: repeat },
        })
    }
}

/// Apply `policy` to one group of snapshots. Returns a verdict for each, newest first (ties in
/// time ordered by ID, larger first).
///
/// `now` (Unix ns), when given, keeps snapshots dated after it from serving as the newest that
/// `within` rules count back from, as restic does for clocks that were wrong; if every snapshot
/// is in the future, the windows reach back to the beginning of time.
pub fn apply(snapshots: &[Candidate<'_>], policy: &KeepPolicy, cal: &dyn Calendar, now: Option<i64>) -> Vec<Verdict> {
    let mut order: Vec<&Candidate> = snapshots.iter().collect();
    order.sort_by_key(|s| std::cmp::Reverse((s.time, s.id)));
    let newest = order.iter().map(|s| s.time).find(|&t| now.is_none_or(|now| t < now));
    let cutoff = |span: Span| newest.map_or(i128::MIN, |t| span.before(t, cal));
    let mut counters: Vec<Counter> = policy
        .counts()
        .into_iter()
        .filter(|(_, c)| !c.is_off())
        .map(|(rule, c)| Counter { rule, left: count_limit(c), last: None, window: None })
        .collect();
    counters.extend(policy.spans().into_iter().filter(|(_, s)| !s.is_zero()).map(|(rule, span)| Counter {
        rule,
        left: None,
        last: None,
        window: Some((span, cutoff(span))),
    }));
    let within = (!policy.within.is_zero()).then(|| cutoff(policy.within));

    let mut out = Vec::with_capacity(order.len());
    for (position, s) in order.iter().enumerate() {
        let oldest = position + 1 == order.len();
        let civil = cal.civil(s.time.div_euclid(1_000_000_000));
        let mut reasons: Vec<Reason> =
            policy.tags.iter().filter(|list| has_tags(s.tags, list)).map(|list| Reason::Tags(list.clone())).collect();
        if within.is_some_and(|cut| i128::from(s.time) > cut) {
            reasons.push(Reason::Within(policy.within));
        }
        reasons.extend(counters.iter_mut().filter_map(|c| c.visit(&civil, s.time, position, oldest)));
        out.push(Verdict { id: s.id, time: s.time, reasons });
    }
    out
}

fn count_limit(c: Count) -> Option<u32> {
    match c {
        Count::N(n) => Some(n),
        Count::Unlimited => None,
    }
}

/// restic's tag-list match: every tag of `list` is present; an empty list matches snapshots
/// without tags.
fn has_tags(tags: &[String], list: &[String]) -> bool {
    match list.is_empty() {
        true => tags.is_empty(),
        false => list.iter().all(|t| tags.contains(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip_and_iso_weeks() {
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(iso_week(2024, 12, 30), (2025, 1));
        assert_eq!(iso_week(2021, 1, 3), (2020, 53));
        assert_eq!(iso_week(2026, 1, 1), (2026, 1));
    }

    #[test]
    fn utc_instant_carries_out_of_range_fields() {
        let c = Civil { year: 2024, month: 3 - 1, day: 31, hour: 0, minute: 0, second: 0 };
        // 31 February 2024 is 2 March.
        assert_eq!(Utc.civil(Utc.instant(&c).unwrap()), Civil { month: 3, day: 2, ..c });
        let c = Civil { year: 2024, month: 0, day: 0, hour: 5, minute: 0, second: 0 };
        assert_eq!(Utc.civil(Utc.instant(&c).unwrap()), Civil { year: 2023, month: 11, day: 30, ..c });
    }
}
