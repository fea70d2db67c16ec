//! `arca ui` end to end, in a real browser: Debian's Chromium, headless, driven by
//! playwright-core (npm, installed once into `target/playwright`) from `tests/ui/browser.mjs`.
//! Each test builds a repository, starts `arca ui` on a loopback port (or on 0.0.0.0, or with
//! `--allow-restore`, with credentials), and has the browser click through the pages; the files it downloads are
//! compared here byte for byte with the sources and with what `arca dump` writes. Requests a
//! browser would never send (a forged POST, a foreign `Host`, a traversal in a path) go through
//! a small HTTP/1.1 client over a `TcpStream`, so that every header byte is seen as sent.
//!
//! Chromium is a requirement, not an option: without it these tests fail and say how to get it
//! (`.ci/run` installs Debian's `chromium`).

use crate::common::*;
use serde_json::{json, Value};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The playwright-core release the tests install (exactly this one).
const PLAYWRIGHT_CORE: &str = "1.65.2";

/// A 1×1 RGBA PNG (valid: the browser decodes it).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0a, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

// ---- the browser ------------------------------------------------------------------------------

/// The Chromium the tests drive: `$ARCA_TEST_CHROMIUM`, else Debian's `/usr/bin/chromium`.
/// Missing, the test fails: a UI test that skips itself proves nothing.
fn chromium() -> PathBuf {
    let p = std::env::var_os("ARCA_TEST_CHROMIUM")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        p.is_file(),
        "Chromium is not installed at {}: the web UI tests drive a real browser. Install Debian's \
         `chromium` (`apt-get install chromium`; .ci/run does it) or set ARCA_TEST_CHROMIUM",
        p.display()
    );
    p
}

