//! Prune (format-spec/17-consistency.md §17.7), adoption of unindexed packs (§17.6) and lock
//! freshness (§17.5): space is reclaimed, nothing a snapshot needs is ever lost — also after a
//! crash at every step and with real backups running at the same time.

use crate::common::*;
use arca::backend::FileType;
use arca::lifecycle::prune::{self, PruneOptions, Step};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Write version `v` of a 24-file tree: files `0..changed(v)` depend on the version, the rest
/// never change. Every file is 200 KiB of seeded random data (several chunks each).
fn write_version(dir: &Path, v: u64) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..24u64 {
        let seed = if i < 12 { 1000 * (v + 1) + i } else { i };
        write_random_file(&dir.join(format!("f{i:02}")), seed, 200 << 10);
    }
}

/// Content hash of every regular file below `dir`, by relative path.
fn contents(dir: &Path) -> BTreeMap<String, [u8; 32]> {
    file_list(dir).into_iter().map(|rel| (rel.clone(), hash_file(&dir.join(&rel)))).collect()
}

/// A repository with 1 MiB packs (so a backup writes several).
fn small_pack_env() -> Env {
    let env = Env::bare();
    env.run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
    env
}

/// Total bytes of the repository's packs.
fn pack_bytes(env: &Env) -> u64 {
    use arca::backend::Backend;
    arca::backend::local::LocalBackend::new(&env.repo).list(FileType::Pack).unwrap().iter().map(|(_, l)| l).sum()
}

/// Remove a snapshot file directly (what `forget` does, without depending on it).
fn drop_snapshot(env: &Env, id: &str) {
    remove_as_writer(&env.repo, FileType::Snapshot, id);
}

/// Restore snapshot `id` and require it to equal version `v` of the tree at `src`.
fn assert_restores_version(env: &Env, id: &str, src: &Path, v: u64) {
    let expect = env.path(&format!("expect-{v}"));
    if !expect.exists() {
        write_version(&expect, v);
    }
    let out = env.path(&format!("out-{}", &id[..8]));
    let _ = fs::remove_dir_all(&out);
    env.restore(&sref(id, src), &out, &[]);
    assert_eq!(contents(&out), contents(&expect), "snapshot {id} vs version {v}");
}

/// Back up versions 0..n of the tree at `src`; returns the snapshot IDs.
fn backup_versions(env: &Env, src: &Path, versions: std::ops::Range<u64>) -> Vec<String> {
    versions
        .map(|v| {
            write_version(src, v);
            env.backup(&[src], &[])["snapshot"].as_str().unwrap().to_string()
        })
        .collect()
}

/// `arca check` must find no errors (warnings are allowed).
fn assert_check_ok(env: &Env) {
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(out.code, 0, "check failed:\n{}", out.all());
}

fn prune_json(env: &Env, extra: &[&str]) -> Value {
    let mut a = vec!["prune"];
    a.extend_from_slice(extra);
    env.json(&a)
}

#[test]
fn prune_reclaims_forgotten_data_and_the_rest_restores() {
    let env = small_pack_env();
    let src = env.path("src");
    let ids = backup_versions(&env, &src, 0..3);
    drop_snapshot(&env, &ids[0]);
    drop_snapshot(&env, &ids[1]);
    let before = pack_bytes(&env);
    let dry = prune_json(&env, &["--dry-run"]);
    assert!(dry["done"].is_null());
    assert_eq!(pack_bytes(&env), before, "a dry run changes nothing");
    assert!(dry["plan"]["freed_bytes"].as_u64().unwrap() > 0, "{dry}");
    let done = prune_json(&env, &[]);
    assert!(done["done"]["packs_removed"].as_u64().unwrap() > 0, "{done}");
    assert_check_ok(&env);
    assert_restores_version(&env, &ids[2], &src, 2);
    // Within 5% (the default --max-unused) of a fresh backup of what is kept.
    let fresh = small_pack_env();
    fresh.backup(&[&src], &[]);
    let (after, want) = (pack_bytes(&env), pack_bytes(&fresh));
    assert!(after as f64 <= want as f64 * 1.05, "after prune {after} B, a fresh backup {want} B");
    // A second prune finds nothing to do.
    let again = prune_json(&env, &[]);
    assert!(again["done"].is_null(), "{again}");
}

