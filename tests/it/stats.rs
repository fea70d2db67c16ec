//! `arca stats`: restic's four counting modes against figures worked out by hand for a small
//! tree, the JSON shape, snapshot selection, and which keys may count.

use crate::common::*;
use arca::format::blob::BlobType;
use arca::format::tree::NodeKind;
use serde_json::Value;
use std::collections::BTreeSet;

/// Each envelope around a blob: nonce, method byte, tag (format-spec/08).
const ENVELOPE: u64 = arca::format::SEAL_OVERHEAD as u64 + 1;

/// The tree of the first snapshot, every file below the 128 KiB smallest chunk (one blob each):
///
/// | path | bytes | |
/// |---|---|---|
/// | `changing.txt` | 3,000 | 4,000 other bytes in the second snapshot |
/// | `dup/hard-link.txt` | 20,000 | a hard link of `hard.txt` |
/// | `dup/one-copy.txt` | 10,000 | the bytes of `one.txt` |
/// | `empty` | 0 | |
/// | `hard.txt` | 20,000 | |
/// | `one.txt` | 10,000 | text, so that compression saves something |
///
/// 7 entries below `src`, and `src` itself with the directories above it.
struct Fixture {
    env: Env,
    /// Entries from the snapshot root down to `src` inclusive (`tmp`, `arca-it-…`, `src`).
    prefix: u64,
    /// The two snapshots' IDs, tagged `first` and `second`.
    ids: [String; 2],
}

fn text(len: usize) -> Vec<u8> {
    (0..).flat_map(|i: u32| format!("line {i} of a compressible file\n").into_bytes()).take(len).collect()
}

fn fixture() -> Fixture {
    let env = Env::new();
    let src = std::fs::canonicalize(env.mkdir("src")).unwrap();
    std::fs::create_dir(src.join("dup")).unwrap();
    std::fs::write(src.join("one.txt"), text(10_000)).unwrap();
    std::fs::write(src.join("dup/one-copy.txt"), text(10_000)).unwrap();
    write_random_file(&src.join("hard.txt"), 2, 20_000);
    std::fs::hard_link(src.join("hard.txt"), src.join("dup/hard-link.txt")).unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    write_random_file(&src.join("changing.txt"), 3, 3_000);
    let first = env.backup(&[&src], &["--tag", "first"])["snapshot"].as_str().unwrap().to_string();
    write_random_file(&src.join("changing.txt"), 4, 4_000);
    let second = env.backup(&[&src], &["--tag", "second"])["snapshot"].as_str().unwrap().to_string();
    let prefix = src.components().skip(1).count() as u64;
    Fixture { env, prefix, ids: [first, second] }
}

