//! A streamed ZIP writer (PKWARE APPNOTE 6.3.x) for `dump --archive zip`.
//!
//! The output is never sought: each entry is a local header, its data and (for a regular file)
//! a data descriptor, written once, in order; the central directory and the end records follow
//! the last entry. What is held in memory is the central directory alone, about 60 bytes plus
//! the name per entry, so memory grows with the number of entries, never with their sizes.
//!
//! Entries are stored (method 0), not deflated: a dump is as fast as the repository reads, and
//! the bytes depend on nothing but the snapshot (no compressor version or level), so the same
//! entry gives the same archive every time, whoever asks for it. Times are written in UTC for
//! the same reason (a DOS time is local by tradition, but the writer's time zone must not show).
//!
//! A regular file's CRC-32 is only known once its content has been read, so its local header has
//! general-purpose bit 3 set, CRC and sizes zero, and a data descriptor after the data carries
//! them. Symlinks (the target as content, Info-ZIP's convention), directories and FIFOs are
//! known in full beforehand and need no descriptor.
//!
//! ZIP64 (APPNOTE 4.3.9, 4.4.1.4, 4.5.3) is used where a field would overflow, and only there:
//! - a file whose size does not fit 32 bits: its local header says `0xFFFFFFFF` for both sizes
//!   and has a ZIP64 extra field (holding zeros, as bit 3 wants), and its data descriptor has
//!   8-byte sizes; its central record has the sizes in a ZIP64 extra field;
//! - a local header beyond 4 GiB: its central record has the offset in a ZIP64 extra field;
//! - more than 65534 entries, or a central directory that is large or starts beyond 4 GiB: a
//!   ZIP64 end of central directory record and its locator precede the end record, whose
//!   overflowing fields say `0xFFFF`/`0xFFFFFFFF`.

use std::io::{self, Read, Write};

/// What a ZIP entry records of a snapshot entry.
#[derive(Clone, Copy, Debug)]
pub(super) struct Meta {
    /// Permission bits (`mode & 0o7777`); the file type bits are the writer's.
    pub perm: u32,
    /// Modification time, Unix seconds.
    pub mtime: i64,
}

/// The kinds of entry a ZIP archive can hold (Unix file type bits in the external attributes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
}

impl Kind {
    fn type_bits(self) -> u32 {
        match self {
            Kind::File => 0o100000,
            Kind::Dir => 0o040000,
            Kind::Symlink => 0o120000,
            Kind::Fifo => 0o010000,
        }
    }
}

const LOCAL_SIG: u32 = 0x0403_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const LOCATOR64_SIG: u32 = 0x0706_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;

/// Bit 3: CRC and sizes follow the data in a data descriptor.
const FLAG_DESCRIPTOR: u16 = 1 << 3;
/// Bit 11: the name is UTF-8.
const FLAG_UTF8: u16 = 1 << 11;

/// Version made by: Unix (3) in the high byte, APPNOTE 6.3 in the low one.
const MADE_BY: u16 = (3 << 8) | 63;
/// Version needed to extract: 2.0 (stored entries and directories), 4.5 with ZIP64.
const NEEDS_20: u16 = 20;
const NEEDS_64: u16 = 45;

/// Extra field tags: ZIP64 extended information, and Info-ZIP's extended timestamp (UTC).
const EXTRA_ZIP64: u16 = 0x0001;
const EXTRA_TIME: u16 = 0x5455;

/// Beyond what the classic fields hold: at or above `size`, a size, offset or directory size
/// goes into ZIP64 records; at or above `count`, an entry count does (`0xFFFFFFFF` and `0xFFFF`
/// are themselves the markers that send a reader to the ZIP64 records).
#[derive(Clone, Copy, Debug)]
struct Limits {
    size: u64,
    count: u64,
}

const LIMITS: Limits = Limits { size: 0xFFFF_FFFF, count: 0xFFFF };

/// A ZIP archive being written to `w`; [`ZipWriter::finish`] writes the central directory.
pub(super) struct ZipWriter<'w> {
    w: &'w mut dyn Write,
    /// Bytes written so far: where the next record starts.
    offset: u64,
    /// The central directory records of the entries written so far.
    central: Vec<u8>,
    entries: u64,
    limits: Limits,
}