/// The kept 300 KiB file `e` of [`straddling_versions`].
fn extra_file(dir: &Path) {
    write_random_file(&dir.join("e"), 77, 300 << 10);
}

/// Two versions of `src` backed up so that packs are certain to hold both replaced and kept
/// data (see `max_unused_zero_repacks_every_partly_used_pack`).
fn straddling_versions(env: &Env, src: &Path) -> Vec<String> {
    (0..2)
        .map(|v| {
            write_version(src, v);
            extra_file(src);
            let out =
                env.cmd().env("RAYON_NUM_THREADS", "1").args(["--json", "backup", src.to_str().unwrap()]).output();
            Out::from(out.unwrap()).ok().json()["snapshot"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn max_unused_zero_repacks_every_partly_used_pack() {
    let env = small_pack_env();
    let src = env.path("src");
    // One backup of 24 files, then half of them replaced: their chunks share packs with kept ones.
    // Made certain: one CPU worker packs the blobs in name order, and a kept 300 KiB file `e`
    // comes first, so the 200 KiB files straddle pack ends (a 1 MiB pack closes once it is
    // full: e + f00–f03, f04–f09, f10–f15, …): f00–f03 and f10–f11 share packs with kept data.
    let ids = straddling_versions(&env, &src);
    write_version(&env.path("expect-1"), 1);
    extra_file(&env.path("expect-1"));
    drop_snapshot(&env, &ids[0]);
    let plan = prune_json(&env, &["--dry-run", "--max-unused", "unlimited"]);
    assert_eq!(plan["plan"]["repack_packs"], 0, "unlimited repacks nothing: {plan}");
    let done = prune_json(&env, &["--max-unused", "0"]);
    let p = &done["plan"];
    assert!(p["repack_packs"].as_u64().unwrap() > 0, "{done}");
    // Everything that is left is used (TOCs and trailers aside).
    let left = prune_json(&env, &["--dry-run", "--max-unused", "0"]);
    assert_eq!(left["plan"]["repack_packs"], 0, "{left}");
    assert_eq!(left["plan"]["delete_packs"], 0, "{left}");
    assert_check_ok(&env);
    assert_restores_version(&env, &ids[1], &src, 1);
}

#[test]
fn max_repack_size_caps_the_bytes_read() {
    let env = small_pack_env();
    let src = env.path("src");
    // Packs that mix replaced and kept data, whatever the parallel packers would have done.
    let ids = straddling_versions(&env, &src);
    drop_snapshot(&env, &ids[0]);
    let all = prune_json(&env, &["--dry-run", "--max-unused", "0"]);
    let cap = 1u64 << 20;
    let capped = prune_json(&env, &["--dry-run", "--max-unused", "0", "--max-repack-size", "1M"]);
    assert!(all["plan"]["repack_bytes"].as_u64().unwrap() > cap, "{all}");
    assert!(capped["plan"]["repack_bytes"].as_u64().unwrap() <= cap, "{capped}");
}

#[test]
fn bad_prune_options_are_usage_errors() {
    let env = Env::new();
    for bad in
        [["--max-unused", "101%"], ["--max-unused", "5x"], ["--max-repack-size", "-1"], ["--max-repack-size", "3Q"]]
    {
        let out = env.run(&["prune", bad[0], bad[1]]);
        assert_eq!(out.code, 2, "{bad:?}: {}", out.all());
    }
}

/// Every file of the repository, with its length (to prove nothing changed).
fn all_files(env: &Env) -> Vec<(String, u64)> {
    use arca::backend::Backend;
    let b = arca::backend::local::LocalBackend::new(&env.repo);
    let mut out = Vec::new();
    for t in [FileType::Pack, FileType::Index, FileType::Snapshot] {
        out.extend(b.list(t).unwrap().into_iter().map(|(n, l)| (format!("{t:?}/{n}"), l)));
    }
    out.sort();
    out
}

#[test]
fn prune_stops_before_deleting_when_a_snapshot_needs_what_is_missing() {
    let env = small_pack_env();
    let src = env.path("src");
    let ids = backup_versions(&env, &src, 0..2);
    drop_snapshot(&env, &ids[0]);
    // An index file that is damaged: prune must not decide on a partial index.
    let index_files = repo_files(&env.repo, FileType::Index);
    let victim = repo_file(&env.repo, FileType::Index, &index_files[0]);
    let saved = fs::read(&victim).unwrap();
    flip_byte(&victim, saved.len() - 5);
    let before = all_files(&env);
    let out = env.run(&["prune"]);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("deleted nothing"), "{}", out.stderr);
    assert_eq!(all_files(&env), before);
    write_over(&victim, &saved);

    // The index lists a pack that a snapshot needs, and the pack is gone: the pack holding the
    // first chunk of a file only the remaining snapshot has (any large pack will not do: one
    // may hold only chunks of the dropped snapshot, depending on how the backup filled packs).
    let gone = {
        let repo = env.open();
        let index = repo.load_index().unwrap();
        let root = repo.find_snapshot(&ids[1]).unwrap().1.tree;
        let node = arca::restore::resolve(&repo, &index, root, src.join("f00").to_str().unwrap()).unwrap();
        let arca::format::tree::NodeKind::File { content, .. } = node.kind else { panic!("f00 is not a file") };
        index.lookup(arca::format::blob::BlobType::Data, &content[0].id).unwrap().pack.to_hex()
    };
    let gone = &gone;
    let path = repo_file(&env.repo, FileType::Pack, gone);
    let bytes = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    let before = all_files(&env);
    let out = env.run(&["prune"]);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains(&gone[..16]) || out.stderr.contains(&gone[..8]), "names the pack: {}", out.stderr);
    assert_eq!(all_files(&env), before);
    fs::write(&path, bytes).unwrap();

    // A snapshot needs a blob no index lists (its index file was removed).
    for f in repo_files(&env.repo, FileType::Index) {
        remove_as_writer(&env.repo, FileType::Index, &f);
    }
    let before = all_files(&env);
    let out = env.run(&["prune"]);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains(&format!("snapshot {}", &ids[1][..8])), "names the snapshot: {}", out.stderr);
    assert_eq!(all_files(&env), before);
}

/// A repository with an unindexed pack too (an interrupted backup's) and a forgotten snapshot:
/// every kind of removal prune does.
fn crash_scene() -> (Env, std::path::PathBuf, Vec<String>) {
    let env = small_pack_env();
    let src = env.path("src");
    let ids = backup_versions(&env, &src, 0..3);
    drop_snapshot(&env, &ids[0]);
    // Version 9's packs, published but never indexed: like a backup killed before its index.
    write_version(&src, 9);
    let index_before: Vec<String> = repo_files(&env.repo, FileType::Index);
    let snap = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    drop_snapshot(&env, &snap);
    for f in repo_files(&env.repo, FileType::Index) {
        if !index_before.contains(&f) {
            remove_as_writer(&env.repo, FileType::Index, &f);
        }
    }
    write_version(&src, 2);
    (env, src, ids)
}

#[test]
fn a_prune_killed_after_any_step_leaves_a_consistent_repository() {
    for step in Step::ALL {
        let (env, src, ids) = crash_scene();
        let out = env
            .cmd()
            .env("ARCA_TEST_PRUNE_CRASH_AFTER", step.name())
            .args(["prune", "--max-unused", "0"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{step:?}: the hook aborts the process");
        // The crashed prune's lock is stale (its process is gone), so nothing waits for it.
        let check = env.run(&["check", "--read-data", "--retry-lock", "0"]);
        assert_eq!(check.code, 0, "after a crash at {step:?}:\n{}", check.all());
        assert_restores_version(&env, &ids[1], &src, 1);
        assert_restores_version(&env, &ids[2], &src, 2);
        // Running prune again finishes the job.
        prune_json(&env, &["--max-unused", "0", "--retry-lock", "0"]);
        assert_check_ok(&env);
        let left = prune_json(&env, &["--dry-run", "--max-unused", "0"]);
        assert_eq!(left["plan"]["unindexed_packs"], 0, "{step:?}: {left}");
        assert_eq!(left["plan"]["delete_packs"], 0, "{step:?}: {left}");
        assert_eq!(left["plan"]["repack_packs"], 0, "{step:?}: {left}");
        assert_restores_version(&env, &ids[2], &src, 2);
    }
}

#[test]
fn a_backup_adopts_the_packs_an_interrupted_backup_left() {
    let env = small_pack_env();
    let src = env.path("src");
    write_version(&src, 0);
    // The interrupted backup: its packs are published, its index and snapshot never were.
    let snap = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    drop_snapshot(&env, &snap);
    for f in repo_files(&env.repo, FileType::Index) {
        remove_as_writer(&env.repo, FileType::Index, &f);
    }
    // One of them is damaged (a flipped byte in a blob): it must not be adopted, or new
    // snapshots would deduplicate against the damaged blob.
    let packs = repo_files(&env.repo, FileType::Pack);
    let damaged = repo_file(&env.repo, FileType::Pack, &packs[0]);
    flip_byte(&damaged, 100);
    let stored = pack_bytes(&env);
    let check = env.run(&["check"]);
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(check.all().contains("adopts"), "check says what happens to them: {}", check.all());
    let again = env.backup(&[&src], &[]);
    assert_eq!(again["adopted_packs"].as_u64().unwrap() as usize, packs.len() - 1, "{again}");
    // Only what the damaged pack held is stored again (and the root tree, whose parent
    // directories' times change while tests run): about one pack of 1 MiB, not 4.8 MiB.
    let added = again["summary"]["bytes_added"].as_u64().unwrap();
    assert!(added < 1_500_000, "every other chunk was adopted, not stored again: {again}");
    assert!(pack_bytes(&env) < stored + 1_600_000);
    let check = env.run(&["check", "--read-data"]);
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(check.all().contains(&packs[0][..16]), "only the damaged pack is left unindexed: {}", check.all());
    assert_restores_version(&env, again["snapshot"].as_str().unwrap(), &src, 0);
}

#[test]
fn a_backup_killed_at_random_is_resumed_not_repeated() {
    let env = small_pack_env();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..40u64 {
        write_random_file(&src.join(format!("big{i:02}")), 77 + i, 1 << 20);
    }
    let mut proc = arca_std_cmd();
    proc.env("ARCA_REPOSITORY", &env.repo).env("ARCA_PASSWORD", PASSWORD).args(["backup", "-q", src.to_str().unwrap()]);
    let mut running = proc.spawn().unwrap();
    // Kill it once some packs are published (or when it finishes first, on a fast machine).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while repo_files(&env.repo, FileType::Pack).len() < 12 && std::time::Instant::now() < deadline {
        if running.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = running.kill();
    let _ = running.wait();
    env.backup(&[&src], &[]);
    let fresh = small_pack_env();
    fresh.backup(&[&src], &[]);
    let (resumed, want) = (pack_bytes(&env), pack_bytes(&fresh));
    assert!(resumed as f64 <= want as f64 * 1.03, "resumed {resumed} B vs uninterrupted {want} B");
    assert_check_ok(&env);
}

#[test]
fn backups_running_during_prune_lose_nothing() {
    let env = small_pack_env();
    let src = env.path("src");
    let ids = backup_versions(&env, &src, 0..2);
    drop_snapshot(&env, &ids[0]);
    // While prune repacks (shared lock), a backup of version 0 runs: it deduplicates against
    // the chunks of the forgotten snapshot, which prune planned to delete. Prune's commit waits
    // for it, and must keep those packs.
    write_version(&src, 0);
    let mut proc = arca_std_cmd();
    proc.env("ARCA_REPOSITORY", &env.repo).env("ARCA_PASSWORD", PASSWORD).args([
        "--json",
        "backup",
        src.to_str().unwrap(),
    ]);
    proc.stdout(std::process::Stdio::piped());
    let spawned: Arc<std::sync::Mutex<Option<std::process::Child>>> = Arc::default();
    let slot = spawned.clone();
    let proc = std::sync::Mutex::new(proc);
    let hook: prune::StepHook = Arc::new(move |s| {
        if s == Step::Plan {
            // Started now and finished before prune commits: its snapshot is new at reconcile.
            let out = proc.lock().unwrap().output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        if s == Step::IndexRepacks {
            // Started and still running when prune asks for the exclusive lock.
            *slot.lock().unwrap() = Some(proc.lock().unwrap().spawn().unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    });
    let repo = env.open();
    let opts = PruneOptions {
        max_unused: prune::MaxUnused::Percent(0.0),
        retry_lock: Duration::from_secs(60),
        after_step: Some(hook),
        ..PruneOptions::default()
    };
    let progress = prune::Progress::default();
    let shared = repo.lock(false).unwrap();
    let plan = prune::plan(&repo, &opts, &progress).unwrap();
    assert!(plan.stats.delete_packs + plan.stats.repack_packs > 0, "the forgotten version is planned away");
    let report = plan.execute(&repo, shared, &progress).unwrap();
    let child = spawned.lock().unwrap().take().unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert!(report.snapshots_added_meanwhile >= 1, "{report:?}");
    assert!(report.packs_rescued > 0, "the new snapshots needed planned removals: {report:?}");
    assert_check_ok(&env);
    let list = env.json(&["snapshots"]);
    let snaps = list.as_array().unwrap_or_else(|| list["snapshots"].as_array().unwrap());
    assert_eq!(snaps.len(), 3, "{list}");
    for s in snaps {
        let id = s["id"].as_str().unwrap();
        let v = if id == ids[1] { 1 } else { 0 };
        assert_restores_version(&env, id, &src, v);
    }
}

#[test]
fn backups_and_prunes_in_parallel_processes_lose_nothing() {
    let env = small_pack_env();
    let src_a = env.path("a");
    let src_b = env.path("b");
    write_version(&src_a, 0);
    write_version(&src_b, 1);
    env.backup(&[&src_a], &[]);
    // Two processes back up fixed trees six times each, with pauses, while the test drops
    // snapshots and prunes; every prune waits for the backups it meets (they do not starve it
    // here because they pause), and nothing any snapshot needs may be lost.
    let workers: Vec<_> = [src_a.clone(), src_b.clone()]
        .into_iter()
        .map(|src| {
            let repo = env.repo.clone();
            std::thread::spawn(move || {
                for _ in 0..6 {
                    let out = arca_std_cmd()
                        .env("ARCA_REPOSITORY", &repo)
                        .env("ARCA_PASSWORD", PASSWORD)
                        .args(["backup", "-q", "--force", "--retry-lock", "60s", src.to_str().unwrap()])
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                    std::thread::sleep(Duration::from_millis(150));
                }
            })
        })
        .collect();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(200));
        // Drop all but the newest two snapshots, then prune everything unused.
        let list = env.json(&["snapshots"]);
        let snaps = list.as_array().cloned().unwrap_or_default();
        for s in snaps.iter().rev().skip(2) {
            let _ = fs::remove_file(repo_file(&env.repo, FileType::Parity, s["id"].as_str().unwrap()));
            let _ = fs::remove_file(repo_file(&env.repo, FileType::Snapshot, s["id"].as_str().unwrap()));
        }
        let out = env.run(&["prune", "--max-unused", "0", "--retry-lock", "60s"]);
        assert_eq!(out.code, 0, "{}", out.all());
    }
    for w in workers {
        w.join().unwrap();
    }
    assert_check_ok(&env);
    let list = env.json(&["snapshots"]);
    for s in list.as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        let path = s["paths"][0].as_str().unwrap();
        let (src, v) = if path.ends_with("/a") { (&src_a, 0) } else { (&src_b, 1) };
        assert_restores_version(&env, id, src, v);
    }
}

#[test]
fn packs_a_new_index_file_names_are_kept_and_split_records_survive() {
    let env = small_pack_env();
    let src = env.path("src");
    let ids = backup_versions(&env, &src, 0..3);
    drop_snapshot(&env, &ids[0]);
    let repo = env.open();
    // Split one kept pack's record over two index files (valid: §10.1 only describes the
    // reference writer), so the pack is named twice with different entries.
    let files = repo.index_ids().unwrap();
    let mut records: Vec<_> = files.iter().flat_map(|f| repo.load_index_file(f).unwrap()).collect();
    let big = records.iter().position(|r| r.blobs.len() >= 4).unwrap();
    let mut second = records[big].clone();
    let half = second.blobs.len() / 2;
    second.blobs.drain(..half);
    records[big].blobs.truncate(half);
    repo.save_index(&records).unwrap();
    repo.save_index(&[second]).unwrap();
    for f in &files {
        remove_as_writer(&env.repo, FileType::Index, &f.to_hex());
    }
    assert_check_ok(&env);
    // While prune repacks, an interrupted prune or repair's leftover: a new index file that
    // names every pack again, including those this prune plans to remove.
    let all = records.clone();
    let writer = env.open();
    let hook: prune::StepHook = Arc::new(move |s| {
        if s == Step::IndexRepacks {
            writer.save_index(&all).unwrap();
        }
        Ok(())
    });
    let opts =
        PruneOptions { max_unused: prune::MaxUnused::Percent(0.0), after_step: Some(hook), ..PruneOptions::default() };
    let progress = prune::Progress::default();
    let shared = repo.lock(false).unwrap();
    let plan = prune::plan(&repo, &opts, &progress).unwrap();
    assert!(plan.stats.delete_packs + plan.stats.repack_packs > 0, "{:?}", plan.stats);
    let report = plan.execute(&repo, shared, &progress).unwrap();
    assert!(report.packs_rescued > 0, "{report:?}");
    // Every index file names only packs that exist, and every blob is still indexed.
    assert_check_ok(&env);
    assert_restores_version(&env, &ids[1], &src, 1);
    assert_restores_version(&env, &ids[2], &src, 2);
    prune_json(&env, &["--max-unused", "0"]);
    assert_check_ok(&env);
    assert_restores_version(&env, &ids[2], &src, 2);
}

#[test]
fn a_lock_not_refreshed_for_25_minutes_may_not_commit() {
    let (_env, repo) = Env::with_lib_repo();
    let lock = repo.lock(false).unwrap();
    lock.ensure_fresh().unwrap();
    lock.backdate(Duration::from_secs(24 * 60));
    lock.ensure_fresh().unwrap();
    lock.backdate(Duration::from_secs(2 * 60));
    assert!(matches!(lock.ensure_fresh(), Err(arca::Error::Locked(_))));
    // A refresh after the lapse (the process woke up) must not revive it: a prune may have
    // treated it as stale meanwhile.
    let handle = lock.freshness();
    lock.refresh_now();
    std::thread::sleep(Duration::from_millis(300));
    assert!(handle.ensure().is_err(), "an expired lock stays expired after a refresh");
    // A lock refreshed in time is fresh again: 20 minutes old, refreshed, then 6 more minutes.
    let other = repo.lock(false).unwrap();
    other.backdate(Duration::from_secs(20 * 60));
    other.refresh_now();
    std::thread::sleep(Duration::from_millis(500));
    other.backdate(Duration::from_secs(6 * 60));
    assert!(other.ensure_fresh().is_ok(), "the refresh reset the clock");
}

#[test]
fn a_backup_waits_for_an_exclusive_lock_instead_of_failing() {
    let env = Env::new();
    let src = env.path("src");
    write_version(&src, 0);
    let repo = env.open();
    let exclusive = repo.lock(true).unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(exclusive);
    });
    let out = env.run(&["backup", "--retry-lock", "1m", src.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("waiting"), "says why it waits: {}", out.stderr);
    releaser.join().unwrap();
    let out = env.run(&["backup", "--retry-lock", "0", src.to_str().unwrap()]);
    assert_eq!(out.code, 0, "no lock is left: {}", out.all());
}

/// The real local backend, except that pack writes fail with "no space left on device" once
/// `budget` bytes have been written: a disk that fills up during repacking.
struct FullDisk {
    inner: arca::backend::local::LocalBackend,
    budget: Arc<std::sync::atomic::AtomicI64>,
}

struct FullFile {
    inner: Box<dyn arca::backend::StagedFile>,
    budget: Arc<std::sync::atomic::AtomicI64>,
}

impl std::io::Write for FullFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.budget.fetch_sub(buf.len() as i64, std::sync::atomic::Ordering::SeqCst) < buf.len() as i64 {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl arca::backend::StagedFile for FullFile {
    fn publish(self: Box<Self>, name: &str) -> arca::Result<()> {
        self.inner.publish(name)
    }
}

impl arca::backend::Backend for FullDisk {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> arca::Result<()> {
        self.inner.create()
    }
    fn exists(&self, t: FileType, name: &str) -> arca::Result<bool> {
        self.inner.exists(t, name)
    }
    fn read(&self, t: FileType, name: &str) -> arca::Result<Vec<u8>> {
        self.inner.read(t, name)
    }
    fn read_at(&self, t: FileType, name: &str, offset: u64, len: usize) -> arca::Result<Vec<u8>> {
        self.inner.read_at(t, name, offset, len)
    }
    fn write(&self, t: FileType, name: &str, bytes: &[u8]) -> arca::Result<()> {
        self.inner.write(t, name, bytes)
    }
    fn replace(&self, t: FileType, name: &str, bytes: &[u8]) -> arca::Result<()> {
        self.inner.replace(t, name, bytes)
    }
    fn stage(&self, t: FileType) -> arca::Result<Box<dyn arca::backend::StagedFile>> {
        let inner = self.inner.stage(t)?;
        Ok(Box::new(FullFile { inner, budget: self.budget.clone() }))
    }
    fn list(&self, t: FileType) -> arca::Result<Vec<(String, u64)>> {
        self.inner.list(t)
    }
    fn remove(&self, t: FileType, name: &str) -> arca::Result<()> {
        self.inner.remove(t, name)
    }
}

#[test]
fn a_full_disk_during_repack_loses_nothing() {
    // Which packs end up partly used depends on how the parallel backups filled them: a fresh
    // repository is tried again (rarely needed) until one pack is partly used.
    let (env, src, ids, repo, budget, plan, shared, before) = (0..5)
        .find_map(|_| {
            let env = small_pack_env();
            let src = env.path("src");
            let ids = backup_versions(&env, &src, 0..3);
            drop_snapshot(&env, &ids[0]);
            let before = all_files(&env);
            let budget = Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
            let inner = arca::backend::local::LocalBackend::new(&env.repo);
            let backend = Arc::new(FullDisk { inner, budget: budget.clone() });
            let repo = arca::repo::Repository::open(backend, PASSWORD.as_bytes()).unwrap();
            let opts = PruneOptions { max_unused: prune::MaxUnused::Percent(0.0), ..PruneOptions::default() };
            let shared = repo.lock(false).unwrap();
            let plan = prune::plan(&repo, &opts, &prune::Progress::default()).unwrap();
            (plan.stats.repack_packs >= 1).then_some((env, src, ids, repo, budget, plan, shared, before))
        })
        .expect("a partly used pack in one of five repositories");
    let progress = prune::Progress::default();
    // Room for half of what the repack writes: it fails part way.
    budget.store((plan.stats.repack_used_bytes / 2) as i64, std::sync::atomic::Ordering::SeqCst);
    let err = plan.execute(&repo, shared, &progress).unwrap_err();
    assert!(err.to_string().contains("No space left") || err.to_string().contains("os error 28"), "{err}");
    // Nothing was removed; at most a published new pack is left over, unindexed.
    let after = all_files(&env);
    assert!(before.iter().all(|f| after.contains(f)), "every file that was there is still there");
    assert!(after.iter().all(|(n, _)| n.starts_with("Pack/") || before.iter().any(|(b, _)| b == n)));
    assert_check_ok(&env);
    assert_restores_version(&env, &ids[1], &src, 1);
    assert_restores_version(&env, &ids[2], &src, 2);
    // With space again, prune finishes.
    prune_json(&env, &["--max-unused", "0"]);
    assert_check_ok(&env);
    assert_restores_version(&env, &ids[2], &src, 2);
}

#[test]
fn forget_with_prune_frees_the_space_in_one_command() {
    let env = small_pack_env();
    let src = env.path("src");
    let ids = backup_versions(&env, &src, 0..3);
    let before = pack_bytes(&env);
    let dry = env.run(&["forget", "--keep-last", "1", "--prune", "--dry-run"]).ok();
    assert!(dry.text().contains("would free"), "{}", dry.text());
    assert_eq!(pack_bytes(&env), before, "a dry run changes nothing");
    assert_eq!(repo_files(&env.repo, FileType::Snapshot).len(), 3);
    let out = env.run(&["forget", "--keep-last", "1", "--prune"]).ok();
    assert!(out.text().contains("removed"), "{}", out.text());
    assert_eq!(repo_files(&env.repo, FileType::Snapshot), vec![ids[2].clone()]);
    assert!(pack_bytes(&env) < before * 2 / 3, "{} of {before} B left", pack_bytes(&env));
    assert_check_ok(&env);
    assert_restores_version(&env, &ids[2], &src, 2);
}
