//! The server: a small tokio runtime accepting HTTP/1.1 connections (hyper), the gate every
//! request passes ([`super::auth`]), and the routes. Pages run on blocking threads, because
//! the operations they call read the repository synchronously; downloads stream through a
//! bounded channel, so a large archive never sits in memory.

use super::auth::{self, Credentials, Session, Sessions};
use super::html::{self, Chrome, Page};
use super::http::{self, Body, Req};
use super::{actions, health, pages};
use crate::error::{Error, Result};
use crate::ops::context::{Unlocked, READERS};
use crate::ops::Scope;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How `arca ui` serves.
#[derive(Clone)]
pub struct UiOptions {
    /// The address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// What logs in (required unless `listen` is a loopback address).
    pub credentials: Credentials,
    /// Allow restoring a selection into a new directory below this one, on the server.
    pub allow_restore: Option<std::path::PathBuf>,
    /// Allow running a profile's backup.
    pub allow_backup: bool,
}

/// Most connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 256;

/// What every request handler shares.
pub(crate) struct App {
    /// The scope every operation runs in (its context keeps the unlocked keys).
    pub scope: Scope,
    /// The options.
    pub opts: UiOptions,
    /// The role of the key (a restore key: read-only).
    pub role: crate::crypto::Role,
    /// The repository, as shown.
    pub repository: String,
    /// Sessions.
    pub sessions: Sessions,
    /// Actions started from the UI.
    pub jobs: actions::Jobs,
    /// Password checks run one at a time.
    pub logins: tokio::sync::Semaphore,
    /// Snapshot sizes measured so far, by tree (a tree's size never changes).
    pub sizes: std::sync::Mutex<std::collections::HashMap<crate::Id, Option<u64>>>,
}

impl App {
    /// Whether restores may be started here.
    pub fn can_restore(&self) -> bool {
        self.opts.allow_restore.is_some()
    }

    /// Whether backups may be started here (never with a restore key).
    pub fn can_backup(&self) -> bool {
        self.opts.allow_backup && self.role != crate::crypto::Role::Restore && self.scope.has_profile()
    }

    /// A page around `body`.
    pub fn page(&self, who: &Session, title: &str, body: String) -> Response<Body> {
        let chrome = Chrome {
            csrf: &who.csrf,
            logged_in: self.opts.credentials.any(),
            repository: &self.repository,
            role: self.role.name(),
        };
        http::html(StatusCode::OK, html::document(&Page { title, body }, &chrome))
    }

    /// An error page: the message (escaped) and a status that says what kind of error it is.
    pub fn error(&self, who: &Session, e: &Error) -> Response<Body> {
        let status = match e {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Error::RoleDenied { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = format!("<p class=\"error\" id=\"error\">{}</p>", html::esc(&e.to_string()));
        let mut r = self.page(who, "Error", body);
        *r.status_mut() = status;
        r
    }
}

/// Where a running server listens, said once it does.
pub type Listening = SocketAddr;

/// Open the repository (asking for its password now, not at the first page), listen, and
/// serve until interrupted. `ready` hears the address once connections are accepted.
pub fn serve(mut scope: Scope, opts: UiOptions, ready: impl FnOnce(Listening)) -> Result<()> {
    opts.credentials.validate()?;
    if !opts.listen.ip().is_loopback() && !opts.credentials.any() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a loopback address: give --password-hash-file or --token-file, so that not everyone who \
             reaches it can read every backup",
            opts.listen
        )));
    }
    if (opts.allow_restore.is_some() || opts.allow_backup) && !opts.credentials.any() {
        return Err(Error::InvalidArgument(
            "--allow-restore and --allow-backup need a login, even on loopback (any local user could use them): \
             give --password-hash-file or --token-file"
                .into(),
        ));
    }
    if let Some(root) = &opts.allow_restore {
        if !root.is_absolute() || !root.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "--allow-restore {}: not an absolute path to a directory",
                root.display()
            )));
        }
    }
    scope.ctx.unlocked = Some(Arc::new(Unlocked::default()));
    let repo = scope.ctx.open_for(READERS, "browse snapshots in the web UI")?;
    let role = repo.role();
    drop(repo);
    let repository = scope.ctx.location()?.display().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .enable_all()
        .thread_name("arca-ui")
        .build()
        .map_err(|e| Error::Io { path: "tokio runtime".into(), source: e })?;
    let app = Arc::new(App {
        scope,
        opts: opts.clone(),
        role,
        repository,
        sessions: Sessions::default(),
        jobs: actions::Jobs::default(),
        logins: tokio::sync::Semaphore::new(1),
        sizes: Default::default(),
    });
    let listener = std::net::TcpListener::bind(opts.listen)
        .map_err(|e| Error::Io { path: format!("listen on {}", opts.listen).into(), source: e })?;
    listener.set_nonblocking(true).map_err(|e| Error::Io { path: "listener".into(), source: e })?;
    let addr = listener.local_addr().map_err(|e| Error::Io { path: "listener".into(), source: e })?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::Io { path: "listener".into(), source: e })?;
        ready(addr);
        accept_loop(app, listener).await;
        Ok::<(), Error>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

