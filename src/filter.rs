//! restic's exclude patterns (`backup --exclude`, `--iexclude`, `--exclude-file`, `rewrite
//! --exclude`), with restic's exact semantics (restic `internal/filter`, documented in its
//! "Excluding files"):
//!
//! - a pattern is split into path components after lexical cleaning (`a//b/` is `a/b`, `a/../b`
//!   is `b`); each component is a Go `filepath.Match` glob: `*`, `?`, `[a-z]`, `[^…]`, `\`
//!   escapes; a component `**` matches any number of components;
//! - a pattern with a leading `/` is anchored at the root; one without matches at any depth:
//!   `docs/invoices` matches `/home/u/docs/invoices`. Either matches a path if it matches the
//!   path or one of its ancestors (`/bin` matches `/bin/bash`);
//! - a pattern starting with `!` un-excludes what earlier patterns matched; the last matching
//!   pattern wins. A directory that is excluded is never entered, so nothing below it can be
//!   taken back (the caller's walk sees to that);
//! - case-insensitive lists lower-case pattern and path first, rune by rune as Go does;
//! - pattern files: lines trimmed, blank lines and `#` comments skipped, `$VAR`/`${VAR}`
//!   expanded as Go's `os.Expand` (`$$` is a dollar sign).
//!
//! Paths are bytes (Linux file names need not be UTF-8) and so are patterns read from files; the
//! glob is a port of Go's byte-wise algorithm, so that even invalid UTF-8 matches as in restic.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One component of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// The root (`/` at the start of an anchored pattern).
    Root,
    /// `**`: any number of components.
    AnyDepth,
    /// A component without glob characters, compared as is.
    Exact(Vec<u8>),
    /// A Go `filepath.Match` glob, validated.
    Glob(Vec<u8>),
}

/// A parsed pattern.
#[derive(Clone, Debug)]
struct Pattern {
    negated: bool,
    parts: Vec<Part>,
}

/// An ordered list of patterns, as one `--exclude`/`--iexclude` family gives them.
#[derive(Clone, Debug, Default)]
pub struct PatternList {
    patterns: Vec<Pattern>,
    insensitive: bool,
}

impl PatternList {
    /// Parse `patterns` (empty ones are ignored, as restic does); a malformed glob is a usage
    /// error naming the pattern. `insensitive`: match without regard to case.
    pub fn new<P: AsRef<[u8]>>(patterns: &[P], insensitive: bool) -> Result<PatternList> {
        let mut list = PatternList { patterns: Vec::new(), insensitive };
        for p in patterns.iter().map(AsRef::as_ref).filter(|p| !p.is_empty()) {
            let text = if insensitive { lower(p) } else { p.to_vec() };
            let pattern = parse(&text)
                .ok_or_else(|| Error::InvalidArgument(format!("invalid pattern {:?}", String::from_utf8_lossy(p))))?;
            list.patterns.push(pattern);
        }
        Ok(list)
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (absolute, as bytes) is excluded: the last pattern that matches decides.
    pub fn matches(&self, path: &[u8]) -> bool {
        if self.patterns.is_empty() || path.is_empty() {
            return false;
        }
        let folded;
        let path = if self.insensitive {
            folded = lower(path);
            &folded[..]
        } else {
            path
        };
        let strs = split_path(path);
        let mut matched = false;
        for p in &self.patterns {
            // Only a pattern that could change the verdict needs to be tried.
            if matched != p.negated {
                continue;
            }
            if match_parts(&p.parts, &strs) {
                matched = !p.negated;
            }
        }
        matched
    }
}

/// The exclude options restic's `backup` and `rewrite` share.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExcludeOptions {
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
    /// `--iexclude` patterns (case-insensitive).
    pub iexcludes: Vec<String>,
    /// `--exclude-file` files of patterns.
    pub exclude_files: Vec<PathBuf>,
    /// `--iexclude-file` files of case-insensitive patterns.
    pub iexclude_files: Vec<PathBuf>,
}

