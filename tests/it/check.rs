//! `check`: structure and data verification, with the damaged objects and affected files named.

use crate::common::*;
use arca::backend::FileType;
use arca::format::blob::BlobType;
use arca::format::tree::NodeKind;
use arca::repo::packer::Packer;
use arca::Id;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn errors(report: &Value) -> Vec<String> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}: {}", e["object"].as_str().unwrap(), e["message"].as_str().unwrap()))
        .collect()
}

/// A repository with one snapshot of `victim.bin` (random, several chunks) and `other.txt`.
fn fixture() -> (Env, PathBuf, String) {
    let env = Env::new();
    let src = env.mkdir("src");
    write_random_file(&src.join("victim.bin"), 77, 2 << 20);
    fs::write(src.join("other.txt"), b"unrelated").unwrap();
    let snap = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    (env, src, snap)
}

/// Pack, offset and ID of the first chunk of `file`.
fn first_chunk(env: &Env, file: &Path) -> (Id, u32, Id) {
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let tree = repo.find_snapshot("latest").unwrap().1.tree;
    let node = arca::restore::resolve(&repo, &index, tree, file.to_str().unwrap()).unwrap();
    let NodeKind::File { content, .. } = node.kind else { panic!("not a file") };
    let loc = index.lookup(BlobType::Data, &content[0].id).unwrap();
    (loc.pack, loc.offset, content[0].id)
}

#[test]
fn a_fresh_repository_checks_clean() {
    let env = Env::new();
    let r = env.json(&["check"]);
    assert!(errors(&r).is_empty(), "{r}");
    assert_eq!((n(&r["snapshots"]), n(&r["packs"]), n(&r["index_files"])), (0, 0, 0));
    env.run(&["check", "--read-data"]).ok();
}

#[test]
fn a_healthy_repository_checks_clean_and_read_data_reads_every_blob() {
    let (env, _, _) = fixture();
    let r = env.json(&["check", "--read-data"]);
    assert!(errors(&r).is_empty(), "{r}");
    assert!(r["warnings"].as_array().unwrap().is_empty(), "{r}");
    let info = env.info();
    assert_eq!(n(&r["packs"]), n(&info["packs"]));
    assert_eq!(n(&r["packs_read"]), n(&info["packs"]));
    assert_eq!(n(&r["blobs_read"]), n(&info["data_blobs"]) + n(&info["tree_blobs"]));
    assert_eq!(n(&r["snapshots"]), 1);
    assert!(r["affected"].as_object().unwrap().is_empty());
    let out = env.run(&["check"]).ok();
    assert!(out.text().contains("no errors"), "{}", out.text());
}

#[test]
fn a_flipped_byte_in_a_blob_is_found_by_read_data_with_the_affected_file() {
    let (env, src, snap) = fixture();
    let victim = src.join("victim.bin");
    let (pack, offset, blob) = first_chunk(&env, &victim);
    flip_byte(&repo_file(&env.repo, FileType::Pack, &pack.to_hex()), offset as usize + 200);

    // Structure only: the pack is there with the right size, so this passes.
    env.run(&["check"]).ok();

    let out = env.run(&["check", "--read-data"]).code(8);
    let text = out.all();
    assert!(text.contains(&format!("pack {}", pack.to_hex())), "{text}");
    assert!(text.contains(&blob.to_hex()), "{text}");
    assert!(text.contains(victim.to_str().unwrap()), "{text}");
    assert!(text.contains(&snap[..8]), "{text}");
    assert!(!text.contains("other.txt"), "{text}");

    let out = env.run(&["--json", "check", "--read-data"]).code(8);
    let r = out.json();
    let errs = errors(&r);
    assert!(errs.iter().any(|e| e.contains(&format!("data blob {blob}"))), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.starts_with(&format!("pack {}", pack.to_hex())) && e.contains("does not match its name")),
        "{errs:?}"
    );
    let affected = r["affected"].as_object().unwrap();
    assert_eq!(affected.keys().collect::<Vec<_>>(), vec![&snap]);
    let paths: Vec<&str> = affected[&snap].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(paths, vec![victim.to_str().unwrap()]);
}

#[test]
fn a_damaged_tree_is_found_by_the_structure_check() {
    let (env, src, snap) = fixture();
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let tree = repo.find_snapshot("latest").unwrap().1.tree;
    // The tree of `src` itself.
    let node = arca::restore::resolve(&repo, &index, tree, src.to_str().unwrap()).unwrap();
    let NodeKind::Dir { subtree } = node.kind else { panic!() };
    let loc = index.lookup(BlobType::Tree, &subtree).unwrap();
    flip_byte(&repo_file(&env.repo, FileType::Pack, &loc.pack.to_hex()), loc.offset as usize + 30);

    let r = env.run(&["--json", "check"]).code(4).json();
    let errs = errors(&r);
    assert!(errs.iter().any(|e| e.contains(&format!("tree blob {subtree}"))), "{errs:?}");
    let paths = r["affected"][&snap].as_array().unwrap();
    assert!(paths.iter().any(|p| p.as_str().unwrap().starts_with(src.to_str().unwrap())), "{paths:?}");
}

