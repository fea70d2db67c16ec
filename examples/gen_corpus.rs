//! Deterministic benchmark corpus: `cargo run --release --example gen_corpus -- DIR [SCALE]`.
//!
//! Writes a tree shaped like real user data, identical on every run: many small source-like
//! text files in nested directories (compressible), some mid-sized binaries (incompressible),
//! a few large files, duplicated files (deduplicable), empty files and directories, symlinks.
//! SCALE (default 1) multiplies the file counts; SCALE 1 is about 300 MiB in ~20,000 files.

use std::fs;
use std::io::Write;
use std::path::Path;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
    fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "fn", "let", "mut", "impl", "struct", "return", "match", "self", "Some", "None", "Result", "Vec", "String",
            "usize", "if", "else", "for", "in", "while", "pub", "use", "mod", "crate",
        ];
        let mut v = Vec::with_capacity(n + 16);
        while v.len() < n {
            let w = WORDS[self.below(WORDS.len() as u64) as usize];
            v.extend_from_slice(w.as_bytes());
            v.push(if self.below(8) == 0 { b'\n' } else { b' ' });
            if self.below(50) == 0 {
                v.extend_from_slice(format!("{:x}", self.next()).as_bytes());
            }
        }
        v.truncate(n);
        v
    }
}

fn write(p: &Path, data: &[u8]) {
    fs::File::create(p).and_then(|mut f| f.write_all(data)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = Path::new(args.get(1).expect("usage: gen_corpus DIR [SCALE]"));
    let scale: u64 = args.get(2).map(|s| s.parse().expect("SCALE is a number")).unwrap_or(1);
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let mut dup_source: Vec<Vec<u8>> = Vec::new();
    for project in 0..40 * scale {
        let proj = root.join(format!("project-{project:03}"));
        for d in 0..10 {
            let dir = proj.join(format!("src/module{d}/sub{}", d % 3));
            fs::create_dir_all(&dir).unwrap();
            for f in 0..45 {
                let len = (r.below(16) + 1) as usize * (r.below(2000) + 100) as usize;
                let data = r.text(len);
                if f == 0 {
                    dup_source.push(data.clone());
                }
                write(&dir.join(format!("file{f:02}.rs")), &data);
            }
        }
        // Duplicates of earlier files (vendored copies).
        let vend = proj.join("vendor");
        fs::create_dir_all(&vend).unwrap();
        for (i, d) in dup_source.iter().rev().take(5).enumerate() {
            write(&vend.join(format!("copy{i}.rs")), d);
        }
        // Binaries.
        let bin = proj.join("assets");
        fs::create_dir_all(&bin).unwrap();
        for b in 0..3 {
            let len = (r.below(1 << 20) + (64 << 10)) as usize;
            write(&bin.join(format!("blob{b}.bin")), &r.bytes(len));
        }
        fs::create_dir_all(proj.join("empty/dir")).unwrap();
        write(&proj.join("empty.txt"), b"");
        let _ = std::os::unix::fs::symlink("src/module0", proj.join("link-to-src"));
    }
    // A few large files: a log (compressible) and an image (incompressible).
    let big = root.join("big");
    fs::create_dir_all(&big).unwrap();
    for i in 0..scale {
        write(&big.join(format!("server{i}.log")), &r.text(48 << 20));
        write(&big.join(format!("disk{i}.img")), &r.bytes(40 << 20));
    }
}
