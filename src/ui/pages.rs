//! The browsing pages: login, snapshots, a snapshot's directories and files (with previews and
//! downloads), search, diff and a path's versions. Each calls one operation of `crate::ops`
//! and renders what it returns; every name goes through [`super::html`].

use super::auth::Session;
use super::html::{self, enc, esc, name};
use super::http::{self, Body, Req};
use super::server::{set_cookie, App, ChannelWriter};
use crate::browse::{FindBy, NameGlobs};
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::ops::browse::{self as ob, ListRequest};
use crate::repo::select::SnapshotFilter;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use std::fmt::Write;
use std::sync::Arc;

/// Entries one directory page shows.
pub const PAGE: usize = 500;
/// Hits one search shows (the rest are counted).
pub const MAX_HITS: usize = 500;
/// Changes one diff shows (the rest are counted).
pub const MAX_CHANGES: usize = 2000;
/// How long one search page starts new snapshots for (newest first); older ones are offered
/// as the next page.
const SEARCH_TIME: std::time::Duration = std::time::Duration::from_millis(120);
/// Bytes of a file a text preview shows.
const PREVIEW: usize = 64 << 10;

/// `GET /login` shows the form; `POST /login` checks the password or token and replaces the
/// session with a logged-in one. A failure costs a second (waited by the server).
pub fn login(app: &App, req: &Req, who: &Session, cookie: Option<&str>) -> Response<Body> {
    if !app.opts.credentials.any() {
        return http::redirect("/");
    }
    let mut failed = false;
    if req.method == hyper::Method::POST {
        let secret = req.f("secret").unwrap_or("");
        if app.opts.credentials.accepts(secret) {
            if let Some(c) = cookie {
                app.sessions.remove(c);
            }
            let (c, _) = app.sessions.create(true);
            let mut r = http::redirect("/");
            set_cookie(&mut r, &c);
            return r;
        }
        failed = true;
    }
    let mut body = String::new();
    if failed {
        body.push_str("<p class=\"error\" id=\"error\">Wrong password or token.</p>");
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/login\" class=\"card\" id=\"login\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Password or token <input type=\"password\" name=\"secret\" autocomplete=\"current-password\" autofocus></label> \
         <button type=\"submit\">Log in</button></form>",
        esc(&who.csrf)
    );
    let mut r = app.page(who, "Log in", body);
    if failed {
        *r.status_mut() = StatusCode::UNAUTHORIZED;
    }
    r
}

/// The snapshot filter a page's query asks for: `host`, `tag` (comma-separated, all of them),
/// `path`, and with a profile `component`.
fn filter_of(app: &App, req: &Req) -> SnapshotFilter {
    let mut f = SnapshotFilter::default();
    if let Some(h) = req.q("host") {
        f.hosts.push(h.to_string());
    }
    if let Some(t) = req.q("tag") {
        f.tags.push(t.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect());
    }
    if let Some(p) = req.q("path") {
        f.paths.push(p.as_bytes().to_vec());
    }
    if let Some(c) = req.q("component") {
        match app.scope.targets.iter().find(|t| t.name == c) {
            Some(t) => f.scope = t.filter.tags.clone(),
            None => f.scope = vec![vec![format!("\u{0}no component {c}")]],
        }
    }
    f
}

fn filter_form(app: &App, req: &Req, action: &str, extra: &str) -> String {
    let v = |k: &str| esc(req.q(k).unwrap_or(""));
    let mut s = format!(
        "<form class=\"filters\" method=\"get\" action=\"{action}\">{extra}\
         <label>Host<input name=\"host\" value=\"{}\"></label><label>Tags<input name=\"tag\" value=\"{}\"></label>\
         <label>Path<input name=\"path\" value=\"{}\"></label>",
        v("host"),
        v("tag"),
        v("path")
    );
    if !app.scope.targets.is_empty() {
        s.push_str("<label>Component<select name=\"component\"><option value=\"\">all</option>");
        for t in &app.scope.targets {
            let sel = if req.q("component") == Some(t.name.as_str()) { " selected" } else { "" };
            let _ = write!(s, "<option{sel} value=\"{0}\">{0}</option>", esc(&t.name));
        }
        s.push_str("</select></label>");
    }
    s.push_str("<button type=\"submit\">Filter</button></form>");
    s
}

