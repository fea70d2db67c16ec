//! format-spec/22-parity.md — parity files: Reed-Solomon recovery shards for one pack, index file
//! or snapshot, with a checksum per shard so that damage is located, not guessed; and the parity
//! policy file that tells writers how much parity to make.
//!
//! A protected file of `N` bytes is cut into `K = ⌈N/S⌉` data shards of `S` bytes (the last one
//! zero-padded), grouped into `g` segments of consecutive shards; each segment is one codeword of
//! the Leopard-RS high-rate code over GF(2¹⁶) with `m` recovery shards, so any `m` damaged shards
//! of a segment — data or recovery — can be rebuilt. The parity file is, in order:
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 64 | fixed part: header, protected kind, `S`, protected ID, `N`, `g`, `m` |
//! | 64 | `g·m·S` | recovery shards, segment by segment |
//! | R | `16·(K + g·m)` | checksums: per segment, its data shards' then its recovery shards' |
//! | R + C | 32 | BLAKE3 of the fixed part and the checksums |
//!
//! The table comes after the shards so that a writer can stream one segment at a time. Nothing
//! here touches storage; [`crate::repo::parity`] does.

use super::header::{self, FileKind};
use crate::error::{Error, Result};
use crate::id::Id;
use reed_solomon_simd::engine::DefaultEngine;
use reed_solomon_simd::rate::{HighRateDecoder, HighRateEncoder, RateDecoder, RateEncoder};

/// Length of the fixed part.
pub const FIXED_LEN: usize = 64;
/// Length of one shard checksum: the first 16 bytes of BLAKE3(shard).
pub const CHECKSUM_LEN: usize = 16;
/// Length of the hash that closes the file.
pub const TABLE_HASH_LEN: usize = 32;
/// Smallest and largest shard size; shards are multiples of 64 bytes.
pub const MIN_SHARD: u32 = 64;
/// Largest shard size a reader accepts.
pub const MAX_SHARD: u32 = 65536;
/// Most data shards in one segment (the code's limit with `m ≤ k`).
pub const MAX_SEGMENT_SHARDS: u64 = 32768;
/// Largest protected file.
pub const MAX_PROTECTED_LEN: u64 = u32::MAX as u64;
/// Longest parity file a reader accepts: the bounds of §22.2 give at most `N + S` bytes of
/// recovery shards and `32·K ≤ 2³¹` bytes of checksums around the 96 fixed bytes.
pub const MAX_FILE_LEN: u64 = (FIXED_LEN + TABLE_HASH_LEN) as u64 + MAX_PROTECTED_LEN + MAX_SHARD as u64 + (1 << 31);
/// Basis points meaning "as many recovery shards as data shards".
pub const FULL: u16 = 10_000;
/// The writer's shard size for files of at least [`LARGE_FILE`] bytes: a disk sector or page,
/// the unit in which storage loses data.
pub const WRITER_SHARD: u32 = 4096;
/// Files from this size on are cut into [`WRITER_SHARD`]-byte shards; smaller ones into about 64.
pub const LARGE_FILE: u64 = 64 * WRITER_SHARD as u64;
/// Most data shards a writer puts in one segment (64 MiB of 4 KiB shards): the memory a writer
/// or repairer holds for one codeword.
pub const WRITER_SEGMENT_SHARDS: u64 = 16384;
/// The writers' default overhead for packs, in basis points (5%).
pub const DEFAULT_OVERHEAD: u16 = 500;

/// The shape of a parity file: how its protected file is cut and coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// `S`, bytes per shard.
    pub shard: u32,
    /// `N`, the protected file's length.
    pub len: u64,
    /// `g`, number of segments.
    pub segments: u32,
    /// `m`, recovery shards per segment.
    pub recovery: u32,
}

