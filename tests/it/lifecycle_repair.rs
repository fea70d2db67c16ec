//! `tag` (with `--move` and the snapshot field `original`), `unlock`, `repair index` and
//! `repair snapshots`: what they rewrite, what they leave alone, and that the repository checks
//! clean and restores byte for byte afterwards.

use crate::common::*;
use arca::backend::FileType;
use arca::format::blob::BlobType;
use arca::format::header::FileKind;
use arca::format::lock::Lock;
use arca::format::tree::NodeKind;
use arca::Id;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

// ---- helpers ------------------------------------------------------------------------------------

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// `snapshots --json`, by full ID.
fn snapshots(env: &Env) -> BTreeMap<String, Value> {
    let list = env.json(&["snapshots"]);
    list.as_array().unwrap().iter().map(|s| (s["id"].as_str().unwrap().to_string(), s.clone())).collect()
}

fn tags(s: &Value) -> Vec<&str> {
    s["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect()
}

fn snapshot_files(env: &Env) -> BTreeSet<String> {
    repo_files(&env.repo, FileType::Snapshot).into_iter().collect()
}

/// A repository with three snapshots of three small directories; returns their IDs in order.
fn three_snapshots() -> (Env, Vec<PathBuf>, Vec<String>) {
    let env = Env::new();
    let mut srcs = Vec::new();
    let mut ids = Vec::new();
    for i in 0..3 {
        let src = env.mkdir(&format!("src{i}"));
        fs::write(src.join("a.txt"), format!("file {i}\n")).unwrap();
        write_random_file(&src.join("b.bin"), 100 + i, 200_000);
        ids.push(env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string());
        srcs.push(src);
    }
    (env, srcs, ids)
}

/// The one `changed` entry of a `tag --json` run: (old, new).
fn changed(out: &Value) -> Vec<(String, String)> {
    out["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["old"].as_str().unwrap().to_string(), c["new"].as_str().unwrap().to_string()))
        .collect()
}

// ---- tag ----------------------------------------------------------------------------------------

#[test]
fn tag_rewrites_only_changed_snapshots_and_keeps_the_first_original() {
    let (env, srcs, ids) = three_snapshots();
    let before = snapshot_files(&env);

    let out = env.json(&["tag", "--add", "keep,x", &ids[0]]);
    let c = changed(&out);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].0, ids[0]);
    let first = c[0].1.clone();
    assert_ne!(first, ids[0]);
    let now = snapshot_files(&env);
    assert!(!now.contains(&ids[0]), "the old snapshot file is removed");
    assert!(now.contains(&first) && now.contains(&ids[1]) && now.contains(&ids[2]));
    assert_eq!(now.len(), before.len());
    let s = &snapshots(&env)[&first];
    assert_eq!(tags(s), ["keep", "x"]);
    assert_eq!(s["original"], ids[0]);

    // A rewrite of a rewrite keeps the first original; `cat snapshot` shows it too.
    let out = env.json(&["tag", "--remove", "x", "--add", "y", &first[..10]]);
    let second = changed(&out)[0].1.clone();
    let s = &snapshots(&env)[&second];
    assert_eq!(tags(s), ["keep", "y"]);
    assert_eq!(s["original"], ids[0]);
    assert_eq!(env.json(&["cat", "snapshot", &second])["original"], ids[0]);
    assert_eq!(env.json(&["cat", "snapshot", &ids[1]])["original"], Value::Null);
    assert_eq!(snapshots(&env)[&ids[1]]["original"], Value::Null);

    // Nothing to change: no rewrite, same IDs.
    let out = env.json(&["tag", "--add", "keep", &second]);
    assert!(changed(&out).is_empty());
    assert_eq!(n(&out["unchanged"]), 1);
    assert!(snapshot_files(&env).contains(&second));

    // --set on every snapshot, then `--set ''` clears them all.
    let out = env.json(&["tag", "--set", "b,a"]);
    assert_eq!(changed(&out).len(), 3);
    assert!(snapshots(&env).values().all(|s| tags(s) == ["a", "b"]));
    let out = env.json(&["tag", "--set", ""]);
    assert_eq!(changed(&out).len(), 3);
    let all = snapshots(&env);
    assert!(all.values().all(|s| tags(s).is_empty()));
    let originals: BTreeSet<&str> = all.values().map(|s| s["original"].as_str().unwrap()).collect();
    assert_eq!(originals, ids.iter().map(String::as_str).collect());

    // The retagged snapshot restores byte for byte.
    let latest_of_first = all.iter().find(|(_, s)| s["original"] == ids[0]).unwrap().0.clone();
    let t = env.path("t");
    env.restore(&latest_of_first, &t, &[]);
    assert_same_tree(&srcs[0], &under(&t, &srcs[0]), Cmp::default());
    env.run(&["check"]).ok();
}

