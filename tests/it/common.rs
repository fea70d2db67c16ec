//! Helpers shared by the integration tests: temporary repositories, running the CLI, building
//! source trees and comparing a restored tree with its source (content and metadata).
#![allow(dead_code)]

use arca::backend::local::LocalBackend;
use arca::backend::FileType;
use arca::format::key::KdfParams;
use arca::repo::{InitOptions, Repository};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

/// The password of every test repository.
pub const PASSWORD: &str = "correct horse battery staple";

/// Argon2 parameters cheap enough for tests.
pub const FAST_KDF: KdfParams = KdfParams { memory_kib: 8192, time_cost: 1, lanes: 1 };

/// A scratch directory holding a repository (`repo/`) and whatever else a test needs.
pub struct Env {
    pub dir: TempDir,
    pub repo: PathBuf,
}

impl Env {
    /// A scratch directory with an initialised repository (created through the CLI).
    pub fn new() -> Env {
        let env = Env::bare();
        let out = env.run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
        out.ok();
        env
    }

    /// A scratch directory whose `repo/` does not exist yet.
    pub fn bare() -> Env {
        let dir = tempfile::Builder::new().prefix("arca-it-").tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        Env { dir, repo }
    }

    /// A scratch directory with a repository created through the library (1 MiB packs).
    pub fn with_lib_repo() -> (Env, Repository) {
        let env = Env::bare();
        let repo = lib_init(&env.repo, 1 << 20);
        (env, repo)
    }

    /// `dir/rel`, created as a directory.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// `dir/rel` (not created).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// An `arca` command for this repository and password.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = arca_cmd();
        c.env("ARCA_REPOSITORY", &self.repo).env("ARCA_PASSWORD", PASSWORD);
        c
    }

    /// Run `arca ARGS` against this repository.
    pub fn run(&self, args: &[&str]) -> Out {
        Out::from(self.cmd().args(args).output().expect("run arca"))
    }

    /// Run `arca ARGS` with stdin.
    pub fn run_stdin(&self, args: &[&str], stdin: Vec<u8>) -> Out {
        Out::from(self.cmd().args(args).write_stdin(stdin).output().expect("run arca"))
    }

    /// Run `arca --json ARGS`, require exit 0, return the parsed output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        self.run(&a).ok().json()
    }

    /// `arca --json backup PATH...` (must succeed): the JSON summary object.
    pub fn backup(&self, paths: &[&Path], extra: &[&str]) -> Value {
        let mut a: Vec<&str> = vec!["--json", "backup"];
        a.extend_from_slice(extra);
        for p in paths {
            a.push(p.to_str().expect("utf-8 temp path"));
        }
        self.run(&a).ok().json()
    }

    /// Open the repository through the library.
    pub fn open(&self) -> Repository {
        lib_open(&self.repo, PASSWORD).expect("open repository")
    }

    /// `arca restore REF --target T` (must succeed); returns the JSON stats.
    pub fn restore(&self, reference: &str, target: &Path, extra: &[&str]) -> Value {
        let mut a: Vec<&str> = vec!["--json", "restore", reference, "--target", target.to_str().unwrap()];
        a.extend_from_slice(extra);
        self.run(&a).ok().json()["stats"].clone()
    }

    /// `repoinfo --json`.
    pub fn info(&self) -> Value {
        self.json(&["repoinfo"])
    }
}

/// Variables of the caller's environment that would change what a test's `arca` does.
const CALLER_ENV: [&str; 10] = [
    "ARCA_REPOSITORY",
    "ARCA_PASSWORD",
    "ARCA_PASSWORD_FILE",
    "ARCA_PASSWORD_COMMAND",
    "ARCA_NEW_PASSWORD",
    "ARCA_IO_THREADS",
    "ARCA_CONFIG",
    "ARCA_CACHE_DIR",
    "ARCA_NO_CACHE",
    "ARCA_NO_LOCK",
];