impl ExcludeOptions {
    /// Whether no pattern is given at all.
    pub fn is_empty(&self) -> bool {
        self.excludes.is_empty()
            && self.iexcludes.is_empty()
            && self.exclude_files.is_empty()
            && self.iexclude_files.is_empty()
    }

    /// Read the files and parse everything: a missing file or a malformed pattern is an error.
    pub fn compile(&self) -> Result<Excluder> {
        let mut exact: Vec<Vec<u8>> = self.excludes.iter().map(|s| s.clone().into_bytes()).collect();
        let mut folded: Vec<Vec<u8>> = self.iexcludes.iter().map(|s| s.clone().into_bytes()).collect();
        for f in &self.exclude_files {
            exact.extend(read_pattern_file(f)?);
        }
        for f in &self.iexclude_files {
            folded.extend(read_pattern_file(f)?);
        }
        Ok(Excluder { exact: PatternList::new(&exact, false)?, folded: PatternList::new(&folded, true)? })
    }
}

/// The compiled `--exclude*` patterns: a path is excluded if either list excludes it.
#[derive(Clone, Debug, Default)]
pub struct Excluder {
    exact: PatternList,
    folded: PatternList,
}

impl Excluder {
    /// Whether `path` (absolute, bytes) is excluded.
    pub fn excludes(&self, path: &[u8]) -> bool {
        self.exact.matches(path) || self.folded.matches(path)
    }

    /// Whether nothing can be excluded.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.folded.is_empty()
    }
}

/// The patterns of a file: each line trimmed, blank lines and `#` comments skipped, environment
/// variables expanded (restic's `readPatternsFromFiles`). UTF-16 with a byte-order mark is
/// decoded, as restic's `textfile.Read` does.
pub fn read_pattern_file(path: &Path) -> Result<Vec<Vec<u8>>> {
    let data = read_text(path)?;
    Ok(lines(&data)
        .map(trim)
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .map(|l| expand_env(l, &|name| std::env::var_os(bytes_os(name)).map(|v| v.into_encoded_bytes())))
        .collect())
}

/// A text file's bytes (`-` is standard input), a UTF-8 byte-order mark removed and UTF-16
/// with a byte-order mark decoded to UTF-8.
pub fn read_text(path: &Path) -> Result<Vec<u8>> {
    let data = if path == Path::new("-") {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut v).map(|_| v)
    } else {
        std::fs::read(path)
    }
    .map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let utf16 = |b: &[u8], be: bool| {
        let units = b.chunks(2).map(|c| {
            if be {
                u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])
            } else {
                u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])
            }
        });
        char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')).collect::<String>().into_bytes()
    };
    Ok(match data.as_slice() {
        [0xEF, 0xBB, 0xBF, rest @ ..] => rest.to_vec(),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, false),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, true),
        _ => data,
    })
}

/// Lines as Go's `bufio.ScanLines` gives them: split at `\n`, a `\r` before it dropped, no
/// empty last line after a final newline.
pub fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let none = data.is_empty();
    body.split(|&b| b == b'\n').filter(move |_| !none).map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// Leading and trailing white space removed (Unicode white space when the line is UTF-8).
pub fn trim(line: &[u8]) -> &[u8] {
    match std::str::from_utf8(line) {
        Ok(s) => s.trim().as_bytes(),
        Err(_) => line.trim_ascii(),
    }
}

fn bytes_os(b: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(b)
}

/// Go's `os.Expand` with restic's mapping: `$NAME`, `${NAME}` and `$1`-style special names are
/// replaced by `getenv(NAME)` (empty if unset), `$$` by `$`; a `$` followed by no name stays,
/// and malformed `${` or `${}` is dropped.
pub fn expand_env(s: &[u8], getenv: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'$' || i + 1 == s.len() {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let (name, width) = shell_name(&s[i + 1..]);
        match name {
            Some(b"$") => out.push(b'$'),
            Some(n) => out.extend(getenv(n).unwrap_or_default()),
            None if width == 0 => out.push(b'$'),
            None => {}
        }
        i += 1 + width;
    }
    out
}

