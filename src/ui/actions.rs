//! The actions `arca ui` offers when started with them (and a login): `--allow-restore DIR`
//! restores a selection into a new directory below DIR (never over existing files, without
//! set-user-ID bits), `--allow-backup` runs the profile's backup (of one
//! component, or all). Each runs as a job on its own thread through the same operations as the
//! CLI (so it is locked and journaled alike), and has a page showing its progress live.

use super::auth::Session;
use super::html::{self, esc};
use super::http::{self, Body, Req};
use super::server::App;
use crate::error::Error;
use crate::ops::backup::{BackupRequest, What};
use crate::ops::restore::RestoreRequest;
use crate::ops::{HasOutcome, Outcome, Scope};
use crate::progress::Progress;
use hyper::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Jobs kept for their pages (the oldest finished ones go first).
const KEEP: usize = 64;
/// Jobs running at once.
const RUNNING: usize = 2;

/// One action, running or done.
pub struct Job {
    what: String,
    started: Instant,
    progress: Progress,
    done: Mutex<Option<(Outcome, String)>>,
}

/// The jobs of a server.
#[derive(Default)]
pub struct Jobs {
    next: Mutex<u64>,
    jobs: Mutex<BTreeMap<u64, Arc<Job>>>,
}

impl Jobs {
    fn start(
        &self,
        what: String,
        run: impl FnOnce(&Progress) -> (Outcome, String) + Send + 'static,
    ) -> Result<u64, Error> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let running = jobs.values().filter(|j| j.done.lock().map(|d| d.is_none()).unwrap_or(false)).count();
        if running >= RUNNING {
            return Err(Error::InvalidArgument(format!("{running} actions are running: wait for one to finish")));
        }
        while jobs.len() >= KEEP {
            let oldest = jobs.iter().find(|(_, j)| j.done.lock().map(|d| d.is_some()).unwrap_or(true)).map(|(k, _)| *k);
            match oldest {
                Some(k) => jobs.remove(&k),
                None => break,
            };
        }
        let n = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        let job = Arc::new(Job {
            what,
            started: Instant::now(),
            progress: Progress::new(true, None),
            done: Mutex::new(None),
        });
        jobs.insert(n, job.clone());
        std::thread::spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&job.progress)))
                .unwrap_or_else(|_| (Outcome::Failed, "the action stopped on an internal error (a bug)".to_string()));
            *job.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        });
        Ok(n)
    }

    fn get(&self, n: u64) -> Option<Arc<Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).get(&n).cloned()
    }
}

fn refused(app: &App, who: &Session, what: &str) -> Response<Body> {
    let e = Error::InvalidArgument(format!("{what} is not allowed here (start arca ui with --allow-{what})"));
    let mut r = app.error(who, &e);
    *r.status_mut() = hyper::StatusCode::FORBIDDEN;
    r
}

