//! Opening a partition directory: formatting a new one, or loading and recovering an
//! existing one. After a clean shutdown (marker present) the indexes are trusted and only
//! the tail of the last segment after its last index entry is scanned. After a crash every
//! segment from the one holding the recovery point on is scanned batch by batch; the first
//! torn or corrupt batch and everything after it (later segments included) is removed, the
//! indexes are rebuilt, and the result is fdatasync'd before the log serves anything.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use super::checkpoint::{
    self, CLEAN_SHUTDOWN_MARKER, LEADER_EPOCH_CHECKPOINT, LOG_START_CHECKPOINT, PARTITION_METADATA,
    RECOVERY_POINT_CHECKPOINT,
};
use super::epoch::EpochCache;
use super::index::SegmentIndex;
use super::segment::{self, Segment};
use super::{segment_file_name, LogConfig};
use crate::storage::{self, align_down, Storage, StorageFile};
use crate::types::{LeaderEpoch, Offset, TopicId};
use crate::{Error, Result};

pub struct Recovered<S: Storage> {
    pub segments: BTreeMap<i64, Segment<S>>,
    pub log_start: Offset,
    pub next_offset: Offset,
    pub recovery_point: Offset,
    pub epochs: EpochCache,
}

/// Largest segment file count accepted in one directory (a bound on startup work).
const SEGMENTS_MAX: usize = 1 << 20;