impl<'w> ZipWriter<'w> {
    /// A new, empty archive.
    pub fn new(w: &'w mut dyn Write) -> ZipWriter<'w> {
        ZipWriter { w, offset: 0, central: Vec::new(), entries: 0, limits: LIMITS }
    }

    /// A directory; `name` ends in `/`.
    pub fn dir(&mut self, name: &[u8], meta: Meta) -> io::Result<()> {
        self.known(name, meta, Kind::Dir, b"")
    }

    /// A symbolic link: the target is the entry's content (Info-ZIP's convention).
    pub fn symlink(&mut self, name: &[u8], meta: Meta, target: &[u8]) -> io::Result<()> {
        self.known(name, meta, Kind::Symlink, target)
    }

    /// A FIFO: an empty entry whose Unix mode says what it is.
    pub fn fifo(&mut self, name: &[u8], meta: Meta) -> io::Result<()> {
        self.known(name, meta, Kind::Fifo, b"")
    }

    /// A regular file of `size` bytes, read from `content` (which must give exactly that many)
    /// and streamed through: data descriptor after the data.
    pub fn file(&mut self, name: &[u8], meta: Meta, size: u64, content: &mut dyn Read) -> io::Result<()> {
        let start = self.start_file(name, meta, size)?;
        let mut crc = Crc32::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut written = 0u64;
        loop {
            let n = match content.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            crc.update(&buf[..n]);
            self.put(&buf[..n])?;
            written += n as u64;
        }
        if written != size {
            // The header already promised a size (ZIP64 or not); a tree and its content agree
            // (format-spec checks both), so this is damage, never a normal case.
            let name = String::from_utf8_lossy(name);
            return Err(io::Error::other(crate::Error::integrity(
                format!("file {name}"),
                format!("content is {written} bytes, the tree records {size}"),
            )));
        }
        self.end_file(start, crc.finish(), size)
    }

    /// An entry whose content and CRC are known before its header is written.
    fn known(&mut self, name: &[u8], meta: Meta, kind: Kind, content: &[u8]) -> io::Result<()> {
        let size = content.len() as u64;
        let e = Entry { name, meta, kind, flags: name_flag(name), crc: crc32(content), offset: self.offset };
        let header = e.local(size, false, self.limits)?;
        self.put(&header)?;
        self.put(content)?;
        self.push_central(&e, size)
    }

    /// The local header of a regular file to be streamed: returns what [`Self::end_file`] needs.
    fn start_file<'n>(&mut self, name: &'n [u8], meta: Meta, size: u64) -> io::Result<Entry<'n>> {
        let flags = name_flag(name) | FLAG_DESCRIPTOR;
        let e = Entry { name, meta, kind: Kind::File, flags, crc: 0, offset: self.offset };
        let header = e.local(size, size >= self.limits.size, self.limits)?;
        self.put(&header)?;
        Ok(e)
    }

    /// The data descriptor after a streamed file's data, and its central record.
    fn end_file(&mut self, mut e: Entry, crc: u32, size: u64) -> io::Result<()> {
        e.crc = crc;
        let mut d = Vec::with_capacity(24);
        put32(&mut d, DESCRIPTOR_SIG);
        put32(&mut d, crc);
        // 8-byte sizes exactly when the local header had a ZIP64 extra field (APPNOTE 4.3.9.2).
        if size >= self.limits.size {
            put64(&mut d, size);
            put64(&mut d, size);
        } else {
            put32(&mut d, size as u32);
            put32(&mut d, size as u32);
        }
        self.put(&d)?;
        self.push_central(&e, size)
    }

    fn push_central(&mut self, e: &Entry, size: u64) -> io::Result<()> {
        e.central(size, self.limits, &mut self.central);
        self.entries += 1;
        Ok(())
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)?;
        self.offset += b.len() as u64;
        Ok(())
    }

    /// Write the central directory and the end records.
    pub fn finish(mut self) -> io::Result<()> {
        let (cd_offset, cd_size, n) = (self.offset, self.central.len() as u64, self.entries);
        let central = std::mem::take(&mut self.central);
        self.put(&central)?;
        drop(central);
        let lim = self.limits;
        let mut end = Vec::with_capacity(98);
        if n >= lim.count || cd_size >= lim.size || cd_offset >= lim.size {
            // ZIP64 end of central directory record (APPNOTE 4.3.14) and locator (4.3.15).
            let eocd64_offset = self.offset;
            put32(&mut end, EOCD64_SIG);
            put64(&mut end, 44); // the size of the rest of the record
            put16(&mut end, MADE_BY);
            put16(&mut end, NEEDS_64);
            put32(&mut end, 0); // this disk
            put32(&mut end, 0); // the disk the central directory starts on
            put64(&mut end, n); // entries on this disk
            put64(&mut end, n); // entries in all
            put64(&mut end, cd_size);
            put64(&mut end, cd_offset);
            put32(&mut end, LOCATOR64_SIG);
            put32(&mut end, 0); // the disk of the ZIP64 end record
            put64(&mut end, eocd64_offset);
            put32(&mut end, 1); // disks in all
        }
        let count16 = if n >= lim.count { 0xFFFF } else { n as u16 };
        put32(&mut end, EOCD_SIG);
        put16(&mut end, 0);
        put16(&mut end, 0);
        put16(&mut end, count16);
        put16(&mut end, count16);
        put32(&mut end, clamp32(cd_size, lim));
        put32(&mut end, clamp32(cd_offset, lim));
        put16(&mut end, 0); // no comment
        self.put(&end)?;
        self.w.flush()
    }
}

