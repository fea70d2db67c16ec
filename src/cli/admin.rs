//! `init`, `key`, `cat`, `repoinfo`.

use super::{code, password, Global};
use anyhow::{bail, Context, Result};
use arca::backend::FileType;
use arca::format::blob::BlobType;
use arca::format::header::FileKind;
use arca::format::key::{KdfParams, KeyFile};
use arca::format::pack;
use arca::repo::{InitOptions, Repository};
use arca::Id;
use serde_json::json;

/// Key-derivation cost options.
#[derive(clap::Args, Debug, Clone)]
pub struct KdfArgs {
    /// Argon2id memory for the new key, MiB (8–1024).
    #[arg(long, default_value_t = 64, value_name = "MIB", value_parser = clap::value_parser!(u32).range(8..=1024))]
    kdf_memory: u32,
    /// Argon2id iterations for the new key (1–10).
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10))]
    kdf_iterations: u32,
}

impl KdfArgs {
    fn params(&self) -> KdfParams {
        KdfParams { memory_kib: self.kdf_memory.saturating_mul(1024), time_cost: self.kdf_iterations, lanes: 1 }
    }
}

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    kdf: KdfArgs,
    /// zstd compression level (0 = none, 1–19; -7 to -1 are faster levels).
    #[arg(long, default_value_t = 3, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-7..=19))]
    compression: i32,
    /// Pack target size, MiB (1–1024).
    #[arg(long, default_value_t = 16, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pack_size: u32,
    /// Parity overhead for packs and index files: a percentage (`5%`, `0.5%`, up to `100%`) or
    /// `off`; snapshots get 100% when on. Change it later with `arca parity set`.
    #[arg(long, default_value = "5%", value_name = "P%|off", value_parser = super::parity::parse_overhead)]
    parity: u16,
}

pub fn init(g: &Global, a: InitArgs) -> Result<u8> {
    let backend = g.backend()?;
    let pw = g.password.get(true)?;
    let opts = InitOptions {
        kdf: a.kdf.params(),
        compression_level: a.compression,
        pack_target_size: a.pack_size.saturating_mul(1 << 20),
        parity_overhead: a.parity,
        ..InitOptions::default()
    };
    let repo = Repository::init(backend.clone(), &pw, &opts)?;
    if g.json {
        g.print_json(
            &json!({"repository": backend.location(), "id": arca::id::hex(repo.repo_id()), "key": repo.key_name()}),
        )?;
    } else if !g.quiet {
        println!("created repository {} at {}", &arca::id::hex(repo.repo_id())[..16], backend.location());
        println!("Keep the password safe: without it the data cannot be recovered.");
    }
    Ok(code::OK)
}

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a key file with a new password (from ARCA_NEW_PASSWORD, --new-password-file or a prompt).
    Add {
        #[command(flatten)]
        kdf: KdfArgs,
        /// File holding the new password.
        #[arg(long)]
        new_password_file: Option<std::path::PathBuf>,
        /// Label, default user@host.
        #[arg(long)]
        label: Option<String>,
    },
    /// List key files.
    List,
    /// Remove a key file by ID prefix (not the one in use).
    Remove {
        /// ID or unique prefix.
        id: String,
    },
    /// Change the password of the key in use.
    Passwd {
        #[command(flatten)]
        kdf: KdfArgs,
        /// File holding the new password.
        #[arg(long)]
        new_password_file: Option<std::path::PathBuf>,
    },
}

