//! The `arca` command. All printing happens in `cli`; this maps errors to exit codes.

mod cli;

use std::process::ExitCode;

/// Exit status of a listing whose reader went away (`arca ls | head`): what a process killed
/// by SIGPIPE reports, without the noise of a panic.
const BROKEN_PIPE: i32 = 141;

fn main() -> ExitCode {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload.downcast_ref::<String>().map(String::as_str).or(payload.downcast_ref::<&str>().copied());
        if msg.is_some_and(|m| m.starts_with("failed printing to std") && m.contains("Broken pipe")) {
            std::process::exit(BROKEN_PIPE);
        }
        default_hook(info)
    }));
    match cli::run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = cli::exit_code(&e);
            cli::print_error(&e, code);
            ExitCode::from(code)
        }
    }
}
