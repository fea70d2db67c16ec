//! Packs as files: reading a published pack's own table of contents (format-spec/09-pack.md,
//! 10.4), and finding the packs that no index file names — left by an interrupted backup or prune.
//! Adoption (format-spec/17-consistency.md §17.6), `repair index` and prune share these.

use super::index::Index;
use super::Repository;
use crate::backend::FileType;
use crate::error::{Error, Result};
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
        let what = FileType::Pack.describe(&name);
        if len > pack::MAX_PACK_LEN {
            return Err(Error::integrity(&what, format!("impossible pack length {len}")));
        }
        let head = self.backend().read_at(FileType::Pack, &name, 0, HEADER_LEN)?;
        pack::check_header(&head, &what)?;
        let trailer =
            self.backend().read_at(FileType::Pack, &name, len.saturating_sub(TRAILER_LEN as u64), TRAILER_LEN)?;
        let trailer: [u8; TRAILER_LEN] = trailer.try_into().map_err(|_| Error::integrity(&what, "truncated"))?;
        let (at, toc_len) = pack::locate_toc(len, trailer, &what)?;
        let sealed = self.backend().read_at(FileType::Pack, &name, at, toc_len as usize)?;
        if sealed.len() != toc_len as usize {
            return Err(Error::integrity(&what, "truncated"));
        }
        let toc = self.keys().open(&sealed, &pack::toc_ad(self.repo_id()), &format!("{what} TOC"))?;
        let entries = pack::decode_toc(&toc, at - HEADER_LEN as u64, &what)?;
        Ok(IndexPack { id: *id, size: len as u32, blobs: pack::locate_blobs(&entries) })
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
