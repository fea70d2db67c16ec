//! Regressions for review findings: a failed pack write never becomes a snapshot, a damaged
//! snapshot does not block backups, trailing-slash excludes, hard links under `--overwrite never`.

use crate::common::*;
use arca::archiver::{self, BackupOptions, Progress};
use arca::backend::local::LocalBackend;
use arca::backend::{Backend, FileType, StagedFile};
use arca::repo::Repository;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A local backend whose pack publications fail after the first `ok` packs.
struct FailingPacks {
    inner: LocalBackend,
    ok: usize,
    published: Arc<AtomicUsize>,
}

struct FailingStaged {
    inner: Box<dyn StagedFile>,
    fail: bool,
}

impl std::io::Write for FailingStaged {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.inner.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl StagedFile for FailingStaged {
    fn publish(self: Box<Self>, name: &str) -> arca::Result<()> {
        if self.fail {
            return Err(arca::Error::Io { path: name.into(), source: std::io::Error::other("injected EIO") });
        }
        self.inner.publish(name)
    }
}

impl Backend for FailingPacks {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> arca::Result<()> {
        self.inner.create()
    }
    fn exists(&self, t: FileType, n: &str) -> arca::Result<bool> {
        self.inner.exists(t, n)
    }
    fn read(&self, t: FileType, n: &str) -> arca::Result<Vec<u8>> {
        self.inner.read(t, n)
    }
    fn read_at(&self, t: FileType, n: &str, o: u64, l: usize) -> arca::Result<Vec<u8>> {
        self.inner.read_at(t, n, o, l)
    }
    fn write(&self, t: FileType, n: &str, b: &[u8]) -> arca::Result<()> {
        self.inner.write(t, n, b)
    }
    fn replace(&self, t: FileType, n: &str, b: &[u8]) -> arca::Result<()> {
        self.inner.replace(t, n, b)
    }
    fn stage(&self, t: FileType) -> arca::Result<Box<dyn StagedFile>> {
        let fail = t == FileType::Pack && self.published.fetch_add(1, Ordering::SeqCst) >= self.ok;
        Ok(Box::new(FailingStaged { inner: self.inner.stage(t)?, fail }))
    }
    fn list(&self, t: FileType) -> arca::Result<Vec<(String, u64)>> {
        self.inner.list(t)
    }
    fn remove(&self, t: FileType, n: &str) -> arca::Result<()> {
        self.inner.remove(t, n)
    }
}

#[test]
fn a_pack_that_fails_to_publish_means_no_snapshot_and_no_index() {
    let env = Env::bare();
    drop(lib_init(&env.repo, 1 << 20));
    let src = env.mkdir("src");
    for i in 0..6 {
        write_random_file(&src.join(format!("f{i}")), i, 700_000);
    }
    let backend = Arc::new(FailingPacks { inner: LocalBackend::new(&env.repo), ok: 1, published: Default::default() });
    let repo = Repository::open(backend, PASSWORD.as_bytes()).unwrap();
    let opts = BackupOptions { paths: vec![src.clone()], ..Default::default() };
    let err = archiver::backup(&repo, &opts, &Progress::default()).err().expect("the backup must fail");
    assert!(err.to_string().contains("injected EIO"), "{err}");
    assert!(repo_files(&env.repo, FileType::Snapshot).is_empty(), "no snapshot may name unwritten packs");
    assert!(repo_files(&env.repo, FileType::Index).is_empty(), "no index may be written after a failure");
    // The repository is still sound, and a later backup succeeds.
    env.run(&["check", "--read-data"]).ok();
    env.backup(&[&src], &[]);
    env.run(&["check", "--read-data"]).ok();
}

#[test]
fn a_damaged_snapshot_does_not_block_backups_but_listing_reports_it() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("a"), b"one").unwrap();
    env.backup(&[&src], &[]);
    let name = repo_files(&env.repo, FileType::Snapshot).remove(0);
    flip_byte(&repo_file(&env.repo, FileType::Snapshot, &name), 20);
    fs::write(src.join("a"), b"two").unwrap();
    env.backup(&[&src], &[]);
    let out = env.run(&["snapshots"]).code(4);
    assert!(out.stderr.contains(&name), "{}", out.stderr);
    assert!(out.text().contains("1 snapshot\n"), "{}", out.text());
    // The damaged snapshot might be the newest (nothing says it is older), so `latest` is not
    // resolved past it; the readable snapshot is still there by ID.
    let out = env.run(&["dump", &format!("latest:{}/a", src.display())]).code(4);
    assert!(out.stderr.contains(&name), "{}", out.stderr);
    let good = env.run(&["--json", "snapshots"]).code(4).json()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(env.run(&["dump", &format!("{good}:{}/a", src.display())]).ok().stdout, b"two");
}

#[test]
fn an_exclude_pattern_with_a_trailing_slash_matches_the_directory_name() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir_all(src.join("node_modules/x")).unwrap();
    fs::write(src.join("node_modules/x/big"), b"skip me").unwrap();
    fs::write(src.join("keep"), b"keep").unwrap();
    env.backup(&[&src], &["--exclude", "node_modules/"]);
    let listing = env.run(&["ls", "latest"]).ok().text();
    assert!(listing.contains("/keep") && !listing.contains("node_modules"), "{listing}");
}

#[test]
fn hard_links_are_not_made_to_a_kept_file_with_other_content() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("a"), b"snapshot bytes").unwrap();
    fs::hard_link(src.join("a"), src.join("b")).unwrap();
    env.backup(&[&src], &[]);
    let target = env.mkdir("target");
    let inner = target.join(src.strip_prefix("/").unwrap());
    fs::create_dir_all(&inner).unwrap();
    fs::write(inner.join("a"), b"user's own file").unwrap();
    env.run(&["restore", "latest", "--target", target.to_str().unwrap(), "--overwrite", "never"]).ok();
    assert_eq!(fs::read(inner.join("a")).unwrap(), b"user's own file", "never overwrites");
    assert_eq!(fs::read(inner.join("b")).unwrap(), b"snapshot bytes", "b gets the snapshot's bytes");
    let (ma, mb) = (fs::metadata(inner.join("a")).unwrap(), fs::metadata(inner.join("b")).unwrap());
    assert_ne!(ma.ino(), mb.ino(), "b must not share the kept file's inode");
}