#[test]
fn tag_filters_select_the_snapshots_and_text_output_names_them() {
    let (env, _, ids) = three_snapshots();
    env.json(&["tag", "--add", "weekly", &ids[1]]);
    let out = env.run(&["tag", "--tag", "weekly", "--add", "checked"]).ok();
    assert!(out.text().contains("1 snapshot rewritten, 0 unchanged"), "{}", out.text());
    let all = snapshots(&env);
    let checked: Vec<_> = all.values().filter(|s| tags(s).contains(&"checked")).collect();
    assert_eq!(checked.len(), 1);
    assert_eq!(checked[0]["original"], ids[1]);
    assert!(all.contains_key(&ids[0]) && all.contains_key(&ids[2]), "unselected snapshots keep their IDs");
}

#[test]
fn tag_move_gives_the_label_to_one_snapshot_and_takes_it_from_the_others() {
    let (env, _, ids) = three_snapshots();
    let out = env.json(&["tag", "--move", "last-good", &ids[0]]);
    let a = changed(&out)[0].1.clone();
    assert_eq!(tags(&snapshots(&env)[&a]), ["last-good"]);

    let out = env.json(&["tag", "--move", "last-good", &ids[2][..12]]);
    let c = changed(&out);
    assert_eq!(c.len(), 2, "{out}");
    assert_eq!(c[0].0, ids[2], "the new holder is rewritten first");
    assert_eq!(c[1].0, a);
    let all = snapshots(&env);
    let holders: Vec<_> = all.iter().filter(|(_, s)| tags(s).contains(&"last-good")).map(|(id, _)| id).collect();
    assert_eq!(holders, [&c[0].1]);
    assert!(all.contains_key(&ids[1]), "a snapshot without the label is not touched");
    assert_eq!(all[&c[1].1]["original"], ids[0]);
    assert!(tags(&all[&c[1].1]).is_empty());

    // Moving it to its holder again changes nothing.
    let out = env.json(&["tag", "--move", "last-good", &c[0].1]);
    assert!(changed(&out).is_empty());
}

/// Write, through the library, the copy of `id` with `tags` that a rewrite of it would write:
/// what an interrupted `tag` leaves besides the old snapshot.
fn interrupted_rewrite(env: &Env, id: &str, tags: &[&str]) -> String {
    let repo = env.open();
    let id = Id::from_hex(id).unwrap();
    let old = repo.load_snapshot(&id).unwrap();
    let mut copy = arca::lifecycle::rewrite::derived(&id, &old);
    copy.tags = tags.iter().map(|t| t.to_string()).collect();
    repo.save_snapshot(&copy).unwrap().to_hex()
}

