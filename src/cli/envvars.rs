//! Environment variables that are set but empty (`ARCA_REPOSITORY=` from a script whose variable
//! was never filled). clap would blame the flag (`a value is required for '--repo <DIR>'`), which
//! the operator never typed; so they are taken out of the environment before parsing and, unless
//! the flag itself was given, named in the error.

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// The variables of `cmd`'s value-taking arguments (at any depth) that are set but empty,
/// removed from the environment. Called before any thread starts.
pub fn take_empty(cmd: &Command) -> Vec<String> {
    let mut empty = Vec::new();
    collect(cmd, &mut empty);
    empty.sort();
    empty.dedup();
    for v in &empty {
        std::env::remove_var(v);
    }
    empty
}

fn collect(cmd: &Command, out: &mut Vec<String>) {
    for a in cmd.get_arguments().filter(|a| a.get_action().takes_values()) {
        if let Some(var) = a.get_env().and_then(|v| v.to_str()) {
            if std::env::var_os(var).is_some_and(|v| v.is_empty()) {
                out.push(var.to_string());
            }
        }
    }
    cmd.get_subcommands().for_each(|c| collect(c, out));
}

/// Fail, naming the variable, when an argument of the command that runs would have come from a
/// variable in `empty` (its flag was not given).
pub fn check(cmd: &Command, matches: &ArgMatches, empty: &[String]) -> Result<(), arca::Error> {
    if empty.is_empty() {
        return Ok(());
    }
    let (mut cmd, mut matches) = (cmd, matches);
    loop {
        for a in cmd.get_arguments() {
            let Some(var) = a.get_env().and_then(|v| v.to_str()) else { continue };
            let given = matches.try_get_raw(a.get_id().as_str()).is_ok()
                && matches.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine);
            if empty.iter().any(|e| e == var) && !given {
                return Err(arca::Error::InvalidArgument(format!(
                    "the environment variable {var} is set but empty: give it a value or unset it"
                )));
            }
        }
        let Some((name, sub)) = matches.subcommand() else { return Ok(()) };
        let Some(c) = cmd.find_subcommand(name) else { return Ok(()) };
        (cmd, matches) = (c, sub);
    }
}

/// Name a password command or file that came from its variable as the variable in messages
/// (`empty password from ARCA_PASSWORD_FILE ...`), not as the flag nobody typed.
pub fn name_sources(matches: &ArgMatches, password: &mut arca::ops::PasswordSource) {
    let sources = [("password_command", "ARCA_PASSWORD_COMMAND"), ("password_file", "ARCA_PASSWORD_FILE")];
    for (i, (id, var)) in sources.into_iter().enumerate() {
        if matches.try_get_raw(id).is_ok() && matches.value_source(id) == Some(ValueSource::EnvVariable) {
            password.flags[i] = var;
        }
    }
}
