//! The `arca` command. All printing happens in `cli`; this maps errors to exit codes.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = cli::exit_code(&e);
            cli::print_error(&e, code);
            ExitCode::from(code)
        }
    }
}