/// The binary under test: this build's, or `ARCA_TEST_BIN` (to show that a regression test
/// fails on an older build: `ARCA_TEST_BIN=/tmp/arca-main cargo test --test it defect_`).
pub fn arca_bin() -> PathBuf {
    match std::env::var_os("ARCA_TEST_BIN").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => assert_cmd::cargo::cargo_bin("arca"),
    }
}

/// `arca` with a clean environment (no repository or password variables from the caller).
pub fn arca_cmd() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(arca_bin());
    for v in CALLER_ENV {
        c.env_remove(v);
    }
    // No configuration file of the machine's: a test gives its own.
    c.env("XDG_CONFIG_HOME", "/nonexistent/arca-test-config");
    // A cache of remote repositories of the test run's own, never the user's.
    c.env("XDG_CACHE_HOME", test_cache_home());
    c.timeout(Duration::from_secs(120));
    c
}

/// A std command for the binary (for `pre_exec` tricks), environment cleaned as in [`arca_cmd`].
pub fn arca_std_cmd() -> StdCommand {
    let mut c = StdCommand::new(arca_bin());
    for v in CALLER_ENV {
        c.env_remove(v);
    }
    c.env("XDG_CONFIG_HOME", "/nonexistent/arca-test-config");
    c.env("XDG_CACHE_HOME", test_cache_home());
    c
}

/// The cache home of this test run (one per test process, under the temporary directory).
pub fn test_cache_home() -> PathBuf {
    std::env::temp_dir().join(format!("arca-test-cache-{}", std::process::id()))
}

/// A finished CLI run.
pub struct Out {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl From<std::process::Output> for Out {
    fn from(o: std::process::Output) -> Out {
        let code = o.status.code().unwrap_or_else(|| {
            panic!("arca killed by a signal: {:?}\nstderr: {}", o.status, String::from_utf8_lossy(&o.stderr))
        });
        let out = Out { code, stdout: o.stdout, stderr: String::from_utf8_lossy(&o.stderr).into_owned() };
        assert!(!out.stderr.contains("panicked"), "arca panicked:\n{}", out.stderr);
        out
    }
}

impl Out {
    /// Require exit code `code`.
    pub fn code(self, code: i32) -> Out {
        assert_eq!(self.code, code, "exit code; stdout:\n{}\nstderr:\n{}", self.text(), self.stderr);
        self
    }

    /// Require success.
    pub fn ok(self) -> Out {
        self.code(0)
    }

    /// Stdout as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stdout as JSON: its last value (backup and restore print restic-style status lines
    /// before the summary).
    pub fn json(&self) -> Value {
        self.json_values().pop().unwrap_or_else(|| panic!("stdout holds no JSON:\n{}", self.text()))
    }

    /// Stdout as the stream of JSON values it is.
    pub fn json_values(&self) -> Vec<Value> {
        serde_json::Deserializer::from_slice(&self.stdout)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.text()))
    }

    /// Stdout and stderr together, for "the message names X" assertions.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.text(), self.stderr)
    }
}

/// A new library repository at `dir` with test KDF parameters and the given pack size.
pub fn lib_init(dir: &Path, pack_target_size: u32) -> Repository {
    let opts = InitOptions { kdf: FAST_KDF, label: "test".into(), pack_target_size, ..InitOptions::default() };
    Repository::init(Arc::new(LocalBackend::new(dir)), PASSWORD.as_bytes(), &opts).expect("init repository")
}

/// Open the repository at `dir` through the library.
pub fn lib_open(dir: &Path, password: &str) -> arca::Result<Repository> {
    Repository::open(Arc::new(LocalBackend::new(dir)), password.as_bytes())
}

/// Path of a repository file.
pub fn repo_file(repo: &Path, t: FileType, name: &str) -> PathBuf {
    LocalBackend::new(repo).path(t, name)
}

/// Names of the repository's files of a type.
pub fn repo_files(repo: &Path, t: FileType) -> Vec<String> {
    use arca::backend::Backend;
    LocalBackend::new(repo).list(t).unwrap().into_iter().map(|(n, _)| n).collect()
}