/// The selected snapshots, newest first, with sizes (measured once per root tree per server).
fn listing(app: &App, filter: &SnapshotFilter) -> Result<Vec<(Id, Snapshot, Option<u64>)>> {
    let req = ListRequest { filter: filter.clone(), ..ListRequest::default() };
    let listed = ob::snapshots(&app.scope, &req)?;
    let trees: Vec<Id> = {
        let known = app.sizes.lock().unwrap_or_else(|p| p.into_inner());
        let mut t: Vec<Id> =
            listed.snapshots.iter().map(|l| l.snapshot.tree).filter(|t| !known.contains_key(t)).collect();
        t.sort();
        t.dedup();
        t
    };
    if !trees.is_empty() {
        let sizes = crate::ops::inspect::tree_sizes(&app.scope, &trees)?;
        let mut known = app.sizes.lock().unwrap_or_else(|p| p.into_inner());
        for (t, s) in trees.into_iter().zip(sizes) {
            if s.is_some() {
                known.insert(t, s);
            }
        }
    }
    let known = app.sizes.lock().unwrap_or_else(|p| p.into_inner());
    Ok(listed
        .snapshots
        .into_iter()
        .rev()
        .map(|l| (l.id, l.snapshot.clone(), known.get(&l.snapshot.tree).copied().flatten()))
        .collect())
}

fn tags(s: &Snapshot) -> String {
    let mut t: Vec<String> = s.tags.iter().take(32).map(|t| html::short(t.as_bytes(), 128)).collect();
    if s.tags.len() > 32 {
        t.push("…".into());
    }
    t.join(", ")
}

fn paths(s: &Snapshot) -> String {
    let mut p: Vec<String> = s.paths.iter().take(16).map(|p| html::short(p, 512)).collect();
    if s.paths.len() > 16 {
        p.push("…".into());
    }
    p.join("<br>")
}

/// `GET /snapshots`.
pub fn snapshots(app: &App, req: &Req, who: &Session) -> Response<Body> {
    let list = match listing(app, &filter_of(app, req)) {
        Ok(l) => l,
        Err(e) => return app.error(who, &e),
    };
    let start: usize = req.q("start").and_then(|s| s.parse().ok()).unwrap_or(0).min(list.len());
    let mut body = filter_form(app, req, "/snapshots", "");
    let _ = write!(
        body,
        "<p>{} snapshot{}, newest first</p><table id=\"snapshots\"><thead><tr><th>Time</th><th>ID</th><th>Host</th><th>Tags</th>\
         <th>Paths</th><th class=\"num\">Size</th><th></th></tr></thead><tbody>",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    );
    for (id, s, size) in list.iter().skip(start).take(PAGE) {
        let hex = id.to_hex();
        let _ = write!(
            body,
            "<tr><td>{}</td><td><a class=\"snap\" href=\"/snap/{hex}/tree\"><code>{}</code></a></td><td>{}</td><td>{}</td>\
             <td class=\"name\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            html::time(s.time),
            id.short(),
            esc(&crate::text::escape_str(&s.hostname)),
            tags(s),
            paths(s),
            size.map_or("?".into(), html::bytes),
            s.parent.map_or(String::new(), |p| format!("<a href=\"/diff?a={}&amp;b={hex}\">diff with parent</a>", p.to_hex())),
        );
    }
    body.push_str("</tbody></table>");
    let base: Vec<String> =
        req.query.iter().filter(|(k, _)| k != "start").map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    pager(&mut body, &esc(&format!("/snapshots?{}", base.join("&"))), start, list.len());
    app.page(who, "Snapshots", body)
}

/// A snapshot ID from a URL: 64 hex digits, or an error page.
fn snapshot_id(id: &str) -> Result<Id> {
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::NotFound(format!("{} is not a snapshot ID", crate::text::escape_str(id))));
    }
    Id::from_hex(id).ok_or_else(|| Error::NotFound("not a snapshot ID".into()))
}

