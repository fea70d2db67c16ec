//! `forget` and its retention policy: hand-worked golden cases of restic's rules, a randomized
//! comparison with a deliberately naive reference, and the command line (dry run, JSON,
//! grouping, tags, refusing to empty a group, explicit IDs, bad input, `backup --time`).

use crate::common::*;
use arca::backend::FileType;
use arca::lifecycle::policy::{self, Candidate, Count, KeepPolicy, Span, Utc};
use arca::Id;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

const NS: i64 = 1_000_000_000;

// ---- a naive UTC calendar, independent of the library's ----------------------------------------

mod naive {
    pub fn is_leap(y: i64) -> bool {
        (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    }

    pub fn month_len(y: i64, m: i64) -> i64 {
        match m {
            2 if is_leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    fn year_len(y: i64) -> i64 {
        if is_leap(y) {
            366
        } else {
            365
        }
    }

    /// Days since 1970-01-01 of (y, m, d), m in 1..=12, d any (counted on from the 1st).
    pub fn days(y: i64, m: i64, d: i64) -> i64 {
        let mut n = 0;
        if y >= 1970 {
            n += (1970..y).map(year_len).sum::<i64>();
        } else {
            n -= (y..1970).map(year_len).sum::<i64>();
        }
        n + (1..m).map(|mm| month_len(y, mm)).sum::<i64>() + d - 1
    }

    /// (y, m, d) of a day number, by walking years and months.
    pub fn date(mut n: i64) -> (i64, i64, i64) {
        let mut y = 1970;
        while n < 0 {
            y -= 1;
            n += year_len(y);
        }
        while n >= year_len(y) {
            n -= year_len(y);
            y += 1;
        }
        let mut m = 1;
        while n >= month_len(y, m) {
            n -= month_len(y, m);
            m += 1;
        }
        (y, m, n + 1)
    }

    /// Monday = 0.
    pub fn weekday(n: i64) -> i64 {
        (n + 3).rem_euclid(7)
    }

    /// ISO (year, week): week 1 is the week holding 4 January.
    pub fn iso(y: i64, m: i64, d: i64) -> (i64, i64) {
        let n = days(y, m, d);
        let week1 = |yy: i64| {
            let j4 = days(yy, 1, 4);
            j4 - weekday(j4)
        };
        let iy = [y + 1, y, y - 1].into_iter().find(|&yy| week1(yy) <= n).unwrap();
        (iy, (n - week1(iy)) / 7 + 1)
    }

    /// `YYYY-MM-DD HH:MM:SS` (UTC) as Unix ns.
    pub fn ns(s: &str) -> i64 {
        let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
        let secs =
            days(num(0..4), num(5..7), num(8..10)) * 86_400 + num(11..13) * 3600 + num(14..16) * 60 + num(17..19);
        secs * super::NS
    }

    /// (y, m, d, h, mi, s) of Unix ns.
    pub fn civil(ns: i64) -> (i64, i64, i64, i64, i64, i64) {
        let secs = ns.div_euclid(super::NS);
        let (y, m, d) = date(secs.div_euclid(86_400));
        let r = secs.rem_euclid(86_400);
        (y, m, d, r / 3600, r / 60 % 60, r % 60)
    }

    /// Unix ns as `YYYY-MM-DD HH:MM:SS`.
    pub fn show(ns: i64) -> String {
        let (y, m, d, h, mi, s) = civil(ns);
        format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    }
}

// ---- a naive reference implementation of the rules ---------------------------------------------

/// restic's rules restated bucket by bucket: each rule keeps the newest snapshot of its first
/// `n` distinct buckets (newest first); if it had fewer than `n` buckets and the group's oldest
/// snapshot is not one of those kept, it keeps that one too, as "oldest". Windows reach back from
/// the newest snapshot not after `now`, calendar fields first (month overflow carried into the
/// day count), then hours.
fn reference(snaps: &[(Id, i64, Vec<String>)], p: &KeepPolicy, now: Option<i64>) -> Vec<(Id, Vec<String>)> {
    let mut order: Vec<&(Id, i64, Vec<String>)> = snaps.iter().collect();
    order.sort_by_key(|s| std::cmp::Reverse((s.1, s.0)));
    let oldest = order.last().unwrap().0;
    let latest = order.iter().map(|s| s.1).filter(|&t| now.is_none_or(|n| t < n)).max();
    let cut = |span: Span| latest.map_or(i128::MIN, |l| naive_cutoff(l, span));
    let mut reasons: BTreeMap<Id, Vec<String>> = order.iter().map(|s| (s.0, Vec::new())).collect();
    for s in &order {
        for list in &p.tags {
            let hit = if list.is_empty() { s.2.is_empty() } else { list.iter().all(|t| s.2.contains(t)) };
            if hit {
                reasons.get_mut(&s.0).unwrap().push(format!("has tags [{}]", list.join(", ")));
            }
        }
    }
    if p.within != Span::default() {
        let c = cut(p.within);
        for s in order.iter().filter(|s| i128::from(s.1) > c) {
            reasons.get_mut(&s.0).unwrap().push(format!("within {}", span_text(p.within)));
        }
    }
    let counts = [
        ("last", p.last),
        ("hourly", p.hourly),
        ("daily", p.daily),
        ("weekly", p.weekly),
        ("monthly", p.monthly),
        ("yearly", p.yearly),
    ];
    for (name, count) in counts {
        let limit = match count {
            Count::N(0) => continue,
            Count::N(n) => Some(n as usize),
            Count::Unlimited => None,
        };
        let reps = representatives(&order, name);
        let taken = limit.map_or(reps.len(), |l| l.min(reps.len()));
        for id in &reps[..taken] {
            reasons.get_mut(id).unwrap().push(format!("{name} snapshot"));
        }
        if !reps.contains(&oldest) && limit.is_none_or(|l| reps.len() < l) {
            reasons.get_mut(&oldest).unwrap().push(format!("oldest {name} snapshot"));
        }
    }
    let spans = [
        ("hourly", p.within_hourly),
        ("daily", p.within_daily),
        ("weekly", p.within_weekly),
        ("monthly", p.within_monthly),
        ("yearly", p.within_yearly),
    ];
    for (name, span) in spans {
        if span == Span::default() {
            continue;
        }
        let c = cut(span);
        let eligible: Vec<_> = order.iter().copied().filter(|s| i128::from(s.1) > c).collect();
        let reps = representatives(&eligible, name);
        for id in &reps {
            reasons.get_mut(id).unwrap().push(format!("{name} within {}", span_text(span)));
        }
        if eligible.iter().any(|s| s.0 == oldest) && !reps.contains(&oldest) {
            reasons.get_mut(&oldest).unwrap().push(format!("oldest {name} within {}", span_text(span)));
        }
    }
    order.iter().map(|s| (s.0, reasons[&s.0].clone())).collect()
}

/// The first (newest) snapshot of each distinct bucket, newest first.
fn representatives(order: &[&(Id, i64, Vec<String>)], rule: &str) -> Vec<Id> {
    let mut seen = Vec::new();
    let mut reps = Vec::new();
    for (pos, s) in order.iter().enumerate() {
        let (y, m, d, h, _, _) = naive::civil(s.1);
        let key = match rule {
            "last" => vec![pos as i64],
            "hourly" => vec![y, m, d, h],
            "daily" => vec![y, m, d],
            "weekly" => {
                let (iy, w) = naive::iso(y, m, d);
                vec![iy, w]
            }
            "monthly" => vec![y, m],
            _ => vec![y],
        };
        if !seen.contains(&key) {
            seen.push(key);
            reps.push(s.0);
        }
    }
    reps
}

fn naive_cutoff(latest: i64, span: Span) -> i128 {
    let (y, m, d, h, mi, s) = naive::civil(latest);
    let (mut yy, mut mm) = (y - i64::from(span.years), m - i64::from(span.months));
    while mm < 1 {
        mm += 12;
        yy -= 1;
    }
    let day = naive::days(yy, mm, 1) + d - i64::from(span.days) - 1;
    let secs = day * 86_400 + h * 3600 + mi * 60 + s;
    i128::from(secs) * i128::from(NS) + i128::from(latest.rem_euclid(NS))
        - i128::from(span.hours) * 3600 * i128::from(NS)
}

fn span_text(s: Span) -> String {
    let mut out = String::new();
    for (n, u) in [(s.years, "y"), (s.months, "m"), (s.days, "d"), (s.hours, "h")] {
        if n > 0 {
            out += &format!("{n}{u}");
        }
    }
    out
}

// ---- golden cases ------------------------------------------------------------------------------

fn nth_id(i: usize) -> Id {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    Id(b)
}

/// Apply `p` (in UTC) to snapshots given as `YYYY-MM-DD HH:MM:SS [tag...]`; the kept ones,
/// newest first, as `TIME: reason, reason`.
fn kept_with(specs: &[&str], p: &KeepPolicy, now: Option<&str>) -> Vec<String> {
    let parsed: Vec<(i64, Vec<String>)> =
        specs.iter().map(|s| (naive::ns(&s[..19]), s[19..].split_whitespace().map(String::from).collect())).collect();
    let candidates: Vec<Candidate> =
        parsed.iter().enumerate().map(|(i, (t, tags))| Candidate { id: nth_id(i), time: *t, tags }).collect();
    let verdicts = policy::apply(&candidates, p, &Utc, now.map(naive::ns));
    assert_eq!(verdicts.len(), specs.len());
    verdicts
        .iter()
        .filter(|v| v.keep())
        .map(|v| {
            let r: Vec<String> = v.reasons.iter().map(|r| r.to_string()).collect();
            format!("{}: {}", naive::show(v.time), r.join(", "))
        })
        .collect()
}

fn kept(specs: &[&str], p: &KeepPolicy) -> Vec<String> {
    kept_with(specs, p, None)
}

fn span(s: &str) -> Span {
    s.parse().unwrap()
}

#[test]
fn daily_keeps_the_newest_of_each_day_and_the_oldest_while_counts_remain() {
    let snaps = [
        "2024-03-01 09:00:00",
        "2024-03-01 18:00:00",
        "2024-03-02 10:00:00",
        "2024-03-04 08:00:00",
        "2024-03-04 20:00:00",
        "2024-03-05 12:00:00",
    ];
    let p = KeepPolicy { daily: Count::N(3), ..Default::default() };
    assert_eq!(
        kept(&snaps, &p),
        [
            "2024-03-05 12:00:00: daily snapshot",
            "2024-03-04 20:00:00: daily snapshot",
            "2024-03-02 10:00:00: daily snapshot"
        ]
    );
    // Only four days have snapshots: the fifth count keeps the oldest snapshot, whose day
    // already has a newer one.
    let p = KeepPolicy { daily: Count::N(5), ..Default::default() };
    assert_eq!(
        kept(&snaps, &p),
        [
            "2024-03-05 12:00:00: daily snapshot",
            "2024-03-04 20:00:00: daily snapshot",
            "2024-03-02 10:00:00: daily snapshot",
            "2024-03-01 18:00:00: daily snapshot",
            "2024-03-01 09:00:00: oldest daily snapshot"
        ]
    );
}

#[test]
fn hourly_and_unlimited() {
    let snaps = [
        "2024-03-01 10:05:00",
        "2024-03-01 10:55:00",
        "2024-03-01 11:00:00",
        "2024-03-01 11:59:59",
        "2024-03-01 13:30:00",
    ];
    let p = KeepPolicy { hourly: Count::N(2), ..Default::default() };
    assert_eq!(kept(&snaps, &p), ["2024-03-01 13:30:00: hourly snapshot", "2024-03-01 11:59:59: hourly snapshot"]);
    for unlimited in ["unlimited", "-1"] {
        let p = KeepPolicy { hourly: unlimited.parse().unwrap(), ..Default::default() };
        assert_eq!(
            kept(&snaps, &p),
            [
                "2024-03-01 13:30:00: hourly snapshot",
                "2024-03-01 11:59:59: hourly snapshot",
                "2024-03-01 10:55:00: hourly snapshot",
                "2024-03-01 10:05:00: oldest hourly snapshot"
            ]
        );
    }
    // Unlimited last keeps everything, each as its own bucket.
    let p = KeepPolicy { last: Count::Unlimited, ..Default::default() };
    assert_eq!(kept(&snaps, &p).len(), 5);
    assert!(kept(&snaps, &p).iter().all(|l| l.ends_with(": last snapshot")));
}

#[test]
fn weekly_uses_iso_weeks_across_the_year_boundary() {
    // Mon 23 Dec and Sat 28 Dec 2024: week 52 of 2024. Mon 30 Dec 2024, Wed 1 Jan and Sun 5 Jan
    // 2025: week 1 of 2025. Mon 6 Jan 2025: week 2.
    let snaps = [
        "2024-12-23 12:00:00",
        "2024-12-28 12:00:00",
        "2024-12-30 12:00:00",
        "2025-01-01 12:00:00",
        "2025-01-05 12:00:00",
        "2025-01-06 12:00:00",
    ];
    let p = KeepPolicy { weekly: Count::N(3), ..Default::default() };
    assert_eq!(
        kept(&snaps, &p),
        [
            "2025-01-06 12:00:00: weekly snapshot",
            "2025-01-05 12:00:00: weekly snapshot",
            "2024-12-28 12:00:00: weekly snapshot"
        ]
    );
    // Months and years split the same week at the calendar boundary.
    let p = KeepPolicy { monthly: Count::N(2), yearly: Count::N(2), ..Default::default() };
    assert_eq!(
        kept(&snaps, &p),
        [
            "2025-01-06 12:00:00: monthly snapshot, yearly snapshot",
            "2024-12-30 12:00:00: monthly snapshot, yearly snapshot"
        ]
    );
}

#[test]
fn monthly_and_yearly() {
    let snaps = [
        "2022-06-15 00:00:00",
        "2023-01-10 00:00:00",
        "2023-01-20 00:00:00",
        "2023-07-01 00:00:00",
        "2024-02-01 00:00:00",
        "2024-02-29 00:00:00",
    ];
    let p = KeepPolicy { monthly: Count::N(3), ..Default::default() };
    assert_eq!(
        kept(&snaps, &p),
        [
            "2024-02-29 00:00:00: monthly snapshot",
            "2023-07-01 00:00:00: monthly snapshot",
            "2023-01-20 00:00:00: monthly snapshot"
        ]
    );
    // Three years with snapshots and ten counts: the oldest starts its own year, so it is an
    // ordinary yearly snapshot.
    let p = KeepPolicy { yearly: Count::N(10), ..Default::default() };
    assert_eq!(
        kept(&snaps, &p),
        [
            "2024-02-29 00:00:00: yearly snapshot",
            "2023-07-01 00:00:00: yearly snapshot",
            "2022-06-15 00:00:00: yearly snapshot"
        ]
    );
}

#[test]
fn each_rule_counts_a_snapshot_once_for_itself() {
    // One snapshot a day at noon, Monday 1 to Saturday 20 January 2024.
    let days: Vec<String> = (1..=20).map(|d| format!("2024-01-{d:02} 12:00:00")).collect();
    let snaps: Vec<&str> = days.iter().map(String::as_str).collect();
    let p = KeepPolicy { daily: Count::N(3), weekly: Count::N(2), monthly: Count::N(2), ..Default::default() };
    // 20 Jan uses one count of each rule; the second weekly count goes to Sunday 14 Jan (week 2);
    // monthly has a count left at the oldest snapshot, in a month already kept.
    assert_eq!(
        kept(&snaps, &p),
        [
            "2024-01-20 12:00:00: daily snapshot, weekly snapshot, monthly snapshot",
            "2024-01-19 12:00:00: daily snapshot",
            "2024-01-18 12:00:00: daily snapshot",
            "2024-01-14 12:00:00: weekly snapshot",
            "2024-01-01 12:00:00: oldest monthly snapshot"
        ]
    );
    let p = KeepPolicy { last: Count::N(2), daily: Count::N(2), ..Default::default() };
    assert_eq!(
        kept(&snaps, &p),
        ["2024-01-20 12:00:00: last snapshot, daily snapshot", "2024-01-19 12:00:00: last snapshot, daily snapshot"]
    );
}

#[test]
fn within_counts_back_from_the_newest_snapshot_not_from_now() {
    let snaps = ["2024-05-01 00:00:00", "2024-05-10 12:00:00", "2024-05-20 12:00:00", "2024-05-30 12:00:00"];
    // Exactly 10 days before the newest is outside the window.
    let p = KeepPolicy { within: span("10d"), ..Default::default() };
    assert_eq!(kept_with(&snaps, &p, Some("2031-01-01 00:00:00")), ["2024-05-30 12:00:00: within 10d"]);
    let p = KeepPolicy { within: span("10d1h"), ..Default::default() };
    assert_eq!(kept(&snaps, &p), ["2024-05-30 12:00:00: within 10d1h", "2024-05-20 12:00:00: within 10d1h"]);
    // One month before 31 March is "31 February", which is 2 March (Go's AddDate, mktime).
    let snaps = ["2024-03-01 23:00:00", "2024-03-02 10:00:00", "2024-03-02 10:00:01", "2024-03-31 10:00:00"];
    let p = KeepPolicy { within: span("1m"), ..Default::default() };
    assert_eq!(kept(&snaps, &p), ["2024-03-31 10:00:00: within 1m", "2024-03-02 10:00:01: within 1m"]);
}

#[test]
fn snapshots_dated_after_now_do_not_set_the_window() {
    let snaps = ["2024-01-01 00:00:00", "2024-01-05 00:00:00", "2030-01-01 00:00:00"];
    let p = KeepPolicy { within: span("2d"), ..Default::default() };
    // The window hangs off 5 January (the newest snapshot not in the future); the future one
    // is inside it.
    assert_eq!(
        kept_with(&snaps, &p, Some("2024-01-06 00:00:00")),
        ["2030-01-01 00:00:00: within 2d", "2024-01-05 00:00:00: within 2d"]
    );
    assert_eq!(kept_with(&snaps, &p, None), ["2030-01-01 00:00:00: within 2d"]);
    // All in the future: the window reaches back to the beginning of time.
    assert_eq!(kept_with(&snaps, &p, Some("2023-01-01 00:00:00")).len(), 3);
}

#[test]
fn within_buckets_follow_restics_documented_example() {
    // doc/060_forget.rst: weekday backups for two weeks, an extra one on Fridays, Wednesday
    // 30 April missed.
    let snaps = [
        "2025-04-21 11:00:00",
        "2025-04-22 11:00:00",
        "2025-04-23 11:00:00",
        "2025-04-24 11:00:00",
        "2025-04-25 11:00:00",
        "2025-04-25 23:00:00",
        "2025-04-28 11:00:00",
        "2025-04-29 11:00:00",
        "2025-05-01 11:00:00",
        "2025-05-02 11:00:00",
        "2025-05-02 23:00:00",
    ];
    let p = KeepPolicy { daily: Count::N(5), ..Default::default() };
    assert_eq!(
        kept(&snaps, &p),
        [
            "2025-05-02 23:00:00: daily snapshot",
            "2025-05-01 11:00:00: daily snapshot",
            "2025-04-29 11:00:00: daily snapshot",
            "2025-04-28 11:00:00: daily snapshot",
            "2025-04-25 23:00:00: daily snapshot"
        ]
    );
    let p = KeepPolicy { within_daily: span("7d"), ..Default::default() };
    assert_eq!(
        kept(&snaps, &p),
        [
            "2025-05-02 23:00:00: daily within 7d",
            "2025-05-01 11:00:00: daily within 7d",
            "2025-04-29 11:00:00: daily within 7d",
            "2025-04-28 11:00:00: daily within 7d"
        ]
    );
    // The oldest snapshot inside a window whose bucket is taken is kept as the oldest.
    let snaps = ["2024-06-01 08:00:00", "2024-06-01 20:00:00", "2024-06-02 09:00:00"];
    let p = KeepPolicy { within_daily: span("30d"), within_monthly: span("1y"), ..Default::default() };
    assert_eq!(
        kept(&snaps, &p),
        [
            "2024-06-02 09:00:00: daily within 30d, monthly within 1y",
            "2024-06-01 20:00:00: daily within 30d",
            "2024-06-01 08:00:00: oldest daily within 30d, oldest monthly within 1y"
        ]
    );
}

#[test]
fn keep_tag_lists() {
    let snaps = ["2024-01-01 00:00:00", "2024-01-02 00:00:00 x", "2024-01-03 00:00:00 x y", "2024-01-04 00:00:00 y"];
    let tags = |lists: &[&[&str]]| KeepPolicy {
        tags: lists.iter().map(|l| l.iter().map(|t| t.to_string()).collect()).collect(),
        ..Default::default()
    };
    assert_eq!(
        kept(&snaps, &tags(&[&["x"]])),
        ["2024-01-03 00:00:00: has tags [x]", "2024-01-02 00:00:00: has tags [x]"]
    );
    assert_eq!(kept(&snaps, &tags(&[&["x", "y"]])), ["2024-01-03 00:00:00: has tags [x, y]"]);
    assert_eq!(
        kept(&snaps, &tags(&[&["x"], &["y"]])),
        [
            "2024-01-04 00:00:00: has tags [y]",
            "2024-01-03 00:00:00: has tags [x], has tags [y]",
            "2024-01-02 00:00:00: has tags [x]"
        ]
    );
    // The empty list matches untagged snapshots.
    assert_eq!(kept(&snaps, &tags(&[&[]])), ["2024-01-01 00:00:00: has tags []"]);
}

#[test]
fn empty_policy_and_parsing() {
    assert!(KeepPolicy::default().is_empty());
    assert!(KeepPolicy { within: span("0d"), daily: Count::N(0), ..Default::default() }.is_empty());
    assert!(!KeepPolicy { tags: vec![vec![]], ..Default::default() }.is_empty());
    assert!(kept(&["2024-01-01 00:00:00"], &KeepPolicy::default()).is_empty());

    assert_eq!(span("1y2m3d4h"), Span { years: 1, months: 2, days: 3, hours: 4 });
    assert_eq!(span("4h3d").to_string(), "3d4h");
    assert_eq!(span(" 12h "), Span { hours: 12, ..Default::default() });
    assert_eq!(span(""), Span::default());
    for bad in ["2w", "3q", "5", "d", "-1d", "1d1d", "1y-2m", "99999999999d", "1.5d", "1D", "\u{7c0}d"] {
        assert!(bad.parse::<Span>().is_err(), "{bad:?} should be refused");
    }
    assert_eq!("7".parse::<Count>(), Ok(Count::N(7)));
    assert_eq!("unlimited".parse::<Count>(), Ok(Count::Unlimited));
    assert_eq!("-1".parse::<Count>(), Ok(Count::Unlimited));
    for bad in ["-2", "x", "", "1.5", "4294967296"] {
        assert!(bad.parse::<Count>().is_err(), "{bad:?} should be refused");
    }
    let p = KeepPolicy {
        daily: Count::N(7),
        weekly: Count::N(4),
        yearly: Count::Unlimited,
        within_daily: span("7d"),
        ..Default::default()
    };
    assert_eq!(p.to_string(), "keep 7 daily, 4 weekly, all yearly snapshots, daily snapshots within 7d");
}

// ---- randomized comparison with the reference --------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn random_times(rng: &mut Rng) -> Vec<i64> {
    let n = 1 + rng.below(40) as usize;
    let mut t = naive::ns("2015-01-01 00:00:00") + (rng.below(10 * 365 * 86_400) as i64) * NS;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(t);
        // Whole hours and days often, so that windows end exactly on a snapshot.
        let gap = match rng.below(8) {
            0 => 0,
            1 => rng.below(90 * 60),
            2 => rng.below(30 * 3600),
            3 => rng.below(20 * 86_400),
            4 => rng.below(120 * 86_400),
            5 => 3600 * (1 + rng.below(30)),
            _ => 86_400 * (1 + rng.below(3)),
        };
        let fraction = if rng.chance(20) { rng.below(4) as i64 * 250_000_000 } else { 0 };
        t += gap as i64 * NS + fraction;
    }
    out
}

fn random_count(rng: &mut Rng) -> Count {
    match rng.below(10) {
        0..=5 => Count::N(0),
        6 | 7 => Count::N(rng.below(6) as u32),
        8 => Count::N(1 + rng.below(40) as u32),
        _ => Count::Unlimited,
    }
}

fn random_span(rng: &mut Rng) -> Span {
    if !rng.chance(25) {
        return Span::default();
    }
    // Mostly one unit, as people write them.
    let mut part = |max: u64| if rng.chance(30) { rng.below(max) as u32 } else { 0 };
    Span { years: part(3), months: part(15), days: part(45), hours: part(60) }
}

fn random_policy(rng: &mut Rng) -> KeepPolicy {
    let tag_lists: [&[&str]; 4] = [&["a"], &["b"], &["a", "b"], &[]];
    let mut tags = Vec::new();
    while rng.chance(20) {
        tags.push(tag_lists[rng.below(4) as usize].iter().map(|t| t.to_string()).collect());
    }
    KeepPolicy {
        last: random_count(rng),
        hourly: random_count(rng),
        daily: random_count(rng),
        weekly: random_count(rng),
        monthly: random_count(rng),
        yearly: random_count(rng),
        within: random_span(rng),
        within_hourly: random_span(rng),
        within_daily: random_span(rng),
        within_weekly: random_span(rng),
        within_monthly: random_span(rng),
        within_yearly: random_span(rng),
        tags,
    }
}

#[test]
fn policy_matches_a_naive_reference_on_random_histories() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut kept_some = 0;
    for case in 0..4000 {
        let times = random_times(&mut rng);
        let snaps: Vec<(Id, i64, Vec<String>)> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let tags = [("a", rng.chance(30)), ("b", rng.chance(30))];
                (nth_id(i * 7919 % 1000), t, tags.iter().filter(|t| t.1).map(|t| t.0.to_string()).collect())
            })
            .collect();
        let p = random_policy(&mut rng);
        let now = match rng.below(3) {
            0 => None,
            _ => Some(times[rng.below(times.len() as u64) as usize] + (rng.below(5 * 86_400) as i64 - 86_400) * NS),
        };
        let candidates: Vec<Candidate> =
            snaps.iter().map(|(id, t, tags)| Candidate { id: *id, time: *t, tags }).collect();
        let got: Vec<(Id, Vec<String>)> = policy::apply(&candidates, &p, &Utc, now)
            .into_iter()
            .map(|v| (v.id, v.reasons.iter().map(|r| r.to_string()).collect()))
            .collect();
        let want = reference(&snaps, &p, now);
        if got != want {
            let shown: Vec<String> = times.iter().map(|&t| naive::show(t)).collect();
            panic!("case {case}: policy {p:?}, now {now:?}\ntimes {shown:?}\n got {got:?}\nwant {want:?}");
        }
        kept_some += got.iter().filter(|(_, r)| !r.is_empty()).count();
    }
    assert!(kept_some > 1000, "the random policies should keep something");
}