/// Remove a repository file as a writer does on purpose: its parity file first, then the file
/// (format-spec/22 §22.8). Removing only the file is how a test loses it.
pub fn remove_as_writer(repo: &Path, t: FileType, name: &str) {
    let _ = fs::remove_file(repo_file(repo, FileType::Parity, name));
    fs::remove_file(repo_file(repo, t, name)).unwrap();
}

/// XOR one byte of a file in place.
pub fn flip_byte(path: &Path, offset: usize) {
    let mut b = fs::read(path).unwrap();
    assert!(offset < b.len(), "offset {offset} beyond {} bytes of {}", b.len(), path.display());
    b[offset] ^= 0x5a;
    write_over(path, &b);
}

/// Replace a (possibly read-only) file's bytes.
pub fn write_over(path: &Path, bytes: &[u8]) {
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o644));
    fs::write(path, bytes).unwrap();
}

/// Rename a content-addressed file to the BLAKE3 of its (changed) bytes; returns the new name.
pub fn rename_to_hash(path: &Path) -> String {
    let bytes = fs::read(path).unwrap();
    let name = arca::Id::of_file_bytes(&bytes).to_hex();
    let dest = if path.parent().unwrap().parent().unwrap().file_name() == Some(OsStr::new("data")) {
        path.parent().unwrap().parent().unwrap().join(&name[..2]).join(&name)
    } else {
        path.parent().unwrap().join(&name)
    };
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::rename(path, &dest).unwrap();
    name
}

/// Deterministic pseudo-random bytes (BLAKE3 XOF of the seed).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    fill_random(seed, 0, &mut out);
    out
}

/// Fill `buf` with the XOF stream of `seed` starting at byte `pos`.
pub fn fill_random(seed: u64, pos: u64, buf: &mut [u8]) {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    let mut r = h.finalize_xof();
    r.set_position(pos);
    r.fill(buf);
}

/// Write `len` pseudo-random bytes to `path` without holding them all in memory.
pub fn write_random_file(path: &Path, seed: u64, len: u64) {
    let mut f = fs::File::create(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        let n = (len - pos).min(buf.len() as u64) as usize;
        fill_random(seed, pos, &mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        pos += n as u64;
    }
}

/// BLAKE3 of a stream.
pub fn hash_reader(mut r: impl Read) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    *h.finalize().as_bytes()
}

/// BLAKE3 of a file's content, streamed.
pub fn hash_file(p: &Path) -> [u8; 32] {
    hash_reader(fs::File::open(p).unwrap())
}

/// Set a path's modification time (not following symlinks for files opened by path).
pub fn set_mtime(p: &Path, t: SystemTime) {
    let f = fs::OpenOptions::new().write(true).open(p).or_else(|_| fs::File::open(p)).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t)).unwrap();
}

/// A time with a distinctive nanosecond part.
pub fn odd_time(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// Whether the process runs as root (permission bits do not stop it reading).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `dir`'s filesystem stores `user.*` extended attributes.
pub fn xattrs_supported(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    fs::write(&probe, b"").unwrap();
    let ok = xattr::set(&probe, "user.arca-probe", b"1").is_ok();
    fs::remove_file(&probe).unwrap();
    ok
}

/// Bytes actually allocated on disk for a file.
pub fn allocated(p: &Path) -> u64 {
    fs::symlink_metadata(p).unwrap().blocks() * 512
}

/// Make a FIFO.
pub fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o640) };
    assert_eq!(rc, 0, "mkfifo {}: {}", p.display(), std::io::Error::last_os_error());
}

/// `path` relative to `/`, for restoring a whole snapshot and finding a source inside it.
pub fn under(target: &Path, abs: &Path) -> PathBuf {
    target.join(abs.strip_prefix("/").unwrap())
}

