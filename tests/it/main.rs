//! Integration tests, one binary: `cargo test --test it`.

mod backup_prefetch;
mod backup_restore;
mod check;
mod cli;
mod common;
mod fuzz;
mod hardening_backup;
mod hardening_browse;
mod hardening_repo;
mod hardening_restore;
mod lifecycle_forget;
mod lifecycle_prune;
mod lifecycle_repair;
mod mount;
mod ops_copy;
mod ops_defects;
mod ops_drill;
mod ops_journal;
mod ops_profile;
mod ops_status;
mod parity;
mod repo;
mod review;
mod s3;
mod s3_faults;
mod vectors;