pub fn key(g: &Global, k: KeyCommand) -> Result<u8> {
    let mut repo = g.open()?;
    match k {
        KeyCommand::Add { kdf, new_password_file, label } => {
            let pw = password::new_password(new_password_file.as_deref())?;
            let label = label.unwrap_or_else(arca::repo::default_label);
            let name = repo.add_key(&pw, kdf.params(), &label)?;
            if g.json {
                g.print_json(&json!({"added": name}))?;
            } else {
                println!("added key {}", super::short(&name));
            }
        }
        KeyCommand::List => {
            let keys = repo.list_keys()?;
            if g.json {
                let v: Vec<_> = keys.iter().map(|k| key_json(&k.name, &k.file, k.current)).collect();
                g.print_json(&v)?;
            } else {
                println!("{:<2} {:<16} {:<20} {:<30} KDF", "", "ID", "created", "label");
                for k in keys {
                    let f = &k.file;
                    println!(
                        "{:<2} {:<16} {:<20} {:<30} argon2id m={}MiB t={} p={}",
                        if k.current { "*" } else { "" },
                        super::short(&k.name),
                        super::time_str(f.created.saturating_mul(1_000_000_000)),
                        f.label,
                        f.kdf.memory_kib / 1024,
                        f.kdf.time_cost,
                        f.kdf.lanes
                    );
                }
            }
        }
        KeyCommand::Remove { id } => {
            let name = repo.remove_key(&id)?;
            if g.json {
                g.print_json(&json!({"removed": name}))?;
            } else {
                println!("removed key {}", super::short(&name));
            }
        }
        KeyCommand::Passwd { kdf, new_password_file } => {
            let pw = password::new_password(new_password_file.as_deref())?;
            let name = repo.change_password(&pw, kdf.params(), &arca::repo::default_label())?;
            if g.json {
                g.print_json(&json!({"key": name}))?;
            } else {
                println!("password changed; new key {}", super::short(&name));
            }
        }
    }
    Ok(code::OK)
}

fn key_json(name: &str, f: &KeyFile, current: bool) -> serde_json::Value {
    json!({
        "id": name, "current": current, "created": f.created, "label": f.label,
        "kdf": {"algorithm": "argon2id", "memory_kib": f.kdf.memory_kib, "iterations": f.kdf.time_cost, "lanes": f.kdf.lanes},
        "salt": arca::id::hex(&f.salt),
    })
}

#[derive(clap::Args, Debug)]
pub struct CatArgs {
    /// config, key, index, snapshot, pack or blob.
    #[arg(value_parser = ["config", "key", "index", "snapshot", "pack", "blob"])]
    what: String,
    /// ID or unique prefix (snapshot also takes `latest`).
    id: Option<String>,
}

fn resolve(repo: &Repository, t: FileType, prefix: &str) -> Result<String> {
    let names: Vec<String> = repo.list_objects(t)?.into_iter().map(|(n, _)| n).collect();
    Ok(arca::repo::unique_prefix(&names, prefix, t.dir())?)
}

pub fn cat(g: &Global, a: CatArgs) -> Result<u8> {
    let repo = g.open()?;
    let need = || a.id.clone().context("this object needs an ID");
    let v = match a.what.as_str() {
        "config" => serde_json::to_value(repo.config())?,
        "key" => {
            let name = resolve(&repo, FileType::Key, &need()?)?;
            let f = KeyFile::decode(&repo.read_named(FileType::Key, &name)?)?;
            key_json(&name, &f, name == repo.key_name())
        }
        "index" => {
            let name = resolve(&repo, FileType::Index, &need()?)?;
            let packs = repo.load_index_file(&Id::from_hex(&name).context("bad name")?)?;
            let v: Vec<_> = packs
                .iter()
                .map(|p| {
                    let blobs: Vec<_> = p.blobs.iter().map(|b| json!({"type": b.blob_type.name(), "id": b.id, "offset": b.offset, "stored_len": b.stored_len, "plain_len": b.plain_len})).collect();
                    json!({"pack": p.id, "size": p.size, "blobs": blobs})
                })
                .collect();
            json!({"id": name, "packs": v})
        }
        "snapshot" => {
            let (id, s) = repo.find_snapshot(&need()?)?;
            let mut v = serde_json::to_value(&s)?;
            v["id"] = json!(id);
            // Field 12 is left out of the encoding when absent; the JSON always shows it.
            v["original"] = json!(s.original);
            v["paths"] = json!(s.paths.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>());
            v
        }
        "pack" => {
            let name = resolve(&repo, FileType::Pack, &need()?)?;
            let bytes = repo.read_named(FileType::Pack, &name)?;
            let what = format!("pack {name}");
            pack::check_header(&bytes, &what)?;
            let trailer = bytes[bytes.len().saturating_sub(4)..]
                .try_into()
                .map_err(|_| arca::Error::integrity(&what, "truncated"))?;
            let (at, len) = pack::locate_toc(bytes.len() as u64, trailer, &what)?;
            let toc = repo.keys().open(
                &bytes[at as usize..(at + len as u64) as usize],
                &pack::toc_ad(repo.repo_id()),
                &what,
            )?;
            let entries = pack::decode_toc(&toc, at - 8, &what)?;
            let v: Vec<_> = pack::locate_blobs(&entries)
                .iter()
                .map(|b| json!({"type": b.blob_type.name(), "id": b.id, "offset": b.offset, "stored_len": b.stored_len, "plain_len": b.plain_len}))
                .collect();
            json!({"id": name, "size": bytes.len(), "blobs": v})
        }
        "blob" => {
            let id = Id::from_hex(&need()?).context("blob needs the full 64-digit ID")?;
            let index = g.load_index(&repo)?;
            if index.contains(BlobType::Tree, &id) {
                let t = repo.read_tree(&index, &id)?;
                serde_json::to_value(&t)?
            } else {
                let data = repo.read_blob(&index, BlobType::Data, &id)?;
                use std::io::Write;
                std::io::stdout().write_all(&data)?;
                return Ok(code::OK);
            }
        }
        _ => bail!("unknown object"),
    };
    g.print_json(&v)?;
    Ok(code::OK)
}