/// One entry's fixed facts, for its local header and its central record.
struct Entry<'n> {
    name: &'n [u8],
    meta: Meta,
    kind: Kind,
    flags: u16,
    crc: u32,
    /// Where its local header starts.
    offset: u64,
}

impl Entry<'_> {
    fn needs(&self, size: u64, lim: Limits) -> u16 {
        match size >= lim.size || self.offset >= lim.size {
            true => NEEDS_64,
            false => NEEDS_20,
        }
    }

    /// The local file header. With `zip64`, the sizes are in a ZIP64 extra field; with bit 3
    /// set, CRC and sizes are zero here and follow the data.
    fn local(&self, size: u64, zip64: bool, lim: Limits) -> io::Result<Vec<u8>> {
        let name_len = name_len(self.name)?;
        let streamed = self.flags & FLAG_DESCRIPTOR != 0;
        let mut extra = Vec::with_capacity(29);
        if zip64 {
            put16(&mut extra, EXTRA_ZIP64);
            put16(&mut extra, 16);
            let known = if streamed { 0 } else { size };
            put64(&mut extra, known); // original size
            put64(&mut extra, known); // compressed size
        }
        time_extra(self.meta.mtime, &mut extra);
        let (time, date) = dos_time(self.meta.mtime);
        let mut h = Vec::with_capacity(30 + self.name.len() + extra.len());
        put32(&mut h, LOCAL_SIG);
        put16(&mut h, self.needs(size, lim));
        put16(&mut h, self.flags);
        put16(&mut h, 0); // stored
        put16(&mut h, time);
        put16(&mut h, date);
        let size32 = match (zip64, streamed) {
            (true, _) => 0xFFFF_FFFF,
            (false, true) => 0,
            (false, false) => size as u32,
        };
        put32(&mut h, if streamed { 0 } else { self.crc });
        put32(&mut h, size32);
        put32(&mut h, size32);
        put16(&mut h, name_len);
        put16(&mut h, extra.len() as u16);
        h.extend_from_slice(self.name);
        h.extend_from_slice(&extra);
        Ok(h)
    }

    /// The central directory record, appended to `out`.
    fn central(&self, size: u64, lim: Limits, out: &mut Vec<u8>) {
        let big_size = size >= lim.size;
        let big_offset = self.offset >= lim.size;
        let mut extra = Vec::with_capacity(33);
        if big_size || big_offset {
            // Only the fields whose classic field says 0xFFFFFFFF, in this order (4.5.3).
            put16(&mut extra, EXTRA_ZIP64);
            put16(&mut extra, 16 * u16::from(big_size) + 8 * u16::from(big_offset));
            if big_size {
                put64(&mut extra, size);
                put64(&mut extra, size);
            }
            if big_offset {
                put64(&mut extra, self.offset);
            }
        }
        time_extra(self.meta.mtime, &mut extra);
        let (time, date) = dos_time(self.meta.mtime);
        let mode = self.kind.type_bits() | (self.meta.perm & 0o7777);
        // MS-DOS attributes in the low byte: directory, and read-only when the owner cannot write.
        let dos = if self.kind == Kind::Dir { 0x10 } else { 0 } | u32::from(self.meta.perm & 0o200 == 0);
        out.reserve(46 + self.name.len() + extra.len());
        put32(out, CENTRAL_SIG);
        put16(out, MADE_BY);
        put16(out, self.needs(size, lim));
        put16(out, self.flags);
        put16(out, 0); // stored
        put16(out, time);
        put16(out, date);
        put32(out, self.crc);
        put32(out, clamp32(size, lim));
        put32(out, clamp32(size, lim));
        put16(out, self.name.len() as u16); // checked when the local header was made
        put16(out, extra.len() as u16);
        put16(out, 0); // no comment
        put16(out, 0); // disk number start
        put16(out, 0); // internal attributes
        put32(out, (mode << 16) | dos);
        put32(out, clamp32(self.offset, lim));
        out.extend_from_slice(self.name);
        out.extend_from_slice(&extra);
    }
}