/// The `path` query value, normalised to `/a/b` (the root: `/`).
fn path_of(req: &Req) -> String {
    let p = req.q("path").unwrap_or("/");
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// The URL of an entry's page.
fn entry_url(snap: &str, path: &str, dir: bool) -> String {
    format!("/snap/{snap}/{}?path={}", if dir { "tree" } else { "file" }, enc(path))
}

fn crumbs(snap: &Id, snapshot: &Snapshot, path: &str) -> String {
    let hex = snap.to_hex();
    let mut s = format!(
        "<div class=\"crumbs\" id=\"crumbs\">snapshot <a href=\"/snap/{hex}/tree\">{}</a> of {} · <a href=\"/snap/{hex}/tree\">/</a>",
        snap.short(),
        html::time(snapshot.time)
    );
    let mut at = String::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        at.push('/');
        at.push_str(c);
        let _ = write!(s, "<a href=\"{}\">{}</a>/", entry_url(&hex, &at, true), name(c.as_bytes()));
    }
    s.push_str("</div>");
    s
}

fn size_of(n: &Node) -> Option<u64> {
    match n.kind {
        NodeKind::File { size, .. } => Some(size),
        _ => None,
    }
}

fn owner(n: &Node) -> String {
    let u = if n.user.is_empty() { n.uid.to_string() } else { crate::text::escape_str(&n.user) };
    let g = if n.group.is_empty() { n.gid.to_string() } else { crate::text::escape_str(&n.group) };
    esc(&format!("{u}:{g}"))
}

/// `GET /snap/ID/tree?path=…&start=N` and `GET /snap/ID/file?path=…`.
pub fn snapshot_page(app: &App, req: &Req, who: &Session, id: &str, what: &str) -> Response<Body> {
    let result = snapshot_id(id).and_then(|id| match what {
        "tree" => tree_page(app, req, who, &id),
        "file" => file_page(app, req, who, &id),
        _ => Err(Error::NotFound("no such page".into())),
    });
    match result {
        Ok((title, body)) => app.page(who, &title, body),
        Err(e) => app.error(who, &e),
    }
}

fn tree_page(app: &App, req: &Req, who: &Session, id: &Id) -> Result<(String, String)> {
    let path = path_of(req);
    let start: usize = req.q("start").and_then(|s| s.parse().ok()).unwrap_or(0).min(usize::MAX / 2);
    let hex = id.to_hex();
    let mut rows = String::new();
    let mut count = 0usize;
    let mut file_itself = false;
    let at = ob::ls(&app.scope, &format!("{hex}:{path}"), &SnapshotFilter::default(), false, &mut |p, n| {
        if p == path.as_bytes() && !matches!(n.kind, NodeKind::Dir { .. }) {
            file_itself = true;
            return;
        }
        count += 1;
        if count <= start || count > start + PAGE {
            return;
        }
        row(&mut rows, &hex, &path, n);
    })?;
    if file_itself {
        return file_page(app, req, who, id);
    }
    let mut body = crumbs(&at.id, &at.snapshot, &path);
    let _ = write!(
        body,
        "<p>{count} entr{} · download this directory as <a id=\"tar\" href=\"/snap/{hex}/archive?path={p}&amp;format=tar\">.tar</a> \
         or <a id=\"zip\" href=\"/snap/{hex}/archive?path={p}&amp;format=zip\">.zip</a></p>",
        if count == 1 { "y" } else { "ies" },
        p = enc(&path)
    );
    restore_form(app, who, &mut body, &hex, &path);
    body.push_str(
        "<table id=\"entries\"><thead><tr><th>Mode</th><th>Name</th><th class=\"num\">Size</th><th>Owner</th>\
         <th>Modified</th></tr></thead><tbody>",
    );
    body.push_str(&rows);
    body.push_str("</tbody></table>");
    pager(&mut body, &format!("/snap/{hex}/tree?path={}", enc(&path)), start, count);
    Ok((path, body))
}