impl Geometry {
    /// The writer's geometry for a file of `len` bytes at `bp` basis points of overhead
    /// (format-spec/22 §22.4); `len` and `bp` must be at least 1.
    pub fn plan(len: u64, bp: u16) -> Geometry {
        let len = len.max(1);
        let shard =
            if len >= LARGE_FILE { WRITER_SHARD as u64 } else { (len.div_ceil(64)).next_multiple_of(64).max(64) };
        let k = len.div_ceil(shard);
        let segments = k.div_ceil(WRITER_SEGMENT_SHARDS);
        let (k_min, k_max) = (k / segments, k.div_ceil(segments));
        // The overhead is the whole parity file's: recovery shards and their checksums, the data
        // shards' checksums and the fixed bytes, against the segment's bytes.
        let budget = (k_max * shard * bp.clamp(1, FULL) as u64 / FULL as u64)
            .saturating_sub(k_max * CHECKSUM_LEN as u64 + (FIXED_LEN + TABLE_HASH_LEN) as u64 / segments);
        let wanted = budget / (shard + CHECKSUM_LEN as u64);
        // Enough to rebuild one lost 4 KiB sector wherever it falls (it touches ⌈4096/S⌉ + 1 shards).
        let sector = (WRITER_SHARD as u64).div_ceil(shard) + 1;
        // Full protection means any k of the 2k shards rebuild the file: even a lost file.
        let recovery = if bp >= FULL { k_min } else { wanted.max(sector).min(k_min) };
        Geometry { shard: shard as u32, len, segments: segments as u32, recovery: recovery as u32 }
    }

    /// `K`, the number of data shards.
    pub fn data_shards(&self) -> u64 {
        self.len.div_ceil(self.shard as u64)
    }

    /// `(first data shard, data shard count)` of segment `i`: the first `K mod g` segments hold
    /// one shard more than the others.
    pub fn segment(&self, i: u32) -> (u64, u64) {
        let (k, g, i) = (self.data_shards(), self.segments as u64, i as u64);
        let (base, extra) = (k / g, k % g);
        (i * base + i.min(extra), base + u64::from(i < extra))
    }

    /// Byte range `[start, end)` of the protected file that segment `i` covers.
    pub fn segment_bytes(&self, i: u32) -> (u64, u64) {
        let (first, count) = self.segment(i);
        let s = self.shard as u64;
        (first * s, ((first + count) * s).min(self.len))
    }

    /// Offset of segment `i`'s first recovery shard in the parity file.
    pub fn recovery_offset(&self, i: u32) -> u64 {
        FIXED_LEN as u64 + i as u64 * self.recovery as u64 * self.shard as u64
    }

    /// Offset of the checksum table.
    pub fn table_offset(&self) -> u64 {
        self.recovery_offset(self.segments)
    }

    /// Number of checksums: `K + g·m`.
    pub fn checksums(&self) -> u64 {
        self.data_shards() + self.segments as u64 * self.recovery as u64
    }

    /// Index in the checksum table of segment `i`'s first checksum.
    pub fn checksum_index(&self, i: u32) -> u64 {
        self.segment(i).0 + i as u64 * self.recovery as u64
    }

    /// Length of the whole parity file.
    pub fn file_len(&self) -> u64 {
        self.table_offset() + self.checksums() * CHECKSUM_LEN as u64 + TABLE_HASH_LEN as u64
    }

    /// The MUST-reject rules of §22.2 on the fixed fields.
    fn validate(&self, what: &str) -> Result<()> {
        let bad = |why: String| Err(Error::integrity(what, why));
        let s = self.shard;
        if !(MIN_SHARD..=MAX_SHARD).contains(&s) || s % 64 != 0 {
            return bad(format!("shard size {s} is not a multiple of 64 between 64 and 65536"));
        }
        if self.len == 0 || self.len > MAX_PROTECTED_LEN {
            return bad(format!("protected length {} is outside 1 ..= 4294967295", self.len));
        }
        let k = self.data_shards();
        if self.segments == 0 || self.segments as u64 > k {
            return bad(format!("{} segments for {k} data shards", self.segments));
        }
        let (k_min, k_max) = (k / self.segments as u64, k.div_ceil(self.segments as u64));
        if k_max > MAX_SEGMENT_SHARDS {
            return bad(format!("{k_max} data shards in a segment (at most 32768)"));
        }
        if self.recovery == 0 || self.recovery as u64 > k_min {
            return bad(format!("{} recovery shards for segments of {k_min} data shards", self.recovery));
        }
        Ok(())
    }
}