#[test]
fn a_rerun_after_an_interrupted_tag_finds_the_copy_it_wrote() {
    let (env, _, ids) = three_snapshots();
    let copy = interrupted_rewrite(&env, &ids[0], &["x"]);
    let out = env.json(&["tag", "--add", "x"]);
    let c = changed(&out);
    assert_eq!(c.len(), 3);
    assert_eq!(c[0], (ids[0].clone(), copy.clone()), "the copy is found, not written again");
    assert_eq!(snapshot_files(&env).len(), 3, "no second copy of the first snapshot");
    assert!(!snapshot_files(&env).contains(&ids[0]));

    // An interrupted move: the new holder's copy exists beside its old snapshot.
    let (env, _, ids) = three_snapshots();
    let holder = interrupted_rewrite(&env, &ids[1], &["last-good"]);
    let out = env.json(&["tag", "--move", "last-good", &ids[1]]);
    assert_eq!(changed(&out), vec![(ids[1].clone(), holder.clone())]);
    let all = snapshots(&env);
    assert_eq!(all.len(), 3);
    assert_eq!(tags(&all[&holder]), ["last-good"], "the copy keeps the label it was found with");
}

#[test]
fn tag_usage_errors_exit_2_and_change_nothing() {
    let (env, _, ids) = three_snapshots();
    let before = snapshot_files(&env);
    for args in [
        vec!["tag", &ids[0]],
        vec!["tag", "--set", "a", "--add", "b"],
        vec!["tag", "--move", "x"],
        vec!["tag", "--move", "x", &ids[0], &ids[1]],
        vec!["tag", "--move", "x", "--add", "y", &ids[0]],
        vec!["tag", "--add", "bad\nname", &ids[0]],
        vec!["tag", "--add", "esc\x1b[2J", &ids[0]],
        vec!["tag", "--move", "", &ids[0]],
    ] {
        env.run(&args).code(2);
    }
    env.run(&["tag", "--add", "x", "0000000000"]).code(1);
    assert_eq!(snapshot_files(&env), before);
}

// ---- unlock -------------------------------------------------------------------------------------

fn write_lock(env: &Env, time: i64, pid: u32) -> String {
    let repo = env.open();
    let l = Lock { time, exclusive: true, hostname: arca::sys::hostname(), username: "someone".into(), pid };
    repo.save_file(FileKind::Lock, &l.encode()).unwrap().to_hex()
}

fn lock_names(env: &Env) -> BTreeSet<String> {
    repo_files(&env.repo, FileType::Lock).into_iter().collect()
}

#[test]
fn unlock_removes_stale_locks_keeps_live_and_unreadable_ones_and_remove_all_removes_every_lock() {
    let env = Env::new();
    let now = arca::sys::now_nanos();
    let stale = write_lock(&env, now - 3600 * 1_000_000_000, std::process::id());
    let live = write_lock(&env, now, std::process::id());
    let garbage = b"not a lock file at all".to_vec();
    let unreadable = Id::of_file_bytes(&garbage).to_hex();
    fs::write(repo_file(&env.repo, FileType::Lock, &unreadable), &garbage).unwrap();
    assert_eq!(lock_names(&env).len(), 3);

    // A live lock blocks exclusive commands; the unreadable one blocks every lock.
    let out = env.run(&["--retry-lock", "0", "tag", "--add", "x"]).code(4);
    assert!(out.stderr.contains(&unreadable), "{}", out.stderr);

    let out = env.run(&["unlock"]).code(4);
    assert!(out.stderr.contains(&unreadable) && out.stderr.contains("--remove-all"), "{}", out.stderr);
    assert!(out.text().contains(&format!("removed lock {}", &stale[..16])), "{}", out.text());
    assert!(out.text().contains(&format!("kept lock {}", &live[..16])), "{}", out.text());
    assert_eq!(lock_names(&env), [live.clone(), unreadable.clone()].into_iter().collect());

    let out = env.run(&["--json", "unlock"]).code(4);
    let locks = out.json()["locks"].as_array().unwrap().clone();
    let state: BTreeMap<&str, (&str, bool)> = locks
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), (l["state"].as_str().unwrap(), l["removed"].as_bool().unwrap())))
        .collect();
    assert_eq!(state[live.as_str()], ("live", false));
    assert_eq!(state[unreadable.as_str()], ("unreadable", false));

    let out = env.run(&["unlock", "--remove-all"]).ok();
    assert!(out.stderr.contains("warning: removed the live exclusive lock"), "{}", out.stderr);
    assert!(out.stderr.contains(&unreadable), "{}", out.stderr);
    assert!(lock_names(&env).is_empty());
    let out = env.run(&["unlock"]).ok();
    assert!(out.text().contains("no lock removed"), "{}", out.text());
}

