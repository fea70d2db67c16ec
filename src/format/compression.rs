//! format-spec/15-compression.md — the one-byte compression method that starts every plaintext
//! (blob and encrypted file), and bounded zstd decoding.

use crate::error::{Error, Result};
use std::io::Read;

/// Method byte: the body follows verbatim.
pub const METHOD_NONE: u8 = 0;
/// Method byte: the body is one zstd frame.
pub const METHOD_ZSTD: u8 = 1;

/// Largest zstd window (log2 bytes) a reader accepts; writers MUST stay within it.
pub const MAX_WINDOW_LOG: u32 = 25;

/// Frame `data` as method byte + body, compressing with zstd at `level` unless that does not make
/// it smaller (then it is stored verbatim, method 0). `level` 0 means "do not try".
pub fn encode(data: &[u8], level: i32) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, data, level);
    out
}

/// [`encode`], appending to `out` (so callers can reserve room in front, e.g. for a nonce).
/// zstd writes straight into `out`; output that would not be smaller than `data` is abandoned
/// as soon as it would overflow, and `data` is stored verbatim instead.
pub fn encode_into(out: &mut Vec<u8>, data: &[u8], level: i32) {
    let start = out.len();
    if level != 0 && data.len() >= 64 {
        out.reserve(data.len() + 1 + 16);
        out.push(METHOD_ZSTD);
        let mut cursor = std::io::Cursor::new(std::mem::take(out));
        cursor.set_position(start as u64 + 1);
        let ok = compress_into(data, level, &mut cursor);
        *out = cursor.into_inner();
        if ok.is_ok_and(|n| n < data.len()) {
            return;
        }
        out.truncate(start);
    }
    out.reserve(data.len() + 1 + 16);
    out.push(METHOD_NONE);
    out.extend_from_slice(data);
}

fn compress_into(data: &[u8], level: i32, dst: &mut std::io::Cursor<Vec<u8>>) -> std::io::Result<usize> {
    use std::cell::RefCell;
    thread_local! {
        static CTX: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    }
    CTX.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(l, _)| *l) != Some(level) {
            *c = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        c.as_mut().unwrap().1.compress_to_buffer(data, dst)
    })
}

/// [`decode`] taking ownership, so a stored (method 0) body is returned without a copy.
pub fn decode_owned(mut framed: Vec<u8>, max_len: usize, what: &str) -> Result<Vec<u8>> {
    if framed.first() == Some(&METHOD_NONE) {
        if framed.len() - 1 > max_len {
            return Err(Error::integrity(what, format!("{} bytes exceeds the limit {max_len}", framed.len() - 1)));
        }
        framed.remove(0);
        return Ok(framed);
    }
    decode(&framed, max_len, what)
}

/// Undo [`encode`]: returns the body, refusing output longer than `max_len` bytes.
pub fn decode(framed: &[u8], max_len: usize, what: &str) -> Result<Vec<u8>> {
    let (&method, body) = framed.split_first().ok_or_else(|| Error::integrity(what, "empty plaintext"))?;
    match method {
        METHOD_NONE => {
            if body.len() > max_len {
                return Err(Error::integrity(what, format!("{} bytes exceeds the limit {max_len}", body.len())));
            }
            Ok(body.to_vec())
        }
        METHOD_ZSTD => decode_zstd(body, max_len, what),
        m => Err(Error::integrity(what, format!("unknown compression method {m}"))),
    }
}

/// The magic number that starts a Zstandard frame (RFC 8878 §3.1.1), little-endian `0xFD2FB528`.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The window size a Zstandard frame declares (RFC 8878 §3.1.1.1): from its Window_Descriptor,
/// or, for a single-segment frame (which has none), its Frame_Content_Size. Errors name what is
/// wrong: not a Zstandard frame (a skippable frame, a legacy format or garbage), or a header
/// that ends early.
pub fn zstd_window(frame: &[u8]) -> std::result::Result<u64, &'static str> {
    if frame.len() < 4 || frame[..4] != ZSTD_MAGIC {
        return Err(if frame.len() < 4 { "truncated zstd frame header" } else { "not a Zstandard frame (bad magic)" });
    }
    let &descriptor = frame.get(4).ok_or("truncated zstd frame header")?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let &w = frame.get(5).ok_or("truncated zstd frame header")?;
        let base = 1u64 << (10 + (w >> 3));
        return Ok(base + (base / 8) * (w & 7) as u64);
    }
    let dict_len = [0, 1, 2, 4][(descriptor & 3) as usize];
    let fcs_len = [1, 2, 4, 8][(descriptor >> 6) as usize];
    let at = 5 + dict_len;
    let field = frame.get(at..at + fcs_len).ok_or("truncated zstd frame header")?;
    let mut le = [0u8; 8];
    le[..fcs_len].copy_from_slice(field);
    let size = u64::from_le_bytes(le);
    // A 2-byte field stores the size less 256 (RFC 8878 §3.1.1.1.4).
    Ok(if fcs_len == 2 { size + 256 } else { size })
}

