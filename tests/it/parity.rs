//! Parity and self-healing (format-spec/22-parity.md): every fault class is injected into a real
//! repository and `arca repair packs` must bring every file back byte for byte; what cannot be
//! repaired is named and left untouched; a forged parity file never makes repair write wrong
//! bytes; prune, forget and `parity build` keep parity in step, also beside running backups.

use crate::common::*;
use arca::backend::FileType;
use arca::format::header::FileKind;
use arca::format::parity as fparity;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A repository of 1 MiB packs (parity at the default 5%: 11 recovery shards of 4 KiB per pack)
/// holding one backup of about 6 MiB in 40 files.
fn scene() -> (Env, PathBuf) {
    let env = Env::bare();
    env.run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
    let src = env.mkdir("src");
    for i in 0..40u64 {
        write_random_file(&src.join(format!("f{i:02}")), 7000 + i, 20_000 + i * 7_000);
    }
    env.backup(&[&src], &[]);
    (env, src)
}

/// Every pack, index file, snapshot and parity file, by path in the repository.
fn files(repo: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for t in [FileType::Pack, FileType::Index, FileType::Snapshot, FileType::Parity] {
        for name in repo_files(repo, t) {
            let p = repo_file(repo, t, &name);
            out.insert(p.strip_prefix(repo).unwrap().display().to_string(), fs::read(&p).unwrap());
        }
    }
    out
}

/// The packs, largest first (which packs the parallel backup fills varies from run to run).
fn packs(env: &Env) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> =
        repo_files(&env.repo, FileType::Pack).iter().map(|n| repo_file(&env.repo, FileType::Pack, n)).collect();
    all.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    all
}

/// The geometry of a file's parity.
fn geometry_of(env: &Env, name: &str) -> fparity::Geometry {
    let bytes = fs::read(repo_file(&env.repo, FileType::Parity, name)).unwrap();
    fparity::Fixed::decode(&bytes, "test").unwrap().geometry
}

/// `m`, the recovery shards per segment of a file's parity.
fn recovery_of(env: &Env, name: &str) -> u32 {
    geometry_of(env, name).recovery
}

fn bytes_at(path: &Path, offset: usize, new: &[u8]) {
    let mut b = fs::read(path).unwrap();
    b[offset..offset + new.len()].copy_from_slice(new);
    write_over(path, &b);
}

/// `repair packs` succeeds, rebuilds `n` files, and the repository is as it was, byte for byte,
/// and checks clean.
fn assert_healed(env: &Env, before: &BTreeMap<String, Vec<u8>>, n: usize) -> Value {
    let r = env.run(&["--json", "repair", "packs"]).ok().json();
    assert_eq!(r["repaired"].as_array().unwrap().len(), n, "{r}");
    assert!(r["unrepairable"].as_array().unwrap().is_empty(), "{r}");
    let after = files(&env.repo);
    for (k, v) in before {
        assert!(after.get(k) == Some(v), "{k} differs after repair");
    }
    assert_eq!(after.len(), before.len());
    env.run(&["check", "--read-data"]).ok();
    r
}

#[test]
fn bit_flips_in_every_pack_are_repaired_byte_identically() {
    let (env, _) = scene();
    let before = files(&env.repo);
    let all = packs(&env);
    assert!(all.len() >= 5, "{} packs", all.len());
    for (i, p) in all.iter().enumerate() {
        let len = fs::metadata(p).unwrap().len() as usize;
        // As many flips as the pack has recovery shards, up to five, in distinct shards; one in
        // the trailer of the first pack.
        let name = p.file_name().unwrap().to_str().unwrap();
        let m = recovery_of(&env, name).min(5) as usize;
        let flips = if i == 0 { m - 1 } else { m };
        for j in 0..flips {
            flip_byte(p, (len / flips) * j + 97 * i % (len / flips / 2));
        }
        if i == 0 {
            flip_byte(p, len - 2);
        }
    }
    let check = env.run(&["--json", "check", "--read-data"]).code(8).json();
    let damaged = check["damaged_files"].as_array().unwrap();
    assert_eq!(damaged.len(), all.len(), "{check}");
    assert!(damaged.iter().all(|d| d["repairable"] == true), "{check}");
    assert_healed(&env, &before, all.len());
}

