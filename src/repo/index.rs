//! The in-memory index: where every blob is, in 40 bytes per blob.
//!
//! Entries are fixed-size records sorted by ID and searched by binary search. A record keeps the
//! first 28 bytes (224 bits) of the blob ID: a false match would need two blobs of one repository
//! to agree on 224 bits (probability about n²/2²²⁵, ~2⁻¹⁴⁵ at a trillion blobs), and even then it
//! could not return wrong data, because every read authenticates the blob against its full ID.
//! The full IDs stay in the index files on disk.

use crate::format::blob::BlobType;
use crate::format::index::IndexPack;
use crate::id::Id;

const KEY_LEN: usize = 28;
const TREE_BIT: u32 = 1 << 31;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(C)]
struct Entry {
    key: [u8; KEY_LEN],
    /// Pack number, with the top bit set for tree blobs.
    pack: u32,
    offset: u32,
    len: u32,
}

/// Bytes of memory one indexed blob takes.
pub const BYTES_PER_BLOB: usize = std::mem::size_of::<Entry>();
const _: () = assert!(BYTES_PER_BLOB == 40);

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: Id,
    /// Offset of its envelope in the pack.
    pub offset: u32,
    /// Envelope length.
    pub len: u32,
    /// The pack's ephemeral key, when it is sealed to the read key (format-spec/24 §24.5).
    pub ephemeral: Option<[u8; 32]>,
}

/// A pack known to the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackInfo {
    /// Pack ID.
    pub id: Id,
    /// Its length in bytes.
    pub size: u32,
    /// Blob entries its record lists.
    pub blobs: u32,
    /// Its ephemeral key, when it is sealed to the read key.
    pub ephemeral: Option<[u8; 32]>,
}

/// The loaded index.
#[derive(Default)]
pub struct Index {
    packs: Vec<PackInfo>,
    entries: Vec<Entry>,
}

fn key_of(id: &Id) -> [u8; KEY_LEN] {
    id.0[..KEY_LEN].try_into().unwrap()
}

impl Index {
    /// Build from decoded index files. A blob listed twice keeps its first location.
    pub fn from_packs(files: impl IntoIterator<Item = IndexPack>) -> Index {
        let mut packs = Vec::new();
        let mut entries = Vec::new();
        for p in files {
            let n = packs.len() as u32;
            packs.push(PackInfo { id: p.id, size: p.size, blobs: p.blobs.len() as u32, ephemeral: p.ephemeral });
            for b in p.blobs {
                let tree = if b.blob_type == BlobType::Tree { TREE_BIT } else { 0 };
                entries.push(Entry { key: key_of(&b.id), pack: n | tree, offset: b.offset, len: b.stored_len });
            }
        }
        entries.sort_unstable();
        entries.dedup_by(|b, a| a.key == b.key && (a.pack & TREE_BIT) == (b.pack & TREE_BIT));
        entries.shrink_to_fit();
        Index { packs, entries }
    }

    /// Add packs (e.g. adopted from their TOCs); a blob already indexed keeps its location.
    pub fn add_packs(&mut self, files: impl IntoIterator<Item = IndexPack>) {
        let old = std::mem::take(self);
        let mut more = Index::from_packs(files);
        let base = old.packs.len() as u32;
        for e in &mut more.entries {
            e.pack += base;
        }
        let mut packs = old.packs;
        packs.extend(more.packs);
        let mut entries = old.entries;
        entries.extend(more.entries);
        // Stable sort by (key, tree bit): the existing location stays first and wins.
        entries.sort_by_key(|e| (e.key, e.pack & TREE_BIT));
        entries.dedup_by(|b, a| a.key == b.key && (a.pack & TREE_BIT) == (b.pack & TREE_BIT));
        entries.shrink_to_fit();
        *self = Index { packs, entries };
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All packs named by the index files (a pack may appear more than once).
    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    /// Where blob `id` of type `t` is, if indexed.
    pub fn lookup(&self, t: BlobType, id: &Id) -> Option<BlobLocation> {
        let key = key_of(id);
        let tree = t == BlobType::Tree;
        let start = self.entries.partition_point(|e| e.key < key);
        self.entries[start..].iter().take_while(|e| e.key == key).find(|e| (e.pack & TREE_BIT != 0) == tree).map(|e| {
            let p = &self.packs[(e.pack & !TREE_BIT) as usize];
            BlobLocation { pack: p.id, offset: e.offset, len: e.len, ephemeral: p.ephemeral }
        })
    }

    /// The position of blob `id` of type `t` among the distinct blobs (`0..len()`), if indexed.
    /// Positions are stable for the life of this index: prune keys its bitset by them.
    pub fn position(&self, t: BlobType, id: &Id) -> Option<usize> {
        let key = key_of(id);
        let tree = t == BlobType::Tree;
        let start = self.entries.partition_point(|e| e.key < key);
        (start..self.entries.len())
            .take_while(|&i| self.entries[i].key == key)
            .find(|&i| (self.entries[i].pack & TREE_BIT != 0) == tree)
    }

    /// For the blob at `pos`: the number of the pack holding its chosen copy (an index into
    /// [`Index::packs`]), the offset and the envelope length.
    pub fn at(&self, pos: usize) -> (usize, u32, u32) {
        let e = &self.entries[pos];
        ((e.pack & !TREE_BIT) as usize, e.offset, e.len)
    }

    /// Whether blob `id` of type `t` is indexed.
    pub fn contains(&self, t: BlobType, id: &Id) -> bool {
        self.lookup(t, id).is_some()
    }

    /// Resident bytes of the entry table.
    pub fn resident_bytes(&self) -> usize {
        self.entries.capacity() * BYTES_PER_BLOB + self.packs.capacity() * std::mem::size_of::<PackInfo>()
    }
}
