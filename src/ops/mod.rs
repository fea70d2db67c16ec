//! Operations: what a command does, as a value a front end fills in and a function that runs
//! it, returning a report. The CLI (`src/cli/`) parses arguments into these requests and
//! renders the reports; a web UI or a server calls the same functions.
//!
//! - [`scope`] resolves which repository (and password) and, with a profile, which components
//!   a command acts on; [`context`] opens, locks, and reports waits and warnings;
//! - [`outcome`] is the one table from how an operation ended to its exit code, its journal
//!   record and how `status` reads it; [`journal`] records operations as they run;
//! - the operations: [`backup`], [`restore`], [`verify`], [`browse`] (snapshots, ls, find,
//!   diff, dump) with [`inspect`] (versions, sizes, previews), [`stats`], [`check`],
//!   [`drill`], [`forget`] (and prune), [`tag`], [`rewrite`], [`copy`], [`mount`], [`admin`]
//!   (init, key, cat, repoinfo, unlock, parity, repair), [`status`] with [`metrics`] and
//!   [`alert`], [`units`] (systemd) from [`profile`]s, and [`iam`] (the S3 policies of
//!   `generate s3-policy`).
//!
//! Arrows point one way: the CLI calls `ops`, which calls `lifecycle`, `restore`, `check`,
//! `archiver` and `repo`; nothing below depends on `ops`.

pub mod admin;
pub mod alert;
pub mod backup;
pub mod browse;
pub mod check;
pub mod context;
pub mod copy;
pub mod drill;
pub mod forget;
pub mod iam;
pub mod inspect;
pub mod journal;
pub mod locate;
pub mod metrics;
pub mod mount;
pub mod outcome;
pub mod profile;
pub mod restore;
pub mod rewrite;
pub mod scope;
pub mod serve;
pub mod stats;
pub mod status;
pub mod tag;
pub mod units;
pub mod verify;

pub use context::{Context, Notices, PasswordSource};
pub use outcome::{HasOutcome, Outcome};
pub use scope::Scope;