// ---- the command line --------------------------------------------------------------------------

/// `arca ARGS` in UTC.
fn utc(env: &Env, args: &[&str]) -> Out {
    in_zone(env, "UTC", args)
}

fn in_zone(env: &Env, tz: &str, args: &[&str]) -> Out {
    Out::from(env.cmd().env("TZ", tz).args(args).output().expect("run arca"))
}

/// `arca --json ARGS` in UTC, which must succeed.
fn utc_json(env: &Env, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    utc(env, &a).ok().json()
}

/// Back up `src` as of `time`; the new snapshot's ID.
fn backup_at(env: &Env, src: &Path, time: &str, extra: &[&str]) -> String {
    let mut a = vec!["--time", time];
    a.extend_from_slice(extra);
    env.backup(&[src], &a)["snapshot"].as_str().unwrap().to_string()
}

fn snapshot_set(env: &Env) -> BTreeSet<String> {
    env.json(&["snapshots"]).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

fn ids_of(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

/// A source directory with a fixed file and a `stamp.txt` that each backup rewrites.
fn stamped_source(env: &Env) -> std::path::PathBuf {
    let src = env.mkdir("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/fixed.bin"), random_bytes(11, 300_000)).unwrap();
    src
}

#[test]
fn daily_weekly_monthly_policy_on_backups_made_with_time() {
    let env = Env::new();
    let src = stamped_source(&env);
    let mut dates: Vec<String> = ["2023-06-15", "2023-08-15", "2023-10-15", "2023-12-15"].map(String::from).to_vec();
    dates.extend((1..=30).map(|d| format!("2024-01-{d:02}")));
    let mut id_of: BTreeMap<String, String> = BTreeMap::new();
    for date in &dates {
        fs::write(src.join("stamp.txt"), date).unwrap();
        id_of.insert(date.clone(), backup_at(&env, &src, &format!("{date}T12:00:00Z"), &[]));
    }
    let all = snapshot_set(&env);
    assert_eq!(all.len(), 34);
    // Worked by hand: 1 January 2024 is a Monday, so weeks start on the 1st, 8th, 15th, 22nd, 29th.
    let expected: [(&str, &[&str]); 13] = [
        ("2024-01-30", &["daily snapshot", "weekly snapshot", "monthly snapshot"]),
        ("2024-01-29", &["daily snapshot"]),
        ("2024-01-28", &["daily snapshot", "weekly snapshot"]),
        ("2024-01-27", &["daily snapshot"]),
        ("2024-01-26", &["daily snapshot"]),
        ("2024-01-25", &["daily snapshot"]),
        ("2024-01-24", &["daily snapshot"]),
        ("2024-01-21", &["weekly snapshot"]),
        ("2024-01-14", &["weekly snapshot"]),
        ("2023-12-15", &["monthly snapshot"]),
        ("2023-10-15", &["monthly snapshot"]),
        ("2023-08-15", &["monthly snapshot"]),
        ("2023-06-15", &["monthly snapshot"]),
    ];
    let policy = ["forget", "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12"];

    // Dry run, JSON: the decision, nothing removed.
    let mut args = policy.to_vec();
    args.push("--dry-run");
    let v = utc_json(&env, &args);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["removed"], Value::Array(vec![]));
    assert_eq!(v["named"], Value::Array(vec![]));
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(g["host"], Value::String(arca::sys::hostname()));
    assert_eq!(strs(&g["paths"]), [src.to_str().unwrap()]);
    assert_eq!(g["tags"], Value::Null, "not grouped by tags");
    let keep = g["keep"].as_array().unwrap();
    let got: Vec<(String, Vec<String>)> =
        keep.iter().map(|k| (k["id"].as_str().unwrap().to_string(), strs(&k["reasons"]))).collect();
    let want: Vec<(String, Vec<String>)> =
        expected.iter().map(|(d, r)| (id_of[*d].clone(), r.iter().map(|s| s.to_string()).collect())).collect();
    assert_eq!(got, want);
    let k0 = &keep[0];
    assert_eq!(k0["time"], "2024-01-30 12:00:00");
    assert_eq!(k0["time_ns"].as_i64().unwrap(), naive::ns("2024-01-30 12:00:00"));
    assert_eq!(k0["short_id"].as_str().unwrap(), &id_of["2024-01-30"][..8]);
    assert_eq!(strs(&k0["paths"]), [src.to_str().unwrap()]);
    assert_eq!(k0["tags"], Value::Array(vec![]));
    let kept_ids: BTreeSet<String> = want.iter().map(|(id, _)| id.clone()).collect();
    let removed_ids: BTreeSet<String> = ids_of(&g["remove"]).into_iter().collect();
    assert_eq!(removed_ids, all.difference(&kept_ids).cloned().collect());
    assert_eq!(removed_ids.len(), 21);
    assert_eq!(snapshot_set(&env), all, "a dry run removes nothing");

    // Dry run, text: the same decision as tables with reasons.
    let out = utc(&env, &args).ok().text();
    assert!(out.contains("applying policy: keep 7 daily, 4 weekly, 12 monthly snapshots"), "{out}");
    assert!(out.contains("keep 13 snapshots:") && out.contains("remove 21 snapshots:"), "{out}");
    let line = out.lines().find(|l| l.starts_with(&id_of["2024-01-30"][..8])).unwrap();
    assert!(
        line.contains("2024-01-30 12:00:00") && line.contains("daily snapshot, weekly snapshot, monthly snapshot"),
        "{line}"
    );
    assert!(out.contains("times in UTC; would remove 21 snapshots"), "{out}");
    assert_eq!(snapshot_set(&env), all);

    // For real: exactly the removed ones go.
    let out = utc(&env, &policy).ok().text();
    assert!(out.contains("removed 21 snapshots"), "{out}");
    assert_eq!(snapshot_set(&env), kept_ids);
    // The same policy again is stable: it keeps what it kept.
    let mut again = vec!["--json"];
    again.extend_from_slice(&policy);
    let v = utc(&env, &again).ok().json();
    assert_eq!(v["removed"], Value::Array(vec![]));
    assert_eq!(v["groups"][0]["keep"].as_array().unwrap().len(), 13);

    // Kept snapshots still restore byte for byte, and the repository checks clean.
    env.run(&["check", "--read-data"]).ok();
    let target = env.path("restored");
    env.restore(&id_of["2024-01-24"], &target, &[]);
    fs::write(src.join("stamp.txt"), "2024-01-24").unwrap();
    assert_same_tree(&src, &under(&target, &src), Cmp { root_meta: false, mtime: false });
}