async fn accept_loop(app: Arc<App>, listener: tokio::net::TcpListener) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    while !crate::interrupt::requested() {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let accepted = match tokio::time::timeout(Duration::from_millis(250), listener.accept()).await {
            Err(_) => continue,
            Ok(Err(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await; // EMFILE and the like: back off
                continue;
            }
            Ok(Ok(a)) => a,
        };
        let (stream, _peer) = accepted;
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(app, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .max_buf_size(64 << 10)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

/// One request: the Host check, the session, the gate, the route; then the headers every
/// answer carries.
async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    if app.opts.listen.ip().is_loopback() && !auth::loopback_host(&host) {
        let mut r = http::respond(StatusCode::MISDIRECTED_REQUEST, "text/plain; charset=utf-8", "unknown host\n");
        http::harden(r.headers_mut());
        return r;
    }
    let cookie = http::cookies(&parts.headers).into_iter().find(|(k, _)| k == auth::COOKIE).map(|(_, v)| v);
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| app.opts.credentials.accepts_token(t.trim()));
    if !cross_site_allowed(&parts) {
        let mut r = http::respond(StatusCode::FORBIDDEN, "text/plain; charset=utf-8", "cross-site request refused\n");
        http::harden(r.headers_mut());
        return r;
    }
    let needs_login = app.opts.credentials.any();
    let (session, new_cookie) = match cookie.as_deref().and_then(|c| app.sessions.get(c)) {
        Some(s) => (s, None),
        // A script with a token gets no session it would never use.
        None if bearer => (Session { csrf: auth::random_hex(), authenticated: true }, None),
        None => {
            let (c, s) = app.sessions.create(!needs_login);
            (s, Some(c))
        }
    };
    let session = Session { authenticated: session.authenticated || bearer, ..session };
    let mut req = Req {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: http::pairs(parts.uri.query().unwrap_or("").as_bytes()),
        form: Vec::new(),
    };
    let mut resp = if req.method == Method::POST {
        match read_form(body).await {
            Err(r) => r,
            Ok(form) => {
                req.form = form;
                let origin = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
                let site = parts.headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
                let token_ok = req.f("csrf").is_some_and(|t| auth::same(t.as_bytes(), session.csrf.as_bytes()));
                match token_ok && auth::same_origin(origin, site, &host) {
                    false => http::respond(
                        StatusCode::FORBIDDEN,
                        "text/plain; charset=utf-8",
                        "CSRF check failed: reload the page and try again\n",
                    ),
                    true => route(app.clone(), req, session, cookie.clone()).await,
                }
            }
        }
    } else if req.method == Method::GET || req.method == Method::HEAD {
        route(app.clone(), req, session, cookie.clone()).await
    } else {
        http::respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "method not allowed\n")
    };
    if let Some(c) = new_cookie {
        set_cookie(&mut resp, &c);
    }
    http::harden(resp.headers_mut());
    resp
}

/// Whether a request may come from another site (`Sec-Fetch-Site`, which browsers send): only
/// as a link followed to the dashboard or the login page. Otherwise a page elsewhere could make
/// a loopback UI without login search, diff or download for it (and time the answers).
fn cross_site_allowed(parts: &hyper::http::request::Parts) -> bool {
    let h = |k: &str| parts.headers.get(k).and_then(|v| v.to_str().ok());
    match h("sec-fetch-site") {
        None | Some("same-origin") | Some("none") => true,
        Some(_) => {
            parts.method == Method::GET
                && h("sec-fetch-mode") == Some("navigate")
                && matches!(parts.uri.path(), "/" | "/login")
        }
    }
}

