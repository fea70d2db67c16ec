//! Output helpers: errors on stderr (as text or JSON). Names from a repository are escaped with
//! [`arca::text::escape`] before they reach a terminal; JSON output is left exact (serde escapes
//! control characters itself).

pub use arca::text::{escape, escape_str};

/// Whether `--json` was given, for the error path in `main` (set once arguments are parsed).
pub static JSON_ERRORS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Print a command's error on stderr: `arca: MESSAGE` (escaped), or with `--json` one line
/// `{"error": MESSAGE, "code": CODE}` so that scripts parsing JSON get JSON on failure too.
pub fn print_error(e: &anyhow::Error, code: u8) {
    let text = super::error_text(e);
    if JSON_ERRORS.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("{}", serde_json::json!({ "error": text, "code": code }));
    } else {
        eprintln!("arca: {}", escape_str(&text));
    }
}
