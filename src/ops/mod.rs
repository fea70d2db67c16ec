//! Disaster-recovery operations built on restore, check and the repository: restore drills.

pub mod drill;
