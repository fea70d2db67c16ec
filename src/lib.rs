//! # arca
//!
//! A content-addressed, deduplicating, encrypted backup repository format and the library that
//! reads and writes it. The on-disk format is specified byte for byte in `format-spec/`; the
//! modules below mirror it:
//!
//! - [`format`]: pure encoders/decoders, one file per spec section;
//! - [`crypto`]: master key, derived subkeys, AEAD, password wrapping;
//! - [`chunker`]: keyed FastCDC;
//! - [`backend`]: where files live (a local directory);
//! - [`repo`]: an open repository: index, packer, locks;
//! - [`archiver`]: backup (with an I/O thread pool beside rayon's, `iopool`); [`restore`];
//!   [`check`]; [`browse`]: ls, find, diff, dump; [`mount`]: snapshots as a FUSE filesystem;
//! - [`lifecycle`]: forget, prune, tag, rewrite, repair;
//! - [`filter`]: restic's exclude patterns (backup, rewrite);
//! - [`interrupt`]: Ctrl-C and SIGTERM remove the process's locks before it exits;
//! - [`ops`]: the operations every front end calls (backup, restore, check, drill, status, …),
//!   with scopes (profiles and components), one outcome table and the journal.
//!
//! Errors are one [`Error`] enum; integrity failures are their own variant.
#![deny(missing_docs)]

pub mod archiver;
pub mod backend;
pub mod browse;
pub mod check;
pub mod chunker;
pub mod crypto;
pub mod error;
pub mod filter;
pub mod format;
pub mod fuzz_targets;
pub mod id;
pub mod interrupt;
pub(crate) mod iopool;
pub mod lifecycle;
pub mod localtime;
pub mod mount;
pub mod ops;
pub mod progress;
pub mod repo;
pub mod restore;
pub mod sys;
pub mod text;
pub(crate) mod trusted_path;
pub mod ui;

pub use error::{Error, Result};
pub use id::Id;
