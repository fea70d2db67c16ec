//! Deletion enforced by the storage (issue 22): a repository on S3 with Object Lock, against a
//! real S3 server that implements it, moto (PyPI), started by the test on a free loopback port
//! and stopped when done. The interpreter is `$ARCA_TEST_MOTO_PYTHON`, else `python3` if it
//! has moto and boto3, else a virtual environment the tests make once in the target directory
//! (`python3 -m venv`, `pip install moto[server]`), so that `cargo test --locked` works on a
//! fresh machine (`.ci/run` installs python3-venv where it is missing); they never skip.
//! `moto_s3.py` beside this file runs the server (with its clock moved, for the skew test) and
//! does what an administrator would with the storage's own tools.

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The pinned server.
const MOTO: &str = "moto[server]==5.2.1";
const DAY: f64 = 86_400.0;

/// A Python interpreter with moto's server and boto3.
fn python() -> PathBuf {
    static PY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("ARCA_TEST_MOTO_PYTHON").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let has_moto = |py: &Path| {
            Command::new(py)
                .args(["-c", "import moto.server, boto3"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if has_moto(Path::new("python3")) {
            return "python3".into();
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        let venv = target.join("moto");
        let py = venv.join("bin").join("python3");
        if !has_moto(&py) {
            let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("run python3 -m venv");
            assert!(made.success(), "python3 -m venv failed (Debian: apt-get install python3-venv)");
            let pip = Command::new(&py).args(["-m", "pip", "install", "--quiet", MOTO]).status().expect("run pip");
            assert!(pip.success(), "pip install {MOTO} failed: the Object Lock tests need a real S3 server with it");
        }
        py
    })
    .clone()
}

fn helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/moto_s3.py")
}

/// A running moto S3 server; killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    /// Seconds the store's clock is ahead of the local one.
    skew: i64,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start(skew: i64) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(python())
            .arg(helper())
            .args(["serve", &port.to_string()])
            .env("ARCA_TEST_SKEW", skew.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start listening");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, endpoint: format!("http://127.0.0.1:{port}"), skew }
    }

    fn run(&self, bucket: &str, prefix: &str, args: &[&str]) -> Out {
        arca_cmd()
            .env("ARCA_REPOSITORY", format!("s3:{}/{bucket}/{prefix}", self.endpoint))
            .env("ARCA_PASSWORD", PASSWORD)
            .env("AWS_ACCESS_KEY_ID", "arca-test")
            .env("AWS_SECRET_ACCESS_KEY", "arca-test-secret")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_REGION")
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    /// The administrator's side (`moto_s3.py ENDPOINT ARGS`), as JSON.
    fn admin(&self, args: &[&str]) -> Value {
        let out = Command::new(python())
            .arg(helper())
            .arg(&self.endpoint)
            .args(args)
            .env("ARCA_TEST_SKEW", self.skew.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "moto_s3.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every version and delete marker under `prefix`.
    fn versions(&self, bucket: &str, prefix: &str) -> Vec<Value> {
        self.admin(&["versions", bucket, prefix]).as_array().unwrap().clone()
    }

    /// Keys of current versions under `prefix`.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut k: Vec<String> = self
            .versions(bucket, prefix)
            .iter()
            .filter(|v| v["latest"] == true && v["marker"] == false)
            .map(|v| v["key"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    }

    /// `(until - store's now)` of a key's retention, in seconds, or `None` without one.
    fn remaining(&self, bucket: &str, key: &str) -> Option<f64> {
        let r = self.admin(&["retention", bucket, key]);
        r["until"].as_f64().map(|u| u - r["now"].as_f64().unwrap())
    }
}

const INIT: [&str; 7] = ["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1"];

/// A new repository with Object Lock (1 day, governance) in bucket `bkt`, which init creates,
/// two snapshots whose data differ, the first forgotten: prune has garbage to find.
fn scene(m: &Moto, env: &Env) -> PathBuf {
    let src = env.mkdir("src");
    for i in 0..6u64 {
        write_random_file(&src.join(format!("f{i}")), i, 700_000);
    }
    m.run("bkt", "repo", &[&INIT[..], &["--object-lock", "1d"]].concat()).ok();
    let first = m.run("bkt", "repo", &["--json", "backup", src.to_str().unwrap()]).ok().json();
    for i in 0..6u64 {
        write_random_file(&src.join(format!("f{i}")), 100 + i, 700_000);
    }
    m.run("bkt", "repo", &["backup", src.to_str().unwrap()]).ok();
    m.run("bkt", "repo", &["forget", first["snapshot"].as_str().unwrap()]).ok();
    src
}

fn warnings(check: &Value) -> Vec<String> {
    let w = check["warnings"].as_array().unwrap();
    w.iter().map(|w| format!("{}: {}", w["object"].as_str().unwrap(), w["message"].as_str().unwrap())).collect()
}

#[test]
fn retained_garbage_is_deferred_by_prune_and_destroyed_once_its_retention_ends() {
    let m = Moto::start(0);
    let env = Env::bare();
    scene(&m, &env);
    // init made the bucket with Object Lock: every object, the config too, is retained a day.
    let left = m.remaining("bkt", "repo/config").expect("the config has no retention");
    assert!((left - DAY).abs() < 600.0, "config retained {left} s");
    let packs_before = m.keys("bkt", "repo/data/");
    let index_before = m.keys("bkt", "repo/index/");

    // Everything prune would remove is retained: deferred, counted, dated; nothing removed.
    let out = m.run("bkt", "repo", &["prune", "--max-unused", "0"]).ok();
    assert!(out.text().contains("deferred"), "prune does not say what it deferred:\n{}", out.text());
    let pruned = m.run("bkt", "repo", &["--json", "prune", "--max-unused", "0"]).ok().json();
    let r = &pruned["plan"]["retention"];
    assert!(r["deferred_packs"].as_u64().unwrap() > 0, "{pruned}");
    assert!(r["deferred_until"].as_str().is_some_and(|d| d.ends_with('Z')), "{pruned}");
    assert_eq!(m.keys("bkt", "repo/data/"), packs_before, "a retained pack went away");
    assert_eq!(m.keys("bkt", "repo/index/"), index_before, "a retained index file was replaced");
    // Nothing hidden behind a delete marker either (forget's snapshot and released locks are).
    for prefix in ["repo/data/", "repo/index/"] {
        let markers: Vec<Value> = m.versions("bkt", prefix).into_iter().filter(|v| v["marker"] == true).collect();
        assert!(markers.is_empty(), "prune hid files: {markers:?}");
    }
    let check = m.run("bkt", "repo", &["--json", "check", "--read-data"]).ok().json();
    assert!(warnings(&check).is_empty(), "{:?}", warnings(&check));

    // The retention of every data, index and parity file ends now (governance, bypassed by the
    // administrator): prune destroys the garbage, version and all, and extends the live files.
    for prefix in ["repo/data/", "repo/index/", "repo/parity/", "repo/snapshots/"] {
        for key in m.keys("bkt", prefix) {
            m.admin(&["set-retention", "bkt", &key, "2"]);
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let pruned = m.run("bkt", "repo", &["--json", "prune", "--max-unused", "0"]).ok().json();
    let done = &pruned["done"];
    assert!(done["packs_removed"].as_u64().unwrap() > 0, "{pruned}");
    assert!(done["index_files_removed"].as_u64().unwrap() > 0, "{pruned}");
    assert!(done["retention"]["extended"].as_u64().unwrap() > 0, "{pruned}");
    let after = m.keys("bkt", "repo/data/");
    let destroyed: Vec<&String> = packs_before.iter().filter(|k| !after.contains(k)).collect();
    assert!(!destroyed.is_empty());
    let versions = m.versions("bkt", "repo/data/");
    for key in &destroyed {
        assert!(versions.iter().all(|v| v["key"] != key.as_str()), "{key} is hidden, not destroyed: {versions:?}");
    }
    // What stays is protected again for the whole period, from the store's clock.
    for key in after.iter().chain(&m.keys("bkt", "repo/snapshots/")) {
        let left = m.remaining("bkt", key).unwrap();
        assert!((left - DAY).abs() < 600.0, "{key}: retained {left} s after prune");
    }
    m.run("bkt", "repo", &["check", "--read-data"]).ok();
}

#[test]
fn check_flags_files_the_storage_does_not_protect_and_prune_protects_them_again() {
    let m = Moto::start(0);
    let env = Env::bare();
    scene(&m, &env);
    let snaps = m.keys("bkt", "repo/snapshots/");
    let packs = m.keys("bkt", "repo/data/");
    // One file without retention (as a client that bypassed the default would leave it), one
    // retained an hour only.
    m.admin(&["set-retention", "bkt", &snaps[0], "none"]);
    m.admin(&["set-retention", "bkt", &packs[0], "3600"]);
    let check = m.run("bkt", "repo", &["--json", "check"]).ok().json();
    let w = warnings(&check);
    let name = |key: &str| key.rsplit('/').next().unwrap().to_string();
    assert!(w.iter().any(|w| w.contains(&name(&snaps[0])) && w.contains("no retention")), "{w:?}");
    assert!(w.iter().any(|w| w.contains(&name(&packs[0])) && w.contains("the policy is governance, 1 days")), "{w:?}");
    let text = m.run("bkt", "repo", &["check"]).ok();
    assert!(text.stderr.contains("no retention"), "{}", text.stderr);
    // The snapshot is live: prune gives it the policy's retention again. (The pack may be
    // garbage of the forgotten snapshot, which prune defers rather than protects.)
    m.run("bkt", "repo", &["prune"]).ok();
    assert!(m.remaining("bkt", &snaps[0]).is_some_and(|l| (l - DAY).abs() < 600.0));
    let check = m.run("bkt", "repo", &["--json", "check"]).ok().json();
    assert!(!warnings(&check).iter().any(|w| w.contains(&name(&snaps[0]))), "{:?}", warnings(&check));
    // A key rotation could not remove what the storage retains: refused before anything is
    // written (no password asked, no key file added).
    let keys = m.keys("bkt", "repo/keys/");
    let rotate = m.run("bkt", "repo", &["key", "rotate"]).code(2);
    assert!(rotate.stderr.contains("Object Lock"), "{}", rotate.stderr);
    assert_eq!(m.keys("bkt", "repo/keys/"), keys);
}

#[test]
fn retention_dates_come_from_the_stores_clock_not_the_clients() {
    // The store's clock is ten days behind this machine's: by the local clock every retention
    // has long ended, so a prune that trusted it would try to destroy retained versions (and be
    // refused), and would not see that a retention an hour long needs extending.
    let skew = -10 * 86_400;
    let m = Moto::start(skew);
    let env = Env::bare();
    scene(&m, &env);
    let pruned = m.run("bkt", "repo", &["--json", "prune", "--max-unused", "0"]).ok().json();
    assert!(pruned["plan"]["retention"]["deferred_packs"].as_u64().unwrap() > 0, "{pruned}");
    let snaps = m.keys("bkt", "repo/snapshots/");
    m.admin(&["set-retention", "bkt", &snaps[0], "3600"]);
    let pruned = m.run("bkt", "repo", &["--json", "prune", "--max-unused", "0"]).ok().json();
    assert!(pruned["done"]["retention"]["extended"].as_u64().unwrap() >= 1, "{pruned}");
    let r = m.admin(&["retention", "bkt", &snaps[0]]);
    let until = r["until"].as_f64().unwrap();
    assert!((until - r["now"].as_f64().unwrap() - DAY).abs() < 600.0, "{r}");
    let local = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(until < local, "retained until {until}, by the local clock rather than the store's");
    m.run("bkt", "repo", &["check"]).ok();
}

#[test]
fn init_with_object_lock_refuses_a_bucket_without_it_and_other_storages() {
    let m = Moto::start(0);
    m.admin(&["mkbucket", "plain"]);
    let out = m.run("plain", "repo", &[&INIT[..], &["--object-lock", "30d"]].concat());
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("has no Object Lock"), "{}", out.stderr);
    assert!(m.versions("plain", "").is_empty(), "init wrote into a bucket it refused");
    // Not whole days, or not S3: usage errors.
    let out = m.run("bkt", "repo", &[&INIT[..], &["--object-lock", "36h"]].concat());
    assert_eq!(out.code, 2, "{}", out.all());
    let local = Env::bare();
    let out = local.run(&[&INIT[..], &["--object-lock", "30d"]].concat());
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("needs an S3 repository"), "{}", out.stderr);
}

/// The allowed actions of a policy, each with the resource it is allowed on.
fn allowed(policy: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in policy["Statement"].as_array().unwrap().iter().filter(|s| s["Effect"] == "Allow") {
        for a in s["Action"].as_array().unwrap() {
            out.push((a.as_str().unwrap().to_string(), s["Resource"].as_str().unwrap().to_string()));
        }
    }
    out
}

#[test]
fn generated_s3_policies_give_each_role_what_it_needs_and_no_more() {
    let policy = |role: &str| {
        let out: Out = arca_cmd()
            .args(["generate", "s3-policy", "--role", role, "--bucket", "bkt", "--prefix", "/team/repo/"])
            .output()
            .unwrap()
            .into();
        let v = out.ok().json();
        assert_eq!(v["Version"], "2012-10-17");
        v
    };
    let objects = "arn:aws:s3:::bkt/team/repo/*";
    let locks = "arn:aws:s3:::bkt/team/repo/locks/*";
    let has = |p: &Vec<(String, String)>, a: &str, r: &str| p.iter().any(|(x, y)| x == a && y == r);
    let deletes = |p: &Vec<(String, String)>| -> Vec<String> {
        p.iter().filter(|(a, _)| a.starts_with("s3:Delete")).map(|(a, r)| format!("{a} {r}")).collect()
    };

    let backup = policy("backup");
    let b = allowed(&backup);
    assert!(
        has(&b, "s3:PutObject", objects)
            && has(&b, "s3:GetObject", objects)
            && has(&b, "s3:ListBucket", "arn:aws:s3:::bkt")
    );
    assert_eq!(deletes(&b), vec![format!("s3:DeleteObject {locks}")]);
    assert!(!b.iter().any(|(a, _)| a == "s3:PutObjectRetention" || a == "s3:BypassGovernanceRetention"));
    let deny = backup["Statement"].as_array().unwrap().iter().find(|s| s["Effect"] == "Deny").unwrap().clone();
    assert_eq!(deny["NotResource"], locks);
    assert!(deny["Action"].as_array().unwrap().iter().any(|a| a == "s3:DeleteObjectVersion"));
    let list = backup["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "ListRepository").unwrap().clone();
    assert_eq!(list["Condition"]["StringLike"]["s3:prefix"][1], "team/repo/*");

    let restore = allowed(&policy("restore"));
    assert!(has(&restore, "s3:GetObject", objects) && has(&restore, "s3:PutObject", locks));
    assert!(!has(&restore, "s3:PutObject", objects), "a reader may write data");
    assert_eq!(deletes(&restore), vec![format!("s3:DeleteObject {locks}")]);

    let admin = allowed(&policy("admin"));
    for a in ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:GetObjectRetention"] {
        assert!(has(&admin, a, objects), "admin lacks {a}");
    }
    assert!(has(&admin, "s3:PutBucketObjectLockConfiguration", "arn:aws:s3:::bkt"));
    assert!(!admin.iter().any(|(a, _)| a == "s3:BypassGovernanceRetention"));

    let bad: Out =
        arca_cmd().args(["generate", "s3-policy", "--role", "backup", "--bucket", "B!"]).output().unwrap().into();
    assert_eq!(bad.code, 2, "{}", bad.all());
}
