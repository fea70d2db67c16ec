//! `arca ui`: the web UI (see `arca::ui`), and `arca ui --hash-password` to make the password
//! hash it logs in with.

use super::Global;
use anyhow::{bail, Context as _, Result};
use arca::ui::auth::Credentials;
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use zeroize::Zeroizing;

const ABOUT: &str = "\
Browse snapshots, search, compare, download files and directories (.tar or .zip, the bytes
`arca dump` writes), see every version of a file, and the health of each component with charts
from the journal. On a loopback address (the default) no login is needed; any other address
requires --password-hash-file or --token-file. With a restore key the UI is read-only.";

/// Options of `arca ui`.
#[derive(clap::Args, Debug)]
#[command(after_help = ABOUT)]
pub struct UiArgs {
    /// Address and port to listen on (port 0: any free one; the URL is printed).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A file holding the Argon2id hash (PHC string) of the login password: make it with
    /// `arca ui --hash-password > FILE`.
    #[arg(long, value_name = "FILE")]
    password_hash_file: Option<PathBuf>,
    /// A file holding a token (16 characters or more) that logs in, or authenticates a request
    /// as `Authorization: Bearer TOKEN`.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Allow restoring a selection into a new directory below DIR on this server (never over
    /// existing files, without set-user-ID bits). Needs a login, even on loopback.
    #[arg(long, value_name = "DIR")]
    allow_restore: Option<PathBuf>,
    /// Allow running the profile's backup (of one component or all) from the UI. Needs a login,
    /// even on loopback.
    #[arg(long, requires = "profile")]
    allow_backup: bool,
    /// Print the Argon2id hash of a password (asked for, or one line of standard input) and exit.
    // Not `exclusive`: clap would count ARCA_REPOSITORY and the like as given arguments.
    #[arg(long, conflicts_with_all = ["password_hash_file", "token_file", "allow_restore", "allow_backup"])]
    hash_password: bool,
}

/// Run `arca ui`.
pub fn run(g: &Global, a: UiArgs) -> Result<u8> {
    if a.hash_password {
        let pw = read_password()?;
        println!("{}", arca::ui::auth::hash_password(pw.as_bytes())?);
        return Ok(0);
    }
    let credentials = Credentials {
        password_hash: a.password_hash_file.as_deref().map(first_line).transpose()?.map(|s| s.to_string()),
        token: a.token_file.as_deref().map(first_line).transpose()?,
    };
    let opts = arca::ui::UiOptions {
        listen: a.listen,
        credentials,
        allow_restore: a.allow_restore,
        allow_backup: a.allow_backup,
    };
    let quiet = g.quiet;
    arca::ui::serve(g.scope.clone(), opts, |addr| {
        if !quiet {
            println!("arca ui: listening on http://{addr}/ (Ctrl-C stops)");
        }
        if !addr.ip().is_loopback() {
            eprintln!("warning: no TLS: the login and the pages cross the network in clear; put a TLS proxy in front");
        }
    })?;
    Ok(0)
}

fn first_line(path: &std::path::Path) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?);
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(Zeroizing::new(line.to_string()))
}

fn read_password() -> Result<Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        let a = Zeroizing::new(rpassword::prompt_password("UI password: ")?);
        let b = Zeroizing::new(rpassword::prompt_password("again: ")?);
        if a != b {
            bail!("the passwords differ");
        }
        if a.is_empty() {
            bail!("empty password");
        }
        return Ok(a);
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line)?;
    let pw = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
    if pw.is_empty() {
        bail!("empty password on standard input");
    }
    Ok(pw)
}
