//! Comparing what is on disk with the snapshot: the `if-changed` overwrite policy and `--verify`.

use crate::crypto::Keys;
use crate::format::tree::ChunkRef;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Whether `file` holds exactly the chunks `content` (and nothing after them): each chunk is
/// read at its offset and named with the repository's keyed hash, as the backup named it.
pub(crate) fn content_matches(keys: &Keys, file: &File, content: &[ChunkRef], size: u64) -> io::Result<bool> {
    if file.metadata()?.len() != size {
        return Ok(false);
    }
    Ok(first_difference(keys, file, content)?.is_none())
}

/// The offset of the first chunk whose bytes in `file` differ from the snapshot's, if any.
pub(crate) fn first_difference(keys: &Keys, file: &File, content: &[ChunkRef]) -> io::Result<Option<u64>> {
    let mut buf = Vec::new();
    let mut offset = 0u64;
    for c in content {
        // The tree's length is not trusted to size a buffer: no data blob is larger than this.
        if c.len as usize > crate::format::config::CHUNK_MAX_LIMIT as usize {
            return Ok(Some(offset));
        }
        buf.resize(c.len as usize, 0);
        match file.read_exact_at(&mut buf, offset) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Some(offset)),
            Err(e) => return Err(e),
        }
        if keys.blob_id(&buf) != c.id {
            return Ok(Some(offset));
        }
        offset += c.len as u64;
    }
    Ok(None)
}
