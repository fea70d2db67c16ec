//! What a command acts on, resolved once: which repository (and its password), and — with
//! `--profile NAME [--component A,B]` — which components, each with the filter that finds its
//! snapshots. After this, no operation needs to know whether a profile was used: a plain
//! command is a [`Scope`] without components.
//!
//! Rules (README, "Profiles"):
//! - the profile's repository is used; `-r`/`ARCA_REPOSITORY` naming another one is a usage
//!   error, never a silent choice (a leftover variable must not send a profile's backups
//!   elsewhere);
//! - a password given on the command line (or its variables) wins over the profile's source;
//! - without `--profile` and without `-r`, a configuration naming exactly one repository
//!   supplies it;
//! - a configuration file runs commands (hooks, dumps, password commands), so it must not be
//!   writable by anyone but its owner, who is root or the user running arca
//!   ([`profile::load`]), as ssh and sudo require of theirs.

use super::context::Context;
use super::outcome::Run;
use super::profile::{self, Profile, RepositorySettings, Target};
use crate::error::{Error, Result};
use crate::repo::select::SnapshotFilter;
use std::path::{Path, PathBuf};

/// A resolved command scope: the context to run in and the components to run over.
#[derive(Clone)]
pub struct Scope {
    /// How to reach the repository (the profile's, or the command line's).
    pub ctx: Context,
    /// The configuration file read, if any.
    pub config: Option<PathBuf>,
    /// The profile, with `--profile`.
    pub profile: Option<Profile>,
    /// The selected components of the profile (every one without `--component`); empty without
    /// a profile.
    pub targets: Vec<Target>,
}

/// What the command line says about profiles.
#[derive(Clone, Debug, Default)]
pub struct ProfileChoice {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--component` (empty: all).
    pub components: Vec<String>,
}

impl Scope {
    /// A scope without a profile.
    pub fn plain(ctx: Context) -> Scope {
        Scope { ctx, config: None, profile: None, targets: Vec::new() }
    }

    /// Resolve `choice` against `ctx` (built from the command line): apply the profile's
    /// repository and password, or the configuration's only repository when none was given.
    pub fn resolve(mut ctx: Context, choice: &ProfileChoice) -> Result<Scope> {
        let Some(name) = &choice.profile else {
            if ctx.location.is_some() {
                return Ok(Scope::plain(ctx));
            }
            // No repository given: a configuration that names exactly one supplies it.
            let Some(path) = profile::config_path(choice.config.as_deref()).filter(|p| p.exists()) else {
                return Ok(Scope::plain(ctx));
            };
            let cfg = profile::load(&path)?;
            if let [only] = cfg.repositories.values().collect::<Vec<_>>()[..] {
                apply(&mut ctx, only);
            }
            return Ok(Scope { ctx, config: Some(path), profile: None, targets: Vec::new() });
        };
        let profile::Resolved { source, repository, profile: p, targets } =
            profile::resolve(choice.config.as_deref(), name, &choice.components)?;
        if let Some(r) = &repository {
            if let Some(given) = &ctx.location {
                if !same_location(given, &r.path) {
                    return Err(Error::InvalidArgument(format!(
                        "profile {name} backs up to repository {} ({}), but -r/ARCA_REPOSITORY names {}: \
                         give one of them (unset ARCA_REPOSITORY for profile runs)",
                        r.name,
                        r.path.display(),
                        given.display()
                    )));
                }
            }
            apply(&mut ctx, r);
        }
        Ok(Scope { ctx, config: Some(source), profile: Some(p), targets })
    }

    /// Whether a profile is in use.
    pub fn has_profile(&self) -> bool {
        self.profile.is_some()
    }

    /// The passes a per-component command makes: one per selected component, or a single pass
    /// (`None`) without a profile.
    pub fn passes(&self) -> Vec<Option<&Target>> {
        match self.profile {
            Some(_) => self.targets.iter().map(Some).collect(),
            None => vec![None],
        }
    }

    /// Run `one` once without a profile, or once per selected component (each announced
    /// first), collecting how each went: one component's failure does not stop the others.
    pub fn each<T>(&self, mut one: impl FnMut(Option<&Target>) -> Result<T>) -> Vec<Run<T>> {
        let mut runs = Vec::new();
        for t in self.passes() {
            if let Some(t) = t {
                self.ctx.notices.component(&t.name);
            }
            runs.push(Run { component: t.map(|t| t.name.clone()), result: one(t) });
        }
        runs
    }

    /// `base` narrowed to one component's snapshots (`Some`), or to those of every selected
    /// component of the profile (`None` with a profile); `base` itself without a profile.
    pub fn filter(&self, base: &SnapshotFilter, target: Option<&Target>) -> SnapshotFilter {
        let mut f = base.clone();
        match (target, &self.profile) {
            (Some(t), _) => f.scope = t.filter.tags.clone(),
            (None, Some(_)) => f.scope = self.targets.iter().flat_map(|t| t.filter.tags.clone()).collect(),
            (None, None) => {}
        }
        f
    }
}

/// Use `r`'s location, and its password source unless one was given explicitly.
fn apply(ctx: &mut Context, r: &RepositorySettings) {
    ctx.location = Some(r.path.clone());
    if !ctx.password.is_explicit() {
        ctx.password.file = r.password_file.clone();
        ctx.password.command = r.password_command.clone();
    }
}

/// Whether two repository locations name the same repository: equal `s3:` URLs, or local paths
/// that are the same directory (or the same absolute path when neither exists yet).
pub fn same_location(a: &Path, b: &Path) -> bool {
    let remote = |p: &Path| p.to_str().is_some_and(|s| s.starts_with("s3:"));
    if remote(a) || remote(b) {
        return a == b;
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}