#[test]
fn a_zeroed_sector_and_a_truncated_tail_are_repaired() {
    let (env, _) = scene();
    let before = files(&env.repo);
    let all = packs(&env);
    for (i, p) in all.iter().enumerate() {
        let len = fs::metadata(p).unwrap().len() as usize;
        if i % 2 == 0 {
            // 4 KiB of zeros at an unaligned offset: two shards (a quarter of a small tree pack).
            bytes_at(p, len / 3 + 123.min(len / 8), &vec![0u8; 4096.min(len / 4)]);
        } else {
            // The tail lost (a torn write): 30 000 bytes, or less where the pack's parity has
            // fewer shards: a cut of (m − 1)·S bytes touches at most m shards.
            let name = p.file_name().unwrap().to_str().unwrap();
            let g = geometry_of(&env, name);
            let cut = 30_000.min((g.recovery as usize - 1) * g.shard as usize).max(1);
            let b = fs::read(p).unwrap();
            write_over(p, &b[..len - cut]);
        }
    }
    assert_healed(&env, &before, all.len());
}

#[test]
fn a_deleted_snapshot_comes_back_whole_and_a_deleted_index_file_is_rebuilt() {
    let (env, src) = scene();
    let before = files(&env.repo);
    let snaps = repo_files(&env.repo, FileType::Snapshot);
    fs::remove_file(repo_file(&env.repo, FileType::Snapshot, &snaps[0])).unwrap();
    // Lost, not removed: check says so (repairable: exit 8), and prune refuses to delete anything.
    let check = env.run(&["--json", "check"]).code(8).json();
    let d = &check["damaged_files"][0];
    assert_eq!(d["object"], format!("snapshot {}", snaps[0]), "{check}");
    assert_eq!(d["repairable"], true, "{check}");
    let prune = env.run(&["prune"]).code(4);
    assert!(prune.stderr.contains("prune deleted nothing"), "{}", prune.all());
    let r = assert_healed(&env, &before, 1);
    assert!(r["repaired"][0]["detail"].as_str().unwrap().contains("restored whole"), "{r}");

    // An index file's parity is at the pack overhead (a small one's is whole, by the one-sector
    // minimum): a lost large one is named, and rebuilt from the packs by `repair index`, which
    // also drops the lost file's parity.
    let many = env.mkdir("many");
    for i in 0..400u64 {
        write_random_file(&many.join(format!("m{i:03}")), 90_000 + i, 100);
    }
    let old = repo_files(&env.repo, FileType::Index);
    env.backup(&[&many], &[]);
    let index: Vec<String> = repo_files(&env.repo, FileType::Index).into_iter().filter(|n| !old.contains(n)).collect();
    fs::remove_file(repo_file(&env.repo, FileType::Index, &index[0])).unwrap();
    let check = env.run(&["--json", "check"]).code(4).json();
    let d = &check["damaged_files"][0];
    assert_eq!(
        (d["object"].as_str().unwrap(), &d["repairable"]),
        (format!("index {}", index[0]).as_str(), &Value::from(false)),
        "{check}"
    );
    env.run(&["prune"]).code(4);
    let out = env.run(&["repair", "packs"]).code(4);
    assert!(out.all().contains("repair index"), "{}", out.all());
    env.run(&["repair", "index"]).ok();
    env.run(&["check", "--read-data"]).ok();
    assert!(!repo_file(&env.repo, FileType::Parity, &index[0]).exists());
    env.run(&["prune"]).ok();
    let out = env.path("out");
    env.restore(&snaps[0], &out, &[]);
    assert_eq!(hash_file(&under(&out, &src.join("f07"))), hash_file(&src.join("f07")));
}

#[test]
fn damaged_index_and_snapshot_files_are_repaired() {
    let (env, _) = scene();
    let before = files(&env.repo);
    let index = repo_files(&env.repo, FileType::Index);
    let snaps = repo_files(&env.repo, FileType::Snapshot);
    flip_byte(&repo_file(&env.repo, FileType::Index, &index[0]), 60);
    let s = repo_file(&env.repo, FileType::Snapshot, &snaps[0]);
    let len = fs::metadata(&s).unwrap().len() as usize;
    write_over(&s, &vec![0u8; len]);
    env.run(&["check"]).code(8);
    assert_healed(&env, &before, 2);
}

