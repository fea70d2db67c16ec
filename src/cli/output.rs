//! Output helpers: errors on stderr (as text or JSON). Names from a repository are escaped with
//! [`arca::text::escape`] before they reach a terminal; JSON output is left exact (serde escapes
//! control characters itself).

pub use arca::text::{escape, escape_str};

/// `n` and the noun in the right number: `1 file`, `2 files` (`many` is the plural).
pub fn plural<N: TryInto<u64> + Copy + std::fmt::Display>(n: N, one: &str, many: &str) -> String {
    format!("{n} {}", if n.try_into().is_ok_and(|v| v == 1) { one } else { many })
}

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

/// Write `text` to `path` through a temporary file in the same directory and a rename, so a
/// reader (node_exporter's textfile collector, systemd) never sees half a file and a symlink at
/// `path` is replaced, never written through; readable by others. `what` names the option.
pub fn write_atomically(path: &std::path::Path, text: &str, what: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let shown = escape(path.as_os_str().as_encoded_bytes());
    path.file_name().with_context(|| format!("{what} {shown}: not a file name"))?;
    // Hidden and with another suffix, so no collector or unit loader reads it.
    arca::sys::write_atomically(path, text.as_bytes(), 0o644, true).with_context(|| format!("writing {shown}"))
}