fn pager(body: &mut String, base: &str, start: usize, count: usize) {
    body.push_str("<p class=\"pager\">");
    if start > 0 {
        let _ = write!(
            body,
            "<a id=\"prev\" href=\"{base}&amp;start={}\">previous {PAGE}</a> ",
            start.saturating_sub(PAGE)
        );
    }
    if count > start + PAGE {
        let _ = write!(
            body,
            "entries {}–{} of {count} <a id=\"next\" href=\"{base}&amp;start={}\">next {PAGE}</a>",
            start + 1,
            start + PAGE,
            start + PAGE
        );
    }
    body.push_str("</p>");
}

fn row(rows: &mut String, hex: &str, dir: &str, n: &Node) {
    let is_dir = matches!(n.kind, NodeKind::Dir { .. });
    let shown = name(&n.name);
    let cell = match std::str::from_utf8(&n.name) {
        Ok(s) => {
            let child = if dir == "/" { format!("/{s}") } else { format!("{dir}/{s}") };
            format!(
                "<a class=\"entry\" href=\"{}\">{shown}{}</a>",
                esc(&entry_url(hex, &child, is_dir)),
                if is_dir { "/" } else { "" }
            )
        }
        // A path here is text: this one can be fetched with its directory's archive.
        Err(_) => format!("<span title=\"not UTF-8: download the directory's archive\">{shown}</span>"),
    };
    let link = match &n.kind {
        NodeKind::Symlink { target } => format!(" → {}", name(target)),
        _ => String::new(),
    };
    let _ = write!(
        rows,
        "<tr><td><code>{}</code></td><td class=\"name\">{cell}{link}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
        crate::browse::mode_string(n),
        size_of(n).map_or(String::new(), html::bytes),
        owner(n),
        html::time(n.mtime)
    );
}

fn restore_form(app: &App, who: &Session, body: &mut String, hex: &str, path: &str) {
    if !app.can_restore() {
        return;
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/actions/restore\" class=\"card\" id=\"restore\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"snapshot\" value=\"{hex}\">\
         <input type=\"hidden\" name=\"path\" value=\"{}\"><label>Restore this into {}/\
         <input name=\"target\" placeholder=\"restored\" required></label> \
         <label><input type=\"checkbox\" name=\"verify\" value=\"1\" checked> verify</label> <button type=\"submit\">Restore</button></form>",
        esc(&who.csrf),
        esc(path),
        html::name(app.opts.allow_restore.as_deref().map_or(&b""[..], |r| r.as_os_str().as_encoded_bytes()))
    );
}

fn file_page(app: &App, req: &Req, who: &Session, id: &Id) -> Result<(String, String)> {
    let path = path_of(req);
    let hex = id.to_hex();
    let (at, head) = crate::ops::inspect::head(&app.scope, &format!("{hex}:{path}"), PREVIEW)?;
    let n = &at.node;
    let mut body = crumbs(&at.id, &at.snapshot, &path);
    body.push_str("<dl class=\"details\" id=\"details\">");
    let mut item = |k: &str, v: String| {
        let _ = write!(body, "<dt>{k}</dt><dd>{v}</dd>");
    };
    item("Path", name(path.as_bytes()));
    item("Mode", crate::browse::mode_string(n));
    if let Some(s) = size_of(n) {
        item("Size", format!("{} ({s} bytes)", html::bytes(s)));
    }
    if let NodeKind::Symlink { target } = &n.kind {
        item("Link target", name(target));
    }
    if let NodeKind::CharDevice { rdev } | NodeKind::BlockDevice { rdev } = n.kind {
        item("Device", format!("{rdev:#x}"));
    }
    item("Owner", format!("{} (uid {}, gid {})", owner(n), n.uid, n.gid));
    item("Modified", html::time(n.mtime));
    item("Changed", html::time(n.ctime));
    item("Inode", format!("{} on device {:#x}", n.inode, n.device));
    item("Hard links", n.links.to_string());
    for x in n.xattrs.iter().take(64) {
        item("xattr", format!("{} = {}", html::short(&x.name, 256), html::short(&x.value, 512)));
    }
    if n.xattrs.len() > 64 {
        item("xattr", format!("… {} more", n.xattrs.len() - 64));
    }
    body.push_str("</dl><p>");
    let p = enc(&path);
    if size_of(n).is_some() {
        let _ = write!(body, "<a id=\"download\" href=\"/snap/{hex}/raw?path={p}\">Download</a> · ");
    }
    let _ = write!(body, "<a id=\"versions\" href=\"/versions?path={p}\">Every version of this path</a></p>");
    restore_form(app, who, &mut body, &hex, &path);
    preview(&mut body, &hex, &path, n, &head);
    Ok((path.clone(), body))
}