fn decode_zstd(body: &[u8], max_len: usize, what: &str) -> Result<Vec<u8>> {
    use zstd::zstd_safe::{find_frame_compressed_size, get_frame_content_size};
    // The payload must be one Zstandard frame (not a skippable frame) whose window is at most
    // 2^MAX_WINDOW_LOG bytes — for a single-segment frame, its content size — checked here, on
    // the header, whichever path decodes it below.
    let window = zstd_window(body).map_err(|e| Error::integrity(what, format!("zstd: {e}")))?;
    if window > 1 << MAX_WINDOW_LOG {
        return Err(Error::integrity(what, format!("zstd: window of {window} bytes exceeds 2^{MAX_WINDOW_LOG}")));
    }
    // Fast path: the frame states its size (writers' frames do), so decode straight into a
    // buffer of exactly that size with a reused per-thread context.
    if let Ok(Some(n)) = get_frame_content_size(body).map(|n| n.filter(|&n| n <= FAST_PATH_MAX)) {
        if n > max_len as u64 {
            return Err(Error::integrity(what, format!("decompresses past the limit of {max_len} bytes")));
        }
        match find_frame_compressed_size(body) {
            Ok(len) if len == body.len() => {}
            Ok(_) => return Err(Error::integrity(what, "bytes after the zstd frame")),
            Err(_) => return Err(Error::integrity(what, "zstd: truncated or corrupt frame")),
        }
        let mut out = Vec::with_capacity(n as usize);
        decompress_with_thread_context(body, &mut out).map_err(|e| Error::integrity(what, format!("zstd: {e}")))?;
        if out.len() as u64 != n {
            return Err(Error::integrity(what, "zstd: content size does not match the frame header"));
        }
        return Ok(out);
    }
    decode_zstd_stream(body, max_len, what)
}

fn decompress_with_thread_context(body: &[u8], out: &mut Vec<u8>) -> std::io::Result<usize> {
    use std::cell::RefCell;
    thread_local! {
        static CTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    }
    CTX.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            let mut d = zstd::bulk::Decompressor::new()?;
            d.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(MAX_WINDOW_LOG))?;
            *c = Some(d);
        }
        c.as_mut().unwrap().decompress_to_buffer(body, out)
    })
}

/// Largest declared size the fast path allocates up front; bigger frames stream, so a hostile
/// header cannot make a reader reserve much memory it has not earned by decompressing.
const FAST_PATH_MAX: u64 = 16 << 20;

/// Bounded streaming decode, for frames that do not state their size (or state a large one).
fn decode_zstd_stream(body: &[u8], max_len: usize, what: &str) -> Result<Vec<u8>> {
    let bad = |e: std::io::Error| Error::integrity(what, format!("zstd: {e}"));
    let mut dec = zstd::stream::read::Decoder::with_buffer(body).map_err(bad)?.single_frame();
    dec.window_log_max(MAX_WINDOW_LOG).map_err(bad)?;
    let mut out = Vec::new();
    (&mut dec).take((max_len as u64).saturating_add(1)).read_to_end(&mut out).map_err(bad)?;
    if out.len() > max_len {
        return Err(Error::integrity(what, format!("decompresses past the limit of {max_len} bytes")));
    }
    // The frame must end exactly at the end of the body: trailing data is rejected.
    let mut rest = [0u8; 1];
    if dec.read(&mut rest).map_err(bad)? != 0 {
        return Err(Error::integrity(what, "decompresses past the limit"));
    }
    let consumed = dec.finish();
    if !consumed.is_empty() {
        return Err(Error::integrity(what, "bytes after the zstd frame"));
    }
    Ok(out)
}