/// The fixed part of a parity file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixed {
    /// Kind of the protected file: pack, index or snapshot.
    pub kind: FileKind,
    /// The protected file's ID (its name).
    pub id: Id,
    /// How it is cut and coded.
    pub geometry: Geometry,
}

/// The kinds of file parity protects.
pub fn protects(kind: FileKind) -> bool {
    matches!(kind, FileKind::Pack | FileKind::Index | FileKind::Snapshot)
}

/// The longest file of a protected kind (format-spec/19-limits.md): a pack's limit, or an
/// encrypted file's body limit plus header (8), nonce and tag (40) and method byte (1). A
/// parity file claiming more is rejected before anything else is read.
pub fn max_protected_len(kind: FileKind) -> u64 {
    let sealed = |body: usize| (body + super::header::HEADER_LEN + super::SEAL_OVERHEAD + 1) as u64;
    match kind {
        FileKind::Index => sealed(super::index::MAX_INDEX_LEN),
        // A snapshot sealed to the read key carries its 32-byte ephemeral key (format-spec/24).
        FileKind::Snapshot => sealed(super::snapshot::MAX_SNAPSHOT_LEN) + 32,
        _ => MAX_PROTECTED_LEN,
    }
}

impl Fixed {
    /// The 64 bytes of the fixed part.
    pub fn encode(&self) -> [u8; FIXED_LEN] {
        let g = &self.geometry;
        let mut b = [0u8; FIXED_LEN];
        b[..8].copy_from_slice(&header::encode(FileKind::Parity));
        b[8] = self.kind as u8;
        b[12..16].copy_from_slice(&g.shard.to_le_bytes());
        b[16..48].copy_from_slice(&self.id.0);
        b[48..56].copy_from_slice(&g.len.to_le_bytes());
        b[56..60].copy_from_slice(&g.segments.to_le_bytes());
        b[60..64].copy_from_slice(&g.recovery.to_le_bytes());
        b
    }

    /// Decode and validate the fixed part at the start of `bytes` (§22.2 steps 1–3).
    pub fn decode(bytes: &[u8], what: &str) -> Result<Fixed> {
        header::check(bytes, FileKind::Parity, what)?;
        if bytes.len() < FIXED_LEN {
            return Err(Error::integrity(what, "truncated: shorter than the 64-byte fixed part"));
        }
        let kind = FileKind::from_u8(bytes[8]).filter(|k| protects(*k));
        let kind =
            kind.ok_or_else(|| Error::integrity(what, format!("protected kind {} is not 3, 4 or 5", bytes[8])))?;
        if bytes[9..12] != [0, 0, 0] {
            return Err(Error::integrity(what, "reserved bytes 9–11 are not zero"));
        }
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        let geometry = Geometry {
            shard: u32_at(12),
            len: u64::from_le_bytes(bytes[48..56].try_into().unwrap()),
            segments: u32_at(56),
            recovery: u32_at(60),
        };
        geometry.validate(what)?;
        if geometry.len > max_protected_len(kind) {
            let max = max_protected_len(kind);
            return Err(Error::integrity(what, format!("a {} of {} bytes (at most {max})", kind.name(), geometry.len)));
        }
        Ok(Fixed { kind, id: Id(bytes[16..48].try_into().unwrap()), geometry })
    }
}

