//! The local metadata log: `<data-dir>/__cluster_metadata-0/`, segments of record batches plus
//! snapshots of the image.
//!
//! Files (std::fs: this log is small and off the hot path):
//! - `<base-offset:020>.log`: batches, each `len: u32, crc32c(body): u32, body` with body =
//!   `base_offset: u64, count: u32, (record_len: u32, record)*`. A batch is atomic: a torn
//!   write loses the whole batch, so a CreateTopics never half-exists after a crash.
//! - `<offset:020>.checkpoint`: a snapshot covering offsets `< offset`: `"RTMS"`, `version:
//!   u16`, `offset: u64`, `count: u32`, `(record_len: u32, record)*`, `crc32c(all before): u32`.
//!   Written atomically (temp, fsync, rename, directory fsync).
//!
//! Every append is fsync'd before it returns. Recovery loads the newest valid snapshot, then
//! replays the batches after it; a bad frame in the last segment is a torn tail and is
//! truncated away, anywhere else it is corruption. After each snapshot the log rolls to a new
//! segment; two snapshots are kept, and the segments needed to replay from the older one.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use shards::{Error, Result};

use super::codec::{DecodeResult, Reader};
use super::image::MetadataImage;
use super::record::MetadataRecord;

/// The directory name under the data directory (Kafka's KRaft metadata log name).
pub const METADATA_DIR_NAME: &str = "__cluster_metadata-0";
/// A batch body larger than this is refused on append and treated as corrupt on read.
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;
/// A snapshot file larger than this is treated as corrupt.
pub const SNAPSHOT_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// Snapshots kept on disk (the newest may be unreadable after a disk fault; the older one
/// and the segments after it are the fallback).
pub const SNAPSHOTS_KEPT: usize = 2;

const FRAME_HEADER_BYTES: usize = 8;
const SNAPSHOT_MAGIC: &[u8; 4] = b"RTMS";
const SNAPSHOT_VERSION: u16 = 1;

#[derive(Clone, Copy, Debug)]
pub struct MetadataLogOptions {
    /// Write a snapshot once this many records were appended since the last one.
    pub snapshot_interval_records: u64,
}

impl Default for MetadataLogOptions {
    fn default() -> Self {
        MetadataLogOptions {
            snapshot_interval_records: 1000,
        }
    }
}

/// What recovery found; for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Offset of the snapshot recovery started from, if any.
    pub snapshot_offset: Option<u64>,
    /// Records replayed from the segments after the snapshot.
    pub records_replayed: u64,
    /// Bytes cut from the end of the last segment (a torn write).
    pub truncated_bytes: u64,
}

pub struct MetadataLog {
    dir: PathBuf,
    active: File,
    active_path: PathBuf,
    active_base: u64,
    next_offset: u64,
    records_since_snapshot: u64,
    /// Bytes of the active segment that hold whole batches.
    active_len: u64,
    /// Set when an append failed and the file could not be restored, or fsync failed (the
    /// page cache can no longer be trusted): no further appends.
    poisoned: bool,
    options: MetadataLogOptions,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::MetadataCorrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// fsync a directory so entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))
}

/// Writes `bytes` to `dir/name` atomically: temp file, fsync, rename, directory fsync.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut file = File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(dir)
}

fn segment_name(base: u64) -> String {
    format!("{base:020}.log")
}

fn snapshot_name(offset: u64) -> String {
    format!("{offset:020}.checkpoint")
}

fn parse_offset_name(name: &str, suffix: &str) -> Option<u64> {
    let stem = name.strip_suffix(suffix)?;
    (stem.len() == 20).then(|| stem.parse().ok()).flatten()
}