pub fn repoinfo(g: &Global) -> Result<u8> {
    let repo = g.open()?;
    let mut packs = 0u64;
    let mut stored = [0u64; 2];
    let mut plain = [0u64; 2];
    let mut blobs = [0u64; 2];
    let mut seen = std::collections::HashSet::new();
    for id in repo.index_ids()? {
        // Damaged index files are reported by the load_index below.
        for p in repo.load_index_file(&id).unwrap_or_default() {
            if !seen.insert(p.id) {
                continue;
            }
            packs += 1;
            for b in p.blobs {
                let t = b.blob_type as usize;
                blobs[t] += 1;
                stored[t] += b.stored_len as u64;
                plain[t] += b.plain_len as u64;
            }
        }
    }
    let on_disk: u64 = repo.list_objects(FileType::Pack)?.iter().map(|(_, l)| l).sum();
    let snapshots = repo.list_objects(FileType::Snapshot)?.len();
    let keys = repo.list_objects(FileType::Key)?.len();
    let index = g.load_index(&repo)?;
    let ratio =
        if stored[0] + stored[1] > 0 { (plain[0] + plain[1]) as f64 / (stored[0] + stored[1]) as f64 } else { 1.0 };
    let v = json!({
        "repository": repo.backend().location(),
        "id": arca::id::hex(repo.repo_id()),
        "snapshots": snapshots, "keys": keys, "packs": packs, "pack_bytes": on_disk,
        "data_blobs": blobs[0], "tree_blobs": blobs[1],
        "data_plain_bytes": plain[0], "data_stored_bytes": stored[0],
        "tree_plain_bytes": plain[1], "tree_stored_bytes": stored[1],
        "compression_ratio": ratio,
        "index_memory_bytes": index.resident_bytes(),
        "config": repo.config(),
    });
    if g.json {
        return g.print_json(&v).map(|_| code::OK);
    }
    println!("repository   {} ({})", repo.backend().location(), &arca::id::hex(repo.repo_id())[..16]);
    println!("snapshots    {snapshots}\nkeys         {keys}\npacks        {packs} ({})", super::human(on_disk));
    println!("data blobs   {} ({} plain, {} stored)", blobs[0], super::human(plain[0]), super::human(stored[0]));
    println!("tree blobs   {} ({} plain, {} stored)", blobs[1], super::human(plain[1]), super::human(stored[1]));
    println!("compression  {ratio:.2}x\nindex memory {}", super::human(index.resident_bytes() as u64));
    let _ = FileKind::Config;
    Ok(code::OK)
}