/// The checksum of a shard (zero-padded to `S` when it is a file's last, short one).
pub fn checksum(shard: &[u8]) -> [u8; CHECKSUM_LEN] {
    blake3::hash(shard).as_bytes()[..CHECKSUM_LEN].try_into().unwrap()
}

/// The hash closing a parity file: BLAKE3 of the fixed part followed by the checksum table.
pub fn table_hash(fixed: &[u8], table: &[u8]) -> [u8; TABLE_HASH_LEN] {
    let mut h = blake3::Hasher::new();
    h.update(fixed);
    h.update(table);
    *h.finalize().as_bytes()
}

/// A decoded parity file: its fixed part is valid and its length what the geometry needs; its
/// recovery shards are checked one by one when used.
#[derive(Debug)]
pub struct Parity<'a> {
    /// The fixed part.
    pub fixed: Fixed,
    /// Whether the closing hash matches the fixed part and checksum table. [`Parity::decode`]
    /// requires it; [`Parity::decode_for_repair`] does not (see there).
    pub table_ok: bool,
    bytes: &'a [u8],
}

impl<'a> Parity<'a> {
    /// Decode a whole parity file (§22.2): the fixed part, the exact length, the closing hash.
    pub fn decode(bytes: &'a [u8], what: &str) -> Result<Parity<'a>> {
        let p = Parity::decode_for_repair(bytes, what)?;
        if !p.table_ok {
            return Err(Error::integrity(what, "checksum table does not match its hash"));
        }
        Ok(p)
    }

    /// [`Parity::decode`] without requiring the closing hash (§22.7): a damaged checksum entry
    /// only makes its shard count as damaged, and a repair is accepted only if the rebuilt file
    /// hashes to its name, so a parity file whose table took a hit can still repair.
    pub fn decode_for_repair(bytes: &'a [u8], what: &str) -> Result<Parity<'a>> {
        let fixed = Fixed::decode(bytes, what)?;
        let g = &fixed.geometry;
        if bytes.len() as u64 != g.file_len() {
            return Err(Error::integrity(
                what,
                format!("{} bytes where the geometry needs {}", bytes.len(), g.file_len()),
            ));
        }
        let table = &bytes[g.table_offset() as usize..bytes.len() - TABLE_HASH_LEN];
        let table_ok = table_hash(&bytes[..FIXED_LEN], table) == bytes[bytes.len() - TABLE_HASH_LEN..];
        Ok(Parity { fixed, table_ok, bytes })
    }

    /// Checksum number `n` of the table.
    pub fn checksum(&self, n: u64) -> &'a [u8] {
        let at = self.fixed.geometry.table_offset() as usize + n as usize * CHECKSUM_LEN;
        &self.bytes[at..at + CHECKSUM_LEN]
    }

    /// Recovery shard `j` of segment `i`, and whether it matches its checksum.
    pub fn recovery_shard(&self, i: u32, j: u32) -> (&'a [u8], bool) {
        let g = &self.fixed.geometry;
        let at = (g.recovery_offset(i) + j as u64 * g.shard as u64) as usize;
        let shard = &self.bytes[at..at + g.shard as usize];
        let n = g.checksum_index(i) + g.segment(i).1 + j as u64;
        (shard, checksum(shard) == self.checksum(n))
    }

    /// Whether data shard `j` of segment `i`, as read (possibly short or absent: missing bytes
    /// count as damage), matches its checksum.
    pub fn data_shard_ok(&self, i: u32, j: u64, shard: &[u8]) -> bool {
        let g = &self.fixed.geometry;
        let want = shard_len(g, g.segment(i).0 + j);
        shard.len() == want && checksum(&padded(shard, g.shard)) == self.checksum(g.checksum_index(i) + j)
    }
}

/// Bytes of data shard `n` that lie inside the protected file (`S`, or less for the last).
pub fn shard_len(g: &Geometry, n: u64) -> usize {
    let s = g.shard as u64;
    (g.len.min((n + 1) * s) - n * s) as usize
}

fn padded(shard: &[u8], s: u32) -> std::borrow::Cow<'_, [u8]> {
    if shard.len() == s as usize {
        shard.into()
    } else {
        let mut v = shard.to_vec();
        v.resize(s as usize, 0);
        v.into()
    }
}