fn stats(env: &Env, args: &[&str]) -> Value {
    let mut a = vec!["stats"];
    a.extend_from_slice(args);
    env.json(&a)
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The distinct blobs below snapshot `id`, read through the library: (tree blobs, data blobs,
/// stored bytes, plaintext bytes).
fn blobs_of(env: &Env, id: &str) -> (u64, u64, u64, u64) {
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let root = repo.find_snapshot(id).unwrap().1.tree;
    let (mut trees, mut data) = (BTreeSet::from([root]), BTreeSet::new());
    let mut lens = std::collections::HashMap::new();
    arca::repo::walk::walk(&repo, &index, root, b"/", &mut |_, n| {
        match &n.kind {
            NodeKind::Dir { subtree } => {
                trees.insert(*subtree);
            }
            NodeKind::File { content, .. } => {
                for c in content {
                    data.insert(c.id);
                    lens.insert(c.id, c.len as u64);
                }
            }
            _ => {}
        }
        Ok(true)
    })
    .unwrap();
    let stored = |t, id| index.lookup(t, id).unwrap().len as u64;
    let mut sum = (trees.len() as u64, data.len() as u64, 0, 0);
    for t in &trees {
        sum.2 += stored(BlobType::Tree, t);
        sum.3 += repo.read_blob(&index, BlobType::Tree, t).unwrap().len() as u64;
    }
    for d in &data {
        sum.2 += stored(BlobType::Data, d);
        sum.3 += lens[d];
    }
    sum
}

#[test]
fn every_mode_matches_the_figures_worked_out_by_hand() {
    let f = fixture();
    let entries = 7 + f.prefix;

    // restore-size: each snapshot as a restore writes it, the hard link's bytes once per snapshot.
    let r = stats(&f.env, &[]);
    assert_eq!(r, stats(&f.env, &["--mode", "restore-size"]), "restore-size is the default");
    assert_eq!(r["snapshots_count"], 2);
    assert_eq!(r["total_file_count"], 2 * entries, "every entry of both snapshots, directories too");
    assert_eq!(r["total_size"], (10_000 + 10_000 + 20_000 + 3_000) + (10_000 + 10_000 + 20_000 + 4_000));
    assert_eq!(keys(&r), set(&["total_size", "total_file_count", "snapshots_count"]));

    // files-by-contents: one.txt = dup/one-copy.txt, hard.txt = its link, the empty file, and
    // both versions of changing.txt.
    let c = stats(&f.env, &["--mode", "files-by-contents"]);
    assert_eq!(c["snapshots_count"], 2);
    assert_eq!(c["total_file_count"], 5);
    assert_eq!(c["total_size"], 10_000 + 20_000 + 3_000 + 4_000, "the empty content adds nothing");
    assert_eq!(keys(&c), set(&["total_size", "total_file_count", "snapshots_count"]));

    // blobs-per-file: each content at the first path it is met (walk order: changing.txt,
    // dup/hard-link.txt, dup/one-copy.txt, empty, ...); the second changing.txt is the same path
    // with a new blob, and the empty file has none.
    let b = stats(&f.env, &["--mode", "blobs-per-file"]);
    assert_eq!(b["snapshots_count"], 2);
    assert_eq!(b["total_file_count"], 3);
    assert_eq!(b["total_blob_count"], 4);
    assert_eq!(b["total_size"], 3_000 + 20_000 + 10_000 + 4_000);
    assert_eq!(keys(&b), set(&["total_size", "total_file_count", "total_blob_count", "snapshots_count"]));

    // raw-data: every blob of the repository is referenced, so the figures are repoinfo's; four
    // data blobs (the empty file has no chunk), trees from the root down to src and dup, of
    // which the second snapshot shares only dup's.
    let d = stats(&f.env, &["--mode", "raw-data"]);
    let info = f.env.info();
    let n = |k: &str| info[k].as_u64().unwrap();
    assert_eq!(n("data_blobs"), 4);
    assert_eq!(n("tree_blobs"), (f.prefix + 2) + (f.prefix + 1));
    let blobs = n("data_blobs") + n("tree_blobs");
    assert_eq!(d["snapshots_count"], 2);
    assert_eq!(d["total_blob_count"], blobs);
    assert_eq!(d["total_size"], n("data_stored_bytes") + n("tree_stored_bytes"));
    let uncompressed = n("data_plain_bytes") + n("tree_plain_bytes") + blobs * ENVELOPE;
    assert_eq!(d["total_uncompressed_size"], uncompressed);
    let stored = d["total_size"].as_u64().unwrap() as f64;
    let ratio = d["compression_ratio"].as_f64().unwrap();
    assert!((ratio - uncompressed as f64 / stored).abs() < 1e-9, "{d}");
    let saving = d["compression_space_saving"].as_f64().unwrap();
    assert!((saving - (1.0 - stored / uncompressed as f64) * 100.0).abs() < 1e-9, "{d}");
    assert!(saving > 0.0, "the text file compresses: {d}");
    assert!(d.get("total_file_count").is_none(), "raw-data counts no files, as restic's: {d}");
    assert_eq!(
        keys(&d),
        set(&[
            "total_size",
            "total_uncompressed_size",
            "compression_ratio",
            "compression_space_saving",
            "total_blob_count",
            "snapshots_count"
        ])
    );

    // Text output, restic's layout.
    let out = f.env.run(&["stats", "--mode", "raw-data"]).ok().text();
    assert!(out.starts_with("Stats in raw-data mode:\n"), "{out}");
    for line in
        ["     Snapshots processed:  2\n", &format!("        Total Blob Count:  {blobs}\n"), "Compression Ratio:"]
    {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    let out = f.env.run(&["stats"]).ok().text();
    assert!(out.contains(&format!("        Total File Count:  {}\n", 2 * entries)), "{out}");
    assert!(out.contains("              Total Size:  "), "{out}");
    assert!(!out.contains("Blob Count"), "{out}");
}

#[test]
fn a_filter_or_named_snapshots_count_only_those() {
    let f = fixture();
    let entries = 7 + f.prefix;
    let first = stats(&f.env, &["--tag", "first"]);
    assert_eq!(first["snapshots_count"], 1);
    assert_eq!(first["total_file_count"], entries);
    assert_eq!(first["total_size"], 10_000 + 10_000 + 20_000 + 3_000);
    assert_eq!(stats(&f.env, &[&f.ids[0][..8]]), first, "an ID prefix");
    assert_eq!(stats(&f.env, &["latest~1"]), first);
    let latest = stats(&f.env, &["latest"]);
    assert_eq!(latest["total_size"], 10_000 + 10_000 + 20_000 + 4_000);
    // Both named (and one twice): each counted once, as the whole repository.
    assert_eq!(stats(&f.env, &["latest", &f.ids[0], &f.ids[1]]), stats(&f.env, &[]));
    // The tag filter narrows every mode: the second snapshot's changing.txt only.
    let c = stats(&f.env, &["--mode", "files-by-contents", "--tag", "second"]);
    assert_eq!((c["total_file_count"].as_u64(), c["total_size"].as_u64()), (Some(4), Some(10_000 + 20_000 + 4_000)));
    // raw-data of the first snapshot alone, against its blobs read through the library.
    let (trees, data, stored, plain) = blobs_of(&f.env, &f.ids[0]);
    assert_eq!((trees, data), (f.prefix + 2, 3));
    let d = stats(&f.env, &["--mode", "raw-data", "--tag", "first"]);
    assert_eq!(d["total_blob_count"], trees + data);
    assert_eq!(d["total_size"], stored);
    assert_eq!(d["total_uncompressed_size"], plain + (trees + data) * ENVELOPE);
    // A filter that selects nothing counts nothing; an ID outside the filter is refused.
    let none = stats(&f.env, &["--host", "elsewhere"]);
    assert_eq!((none["snapshots_count"].as_u64(), none["total_size"].as_u64()), (Some(0), Some(0)));
    let out = f.env.run(&["stats", "--tag", "second", &f.ids[0]]);
    assert!(out.code(1).all().contains("does not match"));
}

#[test]
fn repeated_snapshots_count_each_time_and_hard_links_once_per_snapshot() {
    let env = Env::new();
    let src = std::fs::canonicalize(env.mkdir("src")).unwrap();
    write_random_file(&src.join("a"), 1, 50_000);
    std::fs::hard_link(src.join("a"), src.join("b")).unwrap();
    std::fs::create_dir(src.join("d")).unwrap();
    std::fs::hard_link(src.join("a"), src.join("d/c")).unwrap();
    for _ in 0..3 {
        env.backup(&[&src], &[]);
    }
    let prefix = src.components().skip(1).count() as u64;
    let r = stats(&env, &[]);
    assert_eq!(r["snapshots_count"], 3);
    assert_eq!(r["total_size"], 3 * 50_000, "three links of one inode: once per snapshot");
    assert_eq!(r["total_file_count"], 3 * (prefix + 4));
    let c = stats(&env, &["--mode", "files-by-contents"]);
    assert_eq!((c["total_file_count"].as_u64(), c["total_size"].as_u64()), (Some(1), Some(50_000)));
    let b = stats(&env, &["--mode", "blobs-per-file"]);
    assert_eq!((b["total_file_count"].as_u64(), b["total_blob_count"].as_u64()), (Some(1), Some(1)));
    let d = stats(&env, &["--mode", "raw-data"]);
    assert_eq!(d["total_blob_count"], env.info()["data_blobs"].as_u64().unwrap() + prefix + 2);
}

#[test]
fn a_restore_key_counts_and_a_backup_key_is_refused() {
    let f = fixture();
    for (role, pw) in [("restore", "restore password"), ("backup", "backup password")] {
        f.env
            .cmd()
            .env("ARCA_NEW_PASSWORD", pw)
            .args(["key", "add", "--role", role, "--kdf-memory", "8", "--kdf-iterations", "1"])
            .assert()
            .success();
    }
    let run_as = |pw: &str, args: &[&str]| {
        let mut c = f.env.cmd();
        c.env("ARCA_PASSWORD", pw).env("XDG_CACHE_HOME", f.env.path("cache"));
        Out::from(c.args(args).output().unwrap())
    };
    let admin = stats(&f.env, &["--mode", "raw-data"]);
    let restore = run_as("restore password", &["--json", "stats", "--mode", "raw-data"]).ok().json();
    assert_eq!(restore, admin);
    let out = run_as("backup password", &["stats"]);
    let text = out.all();
    assert!(text.contains("role (backup)"), "the message names the role: {text}");
    out.code(13);
}
