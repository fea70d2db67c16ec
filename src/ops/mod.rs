//! Operations around backups: what to back up and how it is judged ([`profile`]).

pub mod profile;
