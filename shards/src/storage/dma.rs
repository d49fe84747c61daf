//! Production storage: glommio DMA files (O_DIRECT through io_uring) for file data, and
//! plain syscalls for directory operations (rare, small, and synchronous in every
//! filesystem anyway).

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

use super::{Storage, StorageFile, BLOCK_BYTES};
use crate::{Error, Result};

/// Name of the probe file [`DmaStorage::init`] writes in the data directory.
pub const PROBE_FILE_NAME: &str = ".riptide-dma-probe";

/// Reads larger than this are split into concurrent aligned reads of this size.
const READ_SPLIT_BYTES: usize = 256 * 1024;

/// Write buffers of these sizes (powers of two: whole write chunks, zero-fill writes) are
/// kept for reuse on their thread once their write completed. A fresh buffer of that size is
/// fresh memory from the allocator: one page fault and one kernel page clear per 4 KiB on
/// first touch (`clear_page_erms` was ~6% of a writing shard's CPU).
const POOLED_BUF_BYTES_MIN: usize = 64 << 10;
const POOLED_BUF_BYTES_MAX: usize = 1 << 20;
/// Bytes of idle write buffers kept per thread (shard), at most.
const POOL_BYTES_MAX: usize = 16 << 20;

std::thread_local! {
    static WRITE_BUFS: std::cell::RefCell<Vec<DmaBuffer>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn pooled_size(len: usize) -> bool {
    len.is_power_of_two() && (POOLED_BUF_BYTES_MIN..=POOLED_BUF_BYTES_MAX).contains(&len)
}

/// A buffer of `len` bytes with arbitrary content: a pooled one if one fits.
fn take_buf(file: &DmaFile, len: usize) -> DmaBuffer {
    if pooled_size(len) {
        let reused = WRITE_BUFS.with(|p| {
            let mut p = p.borrow_mut();
            let i = p.iter().position(|b| b.len() == len)?;
            Some(p.swap_remove(i))
        });
        if let Some(buf) = reused {
            return buf;
        }
    }
    file.alloc_dma_buffer(len)
}

/// A buffer whose write completed: kept for reuse if its size is pooled and the pool has
/// room, freed otherwise.
fn give_back(buf: DmaBuffer) {
    if !pooled_size(buf.len()) {
        return;
    }
    WRITE_BUFS.with(|p| {
        let mut p = p.borrow_mut();
        let held: usize = p.iter().map(|b| b.len()).sum();
        if held + buf.len() <= POOL_BYTES_MAX {
            p.push(buf);
        }
    });
}

/// The glommio DMA storage. Must be used on a glommio executor thread.
#[derive(Clone, Debug, Default)]
pub struct DmaStorage {
    _private: (),
}

impl DmaStorage {
    /// Prepares the device for DMA files. glommio probes IOPOLL support by reading the first
    /// file it opens on a device; an empty or tiny file breaks the probe, so a non-empty
    /// 4 KiB file is opened before any segment. Call once per shard before opening logs.
    pub async fn init(data_dir: &Path) -> Result<DmaStorage> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        let path = data_dir.join(PROBE_FILE_NAME);
        // Written with a buffered write first: the probe must find data on its first read.
        let probe_ok = std::fs::metadata(&path).map(|m| m.len() >= BLOCK_BYTES as u64);
        if !matches!(probe_ok, Ok(true)) {
            // Every shard runs this at once on a fresh directory: written under a name of
            // its own and renamed into place, so no shard ever reads another's half-written
            // (truncated) probe — that once failed a start-up with "read back short".
            let tmp = data_dir.join(format!(
                "{PROBE_FILE_NAME}.{}.tmp",
                std::thread::current().name().unwrap_or("shard")
            ));
            std::fs::write(&tmp, [0x52u8; BLOCK_BYTES]).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&path)
            .await
            .map_err(|e| Error::io(&path, e.into()))?;
        let read = file
            .read_at_aligned(0, BLOCK_BYTES)
            .await
            .map_err(|e| Error::io(&path, e.into()))?;
        assert_eq!(read.len(), BLOCK_BYTES, "probe file read back short");
        file.close().await.map_err(|e| Error::io(&path, e.into()))?;
        Ok(DmaStorage { _private: () })
    }
}