fn codec_error(e: reed_solomon_simd::Error) -> Error {
    Error::integrity("parity", format!("Reed-Solomon: {e}"))
}

/// The recovery shards (`m·S` bytes) and the checksums (data shards', then recovery shards') of
/// one segment whose bytes are `data` (at most `k·S`; the last shard is zero-padded).
pub fn encode_segment(data: &[u8], shard: u32, recovery: u32) -> (Vec<u8>, Vec<[u8; CHECKSUM_LEN]>) {
    let mut read = |at: u64, n: usize| Ok(data[at as usize..at as usize + n].to_vec());
    encode_segment_from(0, data.len() as u64, shard, recovery, &mut read).expect("reading a slice cannot fail")
}

/// Bytes read at a time while encoding a stored file: the memory a writer holds besides the
/// code's own copy of the segment.
const READ_PIECE: u64 = 1 << 20;

/// [`encode_segment`] for the bytes `[start, end)` of a file read through `read(offset, len)`,
/// a piece at a time.
fn encode_segment_from(
    start: u64,
    end: u64,
    shard: u32,
    recovery: u32,
    read: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>>,
) -> Result<(Vec<u8>, Vec<[u8; CHECKSUM_LEN]>)> {
    let s = shard as usize;
    let k = (end - start).div_ceil(s as u64) as usize;
    let mut enc = HighRateEncoder::new(k, recovery as usize, s, DefaultEngine::new(), None)
        .expect("geometry validated: 1 ≤ m ≤ k ≤ 32768, S a multiple of 64");
    let mut sums = Vec::with_capacity(k + recovery as usize);
    let piece = READ_PIECE / shard as u64 * shard as u64;
    let mut at = start;
    while at < end {
        let n = piece.min(end - at) as usize;
        let bytes = read(at, n)?;
        for chunk in bytes.chunks(s) {
            let p = padded(chunk, shard);
            sums.push(checksum(&p));
            enc.add_original_shard(&p).expect("exactly k shards of S bytes");
        }
        at += n as u64;
    }
    let result = enc.encode().expect("all original shards given");
    let mut out = Vec::with_capacity(recovery as usize * s);
    for r in result.recovery_iter() {
        sums.push(checksum(r));
        out.extend_from_slice(r);
    }
    Ok((out, sums))
}