/// Go's `getShellName`: the name after a `$` and how many bytes it took.
fn shell_name(s: &[u8]) -> (Option<&[u8]>, usize) {
    let special = |c: u8| b"*#$@!?-0123456789".contains(&c);
    if s[0] == b'{' {
        if s.len() > 2 && special(s[1]) && s[2] == b'}' {
            return (Some(&s[1..2]), 3);
        }
        return match s.iter().skip(1).position(|&c| c == b'}') {
            Some(0) => (None, 2),
            Some(n) => (Some(&s[1..n + 1]), n + 2),
            None => (None, 1),
        };
    }
    if special(s[0]) {
        return (Some(&s[..1]), 1);
    }
    let n = s.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
    (if n == 0 { None } else { Some(&s[..n]) }, n)
}

/// Go's `strings.ToLower`: ASCII text lower-cased byte by byte, anything else rune by rune with
/// the simple (one-rune) mapping, each invalid byte becoming U+FFFD.
fn lower(s: &[u8]) -> Vec<u8> {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        let (c, n) = decode(rest);
        let l = c.to_lowercase().next().unwrap_or(c);
        out.extend_from_slice(l.encode_utf8(&mut [0; 4]).as_bytes());
        rest = &rest[n..];
    }
    out
}

/// Go's `utf8.DecodeRune`: the first rune and its length, or (U+FFFD, 1) if invalid.
fn decode(s: &[u8]) -> (char, usize) {
    let head = &s[..s.len().min(4)];
    let valid = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
    };
    match valid.chars().next() {
        Some(c) => (c, c.len_utf8()),
        None => ('\u{FFFD}', 1),
    }
}

/// Parse a pattern: `!` negates, then Go's `filepath.Clean` and a split into components.
/// `None` if a component is not a valid glob.
fn parse(p: &[u8]) -> Option<Pattern> {
    let (negated, p) = match p.strip_prefix(b"!") {
        Some(rest) => (true, rest),
        None => (false, p),
    };
    let rooted = p.starts_with(b"/");
    let mut comps: Vec<&[u8]> = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." if comps.last().is_some_and(|l| *l != b"..") => {
                comps.pop();
            }
            b".." if rooted => {}
            c => comps.push(c),
        }
    }
    let mut parts = Vec::with_capacity(comps.len() + 1);
    if rooted {
        parts.push(Part::Root);
        if comps.is_empty() {
            // Go splits the cleaned "/" into "/" and "", and "" stands for `**`.
            parts.push(Part::AnyDepth);
        }
    } else if comps.is_empty() {
        comps.push(b".");
    }
    for c in comps {
        parts.push(match c {
            b"**" => Part::AnyDepth,
            c if !c.iter().any(|b| b"\\[]*?".contains(b)) => Part::Exact(c.to_vec()),
            c => {
                // restic's validation: a component must match itself without a syntax error.
                glob(c, c).ok()?;
                Part::Glob(c.to_vec())
            }
        });
    }
    Some(Pattern { negated, parts })
}

/// A path's components: `/` first for an absolute path.
fn split_path(p: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = p.split(|&b| b == b'/').collect();
    if v[0].is_empty() {
        v[0] = b"/";
    }
    v
}