fn parse_base(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub async fn open_dir<S: Storage>(
    storage: &S,
    dir: &Path,
    topic_id: TopicId,
    config: &LogConfig,
) -> Result<Recovered<S>> {
    if !storage.exists(dir).await? {
        storage::create_dir_all(storage, dir).await?;
    }
    let meta_path = dir.join(PARTITION_METADATA);
    match storage::read_file(storage, &meta_path).await? {
        Some(bytes) => {
            let found =
                checkpoint::decode_partition_metadata(&bytes).ok_or_else(|| Error::Corrupt {
                    path: meta_path.clone(),
                    reason: "unreadable partition.metadata".into(),
                })?;
            if found != topic_id {
                return Err(Error::TopicIdMismatch {
                    path: dir.to_path_buf(),
                    expected: checkpoint::topic_id_to_string(topic_id),
                    found: checkpoint::topic_id_to_string(found),
                });
            }
        }
        None => {
            let bytes = checkpoint::encode_partition_metadata(topic_id);
            storage::write_file_atomic(storage, dir, PARTITION_METADATA, &bytes).await?;
        }
    }

    let names = storage.list_dir(dir).await?;
    let clean = names.iter().any(|n| n == CLEAN_SHUTDOWN_MARKER);
    let mut removed_any = false;
    let mut bases = Vec::new();
    for name in &names {
        if name.ends_with(".tmp")
            || name.ends_with(".deleted")
            || name.ends_with(".cleaned")
            || name.ends_with(".swap")
        {
            storage.remove_file(&dir.join(name)).await?;
            removed_any = true;
        } else if let Some(base) = parse_base(name, ".log") {
            bases.push(base);
        }
    }
    for name in &names {
        let orphan = [".index", ".timeindex"]
            .iter()
            .find_map(|ext| parse_base(name, ext))
            .is_some_and(|b| !bases.contains(&b));
        if orphan {
            storage.remove_file(&dir.join(name)).await?;
            removed_any = true;
        }
    }
    if bases.len() > SEGMENTS_MAX {
        return Err(Error::Invalid(format!(
            "{} holds more than {SEGMENTS_MAX} segments",
            dir.display()
        )));
    }
    bases.sort_unstable();

    let read_offset = |name: &'static str| async move {
        let path = dir.join(name);
        Ok::<_, Error>(match storage::read_file(storage, &path).await? {
            None => None,
            Some(b) => {
                let v = checkpoint::decode_offset(&b);
                if v.is_none() {
                    tracing::warn!(path = %path.display(), "ignoring unreadable checkpoint");
                }
                v
            }
        })
    };
    let log_start_cp = read_offset(LOG_START_CHECKPOINT).await?;
    let recovery_point_cp = read_offset(RECOVERY_POINT_CHECKPOINT).await?;
    let loaded_epochs =
        match storage::read_file(storage, &dir.join(LEADER_EPOCH_CHECKPOINT)).await? {
            None => EpochCache::default(),
            Some(b) => EpochCache::decode(&b).ok_or_else(|| Error::Corrupt {
                path: dir.join(LEADER_EPOCH_CHECKPOINT),
                reason: "unreadable leader-epoch checkpoint".into(),
            })?,
        };
    let mut epochs = loaded_epochs.clone();

    // The first segment to scan: the one holding the recovery point (the last one after a
    // clean shutdown, from its last index entry).
    let scan_from = if clean || bases.is_empty() {
        bases.len().saturating_sub(1)
    } else {
        let rp = recovery_point_cp.map_or(0, |o| o.0);
        bases.partition_point(|b| *b <= rp).saturating_sub(1)
    };

    let mut segments: BTreeMap<i64, Segment<S>> = BTreeMap::new();
    let mut i = 0;
    while i < bases.len() {
        let base = bases[i];
        let next_base = bases.get(i + 1).copied();
        let path = dir.join(segment_file_name(base, "log"));
        let file = storage.open(&path, false).await?;
        let size = file.size().await?;
        let is_last = i + 1 == bases.len();
        let mut seg = Segment::new_active(base);
        seg.created = true;
        if i < scan_from {
            // Before the recovery point: trusted, indexes loaded (rebuilt if unusable).
            let index = load_index(storage, dir, base, size).await?;
            let index = match index {
                Some(index) => index,
                None => {
                    let r = segment::scan(
                        &file,
                        base,
                        0,
                        SegmentIndex::new(),
                        size,
                        config.index_interval_bytes,
                        u32::MAX as u64,
                        None,
                    )
                    .await?;
                    let mut index = r.index;
                    index.seal(base);
                    write_index_files(storage, dir, base, &index).await?;
                    index
                }
            };
            // Checked, and on disk: memory keeps the summary (entries are read on demand).
            seg.index = index.summary();
            seg.size = size;
            seg.written = size;
            seg.next_offset = next_base.unwrap_or(base);
            seg.sealed = true;
            seg.finalized = true;
            file.close().await?;
            segments.insert(base, seg);
            i += 1;
            continue;
        }
        let (start, seed) = if clean {
            match load_index(storage, dir, base, size).await? {
                Some(idx) => {
                    let pos = idx.offsets.last().map_or(0, |e| e.1 as u64);
                    (pos, seeded(idx, base))
                }
                None => (0, SegmentIndex::new()),
            }
        } else {
            (0, SegmentIndex::new())
        };
        let r = segment::scan(
            &file,
            base,
            start,
            seed,
            size,
            config.index_interval_bytes,
            u32::MAX as u64,
            None,
        )
        .await?;
        for (e, o) in &r.epochs {
            epochs.assign(LeaderEpoch(*e), Offset(*o));
        }
        if r.valid_end < size {
            // The last segment of a crashed log ends in preallocated zeros or a torn write:
            // expected. Anywhere else it is damage worth a warning.
            if r.stopped_early && (clean || !is_last) {
                tracing::warn!(path = %path.display(), valid_end = r.valid_end, size, "truncating a corrupt or torn segment tail");
            }
            file.truncate(r.valid_end).await?;
        }
        // What recovery read must be durable before anything is served on top of it.
        file.fdatasync().await?;
        seg.index = r.index;
        seg.size = r.valid_end;
        seg.written = r.valid_end;
        seg.next_offset = r.next_offset;
        seg.preallocated = r.valid_end;
        seg.reset_extents(r.valid_end);
        let corrupt_before_end = r.stopped_early && !is_last;
        if corrupt_before_end {
            // Nothing after a corrupt batch is trusted: drop the later segments.
            for later in &bases[i + 1..] {
                for ext in ["log", "index", "timeindex"] {
                    let p = dir.join(segment_file_name(*later, ext));
                    if storage.exists(&p).await? {
                        storage.remove_file(&p).await?;
                    }
                }
            }
            storage.sync_dir(dir).await?;
            bases.truncate(i + 1);
        }
        if i + 1 == bases.len() {
            let aligned = align_down(seg.written);
            seg.tail_block = file
                .read_at(aligned, (seg.written - aligned) as usize)
                .await?;
            seg.file = Some(Rc::new(file));
        } else {
            seg.index.seal(base);
            write_index_files(storage, dir, base, &seg.index).await?;
            seg.index = seg.index.summary();
            seg.sealed = true;
            seg.finalized = true;
            if seg.next_offset == base {
                seg.next_offset = next_base.unwrap_or(base);
            }
            file.close().await?;
        }
        segments.insert(base, seg);
        i += 1;
    }

    let first_base = segments.keys().next().copied();
    let mut log_start = Offset(log_start_cp.map_or(0, |o| o.0).max(first_base.unwrap_or(0)));
    let mut next_offset = segments
        .values()
        .next_back()
        .map_or(log_start, |s| Offset(s.next_offset));
    if next_offset < log_start || segments.is_empty() {
        // Everything below the checkpointed log start is gone (or there never was data).
        for base in segments.keys() {
            for ext in ["log", "index", "timeindex"] {
                let p = dir.join(segment_file_name(*base, ext));
                if storage.exists(&p).await? {
                    storage.remove_file(&p).await?;
                }
            }
            removed_any = true;
        }
        segments.clear();
        next_offset = log_start;
        segments.insert(log_start.0, Segment::new_active(log_start.0));
    }
    log_start =
        log_start.max(Offset(segments.keys().next().copied().unwrap_or(0)).min(next_offset));
    epochs.truncate_after(next_offset);
    epochs.truncate_from_start(log_start);
    if epochs != loaded_epochs {
        storage::write_file_atomic(storage, dir, LEADER_EPOCH_CHECKPOINT, &epochs.encode()).await?;
    }
    // A fresh log needs no checkpoints yet (their absence means 0): creating thousands of
    // partitions must not cost thousands of extra fsyncs.
    let fresh = bases.is_empty() && log_start_cp.is_none() && recovery_point_cp.is_none();
    if log_start_cp != Some(log_start) && !fresh {
        storage::write_file_atomic(
            storage,
            dir,
            LOG_START_CHECKPOINT,
            &checkpoint::encode_offset(log_start),
        )
        .await?;
    }
    if !fresh {
        storage::write_file_atomic(
            storage,
            dir,
            RECOVERY_POINT_CHECKPOINT,
            &checkpoint::encode_offset(next_offset),
        )
        .await?;
    }
    if clean {
        // From here on a crash must recover again.
        storage
            .remove_file(&dir.join(CLEAN_SHUTDOWN_MARKER))
            .await?;
        removed_any = true;
    }
    if removed_any {
        storage.sync_dir(dir).await?;
    }
    Ok(Recovered {
        segments,
        log_start,
        next_offset,
        recovery_point: next_offset,
        epochs,
    })
}