/// The directory holding `node_modules/playwright-core`, installed there with npm once.
fn playwright() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("playwright");
        let installed = fs::read(root.join("node_modules/playwright-core/package.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["version"] == PLAYWRIGHT_CORE);
        if !installed {
            fs::create_dir_all(&root).unwrap();
            let manifest = json!({"private": true, "dependencies": {"playwright-core": PLAYWRIGHT_CORE}});
            fs::write(root.join("package.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
            let st = std::process::Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
                .arg(&root)
                .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
                .status()
                .expect("run npm (the web UI tests install playwright-core with it): is Node.js installed?");
            assert!(st.success(), "npm install playwright-core@{PLAYWRIGHT_CORE} failed: the web UI tests need it");
        }
        root
    })
    .clone()
}

/// What a browser scenario did: its report, the directory its downloads are in, and the
/// assertions it made that failed without stopping it (`soft` ones, for known bugs, marked
/// `BUG:` where they are made; none at present).
#[must_use = "call finish() at the end of the test: the scenario may have found bugs"]
struct Browsed {
    scenario: String,
    report: Value,
    out: PathBuf,
    bugs: Vec<String>,
}

impl Browsed {
    /// Fail if the scenario found bugs (after the test checked everything else).
    fn finish(self) {
        assert!(self.bugs.is_empty(), "the browser scenario {} failed:\n  {}", self.scenario, self.bugs.join("\n  "));
    }
}

/// Run one scenario of `tests/ui/browser.mjs` against `ui` with `config` (plus the common
/// fields); downloads land in `Browsed::out`. Fails the test with the script's message when an
/// assertion stops it.
fn browser(env: &Env, ui: &Ui, scenario: &str, mut config: Value) -> Browsed {
    let chromium = chromium();
    let out = env.mkdir(&format!("browser-{scenario}"));
    let c = config.as_object_mut().unwrap();
    c.insert("scenario".into(), scenario.into());
    c.insert("base".into(), ui.base().into());
    c.insert("out".into(), out.to_str().unwrap().into());
    c.insert("playwright".into(), playwright().to_str().unwrap().into());
    c.insert("chromium".into(), chromium.to_str().unwrap().into());
    let file = env.path(&format!("browser-{scenario}.json"));
    fs::write(&file, serde_json::to_vec(&config).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/browser.mjs");
    let started = Instant::now();
    let o = assert_cmd::Command::new("node")
        .arg(&script)
        .arg(&file)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run node (the web UI tests need Node.js)");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        matches!(o.status.code(), Some(0 | 3)),
        "the browser scenario {scenario} failed ({:?}, after {:.1} s):\n{stderr}\n--- arca ui's stderr:\n{}",
        o.status,
        started.elapsed().as_secs_f64(),
        ui.stderr()
    );
    let report: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("the browser's report is not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    let bugs = report["bugs"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().to_string()).collect();
    Browsed { scenario: scenario.into(), report, out, bugs }
}

// ---- the server -------------------------------------------------------------------------------

/// A running `arca ui`, killed when the test ends (passed or not).
pub(crate) struct Ui {
    child: Child,
    port: u16,
    stderr: PathBuf,
}

impl Ui {
    /// `arca ui ARGS` on this repository; returns once it said where it listens.
    fn start(env: &Env, args: &[&str]) -> Ui {
        let mut cmd = arca_std_cmd();
        cmd.env("ARCA_REPOSITORY", &env.repo).env("ARCA_PASSWORD", PASSWORD);
        Ui::spawn(cmd, env, args)
    }

    /// `arca ui ARGS` through `cmd` (an `arca` command with its repository and password set:
    /// S3's, say); its stderr goes to a file in `env`.
    pub(crate) fn spawn(mut cmd: std::process::Command, env: &Env, args: &[&str]) -> Ui {
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stderr = env.path(&format!("ui-{n}.stderr"));
        let child = cmd
            .arg("ui")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start arca ui");
        let mut ui = Ui { child, port: 0, stderr };
        let stdout = ui.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {} // drain until the server ends
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(Ok(l))) => l,
            other => panic!("arca ui {args:?} did not start ({other:?}); its stderr:\n{}", ui.stderr()),
        };
        // "arca ui: listening on http://ADDR:PORT/ (Ctrl-C stops)"
        let url = line
            .strip_prefix("arca ui: listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line from arca ui: {line:?}"));
        let addr = url.split('/').next().unwrap();
        ui.port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
        ui
    }

    /// The base URL the browser uses (always the loopback address).
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `Host` header a browser sends to [`Self::base`].
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `GET path` with extra headers.
    pub(crate) fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        http(self.port, "GET", path, &self.host(), headers, b"")
    }

    /// `HEAD path` with extra headers.
    fn head(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        http(self.port, "HEAD", path, &self.host(), headers, b"")
    }

    /// `POST path` of a form (`application/x-www-form-urlencoded`) with extra headers.
    fn post(&self, path: &str, headers: &[(&str, &str)], form: &[(&str, &str)]) -> Resp {
        let body = form.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&");
        let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
        h.extend_from_slice(headers);
        http(self.port, "POST", path, &self.host(), &h, body.as_bytes())
    }

    /// Log in as a browser does: `GET /login` for a session and its form token, `POST /login`
    /// with both and `secret`. Returns the `Cookie` header of the logged-in session (a new one:
    /// the login replaces the session it came from).
    fn login(&self, secret: &str) -> String {
        let page = self.get("/login", &[]);
        assert_eq!(page.status, 200, "GET /login: {page:?}");
        let before = format!("arca_session={}", page.session());
        let csrf = csrf_of(&page.text());
        let r = self.post("/login", &[("Cookie", &before)], &[("csrf", &csrf), ("secret", secret)]);
        assert_eq!(r.status, 303, "POST /login: {r:?}");
        assert_eq!(r.header("location").as_deref(), Some("/"), "{r:?}");
        let after = format!("arca_session={}", r.session());
        assert_ne!(after, before, "the login kept the session it came from");
        after
    }

    /// Wait until the job page `job` (`/jobs/N`) says its job finished; its text. Fails the test
    /// if the job failed.
    fn job_done(&self, job: &str, cookie: &str) -> String {
        assert!(job.starts_with("/jobs/"), "not a job page: {job}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let p = self.get(job, &[("Cookie", cookie)]).text();
            if p.contains("id=\"state\" class=\"ok\"") {
                return p;
            }
            assert!(!p.contains("id=\"state\" class=\"bad\""), "the job {job} failed:\n{p}");
            assert!(Instant::now() < deadline, "the job {job} did not finish:\n{p}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Servers started by this process so far (each logs to its own file).
static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// ---- a tiny HTTP/1.1 client -------------------------------------------------------------------

/// A response: status, headers as sent (raw bytes, names lower-cased) and the body (chunked
/// transfer decoded).
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    headers: Vec<(String, Vec<u8>)>,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    /// Every value of header `name` (lower case).
    fn all(&self, name: &str) -> Vec<&[u8]> {
        self.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_slice()).collect()
    }

    /// The value of header `name` as text, if it is there.
    fn header(&self, name: &str) -> Option<String> {
        self.all(name).first().map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of the `arca_session` cookie this response sets.
    fn session(&self) -> String {
        let set = self.header("set-cookie").unwrap_or_else(|| panic!("no Set-Cookie in {self:?}"));
        let v = set.strip_prefix("arca_session=").unwrap_or_else(|| panic!("Set-Cookie: {set}"));
        v.split(';').next().unwrap().to_string()
    }
}

/// One request on its own connection (`Connection: close`); `host` is the `Host` header, or
/// none when empty.
fn http(port: u16, method: &str, path: &str, host: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !host.is_empty() {
        req.push_str(&format!("Host: {host}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
        .unwrap_or_else(|| panic!("a malformed response to {method} {path}: {:?}", String::from_utf8_lossy(&raw)))
}

fn parse_response(raw: &[u8]) -> Option<Resp> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let mut lines = raw[..end].split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = String::from_utf8_lossy(lines.next()?).into_owned();
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    for l in lines {
        let colon = l.iter().position(|b| *b == b':')?;
        let name = String::from_utf8_lossy(&l[..colon]).to_ascii_lowercase();
        let v = &l[colon + 1..];
        let v = &v[v.iter().position(|b| *b != b' ').unwrap_or(v.len())..];
        headers.push((name, v.to_vec()));
    }
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case(b"chunked"));
    if chunked {
        let (mut out, mut rest) = (Vec::new(), &body[..]);
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..nl]).ok()?.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
        body = out;
    }
    Some(Resp { status, headers, body })
}

/// `s` for a URL's query: unreserved characters and `/` stay, every other byte is `%XX`.
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let hex =
            s.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        if let (b'%', Some(b)) = (s[i], hex) {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// The value of the hidden `csrf` field of a page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no csrf field in the page:\n{page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The snapshot ID of `arca backup PATH`.
fn backup(env: &Env, path: &Path) -> String {
    env.backup(&[path], &[])["snapshot"].as_str().unwrap().to_string()
}

/// Whether `dir` holds nothing.
fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).unwrap().next().is_none()
}

