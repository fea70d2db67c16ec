//! Content-defined chunking (format-spec/14-chunking.md).
//!
//! FastCDC v2020 as implemented by the `fastcdc` crate's `cut_gear`, driven with a gear table
//! derived from the master key instead of the public one. The crate's own seed only XORs one
//! 64-bit value into the public table, which the 2025 chunking attacks recover from a few chunk
//! lengths; a full 2048-byte keyed table has no such shortcut.
//!
//! Streaming: a cut point depends on at most `max_size` bytes ahead of the chunk start (and on
//! whether the input ends within them), so feeding the window `[start, start + max)` — or
//! everything up to EOF if shorter — yields exactly the chunks of the whole input at once.

use crate::format::config::ChunkerParams;
use fastcdc::v2020::{cut_gear, MASKS};
use std::io::{self, Read};

/// A keyed FastCDC chunker.
#[derive(Clone)]
pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
}

impl Chunker {
    /// A chunker for validated parameters and a gear table.
    pub fn new(p: &ChunkerParams, gear: &[u64; 256]) -> Chunker {
        let bits = p.avg_size.trailing_zeros() as usize;
        let n = p.normalization as usize;
        let gear = Box::new(*gear);
        let mut gear_ls = Box::new([0u64; 256]);
        for (l, g) in gear_ls.iter_mut().zip(gear.iter()) {
            *l = g << 1;
        }
        Chunker {
            min: p.min_size as usize,
            avg: p.avg_size as usize,
            max: p.max_size as usize,
            mask_s: MASKS[bits + n],
            mask_l: MASKS[bits - n],
            gear,
            gear_ls,
        }
    }

    /// Largest chunk this chunker emits.
    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Length of the chunk starting at `window[0]`. `window` must hold at least `max_size` bytes,
    /// or every byte up to the end of the input.
    pub fn next_len(&self, window: &[u8]) -> usize {
        let (_, len) = cut_gear(
            window,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        len
    }

    /// Split a whole in-memory input into chunk lengths.
    pub fn lengths(&self, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let n = self.next_len(&data[pos..]);
            out.push(n);
            pos += n;
        }
        out
    }

    /// Chunks of a stream, each an owned buffer, reading at most about `2 * max_size` ahead.
    pub fn stream<R: Read>(&self, reader: R) -> ChunkStream<'_, R> {
        ChunkStream { chunker: self, reader, buf: Vec::new(), pos: 0, end: 0, eof: false }
    }
}

impl Drop for Chunker {
    fn drop(&mut self) {
        // The gear table is key material.
        zeroize::Zeroize::zeroize(&mut self.gear[..]);
        zeroize::Zeroize::zeroize(&mut self.gear_ls[..]);
    }
}

/// Iterator over the chunks of a reader; see [`Chunker::stream`].
pub struct ChunkStream<'c, R> {
    chunker: &'c Chunker,
    reader: R,
    /// Fixed buffer of `2 * max` bytes; `buf[pos..end]` is unconsumed input.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> ChunkStream<'_, R> {
    fn fill(&mut self) -> io::Result<()> {
        let max = self.chunker.max;
        if self.eof || self.end - self.pos >= max {
            return Ok(());
        }
        if self.buf.is_empty() {
            self.buf = vec![0u8; 2 * max];
        }
        // Compact, then read until a full window is buffered or the input ends.
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        while self.end < self.buf.len() {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<R: Read> Iterator for ChunkStream<'_, R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.fill() {
            return Some(Err(e));
        }
        let window = &self.buf[self.pos..self.end];
        if window.is_empty() {
            return None;
        }
        let n = self.chunker.next_len(window);
        let chunk = window[..n].to_vec();
        self.pos += n;
        Some(Ok(chunk))
    }
}