/// The image types shown inline (never SVG, which can carry script).
fn image_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        _ => None,
    }
}

fn preview(body: &mut String, hex: &str, path: &str, n: &Node, head: &[u8]) {
    let Some(size) = size_of(n) else { return };
    if image_type(path).is_some() {
        let _ = write!(
            body,
            "<h2>Preview</h2><img class=\"preview\" id=\"preview\" alt=\"preview\" src=\"/snap/{hex}/raw?path={}&amp;inline=1\">",
            enc(path)
        );
        return;
    }
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A preview cut inside a character: up to it.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
        Err(_) => return,
    };
    if text.contains('\0') || (text.is_empty() && size > 0) {
        return;
    }
    let more = if (head.len() as u64) < size {
        format!(" (the first {} of {})", html::bytes(head.len() as u64), html::bytes(size))
    } else {
        String::new()
    };
    let _ = write!(body, "<h2>Preview{more}</h2><pre class=\"preview\" id=\"preview\">{}</pre>", esc(text));
}

/// `GET /snap/ID/raw?path=…[&inline=1]` and `GET /snap/ID/archive?path=…&format=tar|zip`:
/// the bytes `arca dump` writes, streamed. An error before the first byte is an error page;
/// after it, a broken transfer.
pub async fn download(app: Arc<App>, req: Req, who: Session, id: String, archive: bool) -> Response<Body> {
    let id = match snapshot_id(&id) {
        Ok(id) => id,
        Err(e) => return app.error(&who, &e),
    };
    let path = path_of(&req);
    let format = match (archive, req.q("format")) {
        (false, _) => ob::Archive::None,
        (true, Some("zip")) => ob::Archive::Zip,
        (true, Some("tar") | None) => ob::Archive::Tar,
        (true, Some(_)) => return app.error(&who, &Error::InvalidArgument("format: tar or zip".into())),
    };
    let base = path.rsplit('/').next().filter(|s| !s.is_empty()).map_or_else(|| id.short(), str::to_string);
    let (file_name, content_type) = match format {
        ob::Archive::Tar => (format!("{base}.tar"), "application/x-tar"),
        ob::Archive::Zip => (format!("{base}.zip"), "application/zip"),
        ob::Archive::None => (base.clone(), "application/octet-stream"),
    };
    let inline = format == ob::Archive::None && req.q("inline") == Some("1");
    if let Some(image) = inline.then(|| image_type(&path)).flatten() {
        return image_preview(app, who, id, path, image).await;
    }
    if req.method == hyper::Method::HEAD {
        // A HEAD learns the headers, without a dump (and its journal record) behind them; the
        // entry is looked up, so a missing one is a 404 as for GET.
        let (a, reference) = (app.clone(), format!("{}:{path}", id.to_hex()));
        let found = tokio::task::spawn_blocking(move || crate::ops::inspect::head(&a.scope, &reference, 0)).await;
        match found {
            Ok(Ok((at, _))) if format != ob::Archive::None || size_of(&at.node).is_some() => {}
            Ok(Ok(_)) => {
                return app.error(&who, &Error::InvalidArgument("not a regular file: download an archive".into()))
            }
            Ok(Err(e)) => return app.error(&who, &e),
            Err(_) => return app.error(&who, &Error::InvalidArgument("the lookup failed".into())),
        }
        let mut r = http::respond(StatusCode::OK, content_type, "");
        attach(&mut r, &file_name);
        return r;
    }
    let (mut writer, body, started) = ChannelWriter::new(tokio::runtime::Handle::current());
    let reference = format!("{}:{path}", id.to_hex());
    let worker_app = app.clone();
    let job = tokio::task::spawn_blocking(move || {
        // Dropped unfinished on an error (or a panic), the writer breaks the transfer.
        ob::dump(&worker_app.scope, &reference, &SnapshotFilter::default(), format, &mut writer)?;
        writer.finish().map_err(|e| crate::browse::from_io(e, "download"))
    });
    if started.await.is_err() {
        return match job.await {
            Ok(Err(e)) => app.error(&who, &e),
            _ => app.error(&who, &Error::NotFound("nothing to download".into())),
        };
    }
    let mut r = Response::new(body);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    attach(&mut r, &file_name);
    r
}