/// Rebuild the damaged data shards of one segment of `k` data shards from the intact ones:
/// `good_data` are `(index in segment, shard padded to S)`, `good_recovery` likewise. Returns
/// `(index, shard)` for every data shard not given. Needs at least `k` shards in all.
pub fn recover_segment<'s>(
    k: usize,
    shard: u32,
    recovery: u32,
    good_data: impl IntoIterator<Item = (usize, &'s [u8])>,
    good_recovery: impl IntoIterator<Item = (usize, &'s [u8])>,
) -> Result<Vec<(usize, Vec<u8>)>> {
    let mut dec =
        HighRateDecoder::new(k, recovery as usize, shard as usize, DefaultEngine::new(), None).map_err(codec_error)?;
    for (i, s) in good_data {
        dec.add_original_shard(i, s).map_err(codec_error)?;
    }
    for (i, s) in good_recovery {
        dec.add_recovery_shard(i, s).map_err(codec_error)?;
    }
    let result = dec.decode().map_err(codec_error)?;
    Ok(result.restored_original_iter().map(|(i, s)| (i, s.to_vec())).collect())
}

/// Encode the whole parity file of `bytes`, the file `id` of `kind`, at `bp` basis points
/// (the writer's geometry, [`Geometry::plan`]). One segment is coded at a time.
pub fn encode_file(kind: FileKind, id: &Id, bytes: &[u8], bp: u16) -> Vec<u8> {
    encode_with(kind, id, bytes, Geometry::plan(bytes.len() as u64, bp)).expect("the writer's geometry is valid")
}

/// Encode the parity file of `bytes` with an explicit geometry (any geometry §22.2 accepts;
/// its `len` must be `bytes.len()`).
pub fn encode_with(kind: FileKind, id: &Id, bytes: &[u8], geometry: Geometry) -> Result<Vec<u8>> {
    if geometry.len != bytes.len() as u64 {
        return Err(Error::InvalidArgument("parity geometry for another length".into()));
    }
    encode_from(kind, id, geometry, &mut |at, n| Ok(bytes[at as usize..at as usize + n].to_vec()))
}

/// Encode the parity file of a file of `geometry.len` bytes read through `read(offset, len)`
/// (pieces of at most 1 MiB, in order), so that a stored pack need not be held in memory.
pub fn encode_from(
    kind: FileKind,
    id: &Id,
    geometry: Geometry,
    read: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    geometry.validate("parity geometry")?;
    if !protects(kind) {
        return Err(Error::InvalidArgument(format!("parity does not protect {} files", kind.name())));
    }
    let fixed = Fixed { kind, id: *id, geometry }.encode();
    let mut out = Vec::with_capacity(geometry.file_len() as usize);
    out.extend_from_slice(&fixed);
    let mut table = Vec::with_capacity((geometry.checksums() as usize) * CHECKSUM_LEN);
    let mut sums = Vec::with_capacity(geometry.segments as usize);
    for i in 0..geometry.segments {
        let (start, end) = geometry.segment_bytes(i);
        let (rec, s) = encode_segment_from(start, end, geometry.shard, geometry.recovery, read)?;
        out.extend_from_slice(&rec);
        sums.push(s);
    }
    for s in sums.iter().flatten() {
        table.extend_from_slice(s);
    }
    out.extend_from_slice(&table);
    out.extend_from_slice(&table_hash(&fixed, &table));
    Ok(out)
}

/// What [`repair`] found in a damaged file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Damage {
    /// Data shards that did not match their checksums (or lay past the end of a short file).
    pub data_shards: u64,
    /// Recovery shards of the parity file that did not match theirs.
    pub recovery_shards: u64,
    /// The most shards damaged in one segment, against `m`, the most that can be rebuilt.
    pub worst_segment: u64,
    /// The parity file's checksum table did not match its hash (it was used regardless).
    pub table_damaged: bool,
}

