//! A repository shaped for `benches/status.sh`: `cargo run --release --example status_repo --
//! REPO PASSWORD SNAPSHOTS HOSTS`.
//!
//! REPO must hold at least one snapshot (of a small tree). Writes SNAPSHOTS snapshot files that
//! reuse the newest snapshot's tree, spread over HOSTS host names and the last 30 days (one
//! group per host, so `status` reads few trees but decrypts every snapshot), and one journal
//! file per snapshot (a backup record), plus a check and a drill per host: the worst case of a
//! journal never compacted.

use arca::backend::local::LocalBackend;
use arca::ops::journal::{self, Op};
use arca::repo::Repository;
use rayon::prelude::*;
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, password, count, hosts] = args.as_slice() else {
        eprintln!("usage: status_repo REPO PASSWORD SNAPSHOTS HOSTS");
        std::process::exit(2);
    };
    let (count, hosts): (u64, u64) = (count.parse().expect("SNAPSHOTS"), hosts.parse().expect("HOSTS"));
    let repo = Repository::open(Arc::new(LocalBackend::new(dir)), password.as_bytes()).expect("open");
    let (_, base) = repo.list_snapshots().expect("list").into_iter().max_by_key(|(_, s)| s.time).expect("a snapshot");
    let now = arca::sys::now_nanos();
    let span = 30 * 86_400 * 1_000_000_000i64;
    (0..count).into_par_iter().for_each(|i| {
        let mut s = base.clone();
        s.hostname = format!("host-{:03}", i % hosts);
        s.time = now - span + (span / count as i64) * i as i64;
        let id = repo.save_snapshot(&s).expect("save snapshot");
        let mut r = journal::start(Op::Backup);
        r.time = s.time;
        r.hostname = s.hostname.clone();
        r.snapshots.push(id);
        journal::set_label(&mut r, "paths", String::from_utf8_lossy(&s.paths[0]).into_owned());
        journal::finish(&mut r, arca::ops::Outcome::Ok);
        r.time = s.time;
        journal::append(&repo, &r).expect("append");
        if i + hosts >= count {
            let mut d = journal::start(Op::Drill);
            d.snapshots.push(id);
            journal::set_metric(&mut d, "rto_full_ns", 12_000_000_000);
            journal::append(&repo, &d).expect("append drill");
        }
    });
    let mut c = journal::start(Op::Check);
    journal::set_label(&mut c, "read_data", "all");
    journal::append(&repo, &c).expect("append check");
    println!("wrote {count} snapshots over {hosts} hosts and {} journal files", count + hosts + 1);
}
