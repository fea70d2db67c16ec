//! A repository on S3-compatible object storage, against a real S3 server the test starts:
//! `s3s-fs` (crates.io; `.ci/run` installs it), on a free loopback port, stopped when done.
//! The server binary is `$ARCA_TEST_S3S_FS`, else `s3s-fs` on `PATH`, else the one the tests
//! build once into the target directory (`cargo install s3s-fs@0.14.1`, about two minutes), so
//! that `cargo test --locked` works on a fresh machine; they never skip.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "arca-test";
pub const SECRET_KEY: &str = "arca-test-secret";

/// A running `s3s-fs` serving a temporary directory; killed on drop.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The directory it serves (one subdirectory per bucket).
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pinned server: 0.14.1 is the newest that builds with this project's Rust (1.95).
const S3S_FS: &str = "s3s-fs@0.14.1";

fn server_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("ARCA_TEST_S3S_FS").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let on_path = std::env::var_os("PATH")
            .and_then(|p| std::env::split_paths(&p).map(|d| d.join("s3s-fs")).find(|b| b.is_file()));
        if let Some(b) = on_path {
            return b;
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        let root = target.join("s3s-fs");
        let bin = root.join("bin").join("s3s-fs");
        if !bin.is_file() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["install", S3S_FS, "--features", "binary", "--locked", "--quiet", "--root"])
                .arg(&root)
                .status()
                .expect("run cargo install");
            assert!(status.success(), "cargo install {S3S_FS} failed: the S3 tests need a real S3 server");
        }
        bin
    })
    .clone()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl S3Server {
    /// Start a server with one bucket, `bucket`, and wait until it accepts connections.
    pub fn start(bucket: &str) -> S3Server {
        let dir = tempfile::Builder::new().prefix("arca-s3-").tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join(bucket)).unwrap();
        let port = free_port();
        let child = Command::new(server_binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the S3 test server {:?} ({e}): run .ci/run, or set ARCA_TEST_S3S_FS",
                    server_binary()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the S3 test server did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        S3Server { child, endpoint: format!("http://127.0.0.1:{port}"), root, _dir: dir }
    }

    /// What an `arca` command for the repository `s3:ENDPOINT/bucket/prefix` is given in its
    /// environment (and `AWS_PROFILE`, `AWS_REGION` are taken away).
    fn repo_env(&self, bucket: &str, prefix: &str) -> [(&'static str, String); 4] {
        [
            ("ARCA_REPOSITORY", format!("s3:{}/{bucket}/{prefix}", self.endpoint)),
            ("ARCA_PASSWORD", PASSWORD.to_string()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
        ]
    }

    /// An `arca` command for the repository `s3:ENDPOINT/bucket/prefix`.
    pub fn cmd(&self, bucket: &str, prefix: &str) -> assert_cmd::Command {
        let mut c = arca_cmd();
        c.envs(self.repo_env(bucket, prefix)).env_remove("AWS_PROFILE").env_remove("AWS_REGION");
        c
    }

    /// [`S3Server::cmd`] as a `std` command, for a process that keeps running (`arca ui`).
    pub fn std_cmd(&self, bucket: &str, prefix: &str) -> Command {
        let mut c = arca_std_cmd();
        c.envs(self.repo_env(bucket, prefix)).env_remove("AWS_PROFILE").env_remove("AWS_REGION");
        c
    }

    /// Run `arca ARGS` against `bucket/prefix`.
    pub fn run(&self, bucket: &str, prefix: &str, args: &[&str]) -> Out {
        self.cmd(bucket, prefix).args(args).output().unwrap().into()
    }
}

/// A server with bucket `bkt`, a scratch directory with a source tree `src/`, and a new
/// repository of 1 MiB packs at `s3:…/bkt/PREFIX`.
fn scene(prefix: &str) -> (S3Server, Env, PathBuf) {
    let s3 = S3Server::start("bkt");
    let env = Env::bare();
    let src = env.mkdir("src");
    tree(&src);
    s3.run("bkt", prefix, &["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
    (s3, env, src)
}

fn tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..12u64 {
        write_random_file(&dir.join(format!("f{i}")), 300 + i, 50_000 + i * 40_000);
    }
    write_random_file(&dir.join("sub").join("big"), 9, 3 << 20);
    std::fs::write(dir.join("sub").join("small"), b"hello").unwrap();
}

#[test]
fn the_repository_lifecycle_works_on_a_real_s3_server() {
    let (s3, env, src) = scene("team/repo");
    let run = |args: &[&str]| s3.run("bkt", "team/repo", args);
    // A second init on the same prefix is refused.
    run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]).code(2);
    let first = run(&["--json", "backup", src.to_str().unwrap()]).ok().json();
    write_random_file(&src.join("f0"), 777, 120_000);
    run(&["backup", src.to_str().unwrap()]).ok();
    run(&["check", "--read-data"]).ok();
    let out = env.path("out");
    run(&["restore", "latest", "--target", out.to_str().unwrap()]).ok();
    assert_eq!(hash_file(&under(&out, &src.join("sub/big"))), hash_file(&src.join("sub/big")));
    assert_eq!(hash_file(&under(&out, &src.join("f0"))), hash_file(&src.join("f0")));
    // Retention and reclaiming space, then the repository still checks clean.
    run(&["forget", first["snapshot"].as_str().unwrap()]).ok();
    run(&["prune", "--max-unused", "0"]).ok();
    run(&["check", "--read-data"]).ok();
    let listed = run(&["--json", "snapshots"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // Objects live under the prefix, with the local layout's names.
    assert!(s3.root.join("bkt/team/repo/config").is_file());
    assert!(s3.root.join("bkt/team/repo/parity/policy").is_file());
}

#[test]
fn damage_on_s3_is_found_and_repaired_from_parity() {
    let (s3, env, src) = scene("r");
    let run = |args: &[&str]| s3.run("bkt", "r", args);
    run(&["backup", src.to_str().unwrap()]).ok();
    // Corrupt one pack on the server's disk (s3s-fs stores object `K` of bucket `B` as the file
    // `ROOT/B/K`): a flipped byte, as bit rot on the server would leave it.
    let data = s3.root.join("bkt").join("r").join("data");
    let mut objects: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap().map(|e| e.unwrap().path()))
        .collect();
    objects.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    assert!(!objects.is_empty(), "no pack object under {}", data.display());
    flip_byte(&objects[0], 1000);
    run(&["check", "--read-data"]).code(8);
    run(&["repair", "packs"]).ok();
    run(&["check", "--read-data"]).ok();
    // A pack cut short on the server: a restore reads ranges at the length the index gives,
    // finds less, and reports the pack as truncated (damage), not as a network error.
    let f = std::fs::OpenOptions::new().write(true).open(&objects[1]).unwrap();
    f.set_len(f.metadata().unwrap().len() / 2).unwrap();
    let out = run(&["restore", "latest", "--target", env.path("out").to_str().unwrap()]);
    assert_ne!(out.code, 0, "a restore from a truncated pack succeeded");
    assert!(out.stderr.contains("truncated"), "the damage is not named: {}", out.stderr);
}

#[test]
fn a_wrong_secret_or_an_unknown_bucket_is_a_clear_error() {
    let s3 = S3Server::start("bkt");
    let out =
        s3.cmd("bkt", "x").env("AWS_SECRET_ACCESS_KEY", "wrong").args(["init", "--kdf-memory", "8"]).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let out = s3.run("nobucket", "x", &["snapshots"]);
    assert_ne!(out.code, 0);
    assert!(!out.stderr.is_empty());
}

#[test]
fn a_key_rotation_on_s3_rewrites_everything_and_survives_a_crash() {
    let (s3, env, src) = scene("rot");
    s3.run("bkt", "rot", &["backup", src.to_str().unwrap()]).ok();
    write_random_file(&src.join("f0"), 778, 90_000);
    s3.run("bkt", "rot", &["backup", src.to_str().unwrap()]).ok();
    let objects_before: Vec<PathBuf> = walk_files(&s3.root.join("bkt/rot/data"));
    let rotate = |crash: Option<&str>, password: &str| {
        let mut c = s3.cmd("bkt", "rot");
        c.env("ARCA_PASSWORD", password).env("ARCA_NEW_PASSWORD", "new s3 password");
        if let Some(step) = crash {
            c.env("ARCA_TEST_ROTATE_CRASH_AFTER", step);
        }
        c.args(["--json", "key", "rotate", "--kdf-memory", "8", "--kdf-iterations", "1"]).output().unwrap()
    };
    // Killed after the copy (kill -9 leaves what abort leaves), then finished by a second run.
    assert_eq!(rotate(Some("snapshots-copied"), PASSWORD).status.code(), None);
    let done = rotate(None, "new s3 password");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let report: serde_json::Value = Out::from(done).json();
    assert_eq!(report["finished"], true, "{report}");
    assert_eq!(report["resumed"], true, "{report}");
    let run = |args: &[&str]| {
        Out::from(s3.cmd("bkt", "rot").env("ARCA_PASSWORD", "new s3 password").args(args).output().unwrap())
    };
    run(&["check", "--read-data"]).ok();
    let out = env.path("out");
    run(&["restore", "latest", "--target", out.to_str().unwrap()]).ok();
    assert_eq!(tree_hashes(&under(&out, &src)), tree_hashes(&src));
    assert_eq!(s3.run("bkt", "rot", &["snapshots"]).code, 12, "the old password opens nothing");
    // No pack object of before the rotation is left on the server.
    let after: Vec<PathBuf> = walk_files(&s3.root.join("bkt/rot/data"));
    assert!(objects_before.iter().all(|p| !after.contains(p)), "old packs left: {after:?}");
}

#[test]
fn the_web_ui_browses_and_downloads_from_s3() {
    use crate::ui::{enc, Ui};
    let (s3, env, src) = scene("ui");
    let run = |args: &[&str]| s3.run("bkt", "ui", args);
    run(&["backup", src.to_str().unwrap()]).ok();
    std::fs::write(src.join("sub/small"), b"hello again").unwrap();
    run(&["backup", src.to_str().unwrap()]).ok();
    let snaps = run(&["--json", "snapshots"]).ok().json();
    let ids: Vec<String> = snaps.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    let ui = Ui::spawn(s3.std_cmd("bkt", "ui"), &env, &["--listen", "127.0.0.1:0"]);
    let page = |path: &str| {
        let r = ui.get(path, &[]);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r
    };
    for id in &ids {
        assert!(page("/snapshots").text().contains(&format!("/snap/{id}/tree")), "snapshot {id} not listed");
    }
    assert!(page("/").text().contains("id=\"health\""));
    let sub = src.join("sub");
    let listing = page(&format!("/snap/{}/tree?path={}", ids[1], enc(sub.to_str().unwrap()))).text();
    assert!(listing.contains(">big</a>") && listing.contains(">small</a>"), "{listing}");
    // A file, and a directory as tar and zip: the bytes `dump` writes.
    let big = page(&format!("/snap/{}/raw?path={}", ids[1], enc(sub.join("big").to_str().unwrap())));
    assert_eq!(hash_reader(&big.body[..]), hash_file(&sub.join("big")));
    for format in ["tar", "zip"] {
        let got = page(&format!("/snap/{}/archive?path={}&format={format}", ids[1], enc(sub.to_str().unwrap())));
        let want = run(&["dump", "--archive", format, &format!("{}:{}", ids[1], sub.display())]).ok();
        assert!(
            got.body == want.stdout,
            "the {format} archive differs from dump's ({} bytes, dump {})",
            got.body.len(),
            want.stdout.len()
        );
    }
    // Versions and diff see both snapshots.
    let versions = page(&format!("/versions?path={}", enc(sub.join("small").to_str().unwrap()))).text();
    assert!(versions.contains("2 distinct versions"), "{versions}");
    let diff = page(&format!("/diff?a={}&b={}", ids[0], ids[1])).text();
    assert!(diff.contains("small"), "{diff}");
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir).unwrap() {
        for e in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            out.push(e.unwrap().path());
        }
    }
    out
}
