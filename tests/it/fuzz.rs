//! A deterministic, in-process run of every fuzz target in `arca::fuzz_targets`: over the test
//! vectors (and the plaintexts they state or hold), over mutations of them, and over pseudo-random
//! inputs. The cargo-fuzz project in `fuzz/` runs the same functions open-ended; this keeps the
//! cheap part in every `cargo test`.

use arca::format::header::{self, FileKind, HEADER_LEN};
use arca::format::pack;
use arca::fuzz_targets::{self as ft, test_keys, TEST_REPO_ID};
use arca::id::unhex;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("key_file", ft::key_file),
    ("config", ft::config),
    ("pack_toc", ft::pack_toc),
    ("pack_trailer", ft::pack_trailer),
    ("index", ft::index),
    ("snapshot", ft::snapshot),
    ("tree", ft::tree),
    ("lock", ft::lock),
    ("journal", ft::journal),
    ("compression", ft::compression),
    ("file_header", ft::file_header),
    ("sealed_file", ft::sealed_file),
    ("chunker", ft::chunker),
    ("parity", ft::parity),
    ("serve", ft::serve),
    ("backup_parent_cache", ft::backup_parent_cache),
];

/// xorshift64*: small, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Run `target` on `input`; on a panic, name the target and input before failing.
fn call(name: &str, target: Target, input: &[u8]) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| target(input))) {
        eprintln!("fuzz target {name} panicked on {} bytes: {}", input.len(), arca::id::hex(input));
        resume_unwind(p);
    }
}

fn run_all(input: &[u8]) {
    for (name, target) in TARGETS {
        call(name, *target, input);
    }
}

/// Seeds: every vector's bytes; the framed plaintext it states, with and without the method byte;
/// for packs that open with the test key, the TOC plaintext.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (_, vectors) in super::vectors::load() {
        for v in vectors {
            let bytes = unhex(v["hex"].as_str().unwrap()).unwrap();
            if let Some(p) = v["inputs"].get("plaintext").and_then(|p| p.as_str()).and_then(unhex) {
                if p.len() > 1 {
                    out.push(p[1..].to_vec());
                }
                out.push(p);
            }
            if v["kind"] == "pack" {
                out.extend(toc_plaintext(&bytes));
            }
            out.push(bytes);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn toc_plaintext(bytes: &[u8]) -> Option<Vec<u8>> {
    header::check(bytes, FileKind::Pack, "seed").ok()?;
    let trailer = bytes[bytes.len() - 4..].try_into().unwrap();
    let (off, len) = pack::locate_toc(bytes.len() as u64, trailer, "seed").ok()?;
    let sealed = &bytes[off as usize..(off + len as u64) as usize];
    test_keys().open(sealed, &pack::toc_ad(&TEST_REPO_ID), "seed").ok()
}

#[test]
fn fuzz_targets_on_vectors() {
    let seeds = seeds();
    assert!(seeds.len() > 300);
    for s in &seeds {
        run_all(s);
    }
}

const INTERESTING_U32: [u32; 9] = [0, 1, 7, 8, 40, 41, 44, 0x7fff_ffff, u32::MAX];

/// One random structural mutation.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    let len = b.len();
    match rng.below(10) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
            }
        }
        1 => b.truncate(rng.below(len + 1)),
        2 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let ins = rng.bytes(n);
            b.splice(at..at, ins);
        }
        3 => {
            let at = rng.below(len + 1);
            let n = rng.below(len - at + 1).min(1 + rng.below(16));
            b.drain(at..at + n);
        }
        4 | 5 => {
            let fill = if rng.below(2) == 0 { 0xff } else { 0x00 };
            let at = rng.below(len + 1);
            let n = (1 + rng.below(16)).min(len - at);
            b[at..at + n].fill(fill);
        }
        6 => {
            if !b.is_empty() {
                let i = rng.below(len);
                b[i] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x81][rng.below(6)];
            }
        }
        7 => {
            if len >= 4 {
                let at = rng.below(len - 3);
                let x = INTERESTING_U32[rng.below(INTERESTING_U32.len())];
                b[at..at + 4].copy_from_slice(&x.to_le_bytes());
            }
        }
        8 => {
            // Duplicate a slice somewhere else.
            let at = rng.below(len + 1);
            let n = rng.below(len - at + 1).min(64);
            let piece = b[at..at + n].to_vec();
            let to = rng.below(len + 1);
            b.splice(to..to, piece);
        }
        _ => {
            // Overlong-varint style: a continuation byte followed by zero.
            let at = rng.below(len + 1);
            b.splice(at..at, [0x80, 0x00]);
        }
    }
    b
}

#[test]
fn fuzz_targets_on_mutated_vectors() {
    let mut rng = Rng(0x5eed_0000_0000_0001);
    let mut calls = 0;
    for s in seeds() {
        // Large inputs (the chunker's 64 KiB) get fewer mutations; they only slow things down.
        let rounds = if s.len() > 8192 { 3 } else { 12 };
        for _ in 0..rounds {
            let mut m = mutate(&mut rng, &s);
            if rng.below(3) == 0 {
                m = mutate(&mut rng, &m);
            }
            run_all(&m);
            calls += 1;
        }
    }
    assert!(calls > 3000);
}

#[test]
fn fuzz_targets_on_random_inputs() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for i in 0..2000 {
        let len = if i < 64 { i } else { rng.below(4096) };
        let mut input = rng.bytes(len);
        // Give a share of the inputs a valid file header or a zstd frame start, so that they get
        // past the first check.
        match i % 4 {
            1 if len >= HEADER_LEN => {
                let kind = FileKind::from_u8(1 + rng.below(6) as u8).unwrap();
                input[..HEADER_LEN].copy_from_slice(&header::encode(kind));
            }
            2 if len >= 5 => input[..5].copy_from_slice(&[1, 0x28, 0xb5, 0x2f, 0xfd]),
            _ => {}
        }
        run_all(&input);
    }
}

/// The cargo-fuzz project has one binary per target, calling the function of the same name.
#[test]
fn fuzz_project_lists_every_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let bins = manifest.matches("[[bin]]").count();
    assert_eq!(bins, TARGETS.len(), "fuzz/Cargo.toml has {bins} binaries");
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, super::vectors::gen::FUZZ_TARGETS, "examples/gen_vectors.rs lists other targets");
    for name in names {
        assert!(
            manifest.contains(&format!("name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"")),
            "no [[bin]] for {name}"
        );
        let src = std::fs::read_to_string(root.join("fuzz_targets").join(format!("{name}.rs"))).unwrap();
        assert!(
            src.contains(&format!("arca::fuzz_targets::{name}(data)")),
            "fuzz_targets/{name}.rs calls something else"
        );
    }
}
