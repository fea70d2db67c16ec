//! Where passwords come from: a command, a file, the environment, or an interactive prompt.

use anyhow::{bail, Context, Result};
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
            return Ok(first_line(out.stdout));
        }
        if let Some(f) = &self.password_file {
            return Ok(first_line(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?));
        }
        if let Some(p) = std::env::var_os("ARCA_PASSWORD") {
            return Ok(Zeroizing::new(p.into_encoded_bytes()));
        }
        prompt("enter password: ", confirm)
    }
}

/// A new password for `key add` / `key passwd`: `ARCA_NEW_PASSWORD`, `--new-password-file`, or a prompt.
pub fn new_password(file: Option<&std::path::Path>) -> Result<Zeroizing<Vec<u8>>> {
    if let Some(f) = file {
        return Ok(first_line(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?));
    }
    if let Some(p) = std::env::var_os("ARCA_NEW_PASSWORD") {
        return Ok(Zeroizing::new(p.into_encoded_bytes()));
    }
    prompt("enter new password: ", true)
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
