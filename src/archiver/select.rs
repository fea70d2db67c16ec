//! What a backup leaves out, as restic's `backup` does (restic `internal/archiver/exclude.go`):
//!
//! - **patterns** (`--exclude`, `--iexclude`, their files; [`crate::filter`]) are tested on an
//!   entry's absolute path before it is stat'ed; an excluded directory is not entered;
//! - **markers** (`--exclude-if-present NAME[:HEADER]`, `--exclude-caches`): a directory holding
//!   the file NAME (which, with a header, starts with those bytes) keeps only that file; the
//!   directory itself stays, so a restore shows where the cache was;
//! - **size** (`--exclude-larger-than`): a non-directory larger than the limit is left out.
//!
//! The paths given to `backup` are never excluded themselves (restic: "Excludes do not apply to
//! backup sources that were explicitly passed"), only what is below them.

use crate::error::{Error, Result};
use crate::filter::{self, ExcludeOptions, Excluder};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// `--exclude-caches`: the Cache Directory Tagging Standard's file and signature.
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG:Signature: 8a477f597d28d172789f06886806bc55";

/// The selection options of a backup, as given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectionOptions {
    /// Exclude patterns and pattern files.
    pub patterns: ExcludeOptions,
    /// Leave out the contents of cache directories (`CACHEDIR.TAG` with its signature).
    pub exclude_caches: bool,
    /// `NAME[:HEADER]`: leave out the contents of directories holding such a file.
    pub exclude_if_present: Vec<String>,
    /// Leave out files larger than this many bytes.
    pub exclude_larger_than: Option<u64>,
}

/// A marker file: its name, and the bytes it must start with, if any.
#[derive(Clone, Debug)]
pub(super) struct Marker {
    pub(super) name: Vec<u8>,
    pub(super) header: Option<Vec<u8>>,
}

/// The compiled selection of a backup.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    patterns: Excluder,
    pub(super) markers: Vec<Marker>,
    larger_than: Option<u64>,
}

impl Selection {
    /// Read pattern files and compile everything; a bad pattern or marker is a usage error.
    pub fn new(o: &SelectionOptions) -> Result<Selection> {
        let mut specs = o.exclude_if_present.clone();
        if o.exclude_caches {
            specs.push(CACHEDIR_TAG.to_string());
        }
        let markers = specs.iter().map(|s| parse_marker(s)).collect::<Result<_>>()?;
        Ok(Selection { patterns: o.patterns.compile()?, markers, larger_than: o.exclude_larger_than })
    }

    /// `--exclude` patterns only (for tests).
    pub fn patterns(patterns: &[&str]) -> Result<Selection> {
        let excludes = patterns.iter().map(|s| s.to_string()).collect();
        Selection::new(&SelectionOptions {
            patterns: ExcludeOptions { excludes, ..Default::default() },
            ..Default::default()
        })
    }

    /// Whether the entry at `path` (absolute) is excluded by a pattern.
    pub fn excludes_path(&self, path: &Path) -> bool {
        self.patterns.excludes(path.as_os_str().as_encoded_bytes())
    }

    /// Whether a non-directory of `size` bytes is too large to keep.
    pub(super) fn too_large(&self, size: u64) -> bool {
        self.larger_than.is_some_and(|max| size > max)
    }
}

/// restic's `--files-from`, `--files-from-verbatim` and `--files-from-raw`: files listing what
/// to back up (`-` is standard input), besides the paths given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilesFrom {
    /// One glob per line: trimmed, blank lines and `#` comments skipped, each expanded as Go's
    /// `filepath.Glob` does (one that matches nothing is named in a warning).
    pub patterns: Vec<PathBuf>,
    /// One path per line, as is (only empty lines skipped).
    pub verbatim: Vec<PathBuf>,
    /// Paths each ended by a NUL byte (`find -print0`).
    pub raw: Vec<PathBuf>,
}

impl FilesFrom {
    /// Whether no list is given.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.verbatim.is_empty() && self.raw.is_empty()
    }

    /// The paths the lists name, in restic's order (patterns, verbatim, raw); `warn` hears of
    /// globs that match nothing.
    pub fn read(&self, warn: &dyn Fn(&str)) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for f in &self.patterns {
            for line in filter::lines(&filter::read_text(f)?).map(filter::trim) {
                if line.is_empty() || line[0] == b'#' {
                    continue;
                }
                let found = go_glob(line)?;
                if found.is_empty() {
                    warn(&format!("pattern {:?} does not match any files, skipping", String::from_utf8_lossy(line)));
                }
                out.extend(found.into_iter().map(path_of));
            }
        }
        for f in &self.verbatim {
            out.extend(filter::lines(&filter::read_text(f)?).filter(|l| !l.is_empty()).map(|l| path_of(l.to_vec())));
        }
        for f in &self.raw {
            out.extend(read_raw(f)?);
        }
        Ok(out)
    }
}