/// Set the session cookie: script cannot read it, other sites' requests do not carry it.
pub(crate) fn set_cookie(resp: &mut Response<Body>, value: &str) {
    let c = format!("{}={value}; Path=/; HttpOnly; SameSite=Strict", auth::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A form body: at most [`http::MAX_FORM`] bytes, within [`FORM_TIME`] (a client sending
/// slowly must not hold a connection for ever).
async fn read_form(body: Incoming) -> std::result::Result<Vec<(String, String)>, Response<Body>> {
    match tokio::time::timeout(FORM_TIME, Limited::new(body, http::MAX_FORM).collect()).await {
        Ok(Ok(b)) => Ok(http::pairs(&b.to_bytes())),
        Ok(Err(_)) => {
            Err(http::respond(StatusCode::PAYLOAD_TOO_LARGE, "text/plain; charset=utf-8", "form too large\n"))
        }
        Err(_) => Err(http::respond(StatusCode::REQUEST_TIMEOUT, "text/plain; charset=utf-8", "form too slow\n")),
    }
}

/// How long a form body may take to arrive.
const FORM_TIME: Duration = Duration::from_secs(10);

/// The pages. Without a session that logged in, only the login page and the style sheet.
async fn route(app: Arc<App>, req: Req, who: Session, cookie: Option<String>) -> Response<Body> {
    let path = req.path.clone();
    if path == "/static/arca.css" {
        let mut r = http::respond(StatusCode::OK, "text/css; charset=utf-8", html::CSS);
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
        return r;
    }
    if path == "/login" {
        // One password check at a time (Argon2id takes memory and tens of milliseconds); a
        // failure costs a second, waited here, not on a blocking thread.
        let _turn = match req.method == Method::POST {
            true => Some(app.logins.acquire().await),
            false => None,
        };
        let r = blocking({
            let app = app.clone();
            move || pages::login(&app, &req, &who, cookie.as_deref())
        })
        .await;
        if r.status() == StatusCode::UNAUTHORIZED {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        return r;
    }
    if !who.authenticated {
        return match req.method {
            Method::GET => http::redirect("/login"),
            _ => http::respond(StatusCode::UNAUTHORIZED, "text/plain; charset=utf-8", "log in first\n"),
        };
    }
    if path == "/logout" && req.method == Method::POST {
        if let Some(c) = cookie {
            app.sessions.remove(&c);
        }
        return http::redirect("/login");
    }
    if let Some(rest) = path.strip_prefix("/snap/") {
        let Some((id, what)) = rest.split_once('/') else { return not_found(&app, &who) };
        let (id, what) = (id.to_string(), what.to_string());
        return match what.as_str() {
            "raw" | "archive" => pages::download(app, req, who, id, what == "archive").await,
            _ => blocking(move || pages::snapshot_page(&app, &req, &who, &id, &what)).await,
        };
    }
    if let Some(n) = path.strip_prefix("/jobs/") {
        let n = n.to_string();
        return blocking(move || actions::job_page(&app, &who, &n)).await;
    }
    blocking(move || match (req.method.as_str(), req.path.as_str()) {
        ("GET" | "HEAD", "/") => health::dashboard(&app, &req, &who),
        ("GET" | "HEAD", "/journal") => health::journal(&app, &req, &who),
        ("GET" | "HEAD", "/snapshots") => pages::snapshots(&app, &req, &who),
        ("GET" | "HEAD", "/search") => pages::search(&app, &req, &who),
        ("GET" | "HEAD", "/diff") => pages::diff(&app, &req, &who),
        ("GET" | "HEAD", "/versions") => pages::versions(&app, &req, &who),
        ("POST", "/actions/restore") => actions::start_restore(&app, &req, &who),
        ("POST", "/actions/backup") => actions::start_backup(&app, &req, &who),
        _ => not_found(&app, &who),
    })
    .await
}

fn not_found(app: &App, who: &Session) -> Response<Body> {
    app.error(who, &Error::NotFound("no such page".into()))
}

/// Run a page on a blocking thread (operations read synchronously).
async fn blocking(f: impl FnOnce() -> Response<Body> + Send + 'static) -> Response<Body> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(_) => http::respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", "the page failed\n"),
    }
}

/// A `Write` that hands bytes to a response body in 256 KiB pieces through a channel of a few
/// pieces: memory stays bounded whatever the size of the download, and a client that goes away
/// ends the writer's work with an error.
pub(crate) struct ChannelWriter {
    tx: http_body_util::channel::Sender<Bytes, std::io::Error>,
    buf: Vec<u8>,
    rt: tokio::runtime::Handle,
    started: Option<tokio::sync::oneshot::Sender<()>>,
    /// Set by [`ChannelWriter::finish`]: a writer dropped without it (an error, a panic) ends
    /// the body with an error, never as a complete file.
    finished: bool,
}

const PIECE: usize = 256 << 10;

impl ChannelWriter {
    /// A writer and the body it feeds; `started` fires at the first byte or flush.
    pub fn new(rt: tokio::runtime::Handle) -> (ChannelWriter, Body, tokio::sync::oneshot::Receiver<()>) {
        let (tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(4);
        let (stx, srx) = tokio::sync::oneshot::channel();
        (
            ChannelWriter { tx, buf: Vec::with_capacity(PIECE), rt, started: Some(stx), finished: false },
            body.boxed(),
            srx,
        )
    }

    fn start(&mut self) {
        if let Some(s) = self.started.take() {
            let _ = s.send(());
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        self.start();
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.rt
            .block_on(self.tx.send_data(piece))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Send what is left and end the body as complete.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.send()?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for ChannelWriter {
    /// Not finished: end the body with an error, so the client sees a broken transfer, never a
    /// short file that looks whole.
    fn drop(&mut self) {
        if !self.finished {
            let (tx, _) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(1);
            std::mem::replace(&mut self.tx, tx).abort(std::io::Error::other("the download failed"));
        }
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.start();
        let n = data.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
