//! Where passwords come from: a command, a file, the environment, or an interactive prompt.

use anyhow::{bail, Context, Result};
use arca::Error;
use std::io::IsTerminal;
use zeroize::Zeroizing;

/// Password sources given on the command line.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PasswordArgs {
    /// Read the password from the first line of this file. Without this or --password-command,
    /// the password is the value of ARCA_PASSWORD, or is asked for on the terminal.
    #[arg(long, global = true, env = "ARCA_PASSWORD_FILE", value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
    /// Run this shell command and use the first line it prints as the password.
    #[arg(long, global = true, env = "ARCA_PASSWORD_COMMAND", value_name = "CMD")]
    pub password_command: Option<String>,
}

fn first_line(bytes: Vec<u8>) -> Zeroizing<Vec<u8>> {
    let bytes = Zeroizing::new(bytes);
    let end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
    let line = &bytes[..end];
    Zeroizing::new(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

impl PasswordArgs {
    /// The repository password. `confirm` asks twice when prompting (for new passwords).
    pub fn get(&self, confirm: bool) -> Result<Zeroizing<Vec<u8>>> {
        if let Some(cmd) = &self.password_command {
            let out =
                std::process::Command::new("sh").arg("-c").arg(cmd).output().context("running --password-command")?;
            if !out.status.success() {
                bail!("--password-command exited with {}", out.status);
            }
            return non_empty(first_line(out.stdout), "--password-command (its first line is empty)");
        }
        if let Some(f) = &self.password_file {
            let pw = first_line(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?);
            return non_empty(pw, &format!("--password-file {}", f.display()));
        }
        if let Some(p) = std::env::var_os("ARCA_PASSWORD") {
            return non_empty(Zeroizing::new(p.into_encoded_bytes()), "ARCA_PASSWORD");
        }
        prompt("enter password: ", confirm)
    }
}

/// A new password for `key add` / `key passwd`: `ARCA_NEW_PASSWORD`, `--new-password-file`, or a prompt.
pub fn new_password(file: Option<&std::path::Path>) -> Result<Zeroizing<Vec<u8>>> {
    if let Some(f) = file {
        let pw = first_line(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?);
        return non_empty(pw, &format!("--new-password-file {}", f.display()));
    }
    if let Some(p) = std::env::var_os("ARCA_NEW_PASSWORD") {
        return non_empty(Zeroizing::new(p.into_encoded_bytes()), "ARCA_NEW_PASSWORD");
    }
    prompt("enter new password: ", true)
}

/// Refuse an empty password (as the prompt does): an empty variable or file is almost always a
/// mistake, and would protect the keys with nothing. A usage error (exit 2).
fn non_empty(pw: Zeroizing<Vec<u8>>, source: &str) -> Result<Zeroizing<Vec<u8>>> {
    if pw.is_empty() {
        return Err(Error::InvalidArgument(format!("empty password from {source}")).into());
    }
    Ok(pw)
}

fn prompt(text: &str, confirm: bool) -> Result<Zeroizing<Vec<u8>>> {
    if !std::io::stdin().is_terminal() && std::fs::File::open("/dev/tty").is_err() {
        bail!("no password given: set ARCA_PASSWORD, --password-file or --password-command");
    }
    let p = Zeroizing::new(rpassword::prompt_password(text).context("reading password")?);
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("enter it again: ").context("reading password")?);
        if *again != *p {
            bail!("passwords do not match");
        }
    }
    if p.is_empty() {
        bail!("empty password");
    }
    Ok(Zeroizing::new(p.as_bytes().to_vec()))
}

/// A second repository's password (`copy --to`), read as [`PasswordArgs::get`] reads the first:
/// the first line `command` prints, else the first line of `file`, else the variable `var`, else
/// a prompt naming `what`. `flags` name the command and file options in messages.
pub fn other_password(
    command: Option<&str>,
    file: Option<&std::path::Path>,
    var: &str,
    flags: [&str; 2],
    what: &str,
) -> Result<Zeroizing<Vec<u8>>> {
    if let Some(cmd) = command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .with_context(|| format!("running {}", flags[0]))?;
        if !out.status.success() {
            bail!("{} exited with {}", flags[0], out.status);
        }
        return non_empty(first_line(out.stdout), &format!("{} (its first line is empty)", flags[0]));
    }
    if let Some(f) = file {
        let pw = first_line(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?);
        return non_empty(pw, &format!("{} {}", flags[1], f.display()));
    }
    if let Some(p) = std::env::var_os(var) {
        return non_empty(Zeroizing::new(p.into_encoded_bytes()), var);
    }
    if !std::io::stdin().is_terminal() && std::fs::File::open("/dev/tty").is_err() {
        bail!("no password given for the {what}: set {var}, {} or {}", flags[1], flags[0]);
    }
    prompt(&format!("enter password for the {what}: "), false)
}