/// Bit 11 when the name is UTF-8 (else its bytes go in as they are, with no claim of encoding).
fn name_flag(name: &[u8]) -> u16 {
    match std::str::from_utf8(name) {
        Ok(_) => FLAG_UTF8,
        Err(_) => 0,
    }
}

fn name_len(name: &[u8]) -> io::Result<u16> {
    u16::try_from(name.len()).map_err(|_| {
        let shown = String::from_utf8_lossy(&name[..200]);
        io::Error::other(crate::Error::Unsupported(format!(
            "path {shown}… is {} bytes long; ZIP holds at most 65535 (use --archive tar)",
            name.len()
        )))
    })
}

/// `v`, or the `0xFFFFFFFF` marker when it belongs in a ZIP64 field.
fn clamp32(v: u64, lim: Limits) -> u32 {
    if v >= lim.size {
        0xFFFF_FFFF
    } else {
        v as u32
    }
}

/// Info-ZIP's extended timestamp (modification time only, UTC), when it fits its 32 bits.
fn time_extra(mtime: i64, out: &mut Vec<u8>) {
    if let Ok(t) = i32::try_from(mtime) {
        put16(out, EXTRA_TIME);
        put16(out, 5);
        out.push(1); // the modification time is present
        out.extend_from_slice(&t.to_le_bytes());
    }
}

/// MS-DOS time and date of Unix time `secs` in UTC, clamped to the range DOS can hold
/// (1980-01-01 to 2107-12-31; two-second steps).
fn dos_time(secs: i64) -> (u16, u16) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::lifecycle::policy::civil_from_days(days);
    if year < 1980 {
        return (0, (1 << 5) | 1);
    }
    if year > 2107 {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let time = (h << 11) | (m << 5) | (s / 2);
    let date = ((year - 1980) << 9) | (month << 5) | day;
    (time as u16, date as u16)
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) as ZIP uses it, eight bytes a step
/// ("slicing by 8"): no crate for it is among the dependencies.
struct Crc32(u32);

/// `TABLES[0]` is the byte-wise table; `TABLES[k][b]` is the CRC of byte `b` followed by `k`
/// zero bytes.
static TABLES: [[u32; 256]; 8] = crc_tables();

const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

impl Crc32 {
    fn new() -> Crc32 {
        Crc32(!0)
    }

