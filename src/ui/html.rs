//! Markup made safe: every name a snapshot holds (file names, link targets, hosts, tags, paths,
//! owners, xattr names and values) is hostile, so it reaches a page only through these
//! functions: [`esc`] for text and quoted attributes, [`name`] for raw bytes (control characters
//! and bytes that are not UTF-8 shown as escapes, as the CLI shows them), [`enc`] for a value in
//! a URL, [`disposition`] for a download's file name.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt::Write;

/// What stays itself in a query value: RFC 3986's unreserved characters, and `/` (paths stay
/// readable). Everything else, `&`, `=`, `#`, `+`, quotes and `%` among it, is encoded.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// Text for HTML content or a double- or single-quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Bytes from a repository, shown as text: [`crate::text::escape`] (no control character,
/// injective), then [`esc`].
pub fn name(bytes: &[u8]) -> String {
    esc(&crate::text::escape(bytes))
}

/// Bytes from a repository as [`name`] shows them, cut to about `max` bytes with `…` (a key
/// holder can write labels, errors and xattrs of megabytes; a page shows a bounded part).
pub fn short(bytes: &[u8], max: usize) -> String {
    match bytes.len() > max {
        true => format!("{}…", name(&bytes[..max])),
        false => name(bytes),
    }
}

/// A value for a URL's query string.
pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

/// A `Content-Disposition` header value (RFC 6266): a plain-ASCII fallback name with every
/// quote, backslash, control and non-ASCII byte replaced by `_`, and the exact name in
/// `filename*` (RFC 8187, percent-encoded UTF-8). No name can end the header or add one.
pub fn disposition(kind: &str, file_name: &str) -> String {
    let fallback: String = file_name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != '%' => c,
            _ => '_',
        })
        .collect();
    let fallback = if fallback.trim_matches(['.', '_']).is_empty() { "download".to_string() } else { fallback };
    let exact = percent_encoding::utf8_percent_encode(file_name, NON_ALPHANUMERIC);
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{exact}")
}

/// Bytes as `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    match u {
        0 => format!("{n} B"),
        _ => format!("{v:.1} {}", UNITS[u]),
    }
}

/// A Unix-nanosecond time as local `YYYY-MM-DD HH:MM:SS`.
pub fn time(ns: i64) -> String {
    crate::localtime::format(ns)
}

/// A duration in nanoseconds as `1.2 s`, `3m04s`, `2h05m`.
pub fn duration(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0..=59 => format!("{:.1} s", ns as f64 / 1e9),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// A page: the navigation, a title and the body (already escaped markup).
pub struct Page<'a> {
    /// `<title>` and `<h1>` (plain text, perhaps a path from a snapshot: control and bidi
    /// characters are shown as escapes, then the markup is escaped, here).
    pub title: &'a str,
    /// The body markup.
    pub body: String,
}

/// What the layout shows about the visitor.
pub struct Chrome<'a> {
    /// The session's CSRF token, for the logout form.
    pub csrf: &'a str,
    /// Whether a login is what let them in (a logout button is shown).
    pub logged_in: bool,
    /// The repository as shown in the header.
    pub repository: &'a str,
    /// The key's role (a restore key: a read-only UI).
    pub role: &'a str,
}

/// The whole document around `page`.
pub fn document(page: &Page, chrome: &Chrome) -> String {
    let mut out = String::with_capacity(page.body.len() + 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · arca</title><link rel=\"stylesheet\" href=\"/static/arca.css\"></head><body>\
         <header><nav><a class=\"brand\" href=\"/\">arca</a> <a href=\"/\">Health</a> <a href=\"/snapshots\">Snapshots</a> \
         <a href=\"/search\">Search</a> <a href=\"/diff\">Diff</a> <a href=\"/journal\">Journal</a></nav>\
         <span class=\"repo\" title=\"repository\">{repo} <span class=\"role\">{role} key</span></span>",
        title = esc(&crate::text::escape_str(page.title)),
        repo = esc(chrome.repository),
        role = esc(chrome.role),
    );
    if chrome.logged_in {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/logout\" class=\"logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Log out</button></form>",
            esc(chrome.csrf)
        );
    }
    let _ = write!(
        out,
        "</header><main><h1>{}</h1>\n{}</main></body></html>\n",
        esc(&crate::text::escape_str(page.title)),
        page.body
    );
    out
}

/// The style sheet (served from the binary; pages load nothing from elsewhere).
pub const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2630;background:#f6f7f9}
header{display:flex;align-items:center;gap:1em;background:#1d2630;color:#fff;padding:.5em 1em;flex-wrap:wrap}
header a{color:#cfe3ff;text-decoration:none;margin-right:.8em}header a.brand{color:#fff;font-weight:700}
header .repo{margin-left:auto;font-family:monospace;font-size:.85em;color:#cbd2d9}
header .role{background:#36465a;border-radius:3px;padding:0 .4em}
.logout{display:inline}main{padding:1em 1.5em;max-width:1300px}h1{font-size:1.3em;word-break:break-all}
table{border-collapse:collapse;background:#fff;width:100%;font-size:.92em}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#eef1f4}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.name{font-family:monospace;word-break:break-all}code,pre{font-family:monospace}
pre.preview{background:#fff;border:1px solid #dde;padding:.8em;overflow:auto;max-height:40em;white-space:pre-wrap;word-break:break-all}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}
form.filters{margin:.5em 0 1em;display:flex;gap:.6em;flex-wrap:wrap;align-items:end}
form.filters label{display:flex;flex-direction:column;font-size:.8em}
.crumbs{font-family:monospace;margin-bottom:.8em;word-break:break-all}.pager{margin:1em 0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:1em;margin:1em 0}
.chart{background:#fff;border:1px solid #e3e6ea;padding:.5em}.chart svg{width:100%;height:auto}
.card{background:#fff;border:1px solid #e3e6ea;padding:.8em 1em;margin:1em 0}
dl.details{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;background:#fff;padding:1em;border:1px solid #e3e6ea}
dl.details dt{font-weight:600}dl.details dd{margin:0;font-family:monospace;word-break:break-all}
img.preview{max-width:100%;max-height:40em;border:1px solid #dde}.error{background:#ffebe9;border:1px solid #cf222e;padding:.8em}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_text() {
        assert_eq!(esc("<img src=x onerror=alert(1)>"), "&lt;img src=x onerror=alert(1)&gt;");
        assert_eq!(esc("\"; x=\"'"), "&quot;; x=&quot;&#39;");
        assert_eq!(name(b"a\nb\x1b[2J\xff"), "a\\nb\\x1b[2J\\xff");
        assert_eq!(enc("../../etc/passwd"), "../../etc/passwd");
        assert_eq!(enc("a&b=c#d e+f%"), "a%26b%3Dc%23d%20e%2Bf%25");
    }

    #[test]
    fn dispositions_cannot_break_the_header() {
        let d = disposition("attachment", "a\"b\r\nSet-Cookie: x=1;é.txt");
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert!(d.starts_with("attachment; filename=\"a_b__Set-Cookie: x=1;_.txt\"; filename*=UTF-8''a%22b%0D%0ASet"));
        assert!(disposition("attachment", "..").contains("filename=\"download\""));
    }
}
