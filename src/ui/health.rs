//! The health dashboard (what `arca status` reports, per component or group: objectives met or
//! missed, last backup, check and drill, failures, damage, anomalies; charts from the journal)
//! and the journal itself, filterable.

use super::auth::Session;
use super::html::{self, esc};
use super::http::{Body, Req};
use super::server::App;
use crate::format::journal::{Op, Outcome as JOutcome, Record};
use crate::ops::context::READERS;
use crate::ops::metrics::{group_name, verdict};
use crate::ops::status::{self, GroupStatus, Status, StatusOptions};
use hyper::Response;
use std::fmt::Write;

/// Most journal records a page lists.
const MAX_RECORDS: usize = 1000;
/// Most labels, and most errors, shown of one record.
const ITEMS: usize = 12;
/// Longest label value or error shown, in bytes.
const TEXT: usize = 300;

fn status_of(app: &App) -> crate::Result<Status> {
    let mut opts =
        StatusOptions { min_free: app.scope.profile.as_ref().and_then(|p| p.min_free), ..StatusOptions::default() };
    if app.scope.has_profile() {
        opts = status::for_components(&app.scope.targets, opts);
    }
    let repo = app.scope.ctx.open_for(READERS, "report status")?;
    status::status(&repo, &opts)
}

fn ago(now: i64, t: i64) -> String {
    format!("{} ago", html::duration(u64::try_from(now.saturating_sub(t)).unwrap_or(0)))
}

fn group_row(out: &mut String, st: &Status, g: &GroupStatus) {
    let ok = g.ok();
    let newest = g.newest.as_ref().map_or("none".to_string(), |n| {
        format!("<a href=\"/snap/{}/tree\"><code>{}</code></a> {}", n.id.to_hex(), n.id.short(), ago(st.now, n.time_ns))
    });
    let rpo = match (g.age_ns, g.max_age_ns) {
        (Some(a), Some(m)) => format!("{} / {}", html::duration(a), html::duration(m)),
        (Some(a), None) => html::duration(a),
        _ => "—".into(),
    };
    let check = g.last_check.as_ref().map_or("never".to_string(), |c| {
        format!("{} ({})", ago(st.now, c.time_ns), esc(c.read_data.as_deref().unwrap_or("structure")))
    });
    let drill = g.last_drill.as_ref().map_or("never".to_string(), |d| {
        let rto = d.rto_full_ns.or(d.rto_ns).map_or(String::new(), |r| format!(", RTO {}", html::duration(r)));
        format!("{}{rto}", ago(st.now, d.time_ns))
    });
    let rto = match (g.max_rto_ns, g.rto_met) {
        (Some(m), Some(true)) => format!("<span class=\"ok\">met</span> (≤ {})", html::duration(m)),
        (Some(m), _) => format!("<span class=\"bad\">missed</span> (≤ {})", html::duration(m)),
        _ => "—".into(),
    };
    let size = g.newest.as_ref().and_then(|n| n.size).map_or("?".into(), html::bytes);
    let _ = write!(
        out,
        "<tr class=\"{}\"><td>{}</td><td>{newest}</td><td>{rpo}</td><td class=\"num\">{}</td><td class=\"num\">{size}</td><td>{check}</td>\
         <td>{drill}</td><td>{rto}</td><td class=\"verdict {}\">{}</td></tr>",
        if ok { "group-ok" } else { "group-bad" },
        esc(&crate::text::escape_str(&group_name(g))),
        g.snapshots,
        if ok { "ok" } else { "bad" },
        esc(&verdict(g))
    );
}

fn problems(out: &mut String, st: &Status) {
    let mut items = Vec::new();
    for g in &st.groups {
        for f in [&g.last_failure, &g.damage].into_iter().flatten() {
            items.push(format!(
                "{}: {} {} {} (exit {}){}",
                esc(&crate::text::escape_str(&group_name(g))),
                esc(&f.op),
                esc(&f.outcome),
                html::time(f.time_ns),
                f.exit_code,
                f.error.as_deref().map_or(String::new(), |e| format!(": {}", html::short(e.as_bytes(), TEXT)))
            ));
        }
        if let Some(a) = &g.anomaly {
            items.push(format!("{}: {}", esc(&crate::text::escape_str(&group_name(g))), esc(&format!("{a:?}"))));
        }
    }
    if let Some(f) = &st.repository_damage {
        items.push(format!("repository: {} found damage {}", esc(&f.op), html::time(f.time_ns)));
    }
    for (n, e) in st.damaged_snapshots.iter().chain(&st.damaged_journal) {
        items.push(format!("{}: {}", esc(&crate::text::escape_str(n)), esc(&crate::text::escape_str(&e.to_string()))));
    }
    if items.is_empty() {
        return;
    }
    out.push_str("<div class=\"card\" id=\"problems\"><h2>Needs attention</h2><ul>");
    for i in items {
        let _ = write!(out, "<li class=\"bad\">{i}</li>");
    }
    out.push_str("</ul></div>");
}

/// `GET /`: the status of every component (or group), and the journal's charts.
pub fn dashboard(app: &App, req: &Req, who: &Session) -> Response<Body> {
    let st = match status_of(app) {
        Ok(s) => s,
        Err(e) => return app.error(who, &e),
    };
    let verdict = match st.outcome() {
        crate::ops::Outcome::Ok => "<p id=\"overall\" class=\"ok\">All objectives met.</p>".to_string(),
        o => format!("<p id=\"overall\" class=\"bad\">Attention: {} (exit code {}).</p>", esc(o.name()), o.exit_code()),
    };
    let mut body = verdict;
    problems(&mut body, &st);
    body.push_str(
        "<table id=\"health\"><thead><tr><th>Component / group</th><th>Newest snapshot</th><th>Age / max-age</th>\
         <th class=\"num\">Snapshots</th><th class=\"num\">Size</th><th>Last check</th><th>Last drill</th><th>RTO</th>\
         <th>Status</th></tr></thead><tbody>",
    );
    for g in &st.groups {
        group_row(&mut body, &st, g);
    }
    body.push_str("</tbody></table>");
    let s = &st.storage;
    let _ = write!(
        body,
        "<p id=\"storage\">Repository {} · free {}</p>",
        s.repository_bytes.map_or("?".into(), html::bytes),
        s.free_bytes.map_or("unknown".into(), html::bytes)
    );
    charts(app, req, &mut body, &st);
    app.page(who, "Health", body)
}