/// Prepares a loaded index for a scan that resumes at its last offset entry: the maximum
/// timestamp comes from the time index; bytes since the last entry restart at zero.
fn seeded(mut idx: SegmentIndex, base: i64) -> SegmentIndex {
    if let Some((ts, rel)) = idx.times.last().copied() {
        idx.max_timestamp = ts;
        idx.max_timestamp_offset = base + rel as i64;
    }
    idx.bytes_since_entry = 0;
    idx
}

async fn load_index<S: Storage>(
    storage: &S,
    dir: &Path,
    base: i64,
    size: u64,
) -> Result<Option<SegmentIndex>> {
    let offsets = storage::read_file(storage, &dir.join(segment_file_name(base, "index"))).await?;
    let times =
        storage::read_file(storage, &dir.join(segment_file_name(base, "timeindex"))).await?;
    let (Some(offsets), Some(times)) = (offsets, times) else {
        return Ok(None);
    };
    Ok(SegmentIndex::decode(&offsets, &times, size).map(|idx| seeded(idx, base)))
}

/// Writes both index files of a segment (each fdatasync'd) and fsyncs the directory.
pub async fn write_index_files<S: Storage>(
    storage: &S,
    dir: &Path,
    base: i64,
    index: &SegmentIndex,
) -> Result<()> {
    for (ext, bytes) in [
        ("index", index.encode_offsets()),
        ("timeindex", index.encode_times()),
    ] {
        let file = storage
            .open(&dir.join(segment_file_name(base, ext)), true)
            .await?;
        storage::write_whole(&file, &bytes).await?;
        file.close().await?;
    }
    storage.sync_dir(dir).await
}