/// Encodes a batch frame (header + body).
fn encode_batch(base_offset: u64, records: &[MetadataRecord]) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 * records.len());
    body.extend_from_slice(&base_offset.to_be_bytes());
    body.extend_from_slice(&u32::try_from(records.len()).expect("bounded").to_be_bytes());
    encode_records(&mut body, records);
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
    frame.extend_from_slice(&u32::try_from(body.len()).expect("bounded").to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

fn encode_records(out: &mut Vec<u8>, records: &[MetadataRecord]) {
    let mut scratch = Vec::new();
    for record in records {
        scratch.clear();
        record.encode(&mut scratch);
        out.extend_from_slice(&u32::try_from(scratch.len()).expect("bounded").to_be_bytes());
        out.extend_from_slice(&scratch);
    }
}

fn decode_records(r: &mut Reader, count: usize) -> DecodeResult<Vec<MetadataRecord>> {
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.u32()? as usize;
        records.push(MetadataRecord::decode(r.bytes(len)?)?);
    }
    Ok(records)
}

/// One decoded batch and where its frame ends.
struct Batch {
    base_offset: u64,
    records: Vec<MetadataRecord>,
    end: usize,
}

/// Decodes the batch frame at `pos`; `Err` means a torn or corrupt frame.
fn decode_batch(bytes: &[u8], pos: usize) -> DecodeResult<Batch> {
    let mut header = Reader::new(&bytes[pos..]);
    let len = header.u32()? as usize;
    let crc = header.u32()?;
    if len > BATCH_BYTES_MAX {
        return Err(format!("batch of {len} bytes exceeds {BATCH_BYTES_MAX}"));
    }
    let body = header.bytes(len)?;
    if crc32c::crc32c(body) != crc {
        return Err("batch CRC mismatch".into());
    }
    let mut r = Reader::new(body);
    let base_offset = r.u64()?;
    let count = r.count(7)?;
    let records = decode_records(&mut r, count)?;
    r.finish()?;
    Ok(Batch {
        base_offset,
        records,
        end: pos + FRAME_HEADER_BYTES + len,
    })
}

