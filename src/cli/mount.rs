//! `arca mount MOUNTPOINT`: browse snapshots as a read-only filesystem until Ctrl-C or an
//! unmount from outside.

use super::output::escape_str;
use super::select::SelectArgs;
use super::Global;
use anyhow::{bail, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// Where to mount: an existing directory.
    mountpoint: PathBuf,
    /// Let other users in (a non-root user needs `user_allow_other` in /etc/fuse.conf); the
    /// kernel then checks the recorded permission bits, as restic does.
    #[arg(long)]
    allow_other: bool,
    /// With --allow-other: ignore the recorded permission bits (everyone let in reads everything).
    #[arg(long, requires = "allow_other")]
    no_default_permissions: bool,
    /// Bytes of decrypted chunks kept in memory, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
    cache_mib: u32,
    #[command(flatten)]
    select: SelectArgs,
}

/// Set by SIGINT and SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Make SIGINT and SIGTERM set [`STOP`] instead of killing the process (which would leave a
/// dead mount behind: "Transport endpoint is not connected").
fn catch_signals() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the struct is
        // fully initialised (zeroed mask and flags, then the handler).
        let rc = unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut())
        };
        if rc != 0 {
            bail!("cannot install a signal handler: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn run(g: &Global, a: MountArgs) -> Result<u8> {
    let opts = arca::mount::MountOptions {
        allow_other: a.allow_other,
        default_permissions: a.allow_other && !a.no_default_permissions,
        cache_bytes: a.cache_mib as usize * (1 << 20),
        ..Default::default()
    };
    let report: arca::mount::Report = Arc::new(|m: &str| eprintln!("error: {}", escape_str(m)));
    catch_signals()?;
    let m = arca::ops::mount::mount(&g.scope, &a.mountpoint, &a.select.filter(), &opts, report)?;
    let shown = escape_str(&m.at.display().to_string());
    let count = m.snapshots;
    eprintln!(
        "mounted {count} snapshot{} at {shown}; Ctrl-C or `fusermount3 -u {shown}` to unmount",
        if count == 1 { "" } else { "s" }
    );
    while !STOP.load(Ordering::SeqCst) {
        if m.mounted.finished() {
            // Unmounted from outside.
            m.mounted.unmount(Duration::ZERO)?;
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if m.mounted.unmount(Duration::from_secs(5))? {
        eprintln!("warning: {shown} was busy; it is detached and ends when the last file in it is closed");
    } else if !g.quiet {
        eprintln!("unmounted {shown}");
    }
    Ok(0)
}