/// `POST /actions/restore` (snapshot, path, target, verify).
pub fn start_restore(app: &App, req: &Req, who: &Session) -> Response<Body> {
    if !app.can_restore() {
        return refused(app, who, "restore");
    }
    let (Some(snap), Some(target)) = (req.f("snapshot"), req.f("target")) else {
        return app.error(who, &Error::InvalidArgument("snapshot and target are required".into()));
    };
    let Some(root) = &app.opts.allow_restore else { return refused(app, who, "restore") };
    // A new directory below the root the administrator chose: one or more plain names.
    let sub = target.trim().trim_end_matches('/');
    let plain = |c: &str| !c.is_empty() && c != "." && c != ".." && !c.contains('\0');
    if sub.is_empty() || !sub.split('/').all(plain) || snap.len() != 64 || !snap.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return app.error(
            who,
            &Error::InvalidArgument("the target is a directory name below the restore root (no `..`)".into()),
        );
    }
    let target: PathBuf = root.join(sub);
    // The directory is made first, so that a single file lands inside it under its own name
    // (restore writes a file *as* a target that is not a directory); made as restore makes its
    // targets, one component at a time through descriptors, refusing a symlink another user
    // could have planted below the root (`x -> /etc`).
    if let Err(e) = crate::restore::target::open_path(&target, true) {
        return app.error(who, &Error::Io { path: target, source: e });
    }
    let path = req.f("path").unwrap_or("/");
    let request = RestoreRequest {
        reference: format!("{snap}:{path}"),
        target: Some(target.clone()),
        verify: req.f("verify").is_some(),
        // Into a new place, never over what is there, without set-user-ID bits.
        overwrite: crate::restore::Overwrite::Never,
        meta: crate::restore::MetaOptions { no_setuid: true, ..Default::default() },
        ..RestoreRequest::default()
    };
    // One restore of this snapshot, not one per component of the profile.
    let scope = Scope::plain(app.scope.ctx.clone());
    let what = format!(
        "restore {}:{} into {}",
        &snap[..8],
        crate::text::escape_str(path),
        crate::text::escape_str(&target.display().to_string())
    );
    let started = app.jobs.start(what, move |progress| {
        let runs = crate::ops::restore::restore(&scope, &request, progress);
        match runs {
            Err(e) => (Outcome::of_error(&e), e.to_string()),
            Ok(runs) => {
                let summary = runs
                    .iter()
                    .map(|r| match &r.result {
                        Ok(x) => format!(
                            "{} files, {} restored in {:.1} s{}",
                            x.stats.files,
                            html::bytes(x.stats.bytes),
                            x.seconds,
                            if request.verify { ", verified" } else { "" }
                        ),
                        Err(e) => e.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                (runs.outcome(), summary)
            }
        }
    });
    job_started(app, who, started)
}

/// `POST /actions/backup` (component, or every one).
pub fn start_backup(app: &App, req: &Req, who: &Session) -> Response<Body> {
    if !app.can_backup() {
        return refused(app, who, "backup");
    }
    let mut scope = app.scope.clone();
    if let Some(c) = req.f("component").filter(|c| !c.is_empty()) {
        scope.targets.retain(|t| t.name == c);
        if scope.targets.is_empty() {
            return app.error(who, &Error::NotFound(format!("no component {}", crate::text::escape_str(c))));
        }
    }
    let names: Vec<String> = scope.targets.iter().map(|t| t.name.clone()).collect();
    let what = format!("backup of {}", names.join(", "));
    let started = app.jobs.start(what, move |progress| {
        let request = BackupRequest { what: What::Profile, ..BackupRequest::default() };
        match crate::ops::backup::backup(&scope, &request, progress) {
            Err(e) => (Outcome::of_error(&e), e.to_string()),
            Ok(report) => {
                let summary = report
                    .runs
                    .iter()
                    .map(|r| match &r.result {
                        Ok(b) => format!(
                            "{}: snapshot {}",
                            r.component.as_deref().unwrap_or("-"),
                            b.id.map_or("(none written)".to_string(), |i| i.short())
                        ),
                        Err(e) => format!("{}: {e}", r.component.as_deref().unwrap_or("-")),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                (report.outcome(), summary)
            }
        }
    });
    job_started(app, who, started)
}

fn job_started(app: &App, who: &Session, started: Result<u64, Error>) -> Response<Body> {
    match started {
        Ok(n) => http::redirect(&format!("/jobs/{n}")),
        Err(e) => app.error(who, &e),
    }
}

/// `GET /jobs/N`: progress while it runs (the page reloads itself each second), then the result.
pub fn job_page(app: &App, who: &Session, n: &str) -> Response<Body> {
    let Some(job) = n.parse().ok().and_then(|n| app.jobs.get(n)) else {
        return app.error(who, &Error::NotFound("no such job".into()));
    };
    let mut body = format!("<p id=\"job\">{}</p>", esc(&job.what));
    let done = job.done.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match done {
        None => {
            let s = job.progress.status(job.started.elapsed());
            let _ = write!(
                body,
                "<meta http-equiv=\"refresh\" content=\"1\"><p id=\"state\" class=\"warn\">running: {:.0}% · {} files, {} of {} · {}/s{}</p>",
                s.percent * 100.0,
                s.files,
                html::bytes(s.bytes),
                if s.total_bytes > 0 { html::bytes(s.total_bytes) } else { "?".into() },
                html::bytes(s.rate as u64),
                s.remaining.map_or(String::new(), |r| format!(" · {} left", html::duration(r.as_nanos() as u64)))
            );
        }
        Some((outcome, summary)) => {
            let _ = write!(
                body,
                "<p id=\"state\" class=\"{}\">{} (exit code {}) after {}</p><p id=\"summary\">{}</p>",
                if outcome == Outcome::Ok { "ok" } else { "bad" },
                esc(outcome.name()),
                outcome.exit_code(),
                html::duration(job.started.elapsed().as_nanos() as u64),
                esc(&crate::text::escape_str(&summary))
            );
        }
    }
    app.page(who, "Action", body)
}