/// A file's bytes as a download: an attachment under the sandboxing policy.
fn attach(r: &mut Response<Body>, file_name: &str) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&html::disposition("attachment", file_name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(http::FILE_CSP));
}

/// Largest image shown as a preview.
const MAX_IMAGE: usize = 8 << 20;

/// An image's bytes for its preview: read like a preview (not journaled: nothing is taken away
/// that the page did not show), bounded, served inline only as its own image type.
async fn image_preview(app: Arc<App>, who: Session, id: Id, path: String, image: &'static str) -> Response<Body> {
    let reference = format!("{}:{path}", id.to_hex());
    let a = app.clone();
    let read =
        tokio::task::spawn_blocking(move || crate::ops::inspect::head(&a.scope, &reference, MAX_IMAGE + 1)).await;
    let bytes = match read {
        Ok(Ok((at, bytes))) if size_of(&at.node).is_some_and(|s| s as usize <= MAX_IMAGE) => bytes,
        Ok(Ok(_)) => return app.error(&who, &Error::InvalidArgument("not an image of at most 8 MiB".into())),
        Ok(Err(e)) => return app.error(&who, &e),
        Err(_) => return app.error(&who, &Error::InvalidArgument("the preview failed".into())),
    };
    let mut r = http::respond(StatusCode::OK, image, bytes);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&html::disposition("inline", path.rsplit('/').next().unwrap_or("image"))) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(http::FILE_CSP));
    r
}

/// `GET /search?q=PATTERN[&i=1][&snapshot=ID]` with the snapshot filters: `find`'s semantics
/// (a glob on names, or on paths when it holds a `/`), every selected snapshot or one.
pub fn search(app: &App, req: &Req, who: &Session) -> Response<Body> {
    let q = req.q("q").unwrap_or("");
    let snap = req.q("snapshot").unwrap_or("");
    let extra = format!(
        "<label>Pattern<input name=\"q\" id=\"q\" value=\"{}\" placeholder=\"*.conf, /etc/**\"></label>\
         <label>Ignore case<input type=\"checkbox\" name=\"i\" value=\"1\"{}></label>\
         <label>Snapshot<input name=\"snapshot\" value=\"{}\" placeholder=\"all\"></label>",
        esc(q),
        if req.q("i").is_some() { " checked" } else { "" },
        esc(snap)
    );
    let mut body = filter_form(app, req, "/search", &extra);
    if q.is_empty() {
        return app.page(who, "Search", body);
    }
    match search_results(app, req, q, snap) {
        Ok(r) => body.push_str(&r),
        Err(e) => {
            let _ = write!(body, "<p class=\"error\" id=\"error\">{}</p>", esc(&e.to_string()));
        }
    }
    app.page(who, "Search", body)
}

