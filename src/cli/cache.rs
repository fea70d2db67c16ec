//! `arca cache [--cleanup [--max-age DURATION]]`: the local cache of remote repositories.

use anyhow::{bail, Result};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct CacheArgs {
    /// Remove the cached repositories not used for --max-age.
    #[arg(long)]
    cleanup: bool,
    /// With --cleanup: how long unused (`0`: all of them).
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = super::parse_duration, requires = "cleanup")]
    max_age: std::time::Duration,
}

/// List or clean the cache in `dir`.
pub fn run(a: &CacheArgs, dir: Option<&Path>, json: bool) -> Result<u8> {
    let Some(dir) = dir else {
        bail!("no cache directory: --no-cache was given, or neither HOME nor XDG_CACHE_HOME is set")
    };
    let io = |e: std::io::Error| anyhow::anyhow!("{}: {e}", dir.display());
    let (list, verb) = if a.cleanup {
        (arca::backend::cache::cleanup(dir, a.max_age).map_err(io)?, "removed ")
    } else {
        (arca::backend::cache::entries(dir).map_err(io)?, "")
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(0);
    }
    for e in &list {
        let used = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.used));
        println!("{verb}{}  {} files  {:.1} MiB  used {used}", e.path.display(), e.files, e.bytes as f64 / 1048576.0);
    }
    if list.is_empty() && !a.cleanup {
        println!("no cached repositories in {}", dir.display());
    }
    Ok(0)
}