#[test]
fn unlock_removes_the_lock_of_a_dead_process_on_this_host() {
    let env = Env::new();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let dead = write_lock(&env, arca::sys::now_nanos(), pid);
    let out = env.run(&["unlock"]).ok();
    assert!(out.text().contains(&format!("removed lock {}: stale", &dead[..16])), "{}", out.text());
    assert!(lock_names(&env).is_empty());
}

// ---- repair index -------------------------------------------------------------------------------

/// A library repository (1 MiB packs) with two snapshots: of `one` (a realistic tree) and of
/// `two` (random files over several packs). Returns the directories and the snapshot IDs.
struct Fixture {
    env: Env,
    one: PathBuf,
    two: PathBuf,
    snap_one: String,
    snap_two: String,
}

fn damaged_fixture() -> Fixture {
    let (env, _) = Env::with_lib_repo();
    let one = env.mkdir("one");
    make_realistic_tree(&one);
    let snap_one = env.backup(&[&one], &[])["snapshot"].as_str().unwrap().to_string();
    let two = env.mkdir("two");
    for i in 0..4 {
        write_random_file(&two.join(format!("r{i}.bin")), 500 + i, 900_000);
    }
    fs::write(two.join("small.txt"), b"small").unwrap();
    let snap_two = env.backup(&[&two], &[])["snapshot"].as_str().unwrap().to_string();
    Fixture { env, one, two, snap_one, snap_two }
}

fn check_errors(env: &Env) -> Vec<String> {
    let out = env.run(&["--json", "check"]);
    out.json()["errors"].as_array().unwrap().iter().map(|e| e.to_string()).collect()
}

fn restores_identically(env: &Env, snap: &str, src: &Path, name: &str) {
    let t = env.path(name);
    env.restore(&sref(snap, src), &t, &[]);
    assert_same_tree(src, &t, Cmp::default());
}

#[test]
fn repair_index_rebuilds_every_index_file_and_is_idempotent() {
    let Fixture { env, one, two, snap_one, .. } = damaged_fixture();
    let info = env.info();
    for name in repo_files(&env.repo, FileType::Index) {
        fs::remove_file(repo_file(&env.repo, FileType::Index, &name)).unwrap();
    }
    env.run(&["restore", "latest", "--target", env.path("fail").to_str().unwrap()]).code(4);

    let r = env.json(&["repair", "index"]);
    assert_eq!(n(&r["packs"]), n(&info["packs"]));
    assert_eq!(n(&r["blobs"]), n(&info["data_blobs"]) + n(&info["tree_blobs"]));
    assert_eq!(r["adopted"].as_array().unwrap().len() as u64, n(&info["packs"]));
    assert_eq!(n(&r["removed"]), 0);
    assert!(r["unreadable"].as_array().unwrap().is_empty());
    assert!(check_errors(&env).is_empty());
    env.run(&["check", "--read-data"]).ok();
    restores_identically(&env, "latest", &two, "t2");
    restores_identically(&env, &snap_one, &one, "t1");

    // Again: the same packs and blobs, nothing adopted, the previous files replaced.
    let old_files = repo_files(&env.repo, FileType::Index);
    let again = env.json(&["repair", "index"]);
    assert_eq!((n(&again["packs"]), n(&again["blobs"])), (n(&r["packs"]), n(&r["blobs"])));
    assert!(again["adopted"].as_array().unwrap().is_empty() && again["dropped"].as_array().unwrap().is_empty());
    assert_eq!(n(&again["removed"]), old_files.len() as u64);
    let new_files = repo_files(&env.repo, FileType::Index);
    assert!(new_files.iter().all(|f| !old_files.contains(f)));
    assert_eq!(env.info()["packs"], info["packs"]);
}