#[test]
fn groups_by_host_and_paths_unless_told_otherwise() {
    let env = Env::new();
    let s1 = env.mkdir("one");
    let s2 = env.mkdir("two");
    fs::write(s1.join("f"), b"one").unwrap();
    fs::write(s2.join("f"), b"two").unwrap();
    let _a1 = backup_at(&env, &s1, "2024-01-01T00:00:00Z", &["--host", "alpha"]);
    let a2 = backup_at(&env, &s1, "2024-01-02T00:00:00Z", &["--host", "alpha"]);
    let a3 = backup_at(&env, &s2, "2024-01-03T00:00:00Z", &["--host", "alpha"]);
    let b1 = backup_at(&env, &s1, "2024-01-01T06:00:00Z", &["--host", "beta"]);
    let b2 = backup_at(&env, &s1, "2024-01-04T00:00:00Z", &["--host", "beta"]);
    let kept = |v: &Value| -> BTreeSet<String> {
        v["groups"].as_array().unwrap().iter().flat_map(|g| ids_of(&g["keep"])).collect()
    };
    let set = |ids: &[&String]| -> BTreeSet<String> { ids.iter().map(|s| s.to_string()).collect() };

    let v = utc_json(&env, &["forget", "--keep-last", "1", "--dry-run"]);
    assert_eq!(v["groups"].as_array().unwrap().len(), 3);
    assert_eq!(kept(&v), set(&[&a2, &a3, &b2]));

    let v = utc_json(&env, &["forget", "--keep-last", "1", "--dry-run", "--group-by", "host"]);
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!((&groups[0]["host"], &groups[0]["paths"]), (&Value::from("alpha"), &Value::Null));
    assert_eq!(kept(&v), set(&[&a3, &b2]));

    for none in ["", "none"] {
        let v = utc_json(&env, &["forget", "--keep-last", "1", "--dry-run", "--group-by", none]);
        assert_eq!(v["groups"].as_array().unwrap().len(), 1);
        assert_eq!(v["groups"][0]["host"], Value::Null);
        assert_eq!(kept(&v), set(&[&b2]));
    }

    let text = utc(&env, &["forget", "--keep-last", "1", "--dry-run"]).ok().text();
    assert!(text.contains(&format!("snapshots of host alpha, paths [{}]:", s1.display())), "{text}");
    assert!(text.contains(&format!("snapshots of host beta, paths [{}]:", s1.display())), "{text}");

    // --host narrows what is considered: only beta's older snapshot goes.
    let v = utc_json(&env, &["forget", "--keep-last", "1", "--host", "beta"]);
    assert_eq!(strs(&v["removed"]), [b1.as_str()]);
    assert_eq!(snapshot_set(&env).len(), 4);
    assert!(!snapshot_set(&env).contains(&b1));
}

