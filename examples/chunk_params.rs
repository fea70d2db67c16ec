//! Chunker parameter study: dedup vs index size. `cargo run --release --example chunk_params -- DIR`
//!
//! Builds stream A by concatenating the files under DIR (sorted, up to 256 MiB), and stream B
//! from A with scattered edits (1 in-place 100-byte change per ~12 MiB and a 1 KiB insertion
//! per ~120 MiB, like a database dump between two nights). For each parameter set it reports the
//! chunks of A, the bytes of B not already stored by A, and a per-blob overhead estimate (127
//! bytes on disk: envelope 41 + TOC 41 + index 45; 40 bytes of index memory).

use arca::chunker::Chunker;
use arca::crypto::{Keys, MasterKey};
use arca::format::config::ChunkerParams;
use std::collections::HashSet;

fn collect(dir: &std::path::Path, out: &mut Vec<u8>, cap: usize) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if out.len() >= cap {
            return;
        }
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            collect(&p, out, cap);
        } else if m.is_file() {
            out.extend(std::fs::read(&p).unwrap_or_default());
        }
    }
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: chunk_params DIR");
    let mut a = Vec::new();
    collect(std::path::Path::new(&dir), &mut a, 256 << 20);
    let mut b = a.clone();
    let mut s = 0x1234_5678_9abc_def1u64;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut pos = 0usize;
    let mut i = 0;
    while pos + 2048 < b.len() {
        pos += (rnd() % (24 << 20)) as usize;
        if pos + 100 >= b.len() {
            break;
        }
        for x in &mut b[pos..pos + 100] {
            *x = rnd() as u8;
        }
        i += 1;
        if i % 10 == 0 {
            let ins: Vec<u8> = (0..1024).map(|_| rnd() as u8).collect();
            b.splice(pos..pos, ins);
        }
    }
    let keys = Keys::derive(&MasterKey::from_bytes([7; 32]));
    println!("A = {} MiB, B = A + {i} edits", a.len() >> 20);
    println!(
        "{:>28} {:>9} {:>12} {:>14} {:>12}",
        "min/avg/max KiB", "chunks A", "new bytes B", "overhead A+B", "B cost"
    );
    let sets = [
        (64, 256, 1024, 1),
        (128, 512, 2048, 1),
        (128, 512, 2048, 2),
        (256, 1024, 4096, 1),
        (256, 1024, 4096, 2),
        (512, 1024, 4096, 1),
        (512, 1024, 8192, 1),
        (1024, 2048, 8192, 1),
    ];
    for (min, avg, max, nc) in sets {
        let p = ChunkerParams { min_size: min << 10, avg_size: avg << 10, max_size: max << 10, normalization: nc };
        let ch = Chunker::new(&p, keys.gear().unwrap());
        let mut seen = HashSet::new();
        let mut off = 0;
        for n in ch.lengths(&a) {
            seen.insert(keys.blob_id(&a[off..off + n]));
            off += n;
        }
        let chunks_a = seen.len();
        let (mut new_bytes, mut new_chunks, mut off) = (0usize, 0usize, 0);
        for n in ch.lengths(&b) {
            if seen.insert(keys.blob_id(&b[off..off + n])) {
                new_bytes += n;
                new_chunks += 1;
            }
            off += n;
        }
        let overhead = (chunks_a + new_chunks) * 127;
        println!(
            "{:>28} {:>9} {:>10.1}Mi {:>12.2}Mi {:>10.1}Mi",
            format!("{min}/{avg}/{max} nc{nc}"),
            chunks_a,
            new_bytes as f64 / 1048576.0,
            overhead as f64 / 1048576.0,
            (new_bytes + new_chunks * 127) as f64 / 1048576.0
        );
    }
}