/// restic's `match`: `**` expanded into 0, 1, … single-component wildcards; then an anchored
/// pattern is compared with the path's first components, a relative one with every run of
/// consecutive components below the root.
fn match_parts(parts: &[Part], strs: &[&[u8]]) -> bool {
    if let Some(pos) = parts.iter().position(|p| *p == Part::AnyDepth) {
        let tries = strs.len() as isize - parts.len() as isize + 1;
        return (0..=tries).any(|i| {
            let mut expanded = parts[..pos].to_vec();
            expanded.extend(std::iter::repeat_n(Part::Glob(b"*".to_vec()), i as usize));
            expanded.extend_from_slice(&parts[pos + 1..]);
            match_parts(&expanded, strs)
        });
    }
    if parts.is_empty() {
        return strs.is_empty();
    }
    if parts.len() > strs.len() {
        return false;
    }
    let max = strs.len() - parts.len();
    let (lo, hi) = match (&parts[0], strs[0]) {
        (Part::Root, _) => (0, 0),
        (_, b"/") => (1, max),
        _ => (0, max),
    };
    (lo..=hi).rev().any(|off| parts.iter().zip(&strs[off..]).all(|(p, s)| part_matches(p, s)))
}

fn part_matches(p: &Part, s: &[u8]) -> bool {
    match p {
        Part::Root => s == b"/",
        Part::AnyDepth => unreachable!("expanded before comparing"),
        Part::Exact(e) => e == s,
        Part::Glob(g) => glob(g, s).unwrap_or(false),
    }
}

/// A malformed glob (Go's `filepath.ErrBadPattern`).
#[derive(Debug)]
struct BadPattern;

/// Go's `filepath.Match(pattern, name)`: whether one file name matches a glob; a malformed glob
/// is a usage error.
pub fn match_name(pattern: &[u8], name: &[u8]) -> Result<bool> {
    glob(pattern, name)
        .map_err(|_| Error::InvalidArgument(format!("invalid pattern {:?}", String::from_utf8_lossy(pattern))))
}

/// Go's `filepath.Match` on Unix, byte for byte: `*` does not cross `/`, `?` and classes take
/// one rune, `\` escapes.
fn glob(mut pattern: &[u8], mut name: &[u8]) -> std::result::Result<bool, BadPattern> {
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains(&b'/'));
        }
        if let Some(t) = match_chunk(chunk, name)? {
            if t.is_empty() || !pattern.is_empty() {
                name = t;
                continue;
            }
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                if let Some(t) = match_chunk(chunk, &name[i + 1..])? {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'chunks;
                }
                i += 1;
            }
        }
        // No match: the rest of the pattern must still be well-formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, b"")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Go's `scanChunk`: leading stars, then the text up to the next star outside a class.
