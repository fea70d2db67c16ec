//! Server-rendered SVG charts of the operations journal, for the health dashboard of `arca ui`.
//!
//! Everything here is a pure function from journal records ([`Record`]) to markup that a page
//! embeds inline. The markup is made for a strict Content-Security-Policy: no `<script>`, no
//! `style` attributes, no event-handler attributes, only SVG presentation attributes (`fill`,
//! `stroke`, …). Every text, whether from a record (labels, error messages, component names) or
//! from the caller, is XML-escaped. Tooltips are `<title>` children (no script needed); each chart
//! has `role="img"`, an `aria-label`, a `<title>` and a `<desc>`, and a `viewBox`, so that it
//! scales with the page. The output is deterministic for given records (times are shown in the
//! process's local time zone, [`crate::localtime`]).
//!
//! What the journal carries, and so what is charted (format-spec/21-journal.md §21.2):
//!
//! - a backup records `bytes_added` (plaintext newly stored, before compression) and
//!   `bytes_stored` (bytes newly written to packs, after compression and encryption), but not
//!   the repository's size: the first chart is therefore the running total of `bytes_stored`
//!   over the backups in the journal, which does not subtract what `forget` and `prune` freed;
//! - a record's `duration` is how long the command ran (a restore records no other time);
//! - a drill records `rto_ns` (measured) and `rto_full_ns` (extrapolated to the whole snapshot:
//!   the figure judged against `max-rto`), and `max_rto_ns` when it had an objective;
//! - a failed backup or drill carries no metrics; records run for a profile carry the labels
//!   `profile` and `component`.
//!
//! Each chart draws at most [`MAX_POINTS`] marks.

use crate::format::journal::{Op, Outcome, Record};
use std::fmt::Write as _;
use std::time::Duration;

/// Most marks (points or bars) one chart draws: the newest are kept.
pub const MAX_POINTS: usize = 500;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 36.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;
const PLOT_BOTTOM: f64 = HEIGHT - BOTTOM;
/// Space between the plot's edges and the first and last point of a line chart.
const INSET: f64 = 8.0;

const TEXT: &str = "#1f2937";
const MUTED: &str = "#6b7280";
const GRID: &str = "#e5e7eb";
const AXIS: &str = "#9ca3af";
const WARN: &str = "#d97706";
const FAIL: &str = "#dc2626";
const THRESHOLD: &str = "#ea580c";
/// Colour of backup marks.
const BACKUP: &str = "#2563eb";
/// Colour of drill marks.
const DRILL: &str = "#0d9488";
/// Colour of restore marks.
const RESTORE: &str = "#7c3aed";

/// Longest component name shown in a title, in characters.
const MAX_NAME: usize = 60;
/// Longest error message shown in a tooltip, in characters.
const MAX_ERROR: usize = 160;

/// One chart, ready to embed in a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chart {
    /// What the chart shows, as plain text: escape it to put it into HTML (the SVG holds it
    /// escaped already).
    pub title: String,
    /// The chart: one `<svg>` element, to embed as it is.
    pub svg: String,
}

/// How a mark is drawn, from the outcome of its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Succeeded: drawn in its series' colour.
    Ok,
    /// Completed with a reservation (partial, or an objective missed): an amber diamond.
    Warning,
    /// Failed, found damage, or was refused: a red cross.
    Failed,
}

impl Status {
    /// The status a record's outcome is drawn with.
    pub fn of(outcome: Outcome) -> Status {
        match outcome {
            Outcome::Ok => Status::Ok,
            Outcome::Partial | Outcome::Missed => Status::Warning,
            _ => Status::Failed,
        }
    }

    fn class(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warn",
            Status::Failed => "fail",
        }
    }
}

/// What a chart's values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Bytes, shown in B, KiB, MiB, … (powers of 1024).
    Bytes,
    /// Nanoseconds, shown in s, min, h, d.
    Duration,
}

impl Unit {
    /// The units axis labels are given in: (size in this unit's base, name), smallest first.
    fn steps(self) -> &'static [(f64, &'static str)] {
        const KI: f64 = 1024.0;
        match self {
            Unit::Bytes => &[
                (1.0, "B"),
                (KI, "KiB"),
                (KI * KI, "MiB"),
                (KI * KI * KI, "GiB"),
                (KI * KI * KI * KI, "TiB"),
                (KI * KI * KI * KI * KI, "PiB"),
                (KI * KI * KI * KI * KI * KI, "EiB"),
            ],
            Unit::Duration => &[(1e9, "s"), (60e9, "min"), (3600e9, "h"), (86_400e9, "d")],
        }
    }

    /// The smallest top of an axis: an axis of all-zero values still has a scale.
    fn floor(self) -> f64 {
        match self {
            Unit::Bytes => 1024.0,
            Unit::Duration => 1e9,
        }
    }

    /// A value, rounded for reading and exact, for a tooltip.
    fn exact(self, v: u64) -> String {
        match self {
            Unit::Bytes if v < 1024 => human_bytes(v),
            Unit::Bytes => format!("{} ({v} bytes)", human_bytes(v)),
            Unit::Duration if v < 60_000_000_000 => seconds(v),
            Unit::Duration => format!("{} ({})", human_duration(v), seconds(v)),
        }
    }
}

/// One mark of a chart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Point {
    /// When the operation started, Unix nanoseconds.
    pub time: i64,
    /// Its value; `None` when the operation recorded none (drawn on the baseline).
    pub value: Option<u64>,
    /// How it ended.
    pub status: Status,
    /// What the tooltip says after the time and value, as plain text (it is escaped).
    pub note: String,
}

/// Points drawn alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    /// Its name in the legend, as plain text.
    pub name: String,
    /// The colour of its line and of its successful marks (`#rrggbb` or an SVG colour name).
    pub colour: String,
    /// Its points, in any order.
    pub points: Vec<Point>,
}