#[test]
fn repair_index_adopts_unindexed_packs_and_replaces_damaged_index_files() {
    let Fixture { env, two, .. } = damaged_fixture();
    let files = repo_files(&env.repo, FileType::Index);
    assert_eq!(files.len(), 2);
    // The newest backup's index file: damage one, so its packs are indexed nowhere readable.
    let repo = env.open();
    let newest = files
        .iter()
        .find(|f| {
            let packs = repo.load_index_file(&Id::from_hex(f).unwrap()).unwrap();
            packs.iter().map(|p| p.blobs.len()).sum::<usize>() > 5 && packs.len() > 2
        })
        .unwrap()
        .clone();
    let path = repo_file(&env.repo, FileType::Index, &newest);
    flip_byte(&path, 40);
    assert!(!check_errors(&env).is_empty());

    let out = env.run(&["--json", "repair", "index"]).ok();
    assert!(out.stderr.contains(&newest) && out.stderr.contains("replaced"), "{}", out.stderr);
    let r = out.json();
    assert!(r["adopted"].as_array().unwrap().len() > 2, "{r}");
    assert_eq!(r["damaged_index_files"].as_array().unwrap().len(), 1);
    assert!(!path.exists());
    assert!(check_errors(&env).is_empty());
    let warnings = env.json(&["check"])["warnings"].as_array().unwrap().len();
    assert_eq!(warnings, 0, "no pack is left unindexed");
    restores_identically(&env, "latest", &two, "t");
}

/// Path of the pack holding the first chunk of `file` in the latest snapshot, and that chunk.
fn pack_of(env: &Env, file: &Path) -> (PathBuf, u32, Id) {
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let root = repo.find_snapshot("latest").unwrap().1.tree;
    let node = arca::restore::resolve(&repo, &index, root, file.to_str().unwrap()).unwrap();
    let NodeKind::File { content, .. } = node.kind else { panic!("not a file") };
    let loc = index.lookup(BlobType::Data, &content[0].id).unwrap();
    (repo_file(&env.repo, FileType::Pack, &loc.pack.to_hex()), loc.offset, loc.pack)
}