/// Rebuild the protected file from `damaged` (its bytes as read: possibly short, long or
/// empty for a missing file) and the parity file (§22.7): locate damaged shards by their
/// checksums, decode each segment that has any, and accept the result only if it hashes to the
/// protected ID. Returns the file's bytes or why it cannot be rebuilt, with the damage found.
pub fn repair(parity: &Parity, damaged: &[u8]) -> (std::result::Result<Vec<u8>, String>, Damage) {
    let g = parity.fixed.geometry;
    let s = g.shard as usize;
    // Not `g.len`: a hostile parity file may claim a length it has no shards for.
    let mut out = Vec::with_capacity(damaged.len().min(g.len as usize));
    let mut d = Damage { table_damaged: !parity.table_ok, ..Damage::default() };
    let mut failure = None;
    for i in 0..g.segments {
        let (first, k) = g.segment(i);
        let shard_of = |j: u64| {
            let at = ((first + j) * g.shard as u64) as usize;
            damaged.get(at..(at + shard_len(&g, first + j)).min(damaged.len())).unwrap_or(&[])
        };
        let ok: Vec<bool> = (0..k).map(|j| parity.data_shard_ok(i, j, shard_of(j))).collect();
        let bad = ok.iter().filter(|o| !**o).count();
        let good_recovery: Vec<(usize, &[u8])> = (0..g.recovery)
            .filter_map(|j| match parity.recovery_shard(i, j) {
                (shard, true) => Some((j as usize, shard)),
                _ => None,
            })
            .collect();
        let bad_recovery = g.recovery as u64 - good_recovery.len() as u64;
        d.data_shards += bad as u64;
        d.recovery_shards += bad_recovery;
        d.worst_segment = d.worst_segment.max(bad as u64 + bad_recovery);
        if bad == 0 {
            (0..k).for_each(|j| out.extend_from_slice(shard_of(j)));
            continue;
        }
        if bad > good_recovery.len() {
            failure.get_or_insert(format!(
                "segment {i}: {bad} damaged data shards but only {} intact recovery shards",
                good_recovery.len()
            ));
            continue;
        }
        let padded_good: Vec<(usize, std::borrow::Cow<[u8]>)> =
            (0..k).filter(|&j| ok[j as usize]).map(|j| (j as usize, padded(shard_of(j), g.shard))).collect();
        let restored = recover_segment(
            k as usize,
            g.shard,
            g.recovery,
            padded_good.iter().map(|(j, p)| (*j, p.as_ref())),
            good_recovery.iter().copied(),
        );
        let restored: std::collections::HashMap<usize, Vec<u8>> = match restored {
            Ok(r) => r.into_iter().collect(),
            Err(e) => {
                failure.get_or_insert(format!("segment {i}: {e}"));
                continue;
            }
        };
        for j in 0..k {
            let want = shard_len(&g, first + j);
            match restored.get(&(j as usize)) {
                Some(r) => out.extend_from_slice(&r[..want.min(s)]),
                None => out.extend_from_slice(shard_of(j)),
            }
        }
    }
    if let Some(why) = failure {
        return (Err(why), d);
    }
    if Id::of_file_bytes(&out) != parity.fixed.id {
        return (Err("the rebuilt bytes do not hash to the file's name".into()), d);
    }
    (Ok(out), d)
}

// ---- the policy file ----------------------------------------------------------------------------

/// Length of the policy body: a u16 of basis points.
pub const POLICY_BODY_LEN: usize = 2;

/// Encode the policy body: the pack overhead in basis points, 0 for off.
pub fn encode_policy(bp: u16) -> Vec<u8> {
    bp.to_le_bytes().to_vec()
}

