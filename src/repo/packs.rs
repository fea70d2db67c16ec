//! Packs as files: reading a published pack's own table of contents (format-spec/09-pack.md,
//! 10.4), and finding the packs that no index file names — left by an interrupted backup or prune.
//! Adoption (format-spec/17-consistency.md §17.6), `repair index` and prune share these.

use super::index::Index;
use super::Repository;
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::blob::describe;
use crate::format::header::HEADER_LEN;
use crate::format::index::IndexPack;
use crate::format::pack::{self, TRAILER_LEN};
use crate::id::Id;
use std::collections::HashSet;

impl Repository {
    /// Read the sealed TOC of pack `id` (`len` bytes long, as listed) and turn it into the index
    /// record that describes the pack (section 10.4 step 2). Reads only the header, the TOC and
    /// the trailer, not the blobs: each blob is still authenticated against its ID when it is
    /// read. The pack's hash is not verified here (`check --read-data` does).
    pub fn read_pack_toc(&self, id: &Id, len: u64) -> Result<IndexPack> {
        let name = id.to_hex();
        if len > pack::MAX_PACK_LEN {
            return Err(Error::integrity(FileType::Pack.describe(&name), format!("impossible pack length {len}")));
        }
        // Enough for the ephemeral key of a pack sealed to the read key (every pack is longer).
        let head_len = if self.has_roles() { HEADER_LEN + 32 } else { HEADER_LEN }.min(len as usize);
        let head = self.backend().read_at(FileType::Pack, &name, 0, head_len)?;
        let trailer =
            self.backend().read_at(FileType::Pack, &name, len.saturating_sub(TRAILER_LEN as u64), TRAILER_LEN)?;
        self.toc_record(id, len, &head, &trailer, &|at, n| self.backend().read_at(FileType::Pack, &name, at, n))
    }

    /// Read all of pack `id`, require its bytes to hash to its name, and return its index record
    /// from its TOC (format-spec/17-consistency.md §17.6: what adoption requires). Blobs are not
    /// opened; each is authenticated when it is read.
    pub fn read_pack_toc_verified(&self, id: &Id) -> Result<IndexPack> {
        let name = id.to_hex();
        let bytes = self.backend().read(FileType::Pack, &name)?;
        if Id::of_file_bytes(&bytes) != *id {
            return Err(Error::integrity(
                FileType::Pack.describe(&name),
                "content does not match its name (storage corruption)",
            ));
        }
        self.toc_of_bytes(id, &bytes)
    }

    /// The index record of pack `id` from its bytes, read into memory (its TOC, not its hash).
    pub fn toc_of_bytes(&self, id: &Id, bytes: &[u8]) -> Result<IndexPack> {
        let trailer = &bytes[bytes.len().saturating_sub(TRAILER_LEN)..];
        self.toc_record(id, bytes.len() as u64, &bytes[..bytes.len().min(HEADER_LEN + 32)], trailer, &|at, n| {
            Ok(bytes[at as usize..at as usize + n].to_vec())
        })
    }

    /// Read all of pack `id` and verify it before it may be indexed (`repair index
    /// --read-all-packs`): its bytes hash to its name, its TOC decrypts and decodes, and every blob
    /// it lists authenticates, decompresses, hashes to its ID and has the TOC's `plain_len`
    /// (section 8.3). Returns the index record, as [`Repository::read_pack_toc`] does.
    pub fn verify_pack(&self, id: &Id) -> Result<IndexPack> {
        let name = id.to_hex();
        let what = FileType::Pack.describe(&name);
        let bytes = self.backend().read(FileType::Pack, &name)?;
        if Id::of_file_bytes(&bytes) != *id {
            return Err(Error::integrity(&what, "content does not match its name (storage corruption)"));
        }
        let len = bytes.len() as u64;
        let trailer = &bytes[bytes.len().saturating_sub(TRAILER_LEN)..];
        let record = self.toc_record(id, len, &bytes[..bytes.len().min(HEADER_LEN + 32)], trailer, &|at, n| {
            Ok(bytes[at as usize..at as usize + n].to_vec())
        })?;
        for b in &record.blobs {
            let envelope = &bytes[b.offset as usize..b.offset as usize + b.stored_len as usize];
            let plain = self.open_blob(record.ephemeral.as_ref(), b.blob_type, &b.id, envelope)?;
            if plain.len() != b.plain_len as usize {
                return Err(Error::integrity(
                    &what,
                    format!("{} is {} bytes, the TOC says {}", describe(b.blob_type, &b.id), plain.len(), b.plain_len),
                ));
            }
        }
        Ok(record)
    }

    /// The index record of a pack `len` bytes long from its header, trailer and sealed TOC
    /// (`read(offset, len)` fetches the TOC once the trailer has located it inside the pack).
    fn toc_record(
        &self,
        id: &Id,
        len: u64,
        head: &[u8],
        trailer: &[u8],
        read: &dyn Fn(u64, usize) -> Result<Vec<u8>>,
    ) -> Result<IndexPack> {
        let what = FileType::Pack.describe(&id.to_hex());
        let (_, ephemeral) = pack::check_header_sealing(head, self.has_roles(), &what)?;
        let first = pack::first_blob_at(ephemeral.as_ref());
        let trailer: [u8; TRAILER_LEN] = trailer.try_into().map_err(|_| Error::integrity(&what, "truncated"))?;
        // Bounds the TOC inside the pack (and the pack to MAX_PACK_LEN) before it is read.
        let (at, toc_len) = pack::locate_toc_after(len, trailer, first as u64, &what)?;
        let sealed = read(at, toc_len as usize)?;
        if sealed.len() != toc_len as usize {
            return Err(Error::integrity(&what, "truncated"));
        }
        let toc = self.open_toc(ephemeral.as_ref(), &sealed, &what)?;
        let entries = pack::decode_toc(&toc, at - first as u64, &what)?;
        Ok(IndexPack { id: *id, size: len as u32, ephemeral, blobs: pack::locate_blobs_from(&entries, first) })
    }

    /// Open the sealed TOC of pack `what`, sealed as `ephemeral` says (format-spec/9.3, 24 §24.5).
    pub fn open_toc(&self, ephemeral: Option<&[u8; 32]>, sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        let toc_what = format!("{what} TOC");
        let ad = pack::toc_ad_for(ephemeral, self.repo_id());
        self.with_generations(|keys| self.pack_key_of(keys, ephemeral, &toc_what)?.open(sealed, &ad, &toc_what))
    }

    /// Packs in `data/` that `index` does not name, with their lengths, sorted by name.
    pub fn unindexed_packs(&self, index: &Index) -> Result<Vec<(Id, u64)>> {
        let known: HashSet<Id> = index.packs().iter().map(|p| p.id).collect();
        let mut out: Vec<(Id, u64)> = self
            .list_objects(FileType::Pack)?
            .into_iter()
            .filter_map(|(n, len)| Id::from_hex(&n).map(|id| (id, len)))
            .filter(|(id, _)| !known.contains(id))
            .collect();
        out.sort();
        Ok(out)
    }
}