#[test]
fn damage_in_a_pack_and_in_its_parity_file_is_located_and_both_are_healed() {
    let (env, _) = scene();
    let before = files(&env.repo);
    let p = &packs(&env)[0];
    let name = p.file_name().unwrap().to_str().unwrap().to_string();
    flip_byte(p, 5000);
    // A flip in the first recovery shard of its parity file (after the 64-byte fixed part).
    let parity = repo_file(&env.repo, FileType::Parity, &name);
    flip_byte(&parity, fparity::FIXED_LEN + 10);
    let r = assert_healed(&env, &before, 1);
    assert!(r["repaired"][0]["detail"].as_str().unwrap().contains("parity rewritten"), "{r}");

    // A flip in the parity file's checksum table (its hash no longer matches): the table is
    // still used, the result is still checked against the name, and the parity is rewritten.
    let before = files(&env.repo);
    flip_byte(p, 9000);
    let plen = fs::metadata(&parity).unwrap().len() as usize;
    flip_byte(&parity, plen - fparity::TABLE_HASH_LEN - 40);
    let r = assert_healed(&env, &before, 1);
    assert!(r["repaired"][0]["detail"].as_str().unwrap().contains("parity rewritten"), "{r}");

    // A damaged parity file beside a healthy pack: repairable damage (exit 8), repair rewrites it.
    flip_byte(&parity, fparity::FIXED_LEN + 20);
    let check = env.run(&["--json", "check", "--read-data"]).code(8).json();
    assert!(check["damaged_files"].to_string().contains(&format!("parity file {name}")), "{check}");
    let r = env.run(&["--json", "repair", "packs"]).ok().json();
    assert_eq!(r["parity_rewritten"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(files(&env.repo), before);
}

#[test]
fn damage_beyond_the_parity_is_named_with_its_paths_and_left_untouched() {
    let (env, src) = scene();
    let p = packs(&env).into_iter().max_by_key(|p| fs::metadata(p).unwrap().len()).unwrap();
    let name = p.file_name().unwrap().to_str().unwrap().to_string();
    // 200 KiB of zeros: 50 shards against 11 recovery shards.
    bytes_at(&p, 8, &vec![0u8; 200 << 10]);
    let damaged = fs::read(&p).unwrap();
    let check = env.run(&["--json", "check", "--read-data"]).code(4).json();
    let d = &check["damaged_files"][0];
    assert_eq!(
        (d["object"].as_str().unwrap(), d["repairable"].as_bool().unwrap()),
        (format!("pack {name}").as_str(), false)
    );
    let dry = env.run(&["--json", "repair", "packs", "--dry-run"]).code(4).json();
    assert_eq!(dry["unrepairable"].as_array().unwrap().len(), 1, "{dry}");
    let out = env.run(&["--json", "repair", "packs"]).code(4);
    let r = out.json();
    assert!(out.stderr.contains(&format!("pack {name}: cannot be repaired")), "{}", out.stderr);
    let affected = r["affected"].as_object().unwrap();
    assert_eq!(affected.len(), 1, "{r}");
    let paths = affected.values().next().unwrap().as_array().unwrap();
    assert!(paths.iter().all(|p| p.as_str().unwrap().starts_with(src.to_str().unwrap())), "{paths:?}");
    assert_eq!(fs::read(&p).unwrap(), damaged, "an unrepairable pack is left as it was");
}

#[test]
fn a_dry_run_writes_nothing() {
    let (env, _) = scene();
    let p = &packs(&env)[1];
    flip_byte(p, 777);
    let before = files(&env.repo);
    let r = env.run(&["--json", "repair", "packs", "-n"]).ok().json();
    assert_eq!(r["repaired"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(files(&env.repo), before);
}

/// A storage attacker (no password) writes a parity file that decodes to other bytes: repair
/// must refuse, because the result does not hash to the pack's name, and change nothing.
#[test]
fn a_forged_parity_file_never_makes_repair_write_wrong_bytes() {
    let (env, _) = scene();
    let p = &packs(&env)[0];
    let name = p.file_name().unwrap().to_str().unwrap().to_string();
    let id = arca::Id::from_hex(&name).unwrap();
    let mut evil = fs::read(p).unwrap();
    evil[100] ^= 1;
    // Full parity of the evil bytes, labelled as the real pack's: every shard "checks".
    let forged = fparity::encode_file(FileKind::Pack, &id, &evil, fparity::FULL);
    write_over(&repo_file(&env.repo, FileType::Parity, &name), &forged);
    write_over(p, &evil);
    let out = env.run(&["--json", "repair", "packs"]).code(4);
    assert!(out.stderr.contains("do not hash to the file's name"), "{}", out.stderr);
    assert_eq!(fs::read(p).unwrap(), evil, "nothing written");
}

#[test]
fn forget_prune_and_repack_keep_parity_in_step() {
    let env = Env::bare();
    env.run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
    let src = env.mkdir("src");
    for v in 0..3u64 {
        for i in 0..12u64 {
            write_random_file(&src.join(format!("f{i:02}")), v * 100 + i * (v % 2), 150_000);
        }
        env.backup(&[&src], &[]);
    }
    let protected = |env: &Env| {
        let mut names: Vec<String> = Vec::new();
        for t in [FileType::Pack, FileType::Index, FileType::Snapshot] {
            names.extend(repo_files(&env.repo, t));
        }
        names.sort();
        names
    };
    assert_eq!(protected(&env), repo_files(&env.repo, FileType::Parity));
    env.run(&["forget", "--keep-last", "1"]).ok();
    env.run(&["prune", "--max-unused", "0"]).ok();
    // Every file has its parity and no parity outlived its file.
    assert_eq!(protected(&env), repo_files(&env.repo, FileType::Parity));
    let status = env.run(&["--json", "parity", "status"]).ok().json();
    assert_eq!(status["packs"]["protected"], status["packs"]["files"], "{status}");
    assert_eq!(status["orphans"], 0);
    env.run(&["check", "--read-data"]).ok();
}

#[test]
fn parity_set_and_build_change_the_overhead_of_existing_files() {
    let env = Env::bare();
    env.run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1", "--parity", "off"]).ok();
    let src = env.mkdir("src");
    for i in 0..8u64 {
        write_random_file(&src.join(format!("f{i}")), i, 300_000);
    }
    env.backup(&[&src], &[]);
    assert!(repo_files(&env.repo, FileType::Parity).is_empty(), "off writes no parity");
    env.run(&["check"]).ok();
    env.run(&["parity", "set", "--overhead", "10%"]).ok();
    let b = env.run(&["--json", "parity", "build"]).ok().json();
    let total = repo_files(&env.repo, FileType::Pack).len()
        + repo_files(&env.repo, FileType::Index).len()
        + repo_files(&env.repo, FileType::Snapshot).len();
    assert_eq!(b["written"].as_u64().unwrap() as usize, total, "{b}");
    let geometry = |env: &Env| {
        let n = &repo_files(&env.repo, FileType::Pack)[0];
        let pack_len = fs::metadata(repo_file(&env.repo, FileType::Pack, n)).unwrap().len();
        let f = fparity::Fixed::decode(&fs::read(repo_file(&env.repo, FileType::Parity, n)).unwrap(), "t").unwrap();
        (f.geometry, pack_len)
    };
    let (g, len) = geometry(&env);
    assert_eq!(g, fparity::Geometry::plan(len, 1000));
    // A second build has nothing to do; a new overhead rewrites pack parity only.
    let again = env.run(&["--json", "parity", "build"]).ok().json();
    assert_eq!((again["written"].as_u64(), again["rewritten"].as_u64()), (Some(0), Some(0)), "{again}");
    env.run(&["parity", "set", "--overhead", "2.5%"]).ok();
    let r = env.run(&["--json", "parity", "build"]).ok().json();
    // Data packs are rewritten; a small tree pack whose geometry is the sector minimum either way is not.
    assert!(r["rewritten"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["rewritten"].as_u64().unwrap() + r["up_to_date"].as_u64().unwrap(), total as u64, "{r}");
    assert_eq!(geometry(&env).0, fparity::Geometry::plan(len, 250));
    assert_eq!(env.run(&["--json", "parity", "status"]).ok().json()["packs"]["stale"], 0);
    // New backups follow the policy; off, and a build removes all parity.
    write_random_file(&src.join("new"), 99, 500_000);
    env.backup(&[&src], &[]);
    assert_eq!(env.run(&["--json", "parity", "status"]).ok().json()["packs"]["stale"], 0);
    env.run(&["parity", "set", "--overhead", "off"]).ok();
    env.run(&["parity", "build"]).ok();
    assert!(repo_files(&env.repo, FileType::Parity).is_empty());
    env.run(&["check", "--read-data"]).ok();
    // Bad values are usage errors.
    env.run(&["parity", "set", "--overhead", "101%"]).code(2);
    env.run(&["parity", "set", "--overhead", "5"]).code(2);
}

#[test]
fn build_makes_no_parity_of_a_damaged_file_and_a_repository_without_policy_has_parity_off() {
    let (env, _) = scene();
    let p = &packs(&env)[0];
    let name = p.file_name().unwrap().to_str().unwrap().to_string();
    fs::remove_file(repo_file(&env.repo, FileType::Parity, &name)).unwrap();
    flip_byte(p, 300);
    let out = env.run(&["--json", "parity", "build"]).code(4);
    assert!(out.stderr.contains(&format!("pack {name}")), "{}", out.stderr);
    assert!(!repo_file(&env.repo, FileType::Parity, &name).exists());
    // Made before parity existed: no policy file, so writers make no parity; readers are fine.
    let fresh = Env::new();
    fs::remove_file(fresh.repo.join("parity").join("policy")).unwrap();
    let src = fresh.mkdir("s");
    write_random_file(&src.join("a"), 1, 100_000);
    fresh.backup(&[&src], &[]);
    assert!(repo_files(&fresh.repo, FileType::Parity).is_empty());
    let check = fresh.run(&["check"]).ok();
    assert!(!check.all().contains("no parity"), "{}", check.all());
}

#[test]
fn stray_entries_in_parity_are_reported_and_ignored() {
    let (env, _) = scene();
    fs::write(env.repo.join("parity").join("README"), "notes").unwrap();
    fs::create_dir_all(env.repo.join("parity").join("00")).unwrap();
    fs::write(env.repo.join("parity").join("00").join("junk"), "x").unwrap();
    let r = env.run(&["--json", "check"]).ok().json();
    let w = r["warnings"].to_string();
    assert!(w.contains("parity/README") && w.contains("parity/00/junk"), "{r}");
    env.run(&["repair", "packs"]).ok();
    assert!(env.repo.join("parity").join("README").exists());
}

/// `parity build` (shared lock) beside three backup processes: nothing lost, everything ends
/// up with parity, and the repository checks clean.
#[test]
fn parity_build_beside_running_backups_loses_nothing() {
    let env = Env::bare();
    env.run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1", "--parity", "off"]).ok();
    let src = env.mkdir("src");
    for i in 0..10u64 {
        write_random_file(&src.join(format!("f{i}")), i, 200_000);
    }
    env.backup(&[&src], &[]);
    env.run(&["parity", "set", "--overhead", "5%"]).ok();
    let mut children = Vec::new();
    for k in 0..3u64 {
        let dir = env.mkdir(&format!("src{k}"));
        for i in 0..6u64 {
            write_random_file(&dir.join(format!("g{i}")), 1000 * (k + 1) + i, 250_000);
        }
        let mut c = arca_std_cmd();
        c.env("ARCA_REPOSITORY", &env.repo).env("ARCA_PASSWORD", PASSWORD).args([
            "backup",
            "-q",
            dir.to_str().unwrap(),
        ]);
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        children.push(c.spawn().unwrap());
    }
    env.run(&["parity", "build"]).ok();
    for c in children {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    env.run(&["parity", "build"]).ok();
    let status = env.run(&["--json", "parity", "status"]).ok().json();
    for k in ["packs", "index", "snapshots"] {
        assert_eq!(status[k]["protected"], status[k]["files"], "{status}");
    }
    env.run(&["check", "--read-data"]).ok();
}

/// A storage attacker (no password) plants parity files for names that do not exist: a
/// "snapshot" it cannot seal, and a pack no index names. Neither is restored.
#[test]
fn forged_parity_for_missing_files_plants_nothing() {
    let (env, _) = scene();
    let before = files(&env.repo);
    let mut planted = Vec::new();
    for (kind, bytes) in
        [(FileKind::Snapshot, b"not a sealed snapshot".to_vec()), (FileKind::Pack, random_bytes(5, 3000))]
    {
        let id = arca::Id::of_file_bytes(&bytes);
        let p = repo_file(&env.repo, FileType::Parity, &id.to_hex());
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, fparity::encode_file(kind, &id, &bytes, fparity::FULL)).unwrap();
        planted.push((kind, id));
    }
    let out = env.run(&["--json", "repair", "packs"]).code(4);
    let r = out.json();
    assert!(r["repaired"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["unrepairable"].as_array().unwrap().len(), 2, "{r}");
    assert!(out.all().contains("no index file names it"), "{}", out.all());
    for (kind, id) in planted {
        let t = if kind == FileKind::Pack { FileType::Pack } else { FileType::Snapshot };
        assert!(!repo_file(&env.repo, t, &id.to_hex()).exists(), "{kind:?} planted");
        fs::remove_file(repo_file(&env.repo, FileType::Parity, &id.to_hex())).unwrap();
    }
    assert_eq!(files(&env.repo), before);
}

/// Ranged reads go through a cache of open descriptors: after a file is replaced (a repair),
/// they must return the new bytes, not the old file's.
#[test]
fn ranged_reads_after_a_replace_see_the_new_file() {
    use arca::backend::Backend;
    let (env, _) = scene();
    let p = &packs(&env)[0];
    let name = p.file_name().unwrap().to_str().unwrap().to_string();
    let good = fs::read(p).unwrap();
    let b = arca::backend::local::LocalBackend::new(&env.repo);
    flip_byte(p, 50);
    let damaged = b.read_at(FileType::Pack, &name, 40, 20).unwrap();
    assert_ne!(damaged, good[40..60]);
    b.replace(FileType::Pack, &name, &good).unwrap();
    assert_eq!(b.read_at(FileType::Pack, &name, 40, 20).unwrap(), good[40..60]);
}

/// Rot that parity repairs is visible to monitoring (issue 26): a byte flipped in a parity
/// file, in a pack, or in a snapshot makes `check` exit 8 ("repairable") with the file listed as
/// repairable, `status` exit 8 with its line and `arca_repairable_files` at 1; after
/// `repair packs`, check and status are clean and the gauge is 0.
#[test]
fn repairable_damage_has_its_own_exit_code_status_line_and_gauge() {
    for target in ["parity file", "pack", "snapshot"] {
        let (env, _) = scene();
        let path = match target {
            "parity file" => {
                let name = packs(&env)[0].file_name().unwrap().to_string_lossy().into_owned();
                repo_file(&env.repo, FileType::Parity, &name)
            }
            "pack" => packs(&env)[0].clone(),
            _ => repo_file(&env.repo, FileType::Snapshot, &repo_files(&env.repo, FileType::Snapshot)[0]),
        };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        flip_byte(&path, 100);
        let out = env.run(&["--json", "check", "--read-data"]).code(8);
        let damaged = out.json()["damaged_files"].as_array().unwrap().clone();
        assert_eq!(damaged.len(), 1, "{target}: {damaged:?}");
        assert_eq!(damaged[0]["object"], format!("{target} {name}"), "{target}");
        assert_eq!(damaged[0]["repairable"], true, "{target}");
        let text = env.run(&["check", "--read-data"]).code(8).text();
        assert!(text.contains("REPAIRABLE DAMAGE: 1 file,"), "{target}: {text}");
        let status = env.run(&["status"]).code(8).text();
        assert!(status.contains("repairable damage: 1 file, run `arca repair packs`"), "{target}: {status}");
        let gauge = env.run(&["status", "--prometheus"]).code(8).text();
        assert!(gauge.lines().any(|l| l == "arca_repairable_files 1"), "{target}: {gauge}");
        env.run(&["repair", "packs"]).ok();
        env.run(&["check", "--read-data"]).ok();
        let gauge = env.run(&["status", "--prometheus"]).ok().text();
        assert!(gauge.lines().any(|l| l == "arca_repairable_files 0"), "{target}: {gauge}");
    }
}

/// A writer that predates parity (format-spec/16 §16.6) deletes files and leaves their parity
/// files: here `forget --prune` run by arca, with the parity files it removed put back. Until the
/// removals are acknowledged they read as losses: check fails with exit 4, not 8 (`repair packs`
/// restores nothing that is no longer wanted, §22.7), naming the way out; prune refuses and
/// deletes nothing; `repair packs` restores only the superseded index files whose packs all
/// remain (harmless duplicates), never the snapshot or its packs. `parity build --drop-orphans`
/// acknowledges the rest: check is clean, and prune runs again.
#[test]
fn removals_by_a_writer_that_predates_parity_block_prune_until_drop_orphans() {
    let env = Env::new();
    let mut snaps = Vec::new();
    for i in 0..3u64 {
        // Small files: every parity file is a whole copy, so only "still wanted" decides.
        let dir = env.mkdir(&format!("src{i}"));
        write_random_file(&dir.join("f"), 700 + i, 1000);
        snaps.push(env.backup(&[&dir], &[])["snapshot"].as_str().unwrap().to_string());
    }
    let parity_before = files(&env.repo);
    env.run(&["forget", &snaps[0], "--prune"]).ok();
    let mut put_back = 0;
    for (path, bytes) in parity_before.iter().filter(|(p, _)| p.starts_with("parity/")) {
        let p = env.repo.join(path);
        if !p.exists() {
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, bytes).unwrap();
            put_back += 1;
        }
    }
    assert!(put_back >= 3, "a snapshot, its pack and its index file: {put_back}");
    // Unused data that a prune would delete: the second backup, forgotten by arca.
    env.run(&["forget", &snaps[1]]).ok();

    let check = env.run(&["--json", "check"]).code(4).json();
    let lost = check["damaged_files"].as_array().unwrap();
    assert_eq!(lost.len(), put_back, "{check}");
    let not_wanted = |d: &&Value| {
        d["repairable"] == false && d["detail"].as_str().unwrap().contains("`arca parity build --drop-orphans`")
    };
    let snapshot = format!("snapshot {}", snaps[0]);
    assert!(lost.iter().filter(|d| d["object"] == snapshot.as_str()).all(|d| not_wanted(&d)), "{check}");
    assert!(
        lost.iter().filter(|d| d["object"].as_str().unwrap().starts_with("pack")).all(|d| not_wanted(&d)),
        "{check}"
    );
    assert!(check["errors"].as_array().unwrap().iter().all(|e| e["message"].to_string().contains("--drop-orphans")));
    let before = files(&env.repo);
    let prune = env.run(&["prune"]).code(4);
    assert!(
        prune.stderr.contains("prune deleted nothing") && prune.stderr.contains("--drop-orphans"),
        "{}",
        prune.all()
    );
    assert_eq!(files(&env.repo), before, "prune deleted nothing");

    let repair = env.run(&["--json", "repair", "packs"]).code(4).json();
    let restored = repair["repaired"].as_array().unwrap();
    assert!(restored.iter().all(|r| r["file"].as_str().unwrap().starts_with("index ")), "{repair}");
    assert!(!repo_file(&env.repo, FileType::Snapshot, &snaps[0]).exists(), "a forgotten snapshot stays forgotten");
    env.run(&["prune"]).code(4);

    let built = env.run(&["--json", "parity", "build", "--drop-orphans"]).ok().json();
    assert_eq!(built["removed"], put_back - restored.len(), "{built}");
    env.run(&["check"]).ok();
    let packs_before = repo_files(&env.repo, FileType::Pack).len();
    env.run(&["prune"]).ok();
    assert!(repo_files(&env.repo, FileType::Pack).len() < packs_before, "prune ran and deleted the unused packs");
    assert_eq!(repo_files(&env.repo, FileType::Snapshot), vec![snaps[2].clone()]);
    env.run(&["check", "--read-data"]).ok();
}