/// Decode the policy body (§22.5): exactly 2 bytes, at most 10000.
pub fn decode_policy(body: &[u8], what: &str) -> Result<u16> {
    let b: [u8; 2] =
        body.try_into().map_err(|_| Error::integrity(what, format!("policy body of {} bytes, not 2", body.len())))?;
    let bp = u16::from_le_bytes(b);
    if bp > FULL {
        return Err(Error::integrity(what, format!("overhead {bp} basis points is over 10000")));
    }
    Ok(bp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_geometry_is_valid_and_as_documented() {
        // A default 16 MiB pack: 4096 shards of 4 KiB, 188 recovery shards at 5%, and the whole
        // parity file within 5% of the pack.
        let g = Geometry::plan(16 << 20, DEFAULT_OVERHEAD);
        assert_eq!((g.shard, g.segments, g.recovery, g.data_shards()), (4096, 1, 188, 4096));
        assert!(g.file_len() <= (16 << 20) / 20, "{}", g.file_len());
        // Tiny files are mirrored; small ones get ~64 shards and enough for a lost sector.
        assert_eq!(Geometry::plan(100, DEFAULT_OVERHEAD), Geometry { shard: 64, len: 100, segments: 1, recovery: 2 });
        let g = Geometry::plan(100_000, DEFAULT_OVERHEAD);
        assert_eq!((g.shard, g.data_shards(), g.recovery), (1600, 63, 4));
        // A 4 GiB pack: 64 segments of 64 MiB.
        let g = Geometry::plan(u32::MAX as u64, DEFAULT_OVERHEAD);
        assert_eq!((g.segments, g.segment(0).1, g.segment(63).1, g.recovery), (64, 16384, 16384, 752));
        for len in [1, 63, 64, 65, 4095, 4096, 262_143, 262_144, 16 << 20, 64 << 20, (64 << 20) + 1, u32::MAX as u64] {
            for bp in [1, 100, 500, 5000, FULL] {
                let g = Geometry::plan(len, bp);
                g.validate("t").unwrap_or_else(|e| panic!("{len} {bp}: {e}"));
                let last = g.segment(g.segments - 1);
                assert_eq!(last.0 + last.1, g.data_shards());
            }
        }
    }

    /// The examples of format-spec/22 §22.6, computed by an independent pure-Python reading of
    /// that section: the crate, with whatever SIMD engine this machine selects, must agree.
    #[test]
    fn the_code_is_the_one_the_spec_defines() {
        let data =
            |k: usize, s: usize| -> Vec<u8> { (0..k * s).map(|n| ((7 * (n / s) + n % s) % 251) as u8).collect() };
        let (rec, _) = encode_segment(&data(3, 64), 64, 2);
        assert_eq!(
            crate::id::hex(&rec),
            "98efbe8d72751625a204b7847b7c1f2c6a1d4e7d8285e6d552c37043bcbbd8ebb1b3e8efece0eee9ecc2c3c4c7cbc5c2fbf91710131f111613b7b6b1b2beb0b7\
             91e9a5956f6f0939b30ab4847e7e1828730b6555afafc9f973dd6353a9a9cfff9895d3d7d1dad1d5ddece0e4e2e9e2e6c2cf5c585e555e5a52898581878c8783"
        );
        let (rec, _) = encode_segment(&data(5, 128), 128, 3);
        assert_eq!(
            crate::id::hex(&rec),
            "8917d87e530c95529aa12924441b8245e977b214336cf532fac94171114ed710dddf717bc5cac8cec6303023222d2f29e9eb545ef1fefcfaf2a0a02829262422\
             8f11de786f30a96ea69d15cbabf46daa069867c1e6b920e72fd85060005fc6015a58f6fc636c6e6860969643424d4f49898b151fb0bfbdbbb33d3db5b4bbb9bf\
             fa8088c615d629760816888bf536c9964d37024c9754abf48a8b151c62a15e013b37beb6ebecebe1ec282394999e99936a66747c8582858f820803a5a8afa8a2\
             344e46081fdc237c021c82bbc506f9a67d07e1af74b748176945dbd2ac6f90cf969a131b9a9d9a909d5952c4c9cec9c33a36e2ea1314131914252e888582858f\
             e3880152101a4edc45b855ab42481c8e503badfe818bdf4dd414f90fe6ecb82abdb57878696d636e68e2e7b7bfbbb5b810189b9b11151b16100104f0f8fcf2ff\
             a2c940138288dc4ed72ac7fd141e4ad8066dd685faf0a436afbc51a74e44108289814c4c9b9f919c9a10159991959b963e360e0e84808e83855257a3abafa1ac"
        );
    }

    #[test]
    fn a_segment_is_rebuilt_from_any_k_shards() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (rec, sums) = encode_segment(&data, 64, 8);
        assert_eq!((rec.len(), sums.len()), (8 * 64, 16 + 8));
        let shards: Vec<Vec<u8>> = data.chunks(64).map(|c| padded(c, 64).into_owned()).collect();
        // Lose 8 data shards, keep all recovery shards.
        let lost = [0usize, 3, 4, 5, 9, 12, 14, 15];
        let good = (0..16).filter(|i| !lost.contains(i)).map(|i| (i, shards[i].as_slice()));
        let back = recover_segment(16, 64, 8, good, rec.chunks(64).enumerate()).unwrap();
        assert_eq!(back.len(), 8);
        for (i, s) in back {
            assert_eq!(s, shards[i]);
        }
    }
}