#[test]
fn keep_tag_and_refusing_to_empty_a_group() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"data").unwrap();
    let tagged = backup_at(&env, &src, "2024-01-01T00:00:00Z", &["--tag", "keep"]);
    let plain = backup_at(&env, &src, "2024-01-02T00:00:00Z", &[]);
    let other = backup_at(&env, &src, "2024-01-03T00:00:00Z", &["--tag", "other"]);
    let all = snapshot_set(&env);

    let v = utc_json(&env, &["forget", "--keep-tag", "keep", "--dry-run"]);
    let g = &v["groups"][0];
    assert_eq!(ids_of(&g["keep"]), [tagged.as_str()]);
    assert_eq!(strs(&g["keep"][0]["reasons"]), ["has tags [keep]"]);
    assert_eq!(ids_of(&g["remove"]), [other.clone(), plain.clone()]);

    // No snapshot has the tag: the policy would empty the group, so nothing is removed.
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut a = vec!["forget", "--keep-tag", "nothere"];
        a.extend_from_slice(extra);
        let out = utc(&env, &a).code(1);
        assert!(out.stderr.contains("refusing to remove every snapshot"), "{}", out.stderr);
        assert!(out.stderr.contains(&format!("host {}", arca::sys::hostname())), "names the group: {}", out.stderr);
        assert!(out.stderr.contains("--allow-remove-all"), "{}", out.stderr);
        assert_eq!(snapshot_set(&env), all);
    }
    let out = utc(&env, &["--json", "forget", "--keep-tag", "nothere"]).code(1);
    assert!(out.stderr.contains("\"code\":1"), "{}", out.stderr);

    // Without a policy, --allow-remove-all needs a filter, and removes what it selects.
    assert!(utc(&env, &["forget", "--allow-remove-all"]).code(2).stderr.contains("--host, --tag or --path"));
    let v = utc_json(&env, &["forget", "--allow-remove-all", "--tag", "other"]);
    assert_eq!(strs(&v["removed"]), [other.as_str()]);
    // With a policy, it lets the policy empty the group.
    utc(&env, &["forget", "--keep-tag", "nothere", "--allow-remove-all"]).ok();
    assert!(snapshot_set(&env).is_empty());
    assert!(repo_files(&env.repo, FileType::Lock).is_empty(), "the exclusive lock is released");
}