#[test]
fn repair_index_leaves_out_a_pack_whose_toc_is_damaged_and_drops_missing_packs() {
    let Fixture { env, two, .. } = damaged_fixture();
    let (bad, _, bad_id) = pack_of(&env, &two.join("r0.bin"));
    let (gone, _, gone_id) = (1..4)
        .map(|i| pack_of(&env, &two.join(format!("r{i}.bin"))))
        .find(|(p, _, _)| *p != bad)
        .expect("the fixture spreads the files over several packs");
    let len = fs::metadata(&bad).unwrap().len() as usize;
    flip_byte(&bad, len - 10); // inside the sealed TOC's tag
    fs::remove_file(&gone).unwrap();

    // While parity can rebuild the damaged pack, repair index refuses to leave it out.
    let out = env.run(&["repair", "index"]).code(4);
    assert!(out.stderr.contains("run `arca repair packs` first"), "{}", out.stderr);
    // Beyond parity (both parity files gone too), it goes on without them.
    fs::remove_file(repo_file(&env.repo, FileType::Parity, &bad_id.to_hex())).unwrap();
    fs::remove_file(repo_file(&env.repo, FileType::Parity, &gone_id.to_hex())).unwrap();
    let out = env.run(&["--json", "repair", "index"]).code(4);
    assert!(out.stderr.contains(&bad_id.to_hex()) && out.stderr.contains("missing now"), "{}", out.stderr);
    let r = out.json();
    let unreadable = r["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1);
    assert_eq!(unreadable[0]["pack"], bad_id.to_hex());
    assert!(n(&unreadable[0]["blobs_lost"]) > 0);
    assert_eq!(r["dropped"].as_array().unwrap().clone(), vec![Value::from(gone_id.to_hex())]);

    // The index now matches the packs; what is missing is the snapshot's problem.
    let errs = check_errors(&env);
    assert!(errs.iter().all(|e| e.contains("missing from the index")), "{errs:?}");
    assert!(!errs.is_empty());
    let text = env.run(&["repair", "index"]).code(4).text();
    assert!(text.contains("indexed"), "{text}");
}

#[test]
fn repair_index_read_all_packs_catches_a_flipped_byte_in_a_blob() {
    let Fixture { env, two, .. } = damaged_fixture();
    let (pack, offset, pack_id) = pack_of(&env, &two.join("r1.bin"));
    flip_byte(&pack, offset as usize + 100);
    // A pack without parity (one its parity could rebuild stops the repair: tested above).
    fs::remove_file(repo_file(&env.repo, FileType::Parity, &pack_id.to_hex())).unwrap();

    // The TOC is intact: a TOC-only rebuild indexes the pack (check --read-data finds it).
    let r = env.json(&["repair", "index"]);
    assert!(r["unreadable"].as_array().unwrap().is_empty());

    let out = env.run(&["--json", "repair", "index", "--read-all-packs"]).code(4);
    let r = out.json();
    let unreadable = r["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1, "{r}");
    assert_eq!(unreadable[0]["pack"], pack_id.to_hex());
    assert!(unreadable[0]["error"].as_str().unwrap().contains("does not match its name"), "{r}");
    let info = env.info();
    assert_eq!(n(&r["packs"]), n(&info["packs"]));
}

// ---- repair snapshots ---------------------------------------------------------------------------

/// Files below `src` (relative) whose content has a chunk in `pack`.
fn files_in_pack(env: &Env, src: &Path, pack: &Id) -> BTreeSet<String> {
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let root = repo.find_snapshot("latest").unwrap().1.tree;
    let mut out = BTreeSet::new();
    for rel in file_list(src) {
        let node = arca::restore::resolve(&repo, &index, root, src.join(&rel).to_str().unwrap()).unwrap();
        if let NodeKind::File { content, .. } = node.kind {
            if content.iter().any(|c| index.lookup(BlobType::Data, &c.id).unwrap().pack == *pack) {
                out.insert(rel);
            }
        }
    }
    out
}

#[test]
fn repair_snapshots_cuts_the_files_of_a_deleted_pack_and_keeps_the_rest_byte_for_byte() {
    let Fixture { env, one, two, snap_one: first, snap_two: damaged } = damaged_fixture();
    let (gone, _, gone_id) = pack_of(&env, &two.join("r2.bin"));
    let hit = files_in_pack(&env, &two, &gone_id);
    assert!(hit.contains("r2.bin") && hit.len() < file_list(&two).len(), "{hit:?}");
    fs::remove_file(&gone).unwrap();

    // The index still names the pack: repair index must come first.
    let out = env.run(&["repair", "snapshots"]).code(4);
    assert!(out.stderr.contains("repair index"), "{}", out.stderr);
    env.run(&["repair", "index"]).ok();

    // A dry run names the cuts and writes nothing.
    let before = snapshot_files(&env);
    let out = env.run(&["repair", "snapshots", "--dry-run"]).ok();
    for f in &hit {
        assert!(out.text().contains(two.join(f).to_str().unwrap()), "{}", out.text());
    }
    assert!(out.text().contains("would repair 1 snapshot, 1 intact"), "{}", out.text());
    assert_eq!(snapshot_files(&env), before);

    let r = env.json(&["repair", "snapshots"]);
    let repaired = r["repaired"].as_array().unwrap();
    assert_eq!(repaired.len(), 1, "{r}");
    assert_eq!(repaired[0]["old"], damaged);
    assert_eq!(n(&r["intact"]), 1);
    let new = repaired[0]["new"].as_str().unwrap().to_string();
    let cut: BTreeSet<String> = repaired[0]["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["kind"], "file_content");
            c["path"].as_str().unwrap().strip_prefix(&format!("{}/", two.display())).unwrap().to_string()
        })
        .collect();
    assert_eq!(cut, hit);
    let all = snapshots(&env);
    assert!(all.contains_key(&damaged), "without --forget the original stays");
    assert!(all.contains_key(&first), "an intact snapshot is not rewritten");
    assert_eq!(tags(&all[&new]), ["repaired"]);
    assert_eq!(all[&new]["original"], damaged);

    // Intact files restore byte for byte; cut files keep what survived.
    let t = env.path("t");
    env.restore(&sref(&new, &two), &t, &[]);
    for rel in file_list(&two) {
        let (a, b) = (fs::read(two.join(&rel)).unwrap(), fs::read(t.join(&rel)).unwrap());
        if hit.contains(&rel) {
            assert!(b.len() < a.len(), "{rel}: the lost chunks are dropped");
        } else {
            assert_eq!(a, b, "{rel}");
        }
    }
    restores_identically(&env, &first, &one, "t1");

    // --forget: the same replacement is found (not written twice) and the original removed.
    let r = env.json(&["repair", "snapshots", "--forget"]);
    assert_eq!(r["repaired"][0]["new"], new.as_str());
    assert_eq!(r["repaired"][0]["forgotten"], true);
    let files = snapshot_files(&env);
    assert!(!files.contains(&damaged) && files.contains(&new) && files.len() == 2);
    env.run(&["check"]).ok();
    let r = env.json(&["repair", "snapshots"]);
    assert!(r["repaired"].as_array().unwrap().is_empty() && n(&r["intact"]) == 2);
}

#[test]
fn repair_snapshots_empties_a_directory_whose_tree_is_damaged() {
    let Fixture { env, one, snap_one: first, .. } = damaged_fixture();
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let root = repo.load_snapshot(&Id::from_hex(&first).unwrap()).unwrap().tree;
    let docs = one.join("docs");
    let node = arca::restore::resolve(&repo, &index, root, docs.to_str().unwrap()).unwrap();
    let NodeKind::Dir { subtree } = node.kind else { panic!("not a dir") };
    let loc = index.lookup(BlobType::Tree, &subtree).unwrap();
    flip_byte(&repo_file(&env.repo, FileType::Pack, &loc.pack.to_hex()), loc.offset as usize + 30);

    let out = env.run(&["repair", "snapshots", "--forget", &first]).ok();
    let text = out.text();
    assert!(text.contains(&format!("dir  {}: unreadable, now empty", docs.display())), "{text}");
    assert!(text.contains(&format!("removed damaged snapshot {}", &first[..8])), "{text}");
    let new = snapshots(&env).into_iter().find(|(_, s)| s["original"] == first.as_str()).unwrap().0;
    env.run(&["check"]).ok();

    // Everything but the emptied directory restores as it was backed up.
    let t = env.path("t");
    env.restore(&sref(&new, &one), &t, &[]);
    assert!(fs::read_dir(t.join("docs")).unwrap().next().is_none(), "docs is empty");
    fs::remove_dir(t.join("docs")).unwrap();
    let expected = env.path("expected");
    copy_tree_without(&one, &expected, "docs");
    assert_same_tree(&expected, &t, Cmp { root_meta: false, mtime: false });
    for rel in file_list(&t) {
        assert_eq!(fs::read(one.join(&rel)).unwrap(), fs::read(t.join(&rel)).unwrap(), "{rel}");
    }
}

/// Copy `src` to `dst` (files and directories, contents and modes), leaving out `skip`.
fn copy_tree_without(src: &Path, dst: &Path, skip: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_name() == skip {
            continue;
        }
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let m = fs::symlink_metadata(&from).unwrap();
        if m.is_dir() {
            copy_tree_without(&from, &to, "");
        } else {
            fs::copy(&from, &to).unwrap();
        }
        fs::set_permissions(&to, fs::Permissions::from_mode(m.permissions().mode())).unwrap();
    }
}