fn encode_snapshot(offset: u64, records: &[MetadataRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&u32::try_from(records.len()).expect("bounded").to_be_bytes());
    encode_records(&mut out, records);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn decode_snapshot(bytes: &[u8]) -> DecodeResult<(u64, Vec<MetadataRecord>)> {
    if bytes.len() < 4 {
        return Err("snapshot too short".into());
    }
    let (content, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(content).to_be_bytes() != crc {
        return Err("snapshot CRC mismatch".into());
    }
    let mut r = Reader::new(content);
    if r.bytes(4)? != SNAPSHOT_MAGIC {
        return Err("not a Riptide metadata snapshot".into());
    }
    let version = r.u16()?;
    if version != SNAPSHOT_VERSION {
        return Err(format!("unknown snapshot version {version}"));
    }
    let offset = r.u64()?;
    let count = r.count(7)?;
    let records = decode_records(&mut r, count)?;
    r.finish()?;
    Ok((offset, records))
}

fn read_bounded(path: &Path, bytes_max: u64) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    if len > bytes_max {
        return Err(corrupt(path, format!("{len} bytes exceeds {bytes_max}")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.read_to_end(&mut bytes).map_err(io(path))?;
    Ok(bytes)
}

/// The files of the metadata directory, sorted by offset.
struct Listing {
    segments: Vec<u64>,
    snapshots: Vec<u64>,
}

fn list(dir: &Path) -> Result<Listing> {
    let mut listing = Listing {
        segments: Vec::new(),
        snapshots: Vec::new(),
    };
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            // A snapshot whose rename never happened: never valid, remove it.
            fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
        } else if let Some(base) = parse_offset_name(&name, ".log") {
            listing.segments.push(base);
        } else if let Some(offset) = parse_offset_name(&name, ".checkpoint") {
            listing.snapshots.push(offset);
        }
    }
    listing.segments.sort_unstable();
    listing.snapshots.sort_unstable();
    Ok(listing)
}

impl MetadataLog {
    /// Opens (creating if needed) the metadata log in `metadata_dir` and recovers the image:
    /// newest valid snapshot, then the batches after it.
    pub fn open(
        metadata_dir: &Path,
        options: MetadataLogOptions,
    ) -> Result<(MetadataLog, MetadataImage, RecoveryReport)> {
        assert!(options.snapshot_interval_records > 0);
        if !metadata_dir.exists() {
            fs::create_dir_all(metadata_dir).map_err(io(metadata_dir))?;
            if let Some(parent) = metadata_dir.parent() {
                sync_dir(parent)?;
            }
        }
        let listing = list(metadata_dir)?;
        let mut report = RecoveryReport::default();
        let (mut image, mut next_offset) =
            Self::load_snapshot(metadata_dir, &listing, &mut report)?;
        let first_segment = listing.segments.first().copied();
        if first_segment.is_some_and(|base| base > next_offset) {
            return Err(corrupt(
                metadata_dir,
                format!(
                    "log starts at {} but state is only known up to {next_offset}",
                    first_segment.unwrap_or(0)
                ),
            ));
        }
        let last_index = listing.segments.len().checked_sub(1);
        for (index, base) in listing.segments.iter().enumerate() {
            let path = metadata_dir.join(segment_name(*base));
            let is_last = Some(index) == last_index;
            // A segment wholly covered by the snapshot is kept only as a fallback; don't read it.
            let covered = listing
                .segments
                .get(index + 1)
                .is_some_and(|end| *end <= next_offset);
            if covered {
                continue;
            }
            if *base > next_offset {
                return Err(corrupt(
                    &path,
                    format!("segment starts at {base}, records end at {next_offset}"),
                ));
            }
            Self::replay_segment(&path, is_last, &mut image, &mut next_offset, &mut report)?;
        }
        let (active_base, active_path) = match listing.segments.last() {
            Some(base) => (*base, metadata_dir.join(segment_name(*base))),
            None => {
                let path = metadata_dir.join(segment_name(next_offset));
                File::create(&path)
                    .map_err(io(&path))?
                    .sync_all()
                    .map_err(io(&path))?;
                sync_dir(metadata_dir)?;
                (next_offset, path)
            }
        };
        let mut active = OpenOptions::new()
            .append(true)
            .open(&active_path)
            .map_err(io(&active_path))?;
        let active_len = active.seek(SeekFrom::End(0)).map_err(io(&active_path))?;
        let log = MetadataLog {
            dir: metadata_dir.to_path_buf(),
            active,
            active_path,
            active_base,
            next_offset,
            records_since_snapshot: report.records_replayed,
            active_len,
            poisoned: false,
            options,
        };
        Ok((log, image, report))
    }

    /// The newest snapshot that reads back whole; an unreadable one is skipped with a warning.
    fn load_snapshot(
        dir: &Path,
        listing: &Listing,
        report: &mut RecoveryReport,
    ) -> Result<(MetadataImage, u64)> {
        for offset in listing.snapshots.iter().rev() {
            let path = dir.join(snapshot_name(*offset));
            let loaded = read_bounded(&path, SNAPSHOT_BYTES_MAX).and_then(|bytes| {
                let (stored_offset, records) =
                    decode_snapshot(&bytes).map_err(|e| corrupt(&path, e))?;
                if stored_offset != *offset {
                    return Err(corrupt(&path, format!("holds offset {stored_offset}")));
                }
                let mut image = MetadataImage::new();
                for record in &records {
                    image.apply(record)?;
                }
                Ok(image)
            });
            match loaded {
                Ok(image) => {
                    report.snapshot_offset = Some(*offset);
                    return Ok((image, *offset));
                }
                Err(error) => {
                    tracing::warn!(%error, "metadata snapshot unusable; trying an older one")
                }
            }
        }
        Ok((MetadataImage::new(), 0))
    }

    fn replay_segment(
        path: &Path,
        is_last: bool,
        image: &mut MetadataImage,
        next_offset: &mut u64,
        report: &mut RecoveryReport,
    ) -> Result<()> {
        let bytes = read_bounded(path, u64::MAX)?;
        let mut pos = 0;
        while pos < bytes.len() {
            let batch = match decode_batch(&bytes, pos) {
                Ok(batch) => batch,
                Err(reason) if is_last => {
                    let cut = (bytes.len() - pos) as u64;
                    tracing::warn!(path = %path.display(), pos, cut, %reason, "truncating torn metadata log tail");
                    let file = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(io(path))?;
                    file.set_len(pos as u64).map_err(io(path))?;
                    file.sync_all().map_err(io(path))?;
                    report.truncated_bytes = cut;
                    return Ok(());
                }
                Err(reason) => return Err(corrupt(path, format!("at byte {pos}: {reason}"))),
            };
            let count = batch.records.len() as u64;
            let end_offset = batch.base_offset + count;
            if batch.base_offset > *next_offset {
                return Err(corrupt(
                    path,
                    format!("gap: batch at {} after {}", batch.base_offset, next_offset),
                ));
            }
            for (i, record) in batch.records.iter().enumerate() {
                if batch.base_offset + i as u64 >= *next_offset {
                    image
                        .apply(record)
                        .map_err(|e| corrupt(path, e.to_string()))?;
                    report.records_replayed += 1;
                }
            }
            *next_offset = (*next_offset).max(end_offset);
            pos = batch.end;
        }
        Ok(())
    }

    /// The offset the next appended record gets (= records ever appended).
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `records` as one atomic batch and fsyncs before returning; returns the base
    /// offset. The caller has already applied them to a copy of the image successfully.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<u64> {
        assert!(!records.is_empty());
        let base = self.next_offset;
        let frame = encode_batch(base, records);
        if frame.len() - FRAME_HEADER_BYTES > BATCH_BYTES_MAX {
            return Err(Error::Invalid(format!(
                "metadata batch of {} bytes exceeds {BATCH_BYTES_MAX}",
                frame.len()
            )));
        }
        let path = &self.active_path;
        if self.poisoned {
            return Err(Error::Closed);
        }
        if let Err(e) = self.active.write_all(&frame) {
            // Cut the partial frame, or a later good batch would sit behind a torn one and be
            // dropped with the "torn tail" on recovery.
            let restored = self
                .active
                .set_len(self.active_len)
                .and_then(|_| self.active.sync_data());
            self.poisoned = restored.is_err();
            return Err(Error::io(path, e));
        }
        if let Err(e) = self.active.sync_data() {
            self.poisoned = true;
            return Err(Error::io(path, e));
        }
        self.active_len += frame.len() as u64;
        self.next_offset += records.len() as u64;
        self.records_since_snapshot += records.len() as u64;
        Ok(base)
    }

    /// Writes a snapshot of `image` if enough records were appended since the last one.
    /// `image` must be the state after every appended record.
    pub fn maybe_snapshot(&mut self, image: &MetadataImage) -> Result<bool> {
        if self.records_since_snapshot < self.options.snapshot_interval_records {
            return Ok(false);
        }
        self.snapshot(image)?;
        Ok(true)
    }

    /// Writes a snapshot at the current offset, rolls to a new segment and removes files no
    /// longer needed.
    pub fn snapshot(&mut self, image: &MetadataImage) -> Result<()> {
        let offset = self.next_offset;
        let bytes = encode_snapshot(offset, &image.to_records());
        write_atomically(&self.dir, &snapshot_name(offset), &bytes)?;
        self.records_since_snapshot = 0;
        if self.active_base != offset {
            let path = self.dir.join(segment_name(offset));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            sync_dir(&self.dir)?;
            self.active = file;
            self.active_path = path;
            self.active_base = offset;
            self.active_len = 0;
        }
        self.remove_old_files()
    }

    fn remove_old_files(&self) -> Result<()> {
        let listing = list(&self.dir)?;
        if listing.snapshots.len() <= SNAPSHOTS_KEPT {
            return Ok(());
        }
        let oldest_kept = listing.snapshots[listing.snapshots.len() - SNAPSHOTS_KEPT];
        for offset in listing.snapshots.iter().filter(|o| **o < oldest_kept) {
            let path = self.dir.join(snapshot_name(*offset));
            fs::remove_file(&path).map_err(io(&path))?;
        }
        // Segment i covers [base_i, base_{i+1}); it is needed while that range reaches the
        // oldest kept snapshot.
        for pair in listing.segments.windows(2) {
            if pair[1] <= oldest_kept {
                let path = self.dir.join(segment_name(pair[0]));
                fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
pub(crate) fn test_encode_batch(base: u64, records: &[MetadataRecord]) -> Vec<u8> {
    encode_batch(base, records)
}