/// A horizontal line across a chart, labelled: an objective.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Threshold {
    /// Where, in the chart's unit.
    pub value: u64,
    /// Its label, as plain text (e.g. `RTO 4 h`).
    pub label: String,
}

/// The dashboard's charts for these records (oldest first or any order; they are sorted), for
/// one component or all (see [`dashboard_for`] to select one):
/// (1) bytes stored by backups, cumulative (the journal does not record the repository's size),
/// (2) bytes added per backup, (3) duration per backup, (4) restore and drill times against the
/// restore time objective `rto` (a labelled horizontal line), when given, else against the
/// `max_rto_ns` the newest drill recorded, if any.
pub fn dashboard(records: &[Record], rto: Option<Duration>) -> Vec<Chart> {
    dashboard_for(records, None, rto)
}

/// [`dashboard`] of the records of one component (label `component`), or of all records
/// when `component` is `None`.
pub fn dashboard_for(records: &[Record], component: Option<&str>, rto: Option<Duration>) -> Vec<Chart> {
    let mut records: Vec<&Record> = records
        .iter()
        .filter(|r| matches!(r.op, Op::Backup | Op::Drill | Op::Restore))
        .filter(|r| component.is_none_or(|c| r.label("component") == Some(c)))
        .collect();
    records.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    let backups: Vec<&Record> = records.iter().copied().filter(|r| r.op == Op::Backup).collect();
    let suffix = title_suffix(component, &records);
    let rto_ns = rto.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    vec![
        stored_chart(&backups, &suffix),
        added_chart(&backups, &suffix),
        backup_duration_chart(&backups, &suffix),
        recovery_chart(&records, rto_ns, &suffix),
    ]
}

/// ` — component NAME` when the charts are of one component.
fn title_suffix(component: Option<&str>, records: &[&Record]) -> String {
    let only = component.or_else(|| {
        let first = records.first()?.label("component")?;
        records.iter().all(|r| r.label("component") == Some(first)).then_some(first)
    });
    only.map_or_else(String::new, |c| format!(" — component {}", shorten(c, MAX_NAME)))
}

/// Chart 1: the running total of `bytes_stored` over backups.
fn stored_chart(backups: &[&Record], suffix: &str) -> Chart {
    let title = format!("Bytes stored by backups, cumulative{suffix}");
    let mut total = 0u64;
    let points: Vec<Point> = backups
        .iter()
        .map(|r| {
            let stored = r.metric("bytes_stored");
            total = total.saturating_add(stored.unwrap_or(0));
            let what = match stored {
                Some(s) => format!("this backup stored {}", human_bytes(s)),
                None => "no bytes_stored recorded".to_string(),
            };
            Point { time: r.time, value: Some(total), status: Status::of(r.outcome), note: note(r, &what) }
        })
        .collect();
    let count = points.len();
    let points = thin(points, MAX_POINTS);
    let mut desc = "Running total of the bytes each backup newly wrote to the repository (after compression \
                    and encryption), since the journal's first backup record. The journal does not record \
                    the repository's size: space freed by forget and prune is not subtracted."
        .to_string();
    if points.len() < count {
        let _ = write!(desc, " {} of the {count} backups are drawn, evenly spread.", points.len());
    }
    let series = Series { name: "stored by backups".into(), colour: BACKUP.into(), points };
    let svg = line_chart(&title, &desc, Unit::Bytes, &[series], None);
    Chart { title, svg }
}

/// Chart 2: `bytes_added` per backup.
fn added_chart(backups: &[&Record], suffix: &str) -> Chart {
    let title = format!("Bytes added per backup{suffix}");
    let points = backups
        .iter()
        .map(|r| Point {
            time: r.time,
            value: r.metric("bytes_added"),
            status: Status::of(r.outcome),
            note: note(r, ""),
        })
        .collect();
    let desc = "Plaintext bytes each backup newly stored (new file data and trees, before compression). \
                A failed backup stores nothing and is marked on the baseline.";
    let series = Series { name: "bytes added".into(), colour: BACKUP.into(), points };
    let svg = bar_chart(&title, desc, Unit::Bytes, &series);
    Chart { title, svg }
}

/// Chart 3: each backup's duration.
fn backup_duration_chart(backups: &[&Record], suffix: &str) -> Chart {
    let title = format!("Duration per backup{suffix}");
    let points = backups
        .iter()
        .map(|r| Point { time: r.time, value: Some(r.duration), status: Status::of(r.outcome), note: note(r, "") })
        .collect();
    let desc = "How long each backup ran, from start to finish.";
    let series = Series { name: "backup duration".into(), colour: BACKUP.into(), points };
    let svg = bar_chart(&title, desc, Unit::Duration, &series);
    Chart { title, svg }
}

