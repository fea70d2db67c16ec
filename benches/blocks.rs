//! Building-block throughput: chunking, hashing, compress+encrypt, blob open, index lookup.
//!
//! `cargo bench --bench blocks`. Each group reports bytes per second (Throughput::Bytes) on
//! 16 MiB of deterministic data that compresses about 2:1, like typical source trees.
//! The index group also prints resident bytes per indexed blob.

use arca::chunker::Chunker;
use arca::crypto::{Keys, MasterKey};
use arca::format::blob::BlobType;
use arca::format::config::ChunkerParams;
use arca::format::index::{IndexBlob, IndexPack};
use arca::repo::index::{Index, BYTES_PER_BLOB};
use arca::Id;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Deterministic data: runs of random bytes mixed with repeated text, ~2:1 compressible.
fn corpus(len: usize) -> Vec<u8> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(len);
    let words: &[&[u8]] = &[b"fn main() {", b"let x = ", b"return ", b"}\n", b"impl Trait for ", b"// comment\n"];
    while out.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        if s % 3 == 0 {
            out.extend_from_slice(&s.to_le_bytes());
        } else {
            out.extend_from_slice(words[(s >> 8) as usize % words.len()]);
        }
    }
    out.truncate(len);
    out
}

fn keys() -> Keys {
    Keys::derive(&MasterKey::from_bytes([7; 32]))
}

fn chunking(c: &mut Criterion) {
    let data = corpus(16 << 20);
    let k = keys();
    let ch = Chunker::new(&ChunkerParams::default(), k.gear().unwrap());
    let mut g = c.benchmark_group("chunking");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("fastcdc_keyed_1MiB_avg", |b| b.iter(|| black_box(ch.lengths(black_box(&data)))));
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let data = corpus(1 << 20);
    let k = keys();
    let mut g = c.benchmark_group("hashing");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("blake3_keyed_1MiB", |b| b.iter(|| black_box(k.blob_id(black_box(&data)))));
    g.finish();
}

fn seal(c: &mut Criterion) {
    let data = corpus(1 << 20);
    let k = keys();
    let id = k.blob_id(&data);
    let ad = arca::format::blob::blob_ad(BlobType::Data, &id, &[9; 32]);
    let mut g = c.benchmark_group("seal");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for level in [1, 3] {
        g.bench_with_input(BenchmarkId::new("zstd_then_xchacha", level), &level, |b, &level| {
            b.iter(|| {
                let framed = arca::format::compression::encode(black_box(&data), level);
                black_box(k.seal(&framed, &ad).unwrap())
            })
        });
    }
    let framed = arca::format::compression::encode(&data, 3);
    let sealed = k.seal(&framed, &ad).unwrap();
    g.bench_function("open_and_decompress", |b| {
        b.iter(|| {
            let f = k.open(black_box(&sealed), &ad, "bench").unwrap();
            black_box(arca::format::compression::decode(&f, 8 << 20, "bench").unwrap())
        })
    });
    g.bench_function("xchacha_only", |b| b.iter(|| black_box(k.seal(black_box(&data), &ad).unwrap())));
    g.finish();
}

fn index(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let mut s = 1u64;
    let mut next_id = || {
        let mut id = [0u8; 32];
        for part in id.chunks_mut(8) {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            part.copy_from_slice(&s.to_le_bytes());
        }
        Id(id)
    };
    let ids: Vec<Id> = (0..N).map(|_| next_id()).collect();
    let packs: Vec<IndexPack> = ids
        .chunks(1000)
        .map(|c| IndexPack {
            id: Id([1; 32]),
            size: u32::MAX,
            ephemeral: None,
            blobs: c
                .iter()
                .enumerate()
                .map(|(i, id)| IndexBlob {
                    blob_type: BlobType::Data,
                    id: *id,
                    offset: 8 + i as u32 * 100,
                    stored_len: 100,
                    plain_len: 100,
                })
                .collect(),
        })
        .collect();
    let idx = Index::from_packs(packs);
    eprintln!(
        "index: {} blobs, {} resident bytes, {:.1} B/blob (record {} B)",
        idx.len(),
        idx.resident_bytes(),
        idx.resident_bytes() as f64 / idx.len() as f64,
        BYTES_PER_BLOB
    );
    let mut g = c.benchmark_group("index");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("lookup_hit_1M", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(idx.lookup(BlobType::Data, &ids[i]))
        })
    });
    let miss = next_id();
    g.bench_function("lookup_miss_1M", |b| b.iter(|| black_box(idx.contains(BlobType::Data, black_box(&miss)))));
    g.finish();
}

criterion_group!(benches, chunking, hashing, seal, index);
criterion_main!(benches);
