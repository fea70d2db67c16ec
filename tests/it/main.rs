//! Integration tests, one binary: `cargo test --test it`.

mod backup_restore;
mod check;
mod cli;
mod common;
mod fuzz;
mod hardening_browse;
mod repo;
mod review;
mod vectors;