#[test]
fn explicit_ids_are_removed_and_an_unknown_one_removes_nothing() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"data").unwrap();
    let ids: Vec<String> = (1..=4).map(|d| backup_at(&env, &src, &format!("2024-02-0{d}T08:00:00Z"), &[])).collect();
    let all = snapshot_set(&env);

    // One unknown reference among good ones: an error, and none of them is removed.
    let out = utc(&env, &["forget", &ids[0], "deadbeefdeadbeef"]).code(1);
    assert!(out.stderr.contains("deadbeefdeadbeef"), "{}", out.stderr);
    assert_eq!(snapshot_set(&env), all);
    // IDs and a policy together are a usage error; so is neither.
    utc(&env, &["forget", &ids[0], "--keep-last", "1"]).code(2);
    let out = utc(&env, &["forget"]).code(2);
    assert!(out.stderr.contains("no policy given"), "{}", out.stderr);
    // An ID outside the filters is refused.
    utc(&env, &["forget", &ids[0], "--host", "elsewhere"]).code(1);
    // A dry run names them and removes nothing.
    let out = utc(&env, &["forget", "--dry-run", &ids[0][..10]]).ok().text();
    assert!(out.contains(&format!("would remove snapshot {}", &ids[0][..8])), "{out}");
    assert_eq!(snapshot_set(&env), all);

    // A prefix and a full ID (the same one twice counts once), removed whatever their group.
    let v = utc_json(&env, &["forget", &ids[1][..8], &ids[2], &ids[2][..12]]);
    assert_eq!(strs(&v["removed"]), [ids[1].clone(), ids[2].clone()]);
    assert_eq!(ids_of(&v["named"]), [ids[1].clone(), ids[2].clone()]);
    assert_eq!(snapshot_set(&env), [ids[0].clone(), ids[3].clone()].into_iter().collect());
    let out = utc(&env, &["forget", "latest"]).ok().text();
    assert!(out.contains(&format!("removed snapshot {}", &ids[3][..8])), "{out}");
    assert_eq!(snapshot_set(&env), [ids[0].clone()].into_iter().collect());
}

