//! Text made safe to show: names that come from a repository (file names, link targets, hosts,
//! tags, paths) may hold escape sequences or newlines meant to clear a screen or fake an entry,
//! so every such name goes through [`escape`] before it reaches a terminal, a log line or a
//! metric label. The escaping is injective: different inputs give different outputs.

use std::fmt::Write;

/// `bytes` made safe to print: printable UTF-8 passes unchanged; a backslash becomes `\\`;
/// `\n`, `\r`, `\t` keep their usual escapes; other C0 controls, DEL and bytes that are not
/// valid UTF-8 become `\xNN`; C1 controls and Unicode line separators and bidirectional
/// overrides become `\u{NNNN}`. The result never contains a control character, and different
/// inputs give different results.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// [`escape`] for text that is already a `str`.
pub fn escape_str(s: &str) -> String {
    escape(s.as_bytes())
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0'..='\x1f' | '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_characters_and_bad_utf8_are_escaped() {
        assert_eq!(escape(b"plain name.txt"), "plain name.txt");
        assert_eq!(escape("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(escape(b"a\nb\x1b[2J"), "a\\nb\\x1b[2J");
        assert_eq!(escape(b"back\\slash"), "back\\\\slash");
        assert_eq!(escape(b"\xff\xfe"), "\\xff\\xfe");
        assert_eq!(escape("x\u{9b}y\u{202e}".as_bytes()), "x\\u{9b}y\\u{202e}");
        assert_eq!(escape(b"\x7f\x00\r\t"), "\\x7f\\x00\\r\\t");
    }
}