fn path_of(b: Vec<u8>) -> PathBuf {
    PathBuf::from(std::ffi::OsString::from_vec(b))
}

/// A `--files-from-raw` list: every name ends with a NUL; an empty name is an error.
fn read_raw(f: &Path) -> Result<Vec<PathBuf>> {
    let data = if f == Path::new("-") {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut v).map(|_| v)
    } else {
        std::fs::read(f)
    }
    .map_err(|e| Error::Io { path: f.to_path_buf(), source: e })?;
    let bad = |why: &str| Err(Error::InvalidArgument(format!("--files-from-raw {}: {why}", f.display())));
    let Some(body) = data.strip_suffix(b"\0") else {
        return if data.is_empty() { Ok(vec![]) } else { bad("trailing zero byte missing") };
    };
    let names: Vec<&[u8]> = body.split(|&b| b == 0).collect();
    if names.iter().any(|n| n.is_empty()) {
        return bad("empty filename in listing");
    }
    Ok(names.into_iter().map(|n| path_of(n.to_vec())).collect())
}

/// Go's `filepath.Glob`: the existing paths a glob names, each directory level sorted; a
/// pattern without glob characters names itself if it exists.
fn go_glob(pattern: &[u8]) -> Result<Vec<Vec<u8>>> {
    filter::match_name(pattern, b"")?;
    let meta = |p: &[u8]| p.iter().any(|b| b"*?[\\".contains(b));
    if !meta(pattern) {
        let exists = std::fs::symlink_metadata(path_of(pattern.to_vec())).is_ok();
        return Ok(if exists { vec![pattern.to_vec()] } else { vec![] });
    }
    let split = pattern.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let (dir, file) = pattern.split_at(split);
    let dir: &[u8] = match dir {
        b"" => b".",
        b"/" => b"/",
        d => &d[..d.len() - 1],
    };
    let dirs = if !meta(dir) {
        vec![dir.to_vec()]
    } else if dir == pattern {
        return Err(Error::InvalidArgument(format!("invalid pattern {:?}", String::from_utf8_lossy(pattern))));
    } else {
        go_glob(dir)?
    };
    let mut out = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(path_of(d.clone())) else { continue };
        let mut names: Vec<Vec<u8>> = entries.filter_map(|e| e.ok()).map(|e| e.file_name().into_vec()).collect();
        names.sort();
        for n in names {
            if filter::match_name(file, &n)? {
                out.push(go_join(&d, &n));
            }
        }
    }
    Ok(out)
}

/// Go's `filepath.Join(dir, name)` for a name without `/`: `./x` is `x`.
fn go_join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    match dir {
        b"." => name.to_vec(),
        b"/" => [b"/", name].concat(),
        d => [d, b"/", name].concat(),
    }
}

/// restic's `RejectIfPresent` spec: `NAME` or `NAME:HEADER` (the first colon splits).
fn parse_marker(spec: &str) -> Result<Marker> {
    let bad = |why: &str| Err(Error::InvalidArgument(format!("--exclude-if-present {spec:?}: {why}")));
    match spec.split_once(':') {
        _ if spec.is_empty() => bad("the name of the file is empty"),
        Some(("", _)) => bad("no file name before the colon"),
        // An empty header asks only for the file to be there, as no header does.
        Some((name, header)) => Ok(Marker { name: name.into(), header: (!header.is_empty()).then(|| header.into()) }),
        None => Ok(Marker { name: spec.into(), header: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn markers_parse_as_restic_does() {
        let m = parse_marker(CACHEDIR_TAG).unwrap();
        assert_eq!(m.name, b"CACHEDIR.TAG");
        assert_eq!(m.header.unwrap(), b"Signature: 8a477f597d28d172789f06886806bc55");
        let m = parse_marker(".nobackup").unwrap();
        assert!(m.header.is_none());
        assert!(parse_marker("x:").unwrap().header.is_none());
        assert!(parse_marker("").is_err() && parse_marker(":abc").is_err());
    }

    #[test]
    fn globs_of_files_from_expand_as_go_does() {
        let dir = std::env::temp_dir().join(format!("arca-glob-{}", std::process::id()));
        for d in ["a/x", "a/y", "b/x"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("a/x/f.txt"), b"").unwrap();
        std::fs::write(dir.join("a/y/g.txt"), b"").unwrap();
        let base = dir.as_os_str().as_bytes();
        let glob = |p: &str| -> Vec<String> {
            go_glob(&[base, p.as_bytes()].concat())
                .unwrap()
                .into_iter()
                .map(|v| String::from_utf8(v[base.len()..].to_vec()).unwrap())
                .collect()
        };
        assert_eq!(glob("/*/x"), ["/a/x", "/b/x"]);
        assert_eq!(glob("/a/*/*.txt"), ["/a/x/f.txt", "/a/y/g.txt"]);
        assert_eq!(glob("/a/x"), ["/a/x"]);
        assert!(glob("/nothing*").is_empty() && glob("/missing").is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