    fn update(&mut self, data: &[u8]) {
        let t = &TABLES;
        let mut c = self.0;
        let mut blocks = data.chunks_exact(8);
        for b in &mut blocks {
            let lo = c ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let hi = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            c = t[7][(lo & 0xFF) as usize]
                ^ t[6][(lo >> 8 & 0xFF) as usize]
                ^ t[5][(lo >> 16 & 0xFF) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][(hi & 0xFF) as usize]
                ^ t[2][(hi >> 8 & 0xFF) as usize]
                ^ t[1][(hi >> 16 & 0xFF) as usize]
                ^ t[0][(hi >> 24) as usize];
        }
        for &x in blocks.remainder() {
            c = t[0][((c ^ u32::from(x)) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    fn finish(&self) -> u32 {
        !self.0
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(data);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le16(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn le64(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    const META: Meta = Meta { perm: 0o644, mtime: 1_700_000_000 };

    /// The end records: (entries, central directory size, its offset) as a reader finds them,
    /// and whether they came from ZIP64 records.
    /// `base`: the archive offset of `zip[0]` (a test may pretend that much came before).
    fn end_records(zip: &[u8], base: u64) -> (u64, u64, u64, bool) {
        let eocd = zip.len() - 22;
        assert_eq!(le32(zip, eocd), EOCD_SIG);
        let (n, size, off) = (le16(zip, eocd + 10), le32(zip, eocd + 12), le32(zip, eocd + 16));
        if eocd >= 20 && le32(zip, eocd - 20) == LOCATOR64_SIG {
            let at = (le64(zip, eocd - 20 + 8) - base) as usize;
            assert_eq!(at, eocd - 20 - 56, "the locator points at the record just before it");
            assert_eq!(le32(zip, at), EOCD64_SIG);
            assert_eq!(le64(zip, at + 4), 44);
            assert_eq!(le16(zip, at + 14), NEEDS_64);
            assert_eq!(le64(zip, at + 24), le64(zip, at + 32), "entries on this disk and in all");
            return (le64(zip, at + 32), le64(zip, at + 40), le64(zip, at + 48), true);
        }
        (u64::from(n), u64::from(size), u64::from(off), false)
    }

    /// The extra fields of a record as (tag, data).
    fn extras(mut x: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = vec![];
        while !x.is_empty() {
            let (tag, len) = (le16(x, 0), le16(x, 2) as usize);
            out.push((tag, x[4..4 + len].to_vec()));
            x = &x[4 + len..];
        }
        out
    }

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Slicing and byte-wise agree at every split.
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let whole = crc32(&data);
        for cut in [1, 7, 8, 9, 500, 999] {
            let mut c = Crc32::new();
            c.update(&data[..cut]);
            c.update(&data[cut..]);
            assert_eq!(c.finish(), whole);
        }
        let mut bytewise = !0u32;
        for &x in &data {
            bytewise = TABLES[0][((bytewise ^ u32::from(x)) & 0xFF) as usize] ^ (bytewise >> 8);
        }
        assert_eq!(!bytewise, whole);
    }

    #[test]
    fn dos_times_are_utc_and_clamped() {
        // 2023-11-14 22:13:20 UTC.
        let (t, d) = dos_time(1_700_000_000);
        assert_eq!((d >> 9, d >> 5 & 15, d & 31), (43, 11, 14));
        assert_eq!((t >> 11, t >> 5 & 63, (t & 31) * 2), (22, 13, 20));
        assert_eq!(dos_time(0), (0, 0x21));
        assert_eq!(dos_time(-1), (0, 0x21));
        assert_eq!(dos_time(i64::MAX / 2).1 >> 9, 127);
    }

    #[test]
    fn a_small_archive_has_the_expected_records() {
        let mut out = Vec::new();
        let mut z = ZipWriter::new(&mut out);
        z.dir(b"d/", META).unwrap();
        z.file(b"d/f", Meta { perm: 0o400, mtime: -5 }, 3, &mut &b"abc"[..]).unwrap();
        z.symlink(b"d/l", Meta { perm: 0o777, mtime: 0 }, b"f").unwrap();
        z.file(b"d/caf\xe9", META, 0, &mut &b""[..]).unwrap();
        z.finish().unwrap();
        let (n, cd_size, cd_off, zip64) = end_records(&out, 0);
        assert_eq!((n, zip64), (4, false));
        assert_eq!(cd_off + cd_size, out.len() as u64 - 22);
        // The file: bit 3, zeros in the local header, a 16-byte descriptor after the data.
        let f = 30 + 2 + 9; // after the directory's local header
        assert_eq!(le32(&out, f), LOCAL_SIG);
        assert_eq!(le16(&out, f + 6), FLAG_DESCRIPTOR | FLAG_UTF8);
        assert_eq!((le32(&out, f + 14), le32(&out, f + 18), le32(&out, f + 22)), (0, 0, 0));
        let data = f + 30 + 3 + 9;
        assert_eq!(&out[data..data + 3], b"abc");
        assert_eq!(le32(&out, data + 3), DESCRIPTOR_SIG);
        assert_eq!((le32(&out, data + 7), le32(&out, data + 11)), (crc32(b"abc"), 3));
        assert_eq!(le32(&out, data + 15), 3);
        // Central records: Unix mode, UTF-8 flag only for the UTF-8 name.
        let mut at = cd_off as usize;
        let mut seen = vec![];
        for _ in 0..n {
            assert_eq!(le32(&out, at), CENTRAL_SIG);
            assert_eq!(le16(&out, at + 4), MADE_BY);
            let (nl, xl) = (le16(&out, at + 28) as usize, le16(&out, at + 30) as usize);
            let name = out[at + 46..at + 46 + nl].to_vec();
            seen.push((name, le16(&out, at + 8) & FLAG_UTF8 != 0, le32(&out, at + 38) >> 16));
            assert!(extras(&out[at + 46 + nl..at + 46 + nl + xl]).iter().all(|(t, _)| *t == EXTRA_TIME));
            at += 46 + nl + xl;
        }
        let want: Vec<(&[u8], bool, u32)> = vec![
            (b"d/", true, 0o040644),
            (b"d/f", true, 0o100400),
            (b"d/l", true, 0o120777),
            (b"d/caf\xe9", false, 0o100644),
        ];
        let want: Vec<(Vec<u8>, bool, u32)> = want.into_iter().map(|(a, b, c)| (a.to_vec(), b, c)).collect();
        assert_eq!(seen, want);
    }

    /// Determinism: the same entries give the same bytes.
    #[test]
    fn the_same_entries_give_the_same_bytes() {
        let make = || {
            let mut out = Vec::new();
            let mut z = ZipWriter::new(&mut out);
            z.dir(b"x/", META).unwrap();
            z.file(b"x/a", META, 5, &mut &b"hello"[..]).unwrap();
            z.finish().unwrap();
            out
        };
        assert_eq!(make(), make());
    }

    /// A file of 5 GiB, without writing 5 GiB: the header and records for a size beyond 32 bits,
    /// with its local header beyond 4 GiB too.
    #[test]
    fn a_file_beyond_4_gib_gets_zip64_records() {
        let big = 5u64 << 30;
        let mut out = Vec::new();
        let mut z = ZipWriter::new(&mut out);
        z.offset = 6 << 30; // as if 6 GiB had been written before this entry
        let start = z.start_file(b"big", META, big).unwrap();
        z.end_file(start, 0x1234_5678, big).unwrap();
        let data_end = z.offset;
        z.finish().unwrap();

        // Local header: version 4.5, bit 3, 0xFFFFFFFF sizes, ZIP64 extra with zeros.
        assert_eq!(le32(&out, 0), LOCAL_SIG);
        assert_eq!(le16(&out, 4), NEEDS_64);
        assert_eq!(le16(&out, 6), FLAG_DESCRIPTOR | FLAG_UTF8);
        assert_eq!((le32(&out, 14), le32(&out, 18), le32(&out, 22)), (0, 0xFFFF_FFFF, 0xFFFF_FFFF));
        let xl = le16(&out, 28) as usize;
        let x = extras(&out[33..33 + xl]);
        assert_eq!(x[0], (EXTRA_ZIP64, [0u8; 16].to_vec()));
        // The descriptor follows at once (the test wrote no data): 8-byte sizes.
        let d = 33 + xl;
        assert_eq!(le32(&out, d), DESCRIPTOR_SIG);
        assert_eq!(le32(&out, d + 4), 0x1234_5678);
        assert_eq!((le64(&out, d + 8), le64(&out, d + 16)), (big, big));
        assert_eq!(d + 24, (data_end - (6 << 30)) as usize);

        // Central record: markers, and both sizes and the offset in its ZIP64 extra.
        let (n, cd_size, cd_off, zip64) = end_records(&out, 6 << 30);
        assert!(zip64, "the central directory starts beyond 4 GiB");
        assert_eq!((n, cd_off), (1, data_end));
        let c = d + 24;
        assert_eq!(le32(&out, c), CENTRAL_SIG);
        assert_eq!(le16(&out, c + 6), NEEDS_64);
        assert_eq!(le32(&out, c + 16), 0x1234_5678);
        assert_eq!((le32(&out, c + 20), le32(&out, c + 24), le32(&out, c + 42)), (!0, !0, !0));
        let xl = le16(&out, c + 30) as usize;
        assert_eq!(cd_size, 46 + 3 + xl as u64);
        let x = extras(&out[c + 49..c + 49 + xl]);
        let mut want = Vec::new();
        for v in [big, big, 6 << 30] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(x[0], (EXTRA_ZIP64, want));
        // The end record says 0xFFFFFFFF for the offset it cannot hold.
        let eocd = out.len() - 22;
        assert_eq!((le16(&out, eocd + 10), le32(&out, eocd + 12), le32(&out, eocd + 16)), (1, cd_size as u32, !0));
    }

    /// More than 65535 entries, for real (they are small): the count is in ZIP64 records.
    #[test]
    fn more_than_65535_entries_get_a_zip64_end_record() {
        let mut out = Vec::new();
        let mut z = ZipWriter::new(&mut out);
        for i in 0..70_000u32 {
            z.dir(format!("{i}/").as_bytes(), META).unwrap();
        }
        z.finish().unwrap();
        let (n, cd_size, cd_off, zip64) = end_records(&out, 0);
        assert_eq!((n, zip64), (70_000, true));
        assert_eq!(cd_off + cd_size + 56 + 20 + 22, out.len() as u64);
        assert_eq!(le16(&out, out.len() - 22 + 10), 0xFFFF);
        if let Some(listed) = python_check(&out, "print(len(z.namelist()))") {
            assert_eq!(listed.trim(), "70000");
        }
    }

    /// ZIP64 everywhere (limits lowered so that every size, offset and count is "large"):
    /// a real archive a ZIP reader must still read.
    #[test]
    fn forced_zip64_records_are_read_back() {
        let mut out = Vec::new();
        let mut z = ZipWriter::new(&mut out);
        z.limits = Limits { size: 1, count: 1 };
        z.dir(b"a/", META).unwrap();
        z.file(b"a/one", META, 11, &mut &b"hello world"[..]).unwrap();
        z.file(b"a/empty", META, 0, &mut &b""[..]).unwrap();
        z.symlink(b"a/link", META, b"one").unwrap();
        z.finish().unwrap();
        let (n, _, _, zip64) = end_records(&out, 0);
        assert_eq!((n, zip64), (4, true));
        let script = "for i in z.infolist(): print(i.filename, i.file_size, z.read(i))";
        if let Some(listed) = python_check(&out, script) {
            assert_eq!(listed, "a/ 0 b''\na/one 11 b'hello world'\na/empty 0 b''\na/link 3 b'one'\n");
        }
    }

    /// Python's `zipfile` over `zip`: `testzip()` must pass (and `unzip -t`, where installed),
    /// then `script` runs with the archive as `z`; its output. `None` when there is no python3 (the integration tests require it).
    fn python_check(zip: &[u8], script: &str) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.zip");
        std::fs::write(&path, zip).unwrap();
        let code =
            format!("import zipfile,sys\nz=zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\n{script}\n");
        let out = std::process::Command::new("python3").arg("-c").arg(code).arg(&path).output().ok()?;
        assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
        // Info-ZIP's unzip, where installed, must agree.
        if let Ok(u) = std::process::Command::new("unzip").arg("-tq").arg(&path).output() {
            assert!(u.status.success(), "unzip -t: {}", String::from_utf8_lossy(&u.stdout));
        }
        Some(String::from_utf8(out.stdout).unwrap())
    }
}