/// Chart 4: drills' restore times (`rto_full_ns`, else `rto_ns`) and restores' durations,
/// against the objective.
fn recovery_chart(records: &[&Record], rto_ns: Option<u64>, suffix: &str) -> Chart {
    let drills: Vec<&Record> = records.iter().copied().filter(|r| r.op == Op::Drill).collect();
    let threshold = match rto_ns {
        Some(ns) => Some(Threshold { value: ns, label: format!("RTO {}", human_duration(ns)) }),
        None => drills
            .iter()
            .rev()
            .find_map(|r| r.metric("max_rto_ns"))
            .map(|ns| Threshold { value: ns, label: format!("max-rto {}", human_duration(ns)) }),
    };
    let title = match threshold {
        Some(_) => format!("Restore and drill times against the RTO{suffix}"),
        None => format!("Restore and drill times{suffix}"),
    };
    let drill_points = drills
        .iter()
        .map(|r| {
            let value = r.metric("rto_full_ns").or_else(|| r.metric("rto_ns"));
            let mut what = String::new();
            if let (Some(s), Some(m)) = (r.label("sample"), r.metric("rto_ns")) {
                what = format!("sample {s}, measured {}, extrapolated to the whole snapshot", human_duration(m));
            }
            if value.is_none() {
                what = format!("no restore time recorded; ran {}", human_duration(r.duration));
            }
            Point { time: r.time, value, status: Status::of(r.outcome), note: note(r, &what) }
        })
        .collect();
    let restore_points = records
        .iter()
        .filter(|r| r.op == Op::Restore)
        .map(|r| Point { time: r.time, value: Some(r.duration), status: Status::of(r.outcome), note: note(r, "") })
        .collect();
    let mut desc = "Drills: the measured restore time, extrapolated to the whole snapshot. Restores: how long \
                    the restore ran. A drill that failed recorded no time and is marked on the baseline."
        .to_string();
    if let Some(t) = &threshold {
        let _ = write!(desc, " Dashed line: the recovery time objective, {}.", human_duration(t.value));
    }
    let series = [
        Series { name: "drill restore time".into(), colour: DRILL.into(), points: drill_points },
        Series { name: "restore duration".into(), colour: RESTORE.into(), points: restore_points },
    ];
    let svg = line_chart(&title, &desc, Unit::Duration, &series, threshold.as_ref());
    Chart { title, svg }
}

/// A record's tooltip note: `backup ok, component db: WHAT`, with the first error of a failure.
fn note(r: &Record, what: &str) -> String {
    let mut s = format!("{} {}", r.op.name(), r.outcome.name());
    if let Some(c) = r.label("component") {
        let _ = write!(s, ", component {}", shorten(c, MAX_NAME));
    }
    if !what.is_empty() {
        let _ = write!(s, "; {what}");
    }
    if Status::of(r.outcome) != Status::Ok {
        if let Some(e) = r.errors.first() {
            let _ = write!(s, "; {}", shorten(e, MAX_ERROR));
        }
    }
    s
}

