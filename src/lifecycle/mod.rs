//! The repository lifecycle (format-spec/17-consistency.md §17.5–17.9): retention
//! ([`policy`], [`group`], [`forget`]), reclaiming space ([`prune`]), labels ([`tag`]) and
//! recovery from damage ([`repair`]); [`rewrite`] replaces a snapshot by a rewritten copy;
//! [`copy`] copies snapshots into another repository.
//!
//! Arrows point one way: these modules use `repo` (index, packer, locks) and `format`, and never
//! print; `cli/` turns their result values into text or JSON.

pub mod copy;
pub mod forget;
pub mod group;
pub mod heal;
pub mod policy;
pub mod prune;
pub mod repair;
pub mod rewrite;
pub mod rotate;
pub mod tag;