/// The snapshot reference `SNAP:ABS_PATH`.
pub fn sref(snap: &str, abs: &Path) -> String {
    format!("{snap}:{}", abs.to_str().unwrap())
}

// ---- building source trees -----------------------------------------------------------------

/// A small realistic tree: nested directories, many small files, a 3 MiB random file that spans
/// several chunks, an empty file, empty directories, assorted modes and nanosecond mtimes.
/// Returns the number of regular files.
pub fn make_realistic_tree(root: &Path) -> usize {
    let mut files = 0;
    fs::create_dir_all(root).unwrap();
    for d in ["docs", "docs/notes/2024", "src/lib/inner", "empty", "empty/deeper/deepest"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for i in 0..40 {
        let dir = ["docs", "docs/notes/2024", "src", "src/lib", "src/lib/inner"][i % 5];
        let p = root.join(dir).join(format!("file-{i:02}.txt"));
        let body: String = (0..(i * 37 % 500 + 1)).map(|j| format!("line {j} of file {i}\n")).collect();
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode([0o644, 0o600, 0o640, 0o444][i % 4])).unwrap();
        set_mtime(&p, odd_time(1_600_000_000 + i as u64 * 1000, 123_456_789 + i as u32));
        files += 1;
    }
    fs::write(root.join("src/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("src/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    files += 1;
    fs::write(root.join("empty.dat"), b"").unwrap();
    files += 1;
    write_random_file(&root.join("big.bin"), 7, 3 << 20);
    files += 1;
    fs::set_permissions(root.join("docs/notes"), fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(&root.join("docs/notes/2024"), odd_time(1_500_000_000, 1));
    files
}

// ---- comparing trees -----------------------------------------------------------------------

/// What to compare besides content.
#[derive(Clone, Copy)]
pub struct Cmp {
    /// Compare the metadata of the two roots themselves.
    pub root_meta: bool,
    /// Compare modification times.
    pub mtime: bool,
}

impl Default for Cmp {
    fn default() -> Self {
        Cmp { root_meta: true, mtime: true }
    }
}

fn list_tree(root: &Path) -> BTreeMap<PathBuf, fs::Metadata> {
    fn go(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, fs::Metadata>) {
        let dir = root.join(rel);
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let m = fs::symlink_metadata(e.path()).unwrap();
            let is_dir = m.is_dir();
            out.insert(r.clone(), m);
            if is_dir {
                go(root, &r, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, Path::new(""), &mut out);
    out
}

fn kind(m: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_file() {
        "file"
    } else if t.is_dir() {
        "dir"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "chardev"
    } else {
        "blockdev"
    }
}

/// Extended attributes of a path (not following symlinks), sorted.
pub fn xattrs_of(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(names) = xattr::list(p) else { return vec![] };
    let mut out: Vec<_> =
        names.filter_map(|n| xattr::get(p, &n).ok().flatten().map(|v| (n.as_bytes().to_vec(), v))).collect();
    out.sort();
    out
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (fs::File::open(a).unwrap(), fs::File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

fn compare_meta(
    rel: &Path,
    pa: &Path,
    pb: &Path,
    ma: &fs::Metadata,
    mb: &fs::Metadata,
    cmp: Cmp,
    diffs: &mut Vec<String>,
) {
    let show = rel.display();
    let (ka, kb) = (kind(ma), kind(mb));
    if ka != kb {
        diffs.push(format!("{show}: type {ka} vs {kb}"));
        return;
    }
    if ka != "symlink" && ma.mode() & 0o7777 != mb.mode() & 0o7777 {
        diffs.push(format!("{show}: mode {:o} vs {:o}", ma.mode() & 0o7777, mb.mode() & 0o7777));
    }
    if (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
        diffs.push(format!("{show}: owner {}:{} vs {}:{}", ma.uid(), ma.gid(), mb.uid(), mb.gid()));
    }
    if cmp.mtime && (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
        diffs.push(format!(
            "{show}: mtime {}.{:09} vs {}.{:09}",
            ma.mtime(),
            ma.mtime_nsec(),
            mb.mtime(),
            mb.mtime_nsec()
        ));
    }
    match ka {
        "file" => {
            if ma.len() != mb.len() {
                diffs.push(format!("{show}: size {} vs {}", ma.len(), mb.len()));
            } else if !same_content(pa, pb) {
                diffs.push(format!("{show}: content differs"));
            }
        }
        "symlink" => {
            let (ta, tb) = (fs::read_link(pa).unwrap(), fs::read_link(pb).unwrap());
            if ta != tb {
                diffs.push(format!("{show}: link target {} vs {}", ta.display(), tb.display()));
            }
        }
        _ => {}
    }
    let (xa, xb) = (xattrs_of(pa), xattrs_of(pb));
    if xa != xb {
        diffs.push(format!("{show}: xattrs {xa:?} vs {xb:?}"));
    }
}

/// Hard-link groups of regular files: sets of relative paths sharing an inode (2+ paths).
fn link_groups(entries: &BTreeMap<PathBuf, fs::Metadata>) -> BTreeSet<Vec<PathBuf>> {
    let mut by_inode: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    for (p, m) in entries {
        if m.is_file() {
            by_inode.entry((m.dev(), m.ino())).or_default().push(p.clone());
        }
    }
    by_inode
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|mut v| {
            v.sort();
            v
        })
        .collect()
}

/// Differences between two trees: entry set, types, content, mode, owner, mtime (ns), symlink
/// targets, extended attributes and hard-link grouping. Empty when they are the same.
pub fn tree_diffs(a: &Path, b: &Path, cmp: Cmp) -> Vec<String> {
    let (ea, eb) = (list_tree(a), list_tree(b));
    let mut diffs = Vec::new();
    for p in ea.keys().filter(|p| !eb.contains_key(*p)) {
        diffs.push(format!("{}: missing from {}", p.display(), b.display()));
    }
    for p in eb.keys().filter(|p| !ea.contains_key(*p)) {
        diffs.push(format!("{}: only in {}", p.display(), b.display()));
    }
    for (rel, ma) in &ea {
        if let Some(mb) = eb.get(rel) {
            compare_meta(rel, &a.join(rel), &b.join(rel), ma, mb, cmp, &mut diffs);
        }
    }
    if cmp.root_meta {
        let (ma, mb) = (fs::symlink_metadata(a).unwrap(), fs::symlink_metadata(b).unwrap());
        compare_meta(Path::new("."), a, b, &ma, &mb, cmp, &mut diffs);
    }
    let (ga, gb) = (link_groups(&ea), link_groups(&eb));
    if ga != gb {
        diffs.push(format!("hard-link groups {ga:?} vs {gb:?}"));
    }
    diffs
}

/// Panic unless the trees are the same (see [`tree_diffs`]).
pub fn assert_same_tree(a: &Path, b: &Path, cmp: Cmp) {
    let d = tree_diffs(a, b, cmp);
    assert!(d.is_empty(), "trees {} and {} differ:\n  {}", a.display(), b.display(), d.join("\n  "));
}

/// Every regular file's relative path below `root`.
pub fn file_list(root: &Path) -> Vec<String> {
    list_tree(root).into_iter().filter(|(_, m)| !m.is_dir()).map(|(p, _)| p.to_string_lossy().into_owned()).collect()
}

/// The node at absolute `path` in the latest snapshot, read through the library.
pub fn latest_node(env: &Env, path: &Path) -> arca::format::tree::Node {
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let root = repo.find_snapshot("latest").unwrap().1.tree;
    arca::restore::resolve(&repo, &index, root, path.to_str().unwrap()).unwrap()
}

/// Every file of a directory tree, by path below it, with the BLAKE3 hash of its bytes: to show
/// that an operation changed nothing, or only added files.
pub fn tree_hashes(dir: &Path) -> BTreeMap<PathBuf, [u8; 32]> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), hash_file(&p));
            }
        }
    }
    out
}