/// A line chart of `series` over time (each point a mark, successful points joined by a line
/// per series), with an optional labelled horizontal `threshold`; "no data" when no series has
/// points. Draws the newest [`MAX_POINTS`] points of each series.
pub fn line_chart(title: &str, desc: &str, unit: Unit, series: &[Series], threshold: Option<&Threshold>) -> String {
    let shown: Vec<(&Series, Vec<&Point>)> = series.iter().map(|s| (s, newest(&s.points))).collect();
    let Some((t0, t1)) = time_range(shown.iter().flat_map(|(_, p)| p.iter().map(|p| p.time))) else {
        return empty_chart(title, desc);
    };
    let mut desc = desc.to_string();
    for (s, p) in &shown {
        if p.len() < s.points.len() {
            let _ = write!(desc, " {}: the newest {} of {} are drawn.", s.name, p.len(), s.points.len());
        }
    }
    let values = shown.iter().flat_map(|(_, p)| p.iter().filter_map(|p| p.value));
    let max = values.chain(threshold.map(|t| t.value)).max().unwrap_or(0);
    let scale = Scale::new(unit, max as f64);
    let axis = TimeAxis { t0, t1 };
    let mut out = String::new();
    open(&mut out, title, &desc, title);
    scale.draw(&mut out);
    axis.draw(&mut out);
    let mut legend = Vec::new();
    for (s, points) in shown.iter().filter(|(_, p)| !p.is_empty()) {
        let colour = escape(&s.colour);
        let line: Vec<String> = points
            .iter()
            .filter_map(|p| p.value.map(|v| format!("{:.1},{:.1}", axis.x(p.time), scale.y(v as f64))))
            .collect();
        let _ = write!(out, r#"<g class="series" aria-label="{}">"#, escape(&s.name));
        if line.len() > 1 {
            let _ = write!(
                out,
                r#"<polyline class="line" points="{}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-linejoin="round"/>"#,
                line.join(" ")
            );
        }
        for p in points {
            let y = scale.y(p.value.map_or(0.0, |v| v as f64));
            mark(&mut out, axis.x(p.time), y, p.status, &colour, &tooltip(unit, p));
        }
        out.push_str("</g>");
        legend.push((Swatch::Dot(colour), s.name.clone()));
    }
    status_legend(&mut legend, shown.iter().flat_map(|(_, p)| p.iter().copied()), false);
    if let Some(t) = threshold {
        draw_threshold(&mut out, &scale, unit, t);
        legend.push((Swatch::Dash, t.label.clone()));
    }
    draw_legend(&mut out, &legend);
    out.push_str("</svg>");
    out
}

/// A bar chart of `series`, one bar per point in time order, evenly spaced (with dates under a
/// few of them); a point without a value is a mark on the baseline. "No data" when there are no
/// points. Draws the newest [`MAX_POINTS`] points.
pub fn bar_chart(title: &str, desc: &str, unit: Unit, series: &Series) -> String {
    let points = newest(&series.points);
    if points.is_empty() {
        return empty_chart(title, desc);
    }
    let mut desc = desc.to_string();
    if points.len() < series.points.len() {
        let _ = write!(desc, " The newest {} of {} are drawn.", points.len(), series.points.len());
    }
    let max = points.iter().filter_map(|p| p.value).max().unwrap_or(0);
    let scale = Scale::new(unit, max as f64);
    let mut out = String::new();
    open(&mut out, title, &desc, title);
    scale.draw(&mut out);
    let n = points.len();
    let slot = PLOT_W / n as f64;
    let centre = |i: usize| LEFT + slot * (i as f64 + 0.5);
    // Dates under the first and last bars and two between.
    out.push_str(r#"<g class="x-axis">"#);
    let mut last_label = String::new();
    let mut last_index = None;
    for k in 0..4 {
        let i = k * (n - 1) / 3;
        let label = date(points[i].time);
        if last_index == Some(i) || label == last_label {
            continue;
        }
        tick_label(&mut out, centre(i), &label);
        (last_index, last_label) = (Some(i), label);
    }
    out.push_str("</g>");
    let colour = escape(&series.colour);
    let width = (slot * 0.7).clamp(0.5, 28.0);
    let _ = write!(out, r#"<g class="series" aria-label="{}">"#, escape(&series.name));
    for (i, p) in points.iter().enumerate() {
        let tip = tooltip(unit, p);
        let Some(v) = p.value else {
            mark(&mut out, centre(i), PLOT_BOTTOM, p.status, &colour, &tip);
            continue;
        };
        // At least a sliver, so that a zero is seen and has a tooltip.
        let top = scale.y(v as f64).min(PLOT_BOTTOM - 1.0);
        let fill = match p.status {
            Status::Ok => colour.as_str(),
            Status::Warning => WARN,
            Status::Failed => FAIL,
        };
        let _ = write!(
            out,
            r#"<g class="bar {}"><title>{}</title><rect x="{:.2}" y="{top:.1}" width="{width:.2}" height="{:.1}" fill="{fill}"/></g>"#,
            p.status.class(),
            escape(&tip),
            centre(i) - width / 2.0,
            PLOT_BOTTOM - top,
        );
    }
    out.push_str("</g>");
    let mut legend = vec![(Swatch::Bar(colour), series.name.clone())];
    status_legend(&mut legend, points.iter().copied(), true);
    draw_legend(&mut out, &legend);
    out.push_str("</svg>");
    out
}

/// A chart with nothing to draw: its frame and "no data".
fn empty_chart(title: &str, desc: &str) -> String {
    let mut out = String::new();
    open(&mut out, title, &format!("No data. {desc}"), &format!("{title}: no data"));
    let _ = write!(
        out,
        r#"<rect class="frame" x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="{GRID}"/><text class="no-data" x="{:.1}" y="{:.1}" text-anchor="middle" font-size="14" fill="{MUTED}">no data</text></svg>"#,
        LEFT + PLOT_W / 2.0,
        TOP + PLOT_H / 2.0 + 5.0,
    );
    out
}

/// The `<svg>` start tag, its title and description, and the heading.
fn open(out: &mut String, title: &str, desc: &str, label: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="arca-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" font-family="system-ui, sans-serif" font-size="11"><title>{}</title><desc>{}</desc><text class="heading" x="8" y="20" font-size="14" font-weight="600" fill="{TEXT}">{}</text>"#,
        escape(label),
        escape(title),
        escape(desc),
        escape(title),
    );
}

/// The newest [`MAX_POINTS`] of `points`, oldest first.
fn newest(points: &[Point]) -> Vec<&Point> {
    let mut v: Vec<&Point> = points.iter().collect();
    v.sort_by_key(|p| p.time);
    v.split_off(v.len().saturating_sub(MAX_POINTS))
}

/// At most `max` of `v`, evenly spread, the first and last always among them.
fn thin<T>(v: Vec<T>, max: usize) -> Vec<T> {
    let n = v.len();
    if n <= max || max < 2 {
        return v;
    }
    // Index i·(n−1)/(max−1) rises by at least 1 each step since n > max.
    let mut next = 0;
    let mut k = 0;
    v.into_iter()
        .enumerate()
        .filter_map(|(i, x)| {
            if k < max && i == next {
                k += 1;
                next = k * (n - 1) / (max - 1);
                Some(x)
            } else {
                None
            }
        })
        .collect()
}

fn time_range(times: impl Iterator<Item = i64>) -> Option<(i64, i64)> {
    times.fold(None, |r, t| Some(r.map_or((t, t), |(a, b): (i64, i64)| (a.min(t), b.max(t)))))
}

/// A value axis from 0: its unit, step and top.
struct Scale {
    /// The size of the axis's unit (e.g. 2^20 for MiB).
    div: f64,
    /// The unit's name.
    name: &'static str,
    /// The distance between ticks, in the unit.
    step: f64,
    /// Ticks above 0.
    steps: u32,
    /// The axis's top value, in the chart's base unit.
    top: f64,
}

impl Scale {
    fn new(unit: Unit, max: f64) -> Scale {
        let max = if max.is_finite() { max.max(unit.floor()) } else { unit.floor() };
        let units = unit.steps();
        let (div, name) = units.iter().rev().find(|(d, _)| *d <= max).copied().unwrap_or(units[0]);
        let m = max / div; // ≥ 1
        let raw = m / 4.0;
        let mag = 10f64.powf(raw.log10().floor());
        let n = raw / mag;
        let step = mag
            * match n {
                n if n <= 1.0 => 1.0,
                n if n <= 2.0 => 2.0,
                n if n <= 5.0 => 5.0,
                _ => 10.0,
            };
        let steps = (m / step).ceil().clamp(1.0, 10.0) as u32;
        Scale { div, name, step, steps, top: step * f64::from(steps) * div }
    }

    /// The y coordinate of `v`.
    fn y(&self, v: f64) -> f64 {
        let f = if self.top > 0.0 { (v / self.top).clamp(0.0, 1.0) } else { 0.0 };
        PLOT_BOTTOM - f * PLOT_H
    }

    /// Grid lines and their labels.
    fn draw(&self, out: &mut String) {
        let decimals = if self.step >= 1.0 { 0 } else { ((-self.step.log10()).ceil() as usize).min(3) };
        out.push_str(r#"<g class="y-axis">"#);
        for k in 0..=self.steps {
            let v = self.step * f64::from(k);
            let y = self.y(v * self.div);
            let stroke = if k == 0 { AXIS } else { GRID };
            let label = if k == 0 { "0".to_string() } else { format!("{v:.decimals$} {}", self.name) };
            let _ = write!(
                out,
                r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{stroke}" stroke-width="1"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{MUTED}">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                escape(&label),
            );
        }
        out.push_str("</g>");
    }
}

/// A time axis from `t0` to `t1` (Unix ns).
struct TimeAxis {
    t0: i64,
    t1: i64,
}

impl TimeAxis {
    /// The x coordinate of `t`.
    fn x(&self, t: i64) -> f64 {
        if self.t1 <= self.t0 {
            return LEFT + PLOT_W / 2.0;
        }
        let f = (i128::from(t) - i128::from(self.t0)) as f64 / (i128::from(self.t1) - i128::from(self.t0)) as f64;
        LEFT + INSET + f.clamp(0.0, 1.0) * (PLOT_W - 2.0 * INSET)
    }

    /// Dates at the ends and at two times between (one date when all is on one).
    fn draw(&self, out: &mut String) {
        out.push_str(r#"<g class="x-axis">"#);
        let span = i128::from(self.t1) - i128::from(self.t0);
        let mut last = String::new();
        for k in 0..4 {
            // Between t0 and t1, so it fits an i64.
            let t = (i128::from(self.t0) + span * k / 3) as i64;
            let label = date(t);
            if label != last {
                tick_label(out, self.x(t), &label);
                last = label;
            }
            if span == 0 {
                break;
            }
        }
        out.push_str("</g>");
    }
}

/// A tick and its label under the plot at `x`.
fn tick_label(out: &mut String, x: f64, label: &str) {
    let _ = write!(
        out,
        r#"<line x1="{x:.1}" y1="{PLOT_BOTTOM}" x2="{x:.1}" y2="{:.1}" stroke="{AXIS}" stroke-width="1"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="{MUTED}">{}</text>"#,
        PLOT_BOTTOM + 4.0,
        PLOT_BOTTOM + 16.0,
        escape(label),
    );
}

/// One point's mark with its tooltip; `colour` is escaped already.
fn mark(out: &mut String, x: f64, y: f64, status: Status, colour: &str, tip: &str) {
    let _ = write!(out, r#"<g class="pt {}"><title>{}</title>"#, status.class(), escape(tip));
    let _ = match status {
        Status::Ok => write!(out, r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{colour}"/>"#),
        Status::Warning => write!(
            out,
            r#"<path d="M{x:.1} {:.1}L{:.1} {y:.1}L{x:.1} {:.1}L{:.1} {y:.1}Z" fill="{WARN}"/>"#,
            y - 5.0,
            x + 5.0,
            y + 5.0,
            x - 5.0
        ),
        Status::Failed => write!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="{FAIL}" fill-opacity="0.15"/><path d="M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}" stroke="{FAIL}" stroke-width="2" stroke-linecap="round"/>"#,
            x - 4.0,
            y - 4.0,
            x + 4.0,
            y + 4.0,
            x - 4.0,
            y + 4.0,
            x + 4.0,
            y - 4.0
        ),
    };
    out.push_str("</g>");
}

/// The dashed, labelled line of an objective.
fn draw_threshold(out: &mut String, scale: &Scale, unit: Unit, t: &Threshold) {
    let y = scale.y(t.value as f64);
    let label = escape(&t.label);
    let _ = write!(
        out,
        r#"<g class="threshold"><title>{label}: {}</title><line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{THRESHOLD}" stroke-width="1.5" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{THRESHOLD}">{label}</text></g>"#,
        escape(&unit.exact(t.value)),
        WIDTH - RIGHT,
        WIDTH - RIGHT - 2.0,
        (y - 4.0).max(TOP - 2.0),
    );
}

/// A legend entry's symbol.
enum Swatch {
    /// A series' point colour (escaped).
    Dot(String),
    /// A series' bar colour (escaped).
    Bar(String),
    Warning,
    Failed,
    Dash,
}

/// Legend entries for the marks of `points` other than ok: as `points` draws them, where
/// `bars` says whether a point with a value is a bar (else every point is a mark).
fn status_legend<'a>(legend: &mut Vec<(Swatch, String)>, points: impl Iterator<Item = &'a Point>, bars: bool) {
    // [warning bar, warning mark, failed bar, failed mark]
    let mut seen = [false; 4];
    for p in points {
        let bar = bars && p.value.is_some();
        match p.status {
            Status::Ok => {}
            Status::Warning => seen[usize::from(!bar)] = true,
            Status::Failed => seen[2 + usize::from(!bar)] = true,
        }
    }
    let entries = [
        (Swatch::Bar(WARN.into()), "partial or missed"),
        (Swatch::Warning, if seen[0] { "partial or missed, no value" } else { "partial or missed" }),
        (Swatch::Bar(FAIL.into()), "failed"),
        (Swatch::Failed, if seen[2] { "failed, no value" } else { "failed" }),
    ];
    for (entry, seen) in entries.into_iter().zip(seen) {
        if seen {
            legend.push((entry.0, entry.1.to_string()));
        }
    }
}

/// The legend, in one row under the heading.
fn draw_legend(out: &mut String, items: &[(Swatch, String)]) {
    out.push_str(r#"<g class="legend">"#);
    let y = 36.0;
    let mut x = 8.0;
    for (swatch, text) in items {
        let _ = match swatch {
            Swatch::Dot(c) => write!(out, r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{c}"/>"#, x + 5.0, y - 4.0),
            Swatch::Bar(c) => write!(out, r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{c}"/>"#, y - 9.0),
            Swatch::Warning => write!(
                out,
                r#"<path d="M{:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}L{x:.1} {:.1}Z" fill="{WARN}"/>"#,
                x + 5.0,
                y - 9.0,
                x + 10.0,
                y - 4.0,
                x + 5.0,
                y + 1.0,
                y - 4.0
            ),
            Swatch::Failed => write!(
                out,
                r#"<path d="M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}" stroke="{FAIL}" stroke-width="2" stroke-linecap="round"/>"#,
                x + 1.0,
                y - 8.0,
                x + 9.0,
                y,
                x + 1.0,
                y,
                x + 9.0,
                y - 8.0
            ),
            Swatch::Dash => write!(
                out,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{THRESHOLD}" stroke-width="1.5" stroke-dasharray="4 2"/>"#,
                y - 4.0,
                x + 14.0,
                y - 4.0
            ),
        };
        let sw = if matches!(swatch, Swatch::Dash) { 18.0 } else { 14.0 };
        let _ = write!(out, r#"<text x="{:.1}" y="{y:.1}" fill="{TEXT}">{}</text>"#, x + sw, escape(text));
        x += sw + 5.8 * text.chars().count() as f64 + 12.0;
    }
    out.push_str("</g>");
}

/// A point's tooltip: local time, value, note.
fn tooltip(unit: Unit, p: &Point) -> String {
    let value = p.value.map_or_else(|| "no value recorded".to_string(), |v| unit.exact(v));
    match p.note.is_empty() {
        true => format!("{}: {value}", crate::localtime::format(p.time)),
        false => format!("{}: {value}; {}", crate::localtime::format(p.time), p.note),
    }
}

/// Unix ns as a local `YYYY-MM-DD`.
fn date(ns: i64) -> String {
    let t = crate::localtime::format(ns);
    t.split(' ').next().unwrap_or_default().to_string()
}

/// Bytes in B, KiB, … EiB.
fn human_bytes(n: u64) -> String {
    const U: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    match i {
        0 => format!("{n} B"),
        _ => format!("{v:.2} {}", U[i]),
    }
}

/// Nanoseconds in ms, s, min, h or d.
fn human_duration(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0 => format!("{} ms", ns / 1_000_000),
        1..=59 => format!("{:.1} s", ns as f64 / 1e9),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {:02} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Nanoseconds as seconds to the millisecond.
fn seconds(ns: u64) -> String {
    format!("{}.{:03} s", ns / 1_000_000_000, ns % 1_000_000_000 / 1_000_000)
}

/// `s` cut to `max` characters, with `…` when cut.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `s` as XML character data or attribute value: markup characters as entities, and the
/// control characters XML 1.0 forbids as U+FFFD.
fn escape(s: &str) -> String {
    let allowed: String = s
        .chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if c.is_control() && c < ' ' => '\u{fffd}',
            '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect();
    super::html::esc(&allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(op: Op, outcome: Outcome, time_s: i64, duration_s: u64) -> Record {
        Record {
            id: [time_s as u8; 16],
            time: time_s * 1_000_000_000,
            duration: duration_s * 1_000_000_000,
            op,
            outcome,
            exit_code: 0,
            hostname: "h".into(),
            username: "u".into(),
            snapshots: vec![],
            bytes: 0,
            files: 0,
            errors: vec![],
            labels: vec![],
            metrics: vec![],
        }
    }

    fn backup(time_s: i64, added: u64, stored: u64) -> Record {
        let mut r = record(Op::Backup, Outcome::Ok, time_s, 60);
        r.metrics = vec![("bytes_added".into(), added), ("bytes_stored".into(), stored)];
        r
    }

    fn drill(time_s: i64, rto_full_s: u64) -> Record {
        let mut r = record(Op::Drill, Outcome::Ok, time_s, rto_full_s + 5);
        r.metrics =
            vec![("rto_ns".into(), rto_full_s * 1_000_000_000), ("rto_full_ns".into(), rto_full_s * 1_000_000_000)];
        r
    }

    const DAY: i64 = 86_400;
    const T0: i64 = 1_700_000_000;

    /// A handful of records: three backups (the last failed), two drills, one restore.
    fn handful() -> Vec<Record> {
        let mut failed = record(Op::Backup, Outcome::Failed, T0 + 2 * DAY, 3);
        failed.errors.push("cannot read /x: permission denied".into());
        vec![
            drill(T0 + DAY + 100, 1200),
            backup(T0, 10 << 30, 4 << 30),
            backup(T0 + DAY, 5 << 20, 2 << 20),
            failed,
            drill(T0 + 3 * DAY, 4000),
            record(Op::Restore, Outcome::Ok, T0 + 4 * DAY, 900),
            record(Op::Check, Outcome::Ok, T0 + 5 * DAY, 10),
        ]
    }

    /// Checks that `svg` is well-formed enough: balanced tags, quoted attributes, known
    /// entities, no raw `<` or `&` in text; and that it is CSP-clean: no script element, no
    /// style or event-handler attribute. Returns the element names, in order.
    fn well_formed(svg: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let b = svg.as_bytes();
        let mut i = 0;
        let check_text = |text: &str| {
            let mut rest = text;
            while let Some(at) = rest.find('&') {
                let end = rest[at..].find(';').unwrap_or_else(|| panic!("bare & in {text:?}"));
                let entity = &rest[at + 1..at + end];
                assert!(["amp", "lt", "gt", "quot", "#39"].contains(&entity), "entity {entity:?}");
                rest = &rest[at + end + 1..];
            }
            assert!(!text.contains('>'), "raw > in {text:?}");
        };
        while i < b.len() {
            if b[i] != b'<' {
                let end = svg[i..].find('<').map_or(b.len(), |e| i + e);
                check_text(&svg[i..end]);
                i = end;
                continue;
            }
            let end = i + svg[i..].find('>').expect("unclosed tag");
            let tag = &svg[i + 1..end];
            i = end + 1;
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "unbalanced </{name}>");
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name_end = tag.find(' ').unwrap_or(tag.len());
            let name = &tag[..name_end];
            assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()), "element {name:?}");
            assert_ne!(name.to_ascii_lowercase(), "script");
            names.push(name.to_string());
            // Attributes: name="value" pairs.
            let mut rest = tag[name_end..].trim_start();
            while !rest.is_empty() {
                let eq = rest.find("=\"").unwrap_or_else(|| panic!("unquoted attribute in <{tag}>"));
                let attr = &rest[..eq];
                assert!(attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'), "attr {attr:?}");
                let lower = attr.to_ascii_lowercase();
                assert!(lower != "style" && !lower.starts_with("on") && lower != "href", "attribute {attr}");
                let close = rest[eq + 2..].find('"').expect("unterminated attribute value");
                let value = &rest[eq + 2..eq + 2 + close];
                check_text(value);
                assert!(!value.contains('<'), "< in attribute");
                rest = rest[eq + 2 + close + 1..].trim_start();
            }
            if !self_closing {
                stack.push(name.to_string());
            }
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
        assert_eq!(names.first().map(String::as_str), Some("svg"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "non-finite number in {svg}");
        names
    }

    fn checked(charts: &[Chart]) {
        assert_eq!(charts.len(), 4);
        for c in charts {
            well_formed(&c.svg);
            assert!(c.svg.starts_with("<svg ") && c.svg.ends_with("</svg>"));
            assert!(c.svg.contains(r#"role="img""#) && c.svg.contains("aria-label=\"") && c.svg.contains("viewBox"));
            assert!(c.svg.contains("<title>"));
        }
    }

    #[test]
    fn no_records_say_no_data() {
        let charts = dashboard(&[], Some(Duration::from_secs(3600)));
        checked(&charts);
        for c in &charts {
            assert!(c.svg.contains(">no data</text>"), "{}", c.svg);
            assert!(c.svg.contains(": no data\""));
        }
        // Records of no charted kind are no data either.
        let charts = dashboard(&[record(Op::Check, Outcome::Ok, T0, 1)], None);
        assert!(charts.iter().all(|c| c.svg.contains(">no data</text>")));
    }

    #[test]
    fn a_handful_of_records() {
        let charts = dashboard(&handful(), Some(Duration::from_secs(3600)));
        checked(&charts);
        let [stored, added, durations, recovery] = &charts[..] else { panic!() };
        assert!(stored.title.starts_with("Bytes stored by backups, cumulative"));
        // One mark per backup; the failed one is a cross at the running total.
        assert_eq!(stored.svg.matches(r#"<g class="pt "#).count(), 3);
        assert_eq!(stored.svg.matches(r#"<g class="pt fail""#).count(), 1);
        assert!(stored.svg.contains("(4297064448 bytes)"), "4 GiB + 2 MiB cumulative");
        assert!(stored.svg.contains("<polyline"));
        // Two bars and a cross on the baseline for the failed backup.
        assert_eq!(added.svg.matches(r#"<g class="bar "#).count(), 2);
        assert_eq!(added.svg.matches(r#"<g class="pt fail""#).count(), 1);
        assert!(added.svg.contains("10.00 GiB (10737418240 bytes)"));
        assert!(added.svg.contains("permission denied"), "the failure's error is in its tooltip");
        assert!(added.svg.contains(" GiB</text>"), "axis in GiB");
        assert_eq!(durations.svg.matches(r#"<g class="bar "#).count(), 3);
        assert_eq!(durations.svg.matches(r#"<g class="bar fail""#).count(), 1);
        assert!(durations.svg.contains(">failed</text>") && !durations.svg.contains("no value</text>"));
        assert!(added.svg.contains(">failed</text>"), "a cross, as drawn");
        assert!(durations.svg.contains("60.000 s"));
        // Two drills and one restore, against the objective.
        assert_eq!(recovery.svg.matches(r#"<g class="pt "#).count(), 3);
        assert!(recovery.svg.contains(r#"<g class="threshold">"#));
        assert!(recovery.svg.contains(">RTO 1 h 00 min</text>"));
        assert!(recovery.svg.contains("1 h 06 min (4000.000 s)"));
        assert!(recovery.title.contains("against the RTO"));
        assert!(recovery.svg.contains("drill restore time") && recovery.svg.contains("restore duration"));
        // Deterministic.
        assert_eq!(dashboard(&handful(), Some(Duration::from_secs(3600))), charts);
        // Order of input does not matter.
        let mut reversed = handful();
        reversed.reverse();
        assert_eq!(dashboard(&reversed, Some(Duration::from_secs(3600))), charts);
    }

    #[test]
    fn objective_from_the_drills_when_none_is_given() {
        let mut records = handful();
        records[4].metrics.push(("max_rto_ns".into(), 7200 * 1_000_000_000));
        let charts = dashboard(&records, None);
        assert!(charts[3].svg.contains(">max-rto 2 h 00 min</text>"));
        let charts = dashboard(&handful(), None);
        assert!(!charts[3].svg.contains("threshold"));
    }

    #[test]
    fn record_texts_are_escaped() {
        let evil = "<script>alert(1)</script>";
        let mut records = handful();
        for r in &mut records {
            r.labels.push(("component".into(), evil.into()));
            r.labels.push(("sample".into(), "\"5%\" & 'more'\u{1}".into()));
            r.errors.insert(0, "<img src=x onerror=alert(1)>".into());
        }
        records[4].metrics.push(("rto_ns".into(), 1)); // a drill whose sample label is shown
        let charts = dashboard(&records, Some(Duration::from_secs(60)));
        checked(&charts);
        for c in &charts {
            assert!(!c.svg.contains("<script") && !c.svg.contains("<img"), "{}", c.svg);
            assert!(c.svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
            assert!(c.title.ends_with(&format!("— component {evil}")), "titles are plain text");
        }
        assert!(charts[1].svg.contains("&lt;img src=x onerror=alert(1)&gt;"));
        // One component, chosen.
        let mine = dashboard_for(&records, Some(evil), None);
        assert_eq!(mine[1].svg.matches(r#"<g class="bar "#).count(), 2);
        let none = dashboard_for(&records, Some("other"), None);
        assert!(none.iter().all(|c| c.svg.contains(">no data</text>")));
        // Caller texts too.
        let s = Series { name: "a<b".into(), colour: "\"red\" onload=\"x".into(), points: vec![] };
        let svg = line_chart("t<", "d&", Unit::Bytes, std::slice::from_ref(&s), None);
        well_formed(&svg);
        assert!(svg.contains("t&lt;") && svg.contains("d&amp;"));
        let svg = bar_chart("t", "d", Unit::Bytes, &Series { points: backup_points(3), ..s });
        well_formed(&svg);
        assert!(svg.contains("fill=\"&quot;red&quot; onload=&quot;x\""));
    }

    fn backup_points(n: usize) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                time: T0 * 1_000_000_000 + i as i64,
                value: Some(i as u64),
                status: if i % 7 == 0 { Status::Failed } else { Status::Ok },
                note: String::new(),
            })
            .collect()
    }

    #[test]
    fn degenerate_and_huge_values_do_not_panic() {
        // u64::MAX bytes and durations, zero durations, extreme times, all equal, one point.
        let mut huge = backup(T0, u64::MAX, u64::MAX);
        huge.duration = u64::MAX;
        let mut second = backup(T0, u64::MAX, u64::MAX);
        second.id = [9; 16];
        second.duration = 0;
        let mut early = drill(0, 0);
        early.time = i64::MIN;
        early.metrics = vec![("rto_full_ns".into(), u64::MAX)];
        let mut late = record(Op::Restore, Outcome::Other(99), 0, 0);
        late.time = i64::MAX;
        let charts = dashboard(&[huge.clone(), second, early, late], Some(Duration::MAX));
        checked(&charts);
        assert!(charts[0].svg.contains("EiB"));
        assert!(charts[0].svg.contains(&format!("({} bytes)", u64::MAX)), "the total saturates");
        assert!(charts[3].svg.contains("class=\"threshold\""));
        // A single point, and all-equal values.
        checked(&dashboard(&[huge], None));
        let same: Vec<Record> = (0..5).map(|i| backup(T0 + i, 0, 0)).collect();
        let charts = dashboard(&same, Some(Duration::ZERO));
        checked(&charts);
        let zero: Vec<Record> =
            (0..5u8).map(|i| Record { id: [i; 16], ..record(Op::Drill, Outcome::Ok, T0, 0) }).collect();
        checked(&dashboard(&zero, None));
        // Renderers on their own.
        for n in [0, 1, 2, 3] {
            let s = Series { name: "s".into(), colour: "red".into(), points: backup_points(n) };
            well_formed(&line_chart("t", "d", Unit::Duration, std::slice::from_ref(&s), None));
            well_formed(&bar_chart("t", "d", Unit::Duration, &s));
        }
        let p = Point { time: 0, value: None, status: Status::Warning, note: String::new() };
        let s = Series { name: "s".into(), colour: "red".into(), points: vec![p] };
        well_formed(&line_chart("t", "d", Unit::Bytes, &[s], Some(&Threshold { value: 0, label: "zero".into() })));
    }

    #[test]
    fn charts_are_bounded() {
        let mut records: Vec<Record> = (0..1200).map(|i| backup(T0 + i * 3600, i as u64, 1000)).collect();
        records.extend((0..700).map(|i| drill(T0 + i * 3600, i as u64)));
        let charts = dashboard(&records, None);
        checked(&charts);
        assert_eq!(charts[0].svg.matches(r#"<g class="pt "#).count(), MAX_POINTS);
        assert!(charts[0].svg.contains(&format!("({} bytes)", 1200 * 1000)), "the last total is drawn");
        assert!(charts[0].svg.contains("500 of the 1200 backups"));
        assert_eq!(charts[1].svg.matches(r#"<g class="bar "#).count(), MAX_POINTS);
        assert!(charts[1].svg.contains("(1199 bytes)") || charts[1].svg.contains("1199 B"), "the newest are kept");
        assert!(!charts[1].svg.contains(">699 B") && !charts[1].svg.contains(": 699 B"));
        assert_eq!(charts[3].svg.matches(r#"<g class="pt "#).count(), MAX_POINTS);
        assert!(charts[3].svg.contains("newest 500 of 700"));
    }

    #[test]
    fn scales_and_helpers() {
        let s = Scale::new(Unit::Bytes, 0.0);
        assert_eq!((s.name, s.top), ("KiB", 1024.0));
        let s = Scale::new(Unit::Bytes, 3.5 * 1024.0 * 1024.0 * 1024.0);
        assert_eq!(s.name, "GiB");
        assert!(s.top >= 3.5 * 1024.0 * 1024.0 * 1024.0 && s.steps <= 10);
        let s = Scale::new(Unit::Duration, f64::NAN);
        assert_eq!((s.name, s.top), ("s", 1e9));
        let s = Scale::new(Unit::Duration, u64::MAX as f64);
        assert_eq!(s.name, "d");
        assert!(s.top.is_finite() && s.top >= u64::MAX as f64);
        assert_eq!(thin((0..10).collect(), 4), vec![0, 3, 6, 9]);
        assert_eq!(thin((0..1000).collect::<Vec<_>>(), 500).len(), 500);
        assert_eq!(thin(vec![1, 2], 500), vec![1, 2]);
        assert_eq!(human_bytes(u64::MAX), "16.00 EiB");
        assert_eq!(human_duration(0), "0 ms");
        assert_eq!(human_duration(u64::MAX), "213503 d 23 h");
        assert_eq!(escape("<a href='x'>&\"\0"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;\u{fffd}");
        assert_eq!(shorten("ééé", 2), "éé…");
    }
}