fn search_results(app: &App, req: &Req, q: &str, snap: &str) -> Result<String> {
    let by = FindBy::Names(NameGlobs::new(&[q.to_string()], req.q("i").is_some())?);
    let filter = filter_of(app, req);
    let up_to = req.q("until").and_then(|t| t.parse().ok()).zip(req.q("from").and_then(Id::from_hex));
    let times: std::collections::HashMap<Id, i64> =
        ob::snapshots(&app.scope, &ListRequest { filter: filter.clone(), ..Default::default() })?
            .snapshots
            .into_iter()
            .map(|l| (l.id, l.snapshot.time))
            .collect();
    let request = ob::FindRequest {
        by,
        oldest: None,
        newest: None,
        snapshots: if snap.is_empty() { vec![] } else { vec![snap.to_string()] },
        filter,
        newest_first: true,
        up_to,
        deadline: Some(std::time::Instant::now() + SEARCH_TIME),
    };
    let (mut rows, mut hits) = (String::new(), 0usize);
    let found = ob::find(&app.scope, &request, &mut |sid, path, n, _| {
        hits += 1;
        if hits > MAX_HITS {
            return;
        }
        let hex = sid.to_hex();
        let is_dir = matches!(n.kind, NodeKind::Dir { .. });
        let cell = match std::str::from_utf8(path) {
            Ok(p) => format!("<a class=\"hit\" href=\"{}\">{}</a>", esc(&entry_url(&hex, p, is_dir)), name(path)),
            Err(_) => name(path),
        };
        let _ = write!(
            rows,
            "<tr><td><a href=\"/snap/{hex}/tree\"><code>{}</code></a> {}</td><td class=\"name\">{cell}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            sid.short(),
            times.get(sid).map_or(String::new(), |t| html::time(*t)),
            size_of(n).map_or(String::new(), html::bytes),
            html::time(n.mtime)
        );
    })?;
    let mut out = format!(
        "<p id=\"hits\">{hits} match{}{}</p>",
        if hits == 1 { "" } else { "es" },
        if hits > MAX_HITS {
            format!(", the first {MAX_HITS} shown: narrow the pattern or pick a snapshot")
        } else {
            String::new()
        }
    );
    for d in &found.damaged {
        let _ = write!(out, "<p class=\"error\">not searched: {}</p>", esc(d));
    }
    // Older snapshots are searched on the next page: each page answers in bounded time.
    if let Some((id, t)) = found.unsearched.first().and_then(|id| times.get(id).map(|t| (id, t))) {
        let mut next: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k != "until" && k != "from")
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        next.push(format!("until={t}&from={}", id.to_hex()));
        let _ = write!(
            out,
            "<p class=\"pager\">{} older snapshot{} not searched yet: <a id=\"more\" href=\"/search?{}\">search them</a></p>",
            found.unsearched.len(),
            if found.unsearched.len() == 1 { "" } else { "s" },
            esc(&next.join("&"))
        );
    }
    let _ = write!(
        out,
        "<table id=\"results\"><thead><tr><th>Snapshot</th><th>Path</th><th class=\"num\">Size</th><th>Modified</th></tr></thead><tbody>{rows}</tbody></table>"
    );
    Ok(out)
}

/// `GET /diff?a=SNAP[:PATH]&b=SNAP[:PATH]`: what changed from A to B.
pub fn diff(app: &App, req: &Req, who: &Session) -> Response<Body> {
    let (a, b) = (req.q("a").unwrap_or(""), req.q("b").unwrap_or(""));
    let mut body = format!(
        "<form class=\"filters\" method=\"get\" action=\"/diff\"><label>From (snapshot[:path])<input name=\"a\" id=\"a\" value=\"{}\" placeholder=\"latest~1\"></label>\
         <label>To<input name=\"b\" id=\"b\" value=\"{}\" placeholder=\"latest\"></label><button type=\"submit\">Compare</button></form>",
        esc(a),
        esc(b)
    );
    if a.is_empty() || b.is_empty() {
        return app.page(who, "Diff", body);
    }
    let (mut rows, mut n) = (String::new(), 0usize);
    let sides = (
        ob::Side { reference: a.to_string(), ..Default::default() },
        ob::Side { reference: b.to_string(), ..Default::default() },
    );
    let r = ob::diff(&app.scope, &sides.0, &sides.1, &mut |c, p| {
        n += 1;
        if n <= MAX_CHANGES {
            let _ = write!(
                rows,
                "<tr><td class=\"change\"><code>{}</code></td><td class=\"name\">{}</td></tr>",
                c.marker(),
                name(p)
            );
        }
    });
    match r {
        Ok(cmp) => {
            let s = &cmp.stats;
            let _ = write!(
                body,
                "<p id=\"diffsummary\">{} → {}: {n} change{} · {} files changed · added {} files, {} dirs ({}) · removed {} files, {} dirs ({}){}</p>\
                 <table id=\"changes\"><thead><tr><th></th><th>Path</th></tr></thead><tbody>{rows}</tbody></table>",
                cmp.a.0.short(),
                cmp.b.0.short(),
                if n == 1 { "" } else { "s" },
                s.changed_files,
                s.added.files,
                s.added.dirs,
                html::bytes(s.added.bytes),
                s.removed.files,
                s.removed.dirs,
                html::bytes(s.removed.bytes),
                if n > MAX_CHANGES { format!(" — the first {MAX_CHANGES} shown") } else { String::new() }
            );
        }
        Err(e) => {
            let _ = write!(body, "<p class=\"error\" id=\"error\">{}</p>", esc(&e.to_string()));
        }
    }
    app.page(who, "Diff", body)
}