fn scan_chunk(p: &[u8]) -> (bool, &[u8], &[u8]) {
    let stars = p.iter().take_while(|&&b| b == b'*').count();
    let p = &p[stars..];
    let (mut i, mut in_range) = (0, false);
    while i < p.len() {
        match p[i] {
            b'\\' if i + 1 < p.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (stars > 0, &p[..i], &p[i..])
}

/// Go's `matchChunk`: the rest of `s` after `chunk` matched its start, or `None`; the whole
/// chunk is checked for syntax even after a mismatch.
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> std::result::Result<Option<&'a [u8]>, BadPattern> {
    let mut failed = false;
    while !chunk.is_empty() {
        failed |= s.is_empty();
        match chunk[0] {
            b'[' => {
                let mut r = '\0';
                if !failed {
                    let (c, n) = decode(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let (mut hit, mut ranges) = (false, 0);
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let (h, rest) = get_esc(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    hit |= lo <= r && r <= hi;
                    ranges += 1;
                }
                failed |= hit == negated;
            }
            b'?' => {
                if !failed {
                    failed = s[0] == b'/';
                    s = &s[decode(s).1..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let c = if c == b'\\' {
                    chunk = &chunk[1..];
                    *chunk.first().ok_or(BadPattern)?
                } else {
                    c
                };
                if !failed {
                    failed = c != s[0];
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

/// Go's `getEsc`: one possibly escaped rune of a class; the class must go on after it.
fn get_esc(chunk: &[u8]) -> std::result::Result<(char, &[u8]), BadPattern> {
    let mut chunk = match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(BadPattern),
        Some(b'\\') => &chunk[1..],
        Some(_) => chunk,
    };
    if chunk.is_empty() {
        return Err(BadPattern);
    }
    let (r, n) = decode(chunk);
    if r == '\u{FFFD}' && n == 1 {
        return Err(BadPattern);
    }
    chunk = &chunk[n..];
    if chunk.is_empty() {
        return Err(BadPattern);
    }
    Ok((r, chunk))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(pattern: &str, path: &str) -> bool {
        // restic's `Match`: the empty pattern matches everything.
        pattern.is_empty() || PatternList::new(&[pattern], false).unwrap().matches(path.as_bytes())
    }

    /// restic's `matchTests` (internal/filter/filter_test.go), the Unix ones.
    #[test]
    fn restics_match_table() {
        let table: &[(&str, &str, bool)] = &[
            ("", "foo", true),
            ("*.go", "/foo/bar/test.go", true),
            ("*.c", "/foo/bar/test.go", false),
            ("*", "/foo/bar/test.go", true),
            ("**", "/foo/bar/test.go", true),
            ("foo*", "/foo/bar/test.go", true),
            ("bar*", "/foo/bar/test.go", true),
            ("/bar*", "/foo/bar/test.go", false),
            ("bar/*", "/foo/bar/test.go", true),
            ("baz/*", "/foo/bar/test.go", false),
            ("bar/test.go", "/foo/bar/test.go", true),
            ("bar/*.go", "/foo/bar/test.go", true),
            ("ba*/*.go", "/foo/bar/test.go", true),
            ("bb*/*.go", "/foo/bar/test.go", false),
            ("test.*", "/foo/bar/test.go", true),
            ("tesT.*", "/foo/bar/test.go", false),
            ("bar/*", "/foo/bar/baz", true),
            ("bar", "/foo/bar", true),
            ("/foo/bar", "/foo/bar", true),
            ("/foo/bar/", "/foo/bar", true),
            ("/foo/bar", "/foo/baz", false),
            ("/foo/bar", "/foo/baz/", false),
            ("/foo///bar", "/foo/bar", true),
            ("/foo/../bar", "/foo/bar", false),
            ("/foo/../bar", "/bar", true),
            ("/foo", "/foo/baz", true),
            ("/foo/", "/foo/baz", true),
            ("/foo/*", "/foo", false),
            ("/foo/*", "/foo/baz", true),
            ("bar", "/foo/bar/baz", true),
            ("bar", "/foo/bar/test.go", true),
            ("/foo/*test.*", "/foo/bar/test.go", false),
            ("/foo/*/test.*", "/foo/bar/test.go", true),
            ("/foo/*/bar/test.*", "/foo/bar/test.go", false),
            ("/*/*/bar/test.*", "/foo/bar/test.go", false),
            ("/*/*/bar/test.*", "/foo/bar/baz/test.go", false),
            ("/*/*/baz/test.*", "/foo/bar/baz/test.go", true),
            ("/*/foo/bar/test.*", "/foo/bar/baz/test.go", false),
            ("/foo/bar/test.*", "bar/baz/test.go", false),
            ("/x/y/bar/baz/test.*", "bar/baz/test.go", false),
            ("baz/test.*", "bar/baz/test.go", true),
            ("baz/tesT.*", "bar/baz/test.go", false),
            ("test.go", "bar/baz/test.go", true),
            ("*.go", "bar/baz/test.go", true),
            ("*.c", "bar/baz/test.go", false),
            ("sdk", "/foo/bar/sdk", true),
            ("sdk", "/foo/bar/sdk/test/sdk_foo.go", true),
            ("sdk/*/cpp/*/*vars*.html", "/usr/share/doc/libreoffice/sdk/docs/cpp/ref/a00517.html", false),
            ("foo/**/bar/*.go", "/home/user/foo/work/special/project/bar/test.go", true),
            ("foo/**/bar/*.go", "/home/user/foo/bar/test.go", true),
            ("foo/**/bar/*.go", "x/foo/bar/test.go", true),
            ("foo/**/bar/*.go", "foo/bar/test.go", true),
            ("foo/**/bar/*.go", "foo/bar/baz/bar/test.go", true),
            ("foo/**/bar/*.go", "/home/user/foo/test.c", false),
            ("foo/**/bar/*.go", "bar/foo/main.go", false),
            ("foo/**/bar/*.go", "/foo/bar/main.go", true),
            ("foo/**/bar/*.go", "bar/main.go", false),
            ("foo/**/bar", "/home/user/foo/x/y/bar", true),
            ("foo/**/bar", "/home/user/foo/x/y/bar/main.go", true),
            ("foo/**/bar/**/x", "/home/user/foo/bar/x", true),
            ("foo/**/bar/**/x", "/home/user/foo/blaaa/blaz/bar/shared/work/x", true),
            ("user/**/important*", "/home/user/work/x/y/hidden/x", false),
            ("user/**/hidden*/**/c", "/home/user/work/x/y/hidden/z/a/b/c", true),
        ];
        for (pattern, path, want) in table {
            assert_eq!(single(pattern, path), *want, "pattern {pattern:?} path {path:?}");
        }
    }

    /// restic's `filterListTests`: negation, the last matching pattern wins.
    #[test]
    fn restics_list_table() {
        let table: &[(&[&str], &str, bool)] = &[
            (&[], "/foo/bar/test.go", false),
            (&["*.go"], "/foo/bar/test.go", true),
            (&["*.go"], "/foo/bar", false),
            (&["*.go", "*.c"], "/foo/bar/test.go", true),
            (&["x"], "/foo/bar/test.go", false),
            (&["?"], "/foo/bar/test.go", false),
            (&["?", "x"], "/foo/bar/x", true),
            (&["/*/*/bar/test.*", "*.go"], "/foo/bar/test.go", true),
            (&["", "*.c"], "/foo/bar/test.go", false),
            (&["!**", "*.go"], "/foo/bar/test.go", true),
            (&["!**", "*.c"], "/foo/bar/test.go", false),
            (&["/foo/*/test.*", "!*.c"], "/foo/bar/test.c", false),
            (&["/foo/*/test.*", "!*.c"], "/foo/bar/test.go", true),
            (&["/foo/*/*", "!test.*", "*.c"], "/foo/bar/test.go", false),
            (&["/foo/*/*", "!test.*", "*.c"], "/foo/bar/test.c", true),
            (&["/foo/*/*", "!test.*", "*.c"], "/foo/bar/file.go", true),
            (&["/**/*", "!/foo", "/foo/*", "!/foo/bar"], "/foo/other/test.go", true),
            (&["/**/*", "!/foo", "/foo/*", "!/foo/bar"], "/foo/bar", false),
            (&["/**/*", "!/foo", "/foo/*", "!/foo/bar"], "/foo/bar/test.go", false),
            (&["/**/*", "!/foo", "/foo/*", "!/foo/bar", "/foo/bar/test*"], "/foo/bar/test.go/child", true),
            (&["/foo/bar/*"], "/foo", false),
            (&["/foo/**/test.c"], "/foo/bar/foo/bar/test.c", true),
            (&["/foo/*/test.c"], "/foo/bar/foo/bar/test.c", false),
        ];
        for (patterns, path, want) in table {
            let list = PatternList::new(patterns, false).unwrap();
            assert_eq!(list.matches(path.as_bytes()), *want, "patterns {patterns:?} path {path:?}");
        }
    }

    /// The examples of restic's "Excluding files" documentation.
    #[test]
    fn restics_documented_examples() {
        let yes = |p: &str, path: &str| assert!(single(p, path), "{p:?} should match {path:?}");
        let no = |p: &str, path: &str| assert!(!single(p, path), "{p:?} should not match {path:?}");
        yes("foo", "/dir1/foo/dir2/file");
        yes("foo", "/dir/foo");
        no("foo", "/dir/foobar");
        no("foo", "/dir/barfoo");
        yes("/bin", "/bin/bash");
        no("/bin", "/usr/bin/restic");
        yes("b*ash", "/bin/bash");
        no("b*ash", "/bin/ash");
        for p in ["/dir1/foo/dir2/bar/file", "/foo/bar/file", "/tmp/foo/bar"] {
            yes("foo/**/bar", p);
        }
        for p in ["/foo/x/y/z/bar", "/foo/x/bar", "/foo/bar"] {
            yes("foo/**/bar", p);
        }
        yes("docs/invoices", "/home/u/docs/invoices");
        yes("docs/invoices", "/home/u/docs/invoices/2024/a.pdf");
        no("docs/invoices", "/home/u/docs/invoices-old");
        for t in ["repo1/target", "repo2_workspace/project1/target", "repo2_workspace/project2/target"] {
            yes("/home/user/repos/**/target", &format!("/home/user/repos/{t}"));
        }
        no("/home/user/repos/**/target", "/home/user/repos/repo3/bin");
    }

    #[test]
    fn globs_follow_go_filepath_match() {
        for (g, name, want) in [
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[^a-c]x", "dx", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("?", "é", true),
            ("??", "é", false),
            ("a*b*c", "aXbYbZc", true),
            ("*[^é]", "é", true), // Go's star skips bytes: a quirk kept for exactness
        ] {
            assert_eq!(glob(g.as_bytes(), name.as_bytes()).unwrap(), want, "{g:?} {name:?}");
        }
        for bad in ["[", "[]", "[a-]", "x\\", "[^]"] {
            assert!(glob(bad.as_bytes(), bad.as_bytes()).is_err(), "{bad:?}");
            assert!(PatternList::new(&[format!("dir/{bad}")], false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn case_insensitive_lists_fold_both_sides() {
        let list = PatternList::new(&["*.JPG", "Docs/INVOICES"], true).unwrap();
        assert!(list.matches(b"/home/u/IMG_1.jpg") && list.matches(b"/home/u/docs/Invoices/a"));
        assert!(!PatternList::new(&["*.JPG"], false).unwrap().matches(b"/home/u/IMG_1.jpg"));
        assert!(PatternList::new(&["ÄRGER"], true).unwrap().matches("/x/ärger".as_bytes()));
    }

    #[test]
    fn environment_variables_expand_as_go_does() {
        let env = |n: &[u8]| match n {
            b"HOME" => Some(b"/home/bob".to_vec()),
            b"USER" => Some(b"bob".to_vec()),
            _ => None,
        };
        for (text, want) in [
            ("$HOME/foo", "/home/bob/foo"),
            ("/home/${USER}/x", "/home/bob/x"),
            ("$$HOME", "$HOME"),
            ("cost$", "cost$"),
            ("a$UNSET/b", "a/b"),
            ("a${}b", "ab"),
            ("a${b", "ab"),
            ("a$/b", "a$/b"),
            ("!$HOME/Documents", "!/home/bob/Documents"),
        ] {
            assert_eq!(String::from_utf8(expand_env(text.as_bytes(), &env)).unwrap(), want, "{text:?}");
        }
    }

    #[test]
    fn pattern_files_trim_and_skip_comments() {
        let dir = std::env::temp_dir().join(format!("arca-filter-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("ex");
        std::fs::write(
            &f,
            "# exclude go-files\r\n*.go  \n\n   # indented comment\n  foo/**/bar\t\nname with spaces.txt\n",
        )
        .unwrap();
        let got = read_pattern_file(&f).unwrap();
        let want: Vec<Vec<u8>> =
            ["*.go", "foo/**/bar", "name with spaces.txt"].iter().map(|s| s.as_bytes().to_vec()).collect();
        assert_eq!(got, want);
        std::fs::write(&f, b"\xFF\xFE*\x00.\x00c\x00\n\x00").unwrap();
        assert_eq!(read_pattern_file(&f).unwrap(), vec![b"*.c".to_vec()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