async fn open_dma(path: &Path, create: bool, dsync: bool) -> Result<DmaStorageFile> {
    // read+write: `DmaFile::create` would open write-only and reads would fail.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .custom_flags(if dsync { libc::O_DSYNC } else { 0 })
        .dma_open(path)
        .await
        .map_err(|e| io_err(path, e))?;
    Ok(DmaStorageFile {
        file,
        path: path.to_path_buf(),
        dsync,
    })
}

fn io_err(path: &Path, e: glommio::GlommioError<()>) -> Error {
    Error::io(path, e.into())
}

impl Storage for DmaStorage {
    type File = DmaStorageFile;

    async fn open(&self, path: &Path, create: bool) -> Result<DmaStorageFile> {
        open_dma(path, create, false).await
    }

    async fn open_dsync(&self, path: &Path, create: bool) -> Result<DmaStorageFile> {
        open_dma(path, create, true).await
    }

    async fn create_dir(&self, path: &Path) -> Result<()> {
        match std::fs::create_dir(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    async fn sync_dir(&self, path: &Path) -> Result<()> {
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        dir.sync_all().map_err(|e| Error::io(path, e))
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| Error::io(from, e))
    }

    async fn remove_file(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))
    }

    async fn remove_dir_all(&self, path: &Path) -> Result<()> {
        std::fs::remove_dir_all(path).map_err(|e| Error::io(path, e))
    }

    async fn list_dir(&self, path: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    async fn exists(&self, path: &Path) -> Result<bool> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(path, e)),
        }
    }
}

/// An open DMA file.
#[derive(Debug)]
pub struct DmaStorageFile {
    file: DmaFile,
    path: PathBuf,
    /// Opened with O_DSYNC: every write is durable on completion.
    dsync: bool,
}

impl DmaStorageFile {
    /// One O_DIRECT write of the whole buffer, with `RWF_DSYNC` if `dsync`.
    async fn write_dma(&self, buf: DmaBuffer, pos: u64, dsync: bool) -> Result<()> {
        assert_eq!(pos % BLOCK_BYTES as u64, 0, "unaligned DMA write position");
        assert_eq!(buf.len() % BLOCK_BYTES, 0, "unaligned DMA write length");
        let len = buf.len();
        // Shared with the reactor for the write, so the buffer comes back for reuse.
        let buf = std::rc::Rc::new(buf);
        let written = if dsync {
            self.file.write_rc_at_dsync(buf.clone(), pos).await
        } else {
            self.file.write_rc_at(buf.clone(), pos).await
        }
        .map_err(|e| io_err(&self.path, e))?;
        if let Ok(buf) = std::rc::Rc::try_unwrap(buf) {
            give_back(buf);
        }
        if written != len {
            return Err(Error::io(
                &self.path,
                std::io::Error::other(format!("short DMA write: {written} of {len} bytes")),
            ));
        }
        Ok(())
    }
}

impl StorageFile for DmaStorageFile {
    type Buf = DmaBuffer;

    fn alloc_buf(&self, len: usize) -> DmaBuffer {
        debug_assert_eq!(len % BLOCK_BYTES, 0);
        let mut buf = take_buf(&self.file, len);
        buf.as_bytes_mut().fill(0);
        buf
    }

    fn alloc_buf_zeroed_from(&self, len: usize, zero_from: usize) -> DmaBuffer {
        debug_assert_eq!(len % BLOCK_BYTES, 0);
        assert!(
            zero_from <= len,
            "zero_from {zero_from} past the buffer ({len})"
        );
        let mut buf = take_buf(&self.file, len);
        buf.as_bytes_mut()[zero_from..].fill(0);
        buf
    }

