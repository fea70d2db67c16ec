//! `arca ui`: a web UI over the operations layer. Browse snapshots by host, tag, component and
//! time; walk a snapshot's directories (pages of 500 entries, whatever the directory's size);
//! see a file's details, a preview and every version of it; search (`find`'s semantics) and
//! compare (`diff`); download a file, or a directory as the `.tar` or `.zip` that `arca dump`
//! writes, streamed; see each component's health (`arca status`) with charts from the journal;
//! and, when allowed, restore a selection or run a backup.
//!
//! [`server`] accepts connections (hyper on a small tokio runtime) and runs each page on a
//! blocking thread; [`auth`] decides who may ask what (sessions, CSRF, the Host check); the
//! pages call `crate::ops` and render HTML through [`html`], which escapes every name a snapshot
//! holds. Nothing here opens, locks or records anything itself: the operations do.

mod actions;
pub mod auth;
pub mod charts;
mod health;
pub mod html;
mod http;
mod pages;
mod server;

pub use server::{serve, Listening, UiOptions};