#[test]
fn bad_policy_values_are_usage_errors() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"data").unwrap();
    backup_at(&env, &src, "2024-01-01T00:00:00Z", &[]);
    backup_at(&env, &src, "2024-01-02T00:00:00Z", &[]);
    let all = snapshot_set(&env);
    for bad in [
        &["--keep-daily", "x"][..],
        &["--keep-daily", "-2"],
        &["--keep-last", "1.5"],
        &["--keep-within", "3q"],
        &["--keep-within", "2w"],
        &["--keep-within-daily", "-1d"],
        &["--keep-within", "7"],
        &["--keep-weekly", "1", "--group-by", "colour"],
    ] {
        let mut a = vec!["forget"];
        a.extend_from_slice(bad);
        let out = utc(&env, &a).code(2);
        assert!(!out.stderr.is_empty(), "{bad:?}");
        assert_eq!(snapshot_set(&env), all, "{bad:?}");
    }
    // -1 and 'unlimited' keep every bucket.
    for unlimited in ["-1", "unlimited"] {
        let v = utc_json(&env, &["forget", "--keep-daily", unlimited, "--dry-run"]);
        assert_eq!(v["groups"][0]["keep"].as_array().unwrap().len(), 2);
    }
}

#[test]
fn buckets_follow_the_local_time_zone() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"data").unwrap();
    let c = backup_at(&env, &src, "2024-04-20T12:00:00Z", &[]);
    let a = backup_at(&env, &src, "2024-05-01T23:30:00Z", &[]);
    let b = backup_at(&env, &src, "2024-05-02T01:00:00Z", &[]);
    let kept_in = |tz: &str| -> Vec<String> {
        let out = in_zone(&env, tz, &["--json", "forget", "--keep-daily", "2", "--dry-run"]).ok().json();
        ids_of(&out["groups"][0]["keep"])
    };
    // In UTC, a and b fall on different days; two hours east of it (POSIX TZ "XYZ-2") both are
    // on 2 May, so the second daily count goes to c.
    assert_eq!(kept_in("UTC"), [b.clone(), a.clone()]);
    assert_eq!(kept_in("XYZ-2"), [b.clone(), c.clone()]);
    let text = in_zone(&env, "XYZ-2", &["forget", "--keep-daily", "2", "--dry-run"]).ok().text();
    assert!(text.contains("2024-05-02 03:00:00") && text.contains("times in XYZ"), "local times shown: {text}");
}