/// Panic unless `got` is exactly `want`; says where they differ, not the bytes themselves.
fn same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!("{what}: {} bytes where {} were expected, first difference at byte {at}", got.len(), want.len());
    }
}

// ---- 1. browse, fetch, search, diff, versions -------------------------------------------------

#[test]
fn ui_browse_download_search_diff_and_versions_in_a_browser() {
    chromium();
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir_all(src.join("a/b/c")).unwrap();
    let deep = "three directories deep\nsecond line <b>not bold</b>\n";
    fs::write(src.join("a/b/c/deep.txt"), deep).unwrap();
    fs::write(src.join("a/top.txt"), "in a\n").unwrap();
    write_random_file(&src.join("a/b/middle.bin"), 3, 100_000);
    let big = 3 * 1024 * 1024 + 12_345;
    write_random_file(&src.join("big.bin"), 42, big);
    fs::write(src.join("pic.png"), PNG).unwrap();
    fs::create_dir(src.join("many")).unwrap();
    for i in 0..501 {
        fs::write(src.join(format!("many/f{i:03}")), i.to_string()).unwrap();
    }
    let (v1, v2) = ("the first version\n", "the second version, longer\n");
    fs::write(src.join("changing.txt"), v1).unwrap();
    let oldest = backup(&env, &src);
    fs::write(src.join("changing.txt"), v2).unwrap();
    let newest = backup(&env, &src);

    let ui = Ui::start(&env, &["--listen", "127.0.0.1:0"]);
    let components: Vec<&str> = src.to_str().unwrap().split('/').filter(|c| !c.is_empty()).collect();
    let browsed = browser(
        &env,
        &ui,
        "browse",
        json!({
            "newest": newest, "oldest": oldest, "components": components,
            "deepSize": deep.len(), "deepText": deep,
            "big": "big.bin", "bigSize": big, "png": "pic.png", "changed": "changing.txt",
        }),
    );
    let out = &browsed.out;

    same_bytes("deep.txt downloaded", &fs::read(out.join("deep.txt")).unwrap(), deep.as_bytes());
    same_bytes("big.bin downloaded", &fs::read(out.join("big.bin")).unwrap(), &fs::read(src.join("big.bin")).unwrap());
    same_bytes("pic.png downloaded", &fs::read(out.join("pic.png")).unwrap(), PNG);
    same_bytes("pic.png shown inline", &fs::read(out.join("pic-inline.png")).unwrap(), PNG);
    for (format, file) in [("tar", "a.tar"), ("zip", "a.zip")] {
        let dumped = env.run(&["dump", "--archive", format, &sref(&newest, &src.join("a"))]).ok().stdout;
        assert!(dumped.len() > 100_000, "{format} dump of a: {} bytes", dumped.len());
        same_bytes(&format!("a.{format} from the UI vs arca dump"), &fs::read(out.join(file)).unwrap(), &dumped);
    }
    // Newest first.
    same_bytes("the newest version", &fs::read(out.join("version-0")).unwrap(), v2.as_bytes());
    same_bytes("the oldest version", &fs::read(out.join("version-1")).unwrap(), v1.as_bytes());
    // The CLI's diff names the same change.
    let cli = env.run(&["diff", &oldest, &newest]).ok().text();
    let changed = src.join("changing.txt");
    assert!(cli.contains(&format!("M    {}", changed.display())), "arca diff:\n{cli}");
    let changes = browsed.report["changes"].as_array().unwrap();
    assert!(changes.iter().any(|r| r[0] == "M" && r[1] == changed.to_str().unwrap()), "{changes:?}");

    // The search's cursor (what a#more links to when a page ran out of time before the older
    // snapshots): `until=T&from=ID` searches that snapshot and older ones, and nothing newer.
    let listed = env.json(&["snapshots"]);
    let t =
        listed.as_array().unwrap().iter().find(|s| s["id"] == oldest.as_str()).unwrap()["time_ns"].as_i64().unwrap();
    let r = ui.get(&format!("/search?q={}&until={t}&from={oldest}", enc("deep*")), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let page = r.text();
    assert!(page.contains("<p id=\"hits\">1 match</p>"), "{page}");
    assert!(
        page.contains(&format!("/snap/{oldest}/file?path=")) && !page.contains(&format!("/snap/{newest}/file?")),
        "{page}"
    );
    assert!(!page.contains("id=\"more\""), "nothing older to search: {page}");

    // An image's preview is shown, not taken away: served inline as its type, with no journal
    // record; a download is an attachment, recorded as a `dump`; a HEAD of a download learns
    // its headers without one. So far the browser downloaded pic.png once and showed it twice
    // (the img element, and the fetch of its src).
    let pic = src.join("pic.png");
    let dumps_of_pic = || {
        let j = env.json(&["journal", "--op", "dump"]);
        j.as_array().unwrap().iter().filter(|r| r["labels"]["path"] == pic.to_str().unwrap()).count()
    };
    assert_eq!(dumps_of_pic(), 1, "journal: {}", env.json(&["journal"]));
    let raw = format!("/snap/{newest}/raw?path={}", enc(pic.to_str().unwrap()));
    let r = ui.get(&format!("{raw}&inline=1"), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type").as_deref(), Some("image/png"), "{r:?}");
    let cd = r.header("content-disposition").unwrap_or_default();
    assert!(cd.starts_with("inline; filename=\"pic.png\""), "an inline image: {cd:?}");
    assert!(r.header("content-security-policy").unwrap().contains("sandbox"), "{r:?}");
    same_bytes("pic.png inline", &r.body, PNG);
    assert_eq!(dumps_of_pic(), 1, "an image preview made a journal record");
    let r = ui.head(&raw, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let cd = r.header("content-disposition").unwrap_or_default();
    assert!(cd.starts_with("attachment; filename=\"pic.png\""), "HEAD of a download: {cd:?}");
    assert!(r.body.is_empty(), "a body in the answer to HEAD: {r:?}");
    assert_eq!(dumps_of_pic(), 1, "a HEAD made a journal record");
    let r = ui.get(&raw, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let cd = r.header("content-disposition").unwrap_or_default();
    assert!(cd.starts_with("attachment; filename=\"pic.png\""), "a download: {cd:?}");
    assert_eq!(r.header("content-type").as_deref(), Some("application/octet-stream"), "{r:?}");
    same_bytes("pic.png downloaded over HTTP", &r.body, PNG);
    assert_eq!(dumps_of_pic(), 2, "a download was not journaled");
    browsed.finish();
}

// ---- 2. hostile names -------------------------------------------------------------------------

/// File names that would be markup, attributes, paths or terminal commands if a page used them
/// as they are; and the text a page must show for each (`arca`'s escapes for control
/// characters and backslashes).
const HOSTILE: [(&str, &str); 6] = [
    ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ("\"; x=\"", "\"; x=\""),
    ("..\\..\\etc\\passwd", "..\\\\..\\\\etc\\\\passwd"),
    ("' onmouseover='alert(2)", "' onmouseover='alert(2)"),
    ("\x1b[31mred\n", "\\x1b[31mred\\n"),
    // A right-to-left override: shown raw, it would make this read `evil` + `exe.png`.
    ("evil\u{202e}gnp.exe", "evil\\u{202e}gnp.exe"),
];

#[test]
fn ui_hostile_names_stay_text_in_a_browser() {
    chromium();
    let env = Env::new();
    let dir = env.mkdir("hostile");
    let contents: Vec<String> = (0..HOSTILE.len()).map(|i| format!("file {i} with a hostile name\n")).collect();
    for ((name, _), body) in HOSTILE.iter().zip(&contents) {
        fs::write(dir.join(name), body).unwrap();
    }
    let snap = backup(&env, &dir);
    let ui = Ui::start(&env, &["--listen", "127.0.0.1:0"]);

    let names: Vec<Value> = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, (_, shown))| json!({"shown": shown, "file": format!("hostile-{i}")}))
        .collect();
    let d = dir.to_str().unwrap();
    let browsed = browser(
        &env,
        &ui,
        "hostile",
        json!({"snapshot": snap, "dir": d, "dirShown": d, "names": names, "contents": contents}),
    );
    for (i, body) in contents.iter().enumerate() {
        let got = fs::read(browsed.out.join(format!("hostile-{i}"))).unwrap();
        same_bytes(&format!("the download of {:?}", HOSTILE[i].0), &got, body.as_bytes());
    }

    // Every download's Content-Disposition: a quoted ASCII fallback without quote, backslash or
    // control character, and the exact name in filename*.
    for ((name, _), body) in HOSTILE.iter().zip(&contents) {
        let r = ui.get(&format!("/snap/{snap}/raw?path={}", enc(&format!("{d}/{name}"))), &[]);
        assert_eq!(r.status, 200, "raw {name:?}: {}", r.text());
        same_bytes(&format!("raw {name:?}"), &r.body, body.as_bytes());
        let cd = r.all("content-disposition");
        assert_eq!(cd.len(), 1, "one Content-Disposition for {name:?}: {r:?}");
        let cd = cd[0];
        assert!(
            !cd.iter().any(|b| b.is_ascii_control()),
            "a control byte in Content-Disposition {:?}",
            String::from_utf8_lossy(cd)
        );
        let cd = std::str::from_utf8(cd).expect("Content-Disposition is ASCII");
        assert_eq!(cd.matches('"').count(), 2, "only the two delimiting quotes in {cd:?}");
        let rest = cd.strip_prefix("attachment; filename=\"").unwrap_or_else(|| panic!("{cd:?}"));
        let (fallback, exact) = rest.split_once("\"; filename*=UTF-8''").unwrap_or_else(|| panic!("{cd:?}"));
        assert!(!fallback.contains('\\'), "a backslash in the fallback name {fallback:?}");
        assert!(exact.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'%'), "filename* {exact:?}");
        assert_eq!(percent_decode(exact.as_bytes()), name.as_bytes(), "filename* decodes to the name");
        // Other headers: the file's policy, never sniffed.
        assert!(r.header("content-security-policy").unwrap().contains("sandbox"), "{r:?}");
        assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"));
    }

    // Paths that climb out of the snapshot reach nothing of the server's.
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let first = passwd.lines().next().unwrap();
    for path in [
        format!("/snap/{snap}/file?path=/../../etc/passwd"),
        format!("/snap/{snap}/raw?path=../../etc/passwd"),
        format!("/snap/{snap}/raw?path=%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        format!("/snap/{snap}/tree?path=/../../etc"),
        format!("/snap/{snap}/archive?path=../../etc&format=tar"),
        format!("/snap/{snap}/raw?path={}/../../../../etc/passwd", enc(d)),
        "/snap/../../../etc/passwd".to_string(),
        "/static/../../etc/passwd".to_string(),
        "/snap/..%2f..%2fetc%2fpasswd/raw?path=/".to_string(),
    ] {
        let r = ui.get(&path, &[]);
        assert!(!r.text().contains(first), "{path}: the server's /etc/passwd ({}): {}", r.status, r.text());
        assert!((400..500).contains(&r.status), "{path}: status {} (an error page expected): {}", r.status, r.text());
        assert!(r.header("content-disposition").is_none(), "{path}: a download: {r:?}");
    }
    browsed.finish();
}

// ---- 3. authentication ------------------------------------------------------------------------

#[test]
fn ui_off_loopback_requires_a_login_and_the_browser_logs_in() {
    chromium();
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("secret.txt"), "for logged-in eyes only\n").unwrap();
    let snap = backup(&env, &src);

    // Not on loopback and no credentials: refused, before listening.
    let o = env.run(&["ui", "--listen", "0.0.0.0:0"]);
    assert_ne!(o.code, 0, "arca ui on 0.0.0.0 without credentials started:\n{}", o.all());
    assert!(o.stderr.contains("loopback"), "the refusal says why: {}", o.stderr);
    // A short token, or a hash that is not Argon2id's: refused too.
    fs::write(env.path("short-token"), "short\n").unwrap();
    let o = env.run(&["ui", "--listen", "0.0.0.0:0", "--token-file", env.path("short-token").to_str().unwrap()]);
    assert_ne!(o.code, 0, "a 5-character token was accepted:\n{}", o.all());
    assert!(o.stderr.contains("16"), "{}", o.stderr);

    let password = "a UI password, not the repository's";
    // With ARCA_REPOSITORY and ARCA_PASSWORD set, as for every command here (and in most shells
    // that use arca): they are not arguments --hash-password conflicts with.
    let hash = env.run_stdin(&["ui", "--hash-password"], format!("{password}\n").into_bytes()).ok().text();
    assert!(hash.starts_with("$argon2id$"), "arca ui --hash-password printed {hash:?}");
    fs::write(env.path("ui.hash"), &hash).unwrap();
    let token = "tok-5f1c0e7a9b3d44e1a0c2";
    fs::write(env.path("ui.token"), format!("{token}\n")).unwrap();
    let ui = Ui::start(
        &env,
        &[
            "--listen",
            "0.0.0.0:0",
            "--token-file",
            env.path("ui.token").to_str().unwrap(),
            "--password-hash-file",
            env.path("ui.hash").to_str().unwrap(),
        ],
    );

    // Without logging in: a redirect to the login page, and no snapshot.
    let r = ui.get("/snapshots", &[]);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location").as_deref(), Some("/login"));
    assert!(!r.text().contains(&snap[..8]), "{}", r.text());
    let r = ui.get(&format!("/snap/{snap}/raw?path={}", enc(&format!("{}/secret.txt", src.display()))), &[]);
    assert_eq!(r.status, 303, "a download without logging in: {r:?}");
    assert!(!r.text().contains("logged-in"), "{}", r.text());
    let login = ui.get("/login", &[]);
    assert_eq!(login.status, 200);
    assert!(login.text().contains("id=\"login\"") && !login.text().contains(&snap[..8]));
    // A wrong bearer token changes nothing.
    let r = ui.get("/snapshots", &[("Authorization", "Bearer tok-not-the-token-at-all")]);
    assert_eq!(r.status, 303, "{r:?}");

    // A POST without a session (or with one that never logged in) is refused.
    let target = env.mkdir("target");
    let restore = [("snapshot", snap.as_str()), ("path", "/"), ("target", target.to_str().unwrap())];
    let r = ui.post("/actions/restore", &[], &restore);
    assert!(r.status == 401 || r.status == 403, "a POST without a session: {r:?}");
    let session = login.session();
    let csrf = csrf_of(&login.text());
    let cookie = format!("arca_session={session}");
    let mut with_token = restore.to_vec();
    with_token.push(("csrf", &csrf));
    let r = ui.post("/actions/restore", &[("Cookie", &cookie)], &with_token);
    assert!(r.status == 401 || r.status == 403, "a POST of a session that did not log in: {r:?}");
    let r = ui.post("/logout", &[], &[]);
    assert!(r.status == 401 || r.status == 403, "a logout without a session: {r:?}");
    // A login POST without the form's token is refused even with the right password.
    let r = ui.post("/login", &[("Cookie", &cookie)], &[("secret", password)]);
    assert_eq!(r.status, 403, "a login without the CSRF token: {r:?}");
    assert!(r.header("set-cookie").is_none(), "{r:?}");
    assert!(is_empty_dir(&target));

    // The browser: the login form, a wrong password, the right one, logout, the token.
    let browsed = browser(&env, &ui, "auth", json!({"snapshot": snap, "password": password, "token": token}));

    // A script's bearer token; without a cookie it gets no session (it would never use one).
    let bearer = format!("Bearer {token}");
    let r = ui.get("/snapshots", &[("Authorization", &bearer)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().contains(&format!("/snap/{snap}/tree")), "{}", r.text());
    assert!(r.header("set-cookie").is_none(), "a session for a bearer request: {r:?}");
    let r = ui.get(
        &format!("/snap/{snap}/raw?path={}", enc(&format!("{}/secret.txt", src.display()))),
        &[("Authorization", &bearer)],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("set-cookie").is_none(), "a session for a bearer download: {r:?}");
    same_bytes("secret.txt with a bearer token", &r.body, b"for logged-in eyes only\n");
    // Being authenticated is not a CSRF token: a bearer POST without one is refused.
    let r = ui.post("/actions/restore", &[("Authorization", &bearer)], &restore);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(is_empty_dir(&target));
    browsed.finish();
}

// ---- 4. CSRF, and where a restore may write ---------------------------------------------------

#[test]
fn ui_restores_only_forms_of_its_own_pages() {
    chromium();
    let env = Env::new();
    let src = env.mkdir("src");
    let file = src.join("payload.bin");
    write_random_file(&file, 9, 700_000);
    // Set-user-ID in the snapshot: the UI restores without it.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o4755)).unwrap();
    let snap = backup(&env, &src);
    let root = env.mkdir("restores");
    let root_s = root.to_str().unwrap();

    // Restores need a login, even on loopback (any local user could start one): refused at
    // start without credentials. And the root is an existing directory, named absolutely.
    let o = env.run(&["ui", "--listen", "127.0.0.1:0", "--allow-restore", root_s]);
    assert_ne!(o.code, 0, "arca ui --allow-restore without credentials started:\n{}", o.all());
    assert!(o.stderr.contains("login"), "the refusal says a login is needed: {}", o.stderr);
    let token = "tok-8e41d2c7a05f4b9381d6";
    let token_file = env.path("ui.token");
    fs::write(&token_file, format!("{token}\n")).unwrap();
    let token_file = token_file.to_str().unwrap();
    let missing = env.path("no-such-dir");
    for bad in ["restores", missing.to_str().unwrap()] {
        let o = env.run(&["ui", "--listen", "127.0.0.1:0", "--allow-restore", bad, "--token-file", token_file]);
        assert_ne!(o.code, 0, "arca ui --allow-restore {bad} started:\n{}", o.all());
        assert!(o.stderr.contains("--allow-restore"), "{}", o.stderr);
    }
    let ui = Ui::start(&env, &["--listen", "127.0.0.1:0", "--allow-restore", root_s, "--token-file", token_file]);

    // The restores below restore the directory src (its contents go into the new directory).
    // Not logged in: no restore form, and a redirect to the login.
    let dir_page = format!("/snap/{snap}/tree?path={}", enc(src.to_str().unwrap()));
    let r = ui.get(&dir_page, &[]);
    assert_eq!(r.status, 303, "the directory's page before logging in: {r:?}");
    assert_eq!(r.header("location").as_deref(), Some("/login"));
    let cookie = ui.login(token);
    let page = ui.get(&dir_page, &[("Cookie", &cookie)]);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.text().contains("id=\"restore\""), "no restore form:\n{}", page.text());
    assert!(page.header("set-cookie").is_none(), "a new session for a logged-in one: {page:?}");
    let csrf = csrf_of(&page.text());
    let form = |target: &str, token: Option<&str>| {
        let mut f = vec![("snapshot", snap.clone()), ("path", src.to_str().unwrap().to_string())];
        f.push(("target", target.to_string()));
        f.push(("verify", "1".into()));
        if let Some(t) = token {
            f.push(("csrf", t.to_string()));
        }
        f
    };
    let post = |headers: &[(&str, &str)], f: &[(&str, String)]| {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ui.post("/actions/restore", headers, &f)
    };
    let origin_self = ui.base();
    let wrong = "0".repeat(64);
    let refused: Vec<(&str, Resp)> = vec![
        ("no csrf field", post(&[("Cookie", &cookie)], &form("forged", None))),
        ("a wrong csrf token", post(&[("Cookie", &cookie)], &form("forged", Some(&wrong)))),
        ("an empty csrf token", post(&[("Cookie", &cookie)], &form("forged", Some("")))),
        ("another session's token", post(&[], &form("forged", Some(&csrf)))),
        (
            "Origin: http://evil.example",
            post(&[("Cookie", &cookie), ("Origin", "http://evil.example")], &form("forged", Some(&csrf))),
        ),
        ("Origin: null", post(&[("Cookie", &cookie), ("Origin", "null")], &form("forged", Some(&csrf)))),
        (
            "Sec-Fetch-Site: cross-site",
            post(&[("Cookie", &cookie), ("Sec-Fetch-Site", "cross-site")], &form("forged", Some(&csrf))),
        ),
        (
            "Sec-Fetch-Site: same-site",
            post(&[("Cookie", &cookie), ("Sec-Fetch-Site", "same-site")], &form("forged", Some(&csrf))),
        ),
    ];
    for (what, r) in &refused {
        assert_eq!(r.status, 403, "a restore POST with {what} was not refused: {r:?}");
        assert!(r.header("location").is_none(), "{what}: {r:?}");
    }

    // Targets that are not a new directory below the root: an error page, nothing started.
    for target in ["../escape", "a/../../escape", "..", ".", "", "a//b"] {
        let r = post(&[("Cookie", &cookie)], &form(target, Some(&csrf)));
        assert_eq!(r.status, 400, "the target {target:?} was not refused: {r:?}");
        assert!(r.header("location").is_none(), "{target:?}: {r:?}");
        assert!(r.text().contains("id=\"error\""), "{target:?}: {}", r.text());
    }
    // An absolute target is refused: targets are names below the root.
    let abs = env.path("abs");
    let r = post(&[("Cookie", &cookie)], &form(abs.to_str().unwrap(), Some(&csrf)));
    assert_eq!(r.status, 400, "an absolute target {}: {r:?}", abs.display());
    assert!(r.text().contains("id=\"error\""), "{}", r.text());
    assert!(!abs.exists(), "a restore wrote {} outside the root", abs.display());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!env.path("escape").exists(), "a restore climbed out of the root");
    assert!(
        is_empty_dir(&root),
        "a refused POST restored something: {:?}",
        fs::read_dir(&root).unwrap().collect::<Vec<_>>()
    );

    // The same POST with the page's token and its own origin is accepted (so the refusals above
    // are the checks, not a malformed form): into ROOT/control, without set-user-ID.
    let r = post(
        &[("Cookie", &cookie), ("Origin", &origin_self), ("Sec-Fetch-Site", "same-origin")],
        &form("control", Some(&csrf)),
    );
    assert_eq!(r.status, 303, "{r:?}");
    ui.job_done(&r.header("location").unwrap(), &cookie);
    let control = root.join("control");
    same_bytes("the control restore", &fs::read(control.join("payload.bin")).unwrap(), &fs::read(&file).unwrap());
    let mode = fs::metadata(control.join("payload.bin")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "the restored mode {mode:o}: set-user-ID is not restored");
    // Never over what is there: a second restore into the same place leaves a changed file be.
    fs::write(control.join("payload.bin"), "changed since\n").unwrap();
    let mut again = form("control", Some(&csrf));
    again.retain(|(k, _)| *k != "verify");
    let r = post(&[("Cookie", &cookie)], &again);
    assert_eq!(r.status, 303, "{r:?}");
    ui.job_done(&r.header("location").unwrap(), &cookie);
    assert_eq!(
        fs::read_to_string(control.join("payload.bin")).unwrap(),
        "changed since\n",
        "a restore overwrote a file"
    );
    // A single file (the form on its page) goes into the new directory under its own name.
    let mut single = form("single", Some(&csrf));
    single[1].1 = file.to_str().unwrap().to_string();
    let r = post(&[("Cookie", &cookie)], &single);
    assert_eq!(r.status, 303, "{r:?}");
    ui.job_done(&r.header("location").unwrap(), &cookie);
    assert_eq!(file_list(&root.join("single")), vec!["payload.bin".to_string()]);
    same_bytes(
        "a single file restored",
        &fs::read(root.join("single/payload.bin")).unwrap(),
        &fs::read(&file).unwrap(),
    );

    // The browser: logs in, then the form on the directory's page, filled and clicked (a target
    // that climbs out first, refused).
    let browsed = browser(
        &env,
        &ui,
        "csrf",
        json!({
            "snapshot": snap, "dir": src.to_str().unwrap(), "token": token,
            "target": "by-browser/nested", "escape": "../escape-browser",
        }),
    );
    assert!(browsed.report["state"].as_str().unwrap().starts_with("ok"), "{}", browsed.report);
    let by_browser = root.join("by-browser/nested");
    assert_eq!(file_list(&by_browser), vec!["payload.bin".to_string()]);
    same_bytes(
        "payload.bin restored from the browser",
        &fs::read(by_browser.join("payload.bin")).unwrap(),
        &fs::read(&file).unwrap(),
    );
    assert!(!env.path("escape-browser").exists(), "the browser's restore climbed out of the root");
    // A link another user planted below the root (in a directory of theirs) is not followed:
    // the target is made as restore makes its own, through descriptors (as root only: the
    // link's directory must belong to someone else).
    let mut expected = vec!["by-browser", "control", "single"];
    if is_root() {
        let alice = root.join("alice");
        fs::create_dir(&alice).unwrap();
        std::os::unix::fs::chown(&alice, Some(65534), Some(65534)).unwrap();
        let elsewhere = env.mkdir("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, alice.join("x")).unwrap();
        let r = post(&[("Cookie", &cookie)], &form("alice/x/new", Some(&csrf)));
        assert_ne!(r.status, 303, "a restore through a planted link was started: {r:?}");
        assert!(r.text().contains("id=\"error\""), "{}", r.text());
        assert!(is_empty_dir(&elsewhere), "a directory was made through the link");
        expected.push("alice");
        expected.sort();
    }
    let mut made: Vec<String> =
        fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    made.sort();
    assert_eq!(made, expected, "what the restores made below the root");
    browsed.finish();
}

// ---- 5. the Host check ----------------------------------------------------------------------

#[test]
fn ui_on_loopback_answers_only_to_loopback_host_names() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), "x").unwrap();
    let snap = backup(&env, &src);
    let ui = Ui::start(&env, &["--listen", "127.0.0.1:0"]);
    let port = ui.port;
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("10.0.0.1:{port}"),
        String::new(),
    ] {
        for path in ["/", "/snapshots", "/static/arca.css", "/login"] {
            let r = http(port, "GET", path, &host, &[], b"");
            assert_eq!(r.status, 421, "GET {path} with Host {host:?}: {r:?}");
            assert!(!r.text().contains(&snap[..8]), "{}", r.text());
            assert!(r.header("set-cookie").is_none(), "a session for Host {host:?}");
        }
        let r =
            http(port, "POST", "/logout", &host, &[("Content-Type", "application/x-www-form-urlencoded")], b"csrf=x");
        assert_eq!(r.status, 421, "POST with Host {host:?}: {r:?}");
    }
    for host in
        [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("LOCALHOST:{port}"), "127.0.0.1".into()]
    {
        let r = http(port, "GET", "/snapshots", &host, &[], b"");
        assert_eq!(r.status, 200, "Host {host:?}: {r:?}");
        assert!(r.text().contains(&format!("/snap/{snap}/tree")), "{}", r.text());
    }

    // Another site's page gets nothing from a UI without login (a fetch, an img, a link to a
    // download: the browser says `Sec-Fetch-Site`): only a link followed to the dashboard.
    let raw = format!("/snap/{snap}/raw?path={}", enc(&format!("{}/f", src.display())));
    for site in ["cross-site", "same-site"] {
        for (mode, path) in [
            ("cors", "/snapshots"),
            ("no-cors", "/snapshots"),
            ("navigate", "/snapshots"),
            ("navigate", &format!("/snap/{snap}/tree")),
            ("no-cors", &raw),
            ("navigate", &raw),
            ("navigate", "/search?q=*"),
        ] {
            let r = ui.get(path, &[("Sec-Fetch-Site", site), ("Sec-Fetch-Mode", mode)]);
            assert_eq!(r.status, 403, "GET {path} with Sec-Fetch-Site: {site}, Sec-Fetch-Mode: {mode}: {r:?}");
            assert!(!r.text().contains(&snap[..8]), "{}", r.text());
            assert!(r.header("content-disposition").is_none() && r.header("set-cookie").is_none(), "{r:?}");
        }
        let r = ui.get("/", &[("Sec-Fetch-Site", site), ("Sec-Fetch-Mode", "navigate")]);
        assert_eq!(r.status, 200, "a link from another site to the dashboard: {r:?}");
        let r = ui.get("/", &[("Sec-Fetch-Site", site), ("Sec-Fetch-Mode", "no-cors")]);
        assert_eq!(r.status, 403, "the dashboard as another site's subresource: {r:?}");
    }
    let r = ui.get("/snapshots", &[("Sec-Fetch-Site", "cross-site")]);
    assert_eq!(r.status, 403, "{r:?}");
    for site in ["same-origin", "none"] {
        let r = ui.get("/snapshots", &[("Sec-Fetch-Site", site), ("Sec-Fetch-Mode", "navigate")]);
        assert_eq!(r.status, 200, "Sec-Fetch-Site: {site}: {r:?}");
        assert!(r.text().contains(&format!("/snap/{snap}/tree")), "{}", r.text());
    }
}