fn charts(app: &App, req: &Req, body: &mut String, st: &Status) {
    let component = req.q("component");
    let listed = match crate::ops::journal::query(&app.scope, &crate::ops::journal::Query::default()) {
        Ok(l) => l,
        Err(e) => {
            let _ = write!(body, "<p class=\"error\">journal: {}</p>", esc(&e.to_string()));
            return;
        }
    };
    let records: Vec<Record> =
        listed.records.into_iter().filter(|r| component.is_none_or(|c| r.label("component") == Some(c))).collect();
    let rto = st
        .groups
        .iter()
        .filter(|g| component.is_none_or(|c| g.component.as_deref() == Some(c)))
        .filter_map(|g| g.max_rto_ns)
        .min()
        .map(std::time::Duration::from_nanos);
    body.push_str("<h2>History</h2>");
    if !app.scope.targets.is_empty() {
        body.push_str("<p>Charts of: <a href=\"/\">all</a>");
        for t in &app.scope.targets {
            let _ = write!(body, " · <a href=\"/?component={}\">{}</a>", html::enc(&t.name), esc(&t.name));
        }
        body.push_str("</p>");
    }
    body.push_str("<div class=\"charts\" id=\"charts\">");
    for c in super::charts::dashboard(&records, rto) {
        let _ = write!(body, "<figure class=\"chart\"><figcaption>{}</figcaption>{}</figure>", esc(&c.title), c.svg);
    }
    body.push_str("</div>");
}

/// `GET /journal?op=backup&failed=1&host=H&snapshot=ID&last=N`.
pub fn journal(app: &App, req: &Req, who: &Session) -> Response<Body> {
    let op = req.q("op").and_then(Op::from_name);
    let q = crate::ops::journal::Query {
        ops: op.into_iter().collect(),
        failed: req.q("failed").is_some(),
        host: req.q("host").map(str::to_string),
        snapshot: req.q("snapshot").map(str::to_string),
        last: Some(req.q("last").and_then(|n| n.parse().ok()).unwrap_or(200).min(MAX_RECORDS)),
        ..Default::default()
    };
    let listed = match crate::ops::journal::query(&app.scope, &q) {
        Ok(l) => l,
        Err(e) => return app.error(who, &e),
    };
    let mut body = format!(
        "<form class=\"filters\" method=\"get\" action=\"/journal\"><label>Operation<select name=\"op\"><option value=\"\">all</option>{}</select></label>\
         <label>Host<input name=\"host\" value=\"{}\"></label><label>Snapshot<input name=\"snapshot\" value=\"{}\"></label>\
         <label>Failed only<input type=\"checkbox\" name=\"failed\" value=\"1\"{}></label><label>Last<input name=\"last\" value=\"{}\" size=\"5\"></label>\
         <button type=\"submit\">Filter</button></form>",
        Op::names()
            .map(|o| format!("<option{}>{o}</option>", if req.q("op") == Some(o) { " selected" } else { "" }))
            .collect::<String>(),
        esc(req.q("host").unwrap_or("")),
        esc(req.q("snapshot").unwrap_or("")),
        if q.failed { " checked" } else { "" },
        q.last.unwrap_or(200)
    );
    for (n, e) in &listed.damaged {
        let _ = write!(body, "<p class=\"error\">journal file {} skipped: {}</p>", esc(n), esc(&e.to_string()));
    }
    body.push_str(
        "<table id=\"journal\"><thead><tr><th>Started</th><th>Operation</th><th>Result</th><th>Duration</th><th>Host</th>\
         <th class=\"num\">Files</th><th class=\"num\">Bytes</th><th>Snapshots</th><th>Details</th></tr></thead><tbody>",
    );
    for r in listed.records.iter().rev() {
        let ok = r.outcome == JOutcome::Ok;
        let snaps: Vec<String> = r.snapshots.iter().take(4).map(|s| format!("<code>{}</code>", s.short())).collect();
        let mut details: Vec<String> = r
            .labels
            .iter()
            .take(ITEMS)
            .map(|(k, v)| format!("{}={}", html::short(k.as_bytes(), 64), html::short(v.as_bytes(), TEXT)))
            .collect();
        details.extend(
            r.errors
                .iter()
                .take(ITEMS)
                .map(|e| format!("<span class=\"bad\">{}</span>", html::short(e.as_bytes(), TEXT))),
        );
        if r.labels.len() + r.errors.len() > 2 * ITEMS {
            details.push("…".into());
        }
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{} ({})</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}{}</td><td>{}</td></tr>",
            html::time(r.time),
            esc(&r.op.name()),
            if ok { "ok" } else { "bad" },
            esc(&r.outcome.name()),
            r.exit_code,
            html::duration(r.duration),
            esc(&crate::text::escape_str(&r.hostname)),
            r.files,
            html::bytes(r.bytes),
            snaps.join(" "),
            if r.snapshots.len() > 4 { " …" } else { "" },
            details.join("<br>")
        );
    }
    body.push_str("</tbody></table>");
    app.page(who, "Journal", body)
}
