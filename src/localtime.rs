//! The process's local time zone (`TZ`, else the system's), for the places where "a day" must
//! mean the user's day: retention buckets in `forget`, the times shown, `backup --time`,
//! `--as-of`/`--before`. The rest of the library takes a [`Calendar`] and never looks at the zone.

use crate::lifecycle::policy::{days_from_civil, Calendar, Civil};
use std::sync::Once;

/// The C library's local time zone, through `localtime_r` and `mktime`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Local;

extern "C" {
    // Not bound by the libc crate on every Unix; part of POSIX.
    fn tzset();
}

/// `localtime_r` need not read `TZ` itself (POSIX); `tzset` makes sure it has.
fn init_zone() {
    static ONCE: Once = Once::new();
    // SAFETY: tzset only reads the environment, which this process does not modify.
    ONCE.call_once(|| unsafe { tzset() });
}

fn broken_down(secs: i64) -> Option<libc::tm> {
    init_zone();
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: an all-zero `tm` is a valid value (its zone pointer is null until filled in).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the reentrant variant.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    (!r.is_null()).then_some(tm)
}

impl Calendar for Local {
    fn civil(&self, secs: i64) -> Civil {
        match broken_down(secs) {
            Some(tm) => Civil {
                year: i64::from(tm.tm_year) + 1900,
                month: i64::from(tm.tm_mon) + 1,
                day: i64::from(tm.tm_mday),
                hour: i64::from(tm.tm_hour),
                minute: i64::from(tm.tm_min),
                second: i64::from(tm.tm_sec),
            },
            // Beyond what the C library handles: UTC is the best remaining answer.
            None => crate::lifecycle::policy::Utc.civil(secs),
        }
    }

    fn instant(&self, c: &Civil) -> Option<i64> {
        init_zone();
        // Carry months into years here, so that both fit the C library's `int` fields.
        let year = c.year.checked_add((c.month - 1).div_euclid(12))?;
        // SAFETY: as in `broken_down`.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        tm.tm_year = i32::try_from(year - 1900).ok()?;
        tm.tm_mon = (c.month - 1).rem_euclid(12) as i32;
        tm.tm_mday = i32::try_from(c.day).ok()?;
        tm.tm_hour = i32::try_from(c.hour).ok()?;
        tm.tm_min = i32::try_from(c.minute).ok()?;
        tm.tm_sec = i32::try_from(c.second).ok()?;
        tm.tm_isdst = -1; // let the zone rules decide whether daylight saving applies
                          // mktime sets the weekday on success; -1 is also a valid time, so this tells them apart.
        tm.tm_wday = -1;
        // SAFETY: `tm` is a valid, initialised struct.
        let t = unsafe { libc::mktime(&mut tm) };
        (tm.tm_wday != -1).then_some(t as i64)
    }
}

/// Unix ns as local `YYYY-MM-DD HH:MM:SS`.
pub fn format(ns: i64) -> String {
    let c = Local.civil(ns.div_euclid(1_000_000_000));
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// The local zone's abbreviation now (`UTC`, `CET`), for saying which times a table shows.
pub fn zone_name() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    match broken_down(now) {
        // SAFETY: a non-null tm_zone from localtime_r points to a NUL-terminated static string.
        Some(tm) if !tm.tm_zone.is_null() => {
            unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }.to_string_lossy().into_owned()
        }
        _ => "local time".into(),
    }
}

/// Parse `backup --time`: `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` in local time (as restic's
/// `--time`), or RFC 3339 with `Z` or an offset (`2024-05-01T12:00:00+02:00`, fractions of a
/// second allowed). Returns Unix ns.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let bad = |why: &str| {
        format!(
            "{s:?}: {why} (expected 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD' in local time, or RFC 3339 \
             such as 2024-05-01T12:00:00Z)"
        )
    };
    let (date, rest) = s.split_at_checked(10).ok_or_else(|| bad("too short"))?;
    let (year, month, day) = parse_date(date).ok_or_else(|| bad("not a valid date"))?;
    let clock = match rest {
        "" => Clock::default(),
        _ if rest.starts_with(' ') || rest.starts_with('T') || rest.starts_with('t') => {
            parse_clock(&rest[1..]).ok_or_else(|| bad("not a valid time of day or offset"))?
        }
        _ => return Err(bad("unexpected text after the date")),
    };
    let (hour, minute, second) = clock.hms;
    let civil = Civil { year, month, day, hour, minute, second };
    let secs = match clock.offset {
        Some(off) => crate::lifecycle::policy::Utc.instant(&civil).map(|t| t - off),
        None => Local.instant(&civil),
    }
    .ok_or_else(|| bad("out of range"))?;
    let ns = i64::try_from(i128::from(secs) * 1_000_000_000 + i128::from(clock.nanos)).ok().filter(|&ns| ns >= 0);
    ns.ok_or_else(|| bad("outside 1970 to 2262"))
}

/// `YYYY-MM-DD`, a real date.
fn parse_date(d: &str) -> Option<(i64, i64, i64)> {
    let b = d.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, day) = (digits(&d[0..4])?, digits(&d[5..7])?, digits(&d[8..10])?);
    let month_len = days_from_civil(y + i64::from(m == 12), m % 12 + 1, 1) - days_from_civil(y, m, 1);
    ((1..=12).contains(&m) && (1..=month_len).contains(&day)).then_some((y, m, day))
}

/// A time of day, and the offset from UTC it was given with.
#[derive(Default)]
struct Clock {
    /// Hour, minute, second.
    hms: (i64, i64, i64),
    /// Fraction of the second.
    nanos: i64,
    /// Seconds east of UTC; `None`: local time.
    offset: Option<i64>,
}

/// `HH:MM:SS[.fraction][Z|±HH:MM]`.
fn parse_clock(t: &str) -> Option<Clock> {
    let b = t.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m, s) = (digits(&t[0..2])?, digits(&t[3..5])?, digits(&t[6..8])?);
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let mut rest = &t[8..];
    let mut nanos = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.len() - frac.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(&frac[..n])? * 10i64.pow(9 - n as u32);
        rest = &frac[n..];
    }
    let offset = match rest {
        "" => None,
        "Z" | "z" => Some(0),
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let o = rest.get(1..)?.as_bytes();
            if o.len() != 5 || o[2] != b':' {
                return None;
            }
            let (oh, om) = (digits(&rest[1..3])?, digits(&rest[4..6])?);
            if oh > 23 || om > 59 {
                return None;
            }
            Some(sign * (oh * 3600 + om * 60))
        }
    };
    Some(Clock { hms: (h, m, s), nanos, offset })
}

/// A run of ASCII digits as a number.
fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn rfc3339_and_rejections() {
        assert_eq!(parse_time("2024-05-01T12:00:00Z"), Ok(1_714_564_800_000_000_000));
        assert_eq!(parse_time("2024-05-01T14:00:00.5+02:00"), Ok(1_714_564_800_500_000_000));
        assert_eq!(parse_time("2024-05-01 07:00:00-05:00"), Ok(1_714_564_800_000_000_000));
        for bad in [
            "2024-02-30",
            "2024-13-01",
            "2024-05-01 24:00:00",
            "yesterday",
            "2024-05-01T12:00",
            "",
            "1969-12-31T00:00:00Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
