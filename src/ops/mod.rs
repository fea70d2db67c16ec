//! Disaster-recovery operations built on the rest of the library: the operations journal's
//! records and queries, profiles (named components of an application, from a TOML file),
//! restore drills, and status against recovery objectives.
//!
//! Arrows point one way: the CLI calls `ops`, which calls `lifecycle`, `restore`, `check` and
//! `repo`; nothing below depends on `ops`.

pub mod drill;
pub mod journal;
pub mod profile;
pub mod status;