    fn writes_are_durable(&self) -> bool {
        self.dsync
    }

    async fn write_at(&self, buf: DmaBuffer, pos: u64) -> Result<()> {
        self.write_dma(buf, pos, false).await
    }

    async fn write_at_durable(&self, buf: DmaBuffer, pos: u64) -> Result<()> {
        self.write_dma(buf, pos, true).await
    }

    async fn read_at(&self, pos: u64, len: usize) -> Result<Vec<u8>> {
        // glommio's unaligned `read_at` can return bytes past the end of the file (it does
        // not subtract its alignment shift from a short read), so every read is aligned
        // here and trimmed by hand.
        // A large read goes to the device as several aligned reads in flight at once (the
        // device is faster at queue depth > 1), copied into one buffer in order.
        if len == 0 {
            return Ok(Vec::new());
        }
        let start = super::align_down(pos);
        let end = pos + len as u64;
        let mut pieces = Vec::new();
        let mut at = start;
        while at < end {
            let n = (READ_SPLIT_BYTES as u64).min(super::align_up(end) - at) as usize;
            pieces.push((at, n));
            at += n as u64;
        }
        let reads = futures::future::try_join_all(
            pieces
                .iter()
                .map(|(at, n)| self.file.read_at_aligned(*at, *n)),
        )
        .await
        .map_err(|e| io_err(&self.path, e))?;
        let mut out = Vec::with_capacity(len);
        let mut cursor = start;
        for r in &reads {
            let skip = pos.saturating_sub(cursor).min(r.len() as u64) as usize;
            let take = (r.len() - skip).min(len - out.len());
            out.extend_from_slice(&r[skip..skip + take]);
            cursor += r.len() as u64;
            if r.len() < READ_SPLIT_BYTES || out.len() == len {
                break; // end of file, or done
            }
        }
        Ok(out)
    }

    async fn fdatasync(&self) -> Result<()> {
        self.file
            .fdatasync()
            .await
            .map_err(|e| io_err(&self.path, e))
    }

    async fn truncate(&self, len: u64) -> Result<()> {
        self.file
            .truncate(len)
            .await
            .map_err(|e| io_err(&self.path, e))
    }

    async fn preallocate(&self, len: u64) -> Result<()> {
        let size = self.size().await?;
        if len <= size {
            return Ok(());
        }
        self.file
            .pre_allocate(len, false)
            .await
            .map_err(|e| io_err(&self.path, e))
    }

    async fn size(&self) -> Result<u64> {
        self.file
            .file_size()
            .await
            .map_err(|e| io_err(&self.path, e))
    }

    fn path(&self) -> &Path {
        &self.path
    }

    async fn close(self) -> Result<()> {
        self.file.close().await.map_err(|e| io_err(&self.path, e))
    }
}

/// Whether an fdatasync on one file of the filesystem holding `dir` is also a cache flush
/// of the whole device that makes other files' pure overwrites durable
/// ([`StorageFile::flush_device`]): true of ext4 and XFS (in place overwrites, every
/// fdatasync ends in a device flush); false elsewhere (copy-on-write filesystems such as
/// btrfs and ZFS move overwritten blocks) and when `dir` cannot be inspected. A `dir`
/// not created yet is judged by its nearest existing ancestor.
pub fn device_flush_covers_overwrites(dir: &Path) -> bool {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .ancestors()
        .find(|p| p.exists())
        .is_some_and(filesystem_overwrites_in_place)
}

fn filesystem_overwrites_in_place(dir: &Path) -> bool {
    const EXT4_SUPER_MAGIC: i64 = 0xEF53;
    const XFS_SUPER_MAGIC: i64 = 0x5846_5342;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path; `st` is written by statfs on success
    // and read only then.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)]
    let fs = st.f_type as i64;
    fs == EXT4_SUPER_MAGIC || fs == XFS_SUPER_MAGIC
}