#[test]
fn forget_takes_an_exclusive_lock_but_a_dry_run_none() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"data").unwrap();
    backup_at(&env, &src, "2024-01-01T00:00:00Z", &[]);
    backup_at(&env, &src, "2024-01-02T00:00:00Z", &[]);
    let repo = env.open();
    let guard = repo.lock(false).unwrap();
    utc(&env, &["forget", "--keep-last", "1", "--retry-lock", "0"]).code(11);
    utc(&env, &["forget", "--keep-last", "1", "--dry-run", "--retry-lock", "0"]).ok();
    assert_eq!(snapshot_set(&env).len(), 2);
    drop(guard);
    utc(&env, &["forget", "--keep-last", "1"]).ok();
    assert_eq!(snapshot_set(&env).len(), 1);
}

#[test]
fn backup_time_formats() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"data").unwrap();
    let time_of = |tz: &str, time: &str| -> i64 {
        let v = in_zone(&env, tz, &["--json", "backup", "--time", time, src.to_str().unwrap()]).ok().json();
        let id = v["snapshot"].as_str().unwrap().to_string();
        let list = env.json(&["snapshots"]);
        let s = list.as_array().unwrap().iter().find(|s| s["id"] == id.as_str()).unwrap().clone();
        s["time_ns"].as_i64().unwrap()
    };
    // restic's local forms, in the zone of the process (XYZ-2 is UTC+2).
    assert_eq!(time_of("XYZ-2", "2024-05-01 14:00:00"), naive::ns("2024-05-01 12:00:00"));
    assert_eq!(time_of("UTC", "2024-05-01 14:00:00"), naive::ns("2024-05-01 14:00:00"));
    assert_eq!(time_of("XYZ-2", "2024-05-01"), naive::ns("2024-04-30 22:00:00"));
    // RFC 3339 carries its own offset.
    assert_eq!(time_of("XYZ-2", "2024-05-01T12:00:00Z"), naive::ns("2024-05-01 12:00:00"));
    assert_eq!(time_of("UTC", "2024-05-01T12:00:00+02:00"), naive::ns("2024-05-01 10:00:00"));
    assert_eq!(time_of("UTC", "2024-05-01T12:00:00.25-01:30"), naive::ns("2024-05-01 13:30:00") + NS / 4);
    let before = snapshot_set(&env);
    for bad in
        ["2024-13-01", "2024-02-30 10:00:00", "yesterday", "2024-05-01T12:00", "2024-05-01 25:00:00", "1969-07-20"]
    {
        let out = utc(&env, &["backup", "--time", bad, src.to_str().unwrap()]).code(2);
        assert!(out.stderr.contains("YYYY-MM-DD"), "{bad}: {}", out.stderr);
    }
    assert_eq!(snapshot_set(&env), before, "a bad --time writes nothing");
}

#[test]
fn a_damaged_snapshot_is_reported_and_left_alone() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"data").unwrap();
    let ids: Vec<String> = (1..=3).map(|d| backup_at(&env, &src, &format!("2024-03-0{d}T08:00:00Z"), &[])).collect();
    flip_byte(&repo_file(&env.repo, FileType::Snapshot, &ids[1]), 40);
    let out = utc(&env, &["--json", "forget", "--keep-last", "1"]).code(4);
    let v = out.json();
    assert_eq!(strs(&v["removed"]), [ids[0].clone()]);
    assert_eq!(v["damaged"][0]["name"], ids[1].as_str());
    assert!(out.stderr.contains(&ids[1]), "warns about it: {}", out.stderr);
    assert!(repo_file(&env.repo, FileType::Snapshot, &ids[1]).exists(), "the damaged file stays");
    assert!(repo_file(&env.repo, FileType::Snapshot, &ids[2]).exists());
}