#[test]
fn a_missing_pack_is_named() {
    let (env, src, snap) = fixture();
    let (pack, _, _) = first_chunk(&env, &src.join("victim.bin"));
    fs::remove_file(repo_file(&env.repo, FileType::Pack, &pack.to_hex())).unwrap();
    let out = env.run(&["check"]).code(4);
    assert!(out.all().contains(&format!("pack {}", pack.to_hex())), "{}", out.all());
    assert!(out.all().contains("missing"), "{}", out.all());
    let r = env.run(&["--json", "check", "--read-data"]).code(4).json();
    let paths: Vec<&str> = r["affected"][&snap].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(paths.contains(&src.join("victim.bin").to_str().unwrap()), "{paths:?}");
}

#[test]
fn a_damaged_table_of_contents_is_found_by_read_data() {
    let (env, src, _) = fixture();
    let (pack, _, _) = first_chunk(&env, &src.join("victim.bin"));
    let path = repo_file(&env.repo, FileType::Pack, &pack.to_hex());
    let len = fs::metadata(&path).unwrap().len() as usize;
    flip_byte(&path, len - 10); // inside the sealed TOC
                                // Renamed to match, and the index told about the new name, so only the TOC is wrong.
    let new_name = rename_to_hash(&path);
    // As if written so: no parity for the old name (and none for the new one).
    fs::remove_file(repo_file(&env.repo, FileType::Parity, &pack.to_hex())).unwrap();
    let repo = env.open();
    let mut packs = Vec::new();
    for id in repo.index_ids().unwrap() {
        packs.extend(repo.load_index_file(&id).unwrap());
        remove_as_writer(&env.repo, FileType::Index, &id.to_hex());
    }
    for p in &mut packs {
        if p.id == pack {
            p.id = Id::from_hex(&new_name).unwrap();
        }
    }
    repo.save_index(&packs).unwrap();
    env.run(&["check"]).ok();
    // Blobs still read (the TOC is only for rebuilding the index)...
    env.run(&["dump", &sref("latest", &src.join("victim.bin"))]).ok();
    // ...but a full check reports the pack.
    let r = env.run(&["--json", "check", "--read-data"]).code(4).json();
    let errs = errors(&r);
    assert!(errs.iter().any(|e| e.starts_with(&format!("pack {new_name}")) && e.contains("TOC")), "{errs:?}");
}

#[test]
fn an_unindexed_pack_is_only_a_warning() {
    let (env, _, _) = fixture();
    let repo = env.open();
    let before = repo.index_ids().unwrap();
    let packer = Packer::new(&repo);
    let index = repo.load_index().unwrap();
    let id = repo.keys().blob_id(b"orphan");
    packer.store(&index, BlobType::Data, &id, b"orphan").unwrap();
    let new_index = *packer.finish().unwrap().last().unwrap();
    assert!(!before.contains(&new_index));
    remove_as_writer(&env.repo, FileType::Index, &new_index.to_hex());
    let r = env.json(&["check", "--read-data"]);
    assert!(errors(&r).is_empty(), "{r}");
    let warnings = r["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{r}");
    assert!(warnings[0]["object"].as_str().unwrap().starts_with("pack "));
}

#[test]
fn read_data_subsets() {
    let env = Env::new();
    let src = env.mkdir("src");
    // Several packs: 1 MiB packs are not the default, so make several snapshots.
    for i in 0..6 {
        fs::write(src.join(format!("f{i}")), random_bytes(i, 50_000)).unwrap();
        env.backup(&[&src], &[]);
    }
    let packs: Vec<Id> = repo_files(&env.repo, FileType::Pack).iter().map(|p| Id::from_hex(p).unwrap()).collect();
    assert!(packs.len() >= 6);
    let even = packs.iter().filter(|p| p.0[0] % 2 == 0).count() as u64;
    let r1 = env.json(&["check", "--read-data-subset", "1/2"]);
    let r2 = env.json(&["check", "--read-data-subset", "2/2"]);
    assert_eq!(n(&r1["packs_read"]), even);
    assert_eq!(n(&r2["packs_read"]), packs.len() as u64 - even);
    let r = env.json(&["check", "--read-data-subset", "50%"]);
    assert!(n(&r["packs_read"]) <= packs.len() as u64);
    assert!(errors(&r).is_empty());
    let r = env.json(&["check", "--read-data-subset", "100%"]);
    assert_eq!(n(&r["packs_read"]), packs.len() as u64);
    let r = env.json(&["check", "--read-data-subset", "1/1"]);
    assert_eq!(n(&r["packs_read"]), packs.len() as u64);
    for bad in ["0/2", "3/2", "1/0", "0%", "150%", "half", "1/300"] {
        let out = env.run(&["check", "--read-data-subset", bad]);
        assert_eq!(out.code, 2, "{bad}: {}", out.all());
    }
    // A damaged data pack is found by the subset that selects it, not by the other.
    let repo = env.open();
    let victim = repo
        .index_ids()
        .unwrap()
        .iter()
        .flat_map(|i| repo.load_index_file(i).unwrap())
        .find(|p| p.blobs.iter().all(|b| b.blob_type == BlobType::Data))
        .unwrap()
        .id;
    let p = repo_file(&env.repo, FileType::Pack, &victim.to_hex());
    flip_byte(&p, 20);
    let (hit, miss) = if victim.0[0] % 2 == 0 { ("1/2", "2/2") } else { ("2/2", "1/2") };
    env.run(&["check", "--read-data-subset", hit]).code(8);
    env.run(&["check", "--read-data-subset", miss]).ok();
}
