//! `arca serve --stdio [--append-only] DIR`: the server end of `ssh://` repositories.

use anyhow::{bail, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Speak the protocol on standard input and output (as ssh runs it); the only transport.
    #[arg(long)]
    stdio: bool,
    /// Refuse every removal and overwrite except of the client's own locks: a client that is
    /// taken over cannot destroy history. Use it in the forced command of `authorized_keys`:
    /// `command="arca serve --stdio --append-only /srv/arca",restrict ssh-ed25519 AAAA…`.
    #[arg(long)]
    append_only: bool,
    /// The repository directory served (a forced command's directory wins over the client's).
    dir: PathBuf,
}

/// Run `arca serve`: nothing but the protocol goes to standard output.
pub fn run(a: &ServeArgs) -> Result<u8> {
    if !a.stdio {
        bail!("arca serve speaks only over standard input and output: add --stdio (ssh runs it so)");
    }
    let req = arca::ops::serve::ServeRequest { dir: a.dir.clone(), append_only: a.append_only };
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    arca::ops::serve::run(&req, stdin, stdout)?;
    Ok(0)
}