/// `GET /versions?path=…`: the path in every selected snapshot, changes marked.
pub fn versions(app: &App, req: &Req, who: &Session) -> Response<Body> {
    let path = req.q("path").map(|_| path_of(req));
    let extra =
        format!("<label>File path<input name=\"path\" value=\"{}\"></label>", esc(path.as_deref().unwrap_or("")));
    let mut form = format!(
        "<form class=\"filters\" method=\"get\" action=\"/versions\">{extra}<label>Host<input name=\"host\" value=\"{}\"></label>\
         <button type=\"submit\">Show</button></form>",
        esc(req.q("host").unwrap_or(""))
    );
    let Some(path) = path else { return app.page(who, "Versions", form) };
    let mut filter = filter_of(app, req);
    filter.paths.clear(); // `path` here is the file, not a backed-up path
    let list = match crate::ops::inspect::versions(&app.scope, &path, &filter) {
        Ok(l) => l,
        Err(e) => return app.error(who, &e),
    };
    let have = list.iter().filter(|v| v.node.is_some()).count();
    let changes = list.iter().filter(|v| v.changed).count();
    let _ = write!(
        form,
        "<p id=\"versionsummary\">{} in {have} of {} snapshots, {changes} distinct version{}</p>\
         <table id=\"versions\"><thead><tr><th>Snapshot</th><th>Host</th><th class=\"num\">Size</th><th>Modified</th><th>Change</th><th></th></tr></thead><tbody>",
        name(path.as_bytes()),
        list.len(),
        if changes == 1 { "" } else { "s" }
    );
    for v in list.iter().rev() {
        let hex = v.id.to_hex();
        let Some(n) = &v.node else {
            let _ = write!(form, "<tr class=\"absent\"><td><code>{}</code> {}</td><td>{}</td><td colspan=\"4\">not in this snapshot</td></tr>", v.id.short(), html::time(v.snapshot.time), esc(&crate::text::escape_str(&v.snapshot.hostname)));
            continue;
        };
        let dl = if size_of(n).is_some() {
            format!(" · <a href=\"/snap/{hex}/raw?path={}\">download</a>", enc(&path))
        } else {
            String::new()
        };
        let _ = write!(
            form,
            "<tr><td><code>{}</code> {}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td><a href=\"{}\">view</a>{dl}</td></tr>",
            v.id.short(),
            html::time(v.snapshot.time),
            esc(&crate::text::escape_str(&v.snapshot.hostname)),
            size_of(n).map_or(String::new(), html::bytes),
            html::time(n.mtime),
            if v.changed { "<span class=\"warn\">changed</span>" } else { "same" },
            esc(&entry_url(&hex, &path, matches!(n.kind, NodeKind::Dir { .. })))
        );
    }
    form.push_str("</tbody></table>");
    app.page(who, "Versions", form)
}
