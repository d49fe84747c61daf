//! The storage seam: every file and directory operation of the log goes through
//! [`Storage`] / [`StorageFile`], so the same log code runs on glommio DMA files
//! ([`DmaStorage`], O_DIRECT) in production and on [`SimStorage`] in tests. The simulated
//! storage keeps only what a completed `fdatasync` / directory fsync covers, which is how
//! "power cut" tests prove durability (`kill -9` cannot: the page cache survives it).
//!
//! Generic (not `dyn`) on the hot path: a shard is single-threaded, the traits use native
//! `async fn`, and nothing here is `Send`.

mod dma;
mod sim;

pub use dma::{device_flush_covers_overwrites, DmaStorage, DmaStorageFile};
pub use sim::{SimStorage, SimStorageFile};

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The O_DIRECT alignment every write position and length respects.
pub const BLOCK_BYTES: usize = 4096;

/// Upper bound on a small side file read whole (checkpoints, metadata, indexes are bigger
/// but read through [`StorageFile::read_at`] in bounded pieces).
pub const SMALL_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The largest single write of a [`StorageFile::zero_fill`] (bounds its buffer memory).
pub const ZERO_FILL_WRITE_BYTES_MAX: u64 = 1 << 20;

pub fn align_down(v: u64) -> u64 {
    v / BLOCK_BYTES as u64 * BLOCK_BYTES as u64
}

pub fn align_up(v: u64) -> u64 {
    v.div_ceil(BLOCK_BYTES as u64) * BLOCK_BYTES as u64
}

/// Directory-level operations. Every method that changes a directory leaves the change
/// volatile until [`Storage::sync_dir`] of the parent directory completes.
#[allow(async_fn_in_trait)]
pub trait Storage: Clone + 'static {
    type File: StorageFile;
    /// Opens a file read+write; `create` creates it when missing.
    async fn open(&self, path: &Path, create: bool) -> Result<Self::File>;
    /// As [`Storage::open`], but every write through the returned file is durable when it
    /// completes (`O_DSYNC`: the data and the metadata needed to read it back, e.g. the file
    /// size; on Linux a device cache flush follows each write). For logs under
    /// `flush.policy=always`: a write and its flush become one operation, completed in the
    /// kernel without a separate fdatasync (which io_uring always hands to a worker thread).
    async fn open_dsync(&self, path: &Path, create: bool) -> Result<Self::File>;
    /// Creates one directory level (the parent must exist). Existing is not an error.
    async fn create_dir(&self, path: &Path) -> Result<()>;
    /// Makes the entries of directory `path` (creates, renames, deletes) durable.
    async fn sync_dir(&self, path: &Path) -> Result<()>;
    async fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    async fn remove_file(&self, path: &Path) -> Result<()>;
    async fn remove_dir_all(&self, path: &Path) -> Result<()>;
    /// Names (not paths) of the entries of a directory, sorted.
    async fn list_dir(&self, path: &Path) -> Result<Vec<String>>;
    async fn exists(&self, path: &Path) -> Result<bool>;
}

/// One open file. Writes are block-aligned (position and length); reads are not.
#[allow(async_fn_in_trait)]
pub trait StorageFile: 'static {
    /// A buffer suitable for [`StorageFile::write_at`] (DMA-aligned memory for O_DIRECT).
    type Buf: AsRef<[u8]> + AsMut<[u8]> + 'static;
    /// A zero-filled buffer of `len` bytes; `len` is a multiple of [`BLOCK_BYTES`].
    fn alloc_buf(&self, len: usize) -> Self::Buf;
    /// As `alloc_buf`, but only the bytes from `zero_from` on are zeroed: the caller writes
    /// every byte before it (saves a memset of each write buffer on the append path).
    fn alloc_buf_zeroed_from(&self, len: usize, zero_from: usize) -> Self::Buf {
        debug_assert!(zero_from <= len);
        self.alloc_buf(len)
    }
    /// Writes the whole buffer at `pos` (both block-aligned). On a file from
    /// [`Storage::open_dsync`] the write is durable when this returns.
    async fn write_at(&self, buf: Self::Buf, pos: u64) -> Result<()>;
    /// As `write_at`, and durable when this returns, with every write of this file
    /// completed before it (Linux: `RWF_DSYNC` on this one write — generic_write_sync after
    /// it completes, a datasync of the file ending in a device cache flush). One operation
    /// where `write_at` + `fdatasync` are two.
    async fn write_at_durable(&self, buf: Self::Buf, pos: u64) -> Result<()> {
        self.write_at(buf, pos).await?;
        self.fdatasync().await
    }
    /// Whether writes are durable on completion (the file came from `open_dsync`).
    fn writes_are_durable(&self) -> bool {
        false
    }
    /// Reads up to `len` bytes at `pos`; fewer at end of file.
    async fn read_at(&self, pos: u64, len: usize) -> Result<Vec<u8>>;
    /// Makes the data and the size of the file durable.
    async fn fdatasync(&self) -> Result<()>;
    /// An fdatasync of this file that also serves as a cache flush of the whole device:
    /// afterwards every write completed before the call, to any file of the same
    /// filesystem, is durable too *if it overwrote blocks that had been written and then
    /// covered by an fdatasync of their own file* (allocation and size durable, so the
    /// overwrite changed no metadata). True of ext4 and XFS, whose fdatasync always ends in
    /// a device cache flush; not of copy-on-write filesystems. Callers use it only where
    /// `LogConfig::shared_syncs` says so.
    async fn flush_device(&self) -> Result<()> {
        self.fdatasync().await
    }
    async fn truncate(&self, len: u64) -> Result<()>;
    /// Allocates (and zero-fills logically) the file up to `len` bytes; never shrinks.
    async fn preallocate(&self, len: u64) -> Result<()>;
    /// Writes zeros over `[from, to)` (both block-aligned), extending the file if needed.
    /// Unlike [`StorageFile::preallocate`] the blocks end up *written*, not merely
    /// allocated: a later data write there is a pure overwrite, so the filesystem has no
    /// extent to convert and the fdatasync that follows it is a device cache flush alone
    /// (ext4: no extent-tree or inode write, and the write itself need not be punted to an
    /// io_uring worker). Costs device bandwidth, so only logs that sync often use it.
    async fn zero_fill(&self, from: u64, to: u64) -> Result<()> {
        assert_eq!(from % BLOCK_BYTES as u64, 0, "unaligned zero fill start");
        assert_eq!(to % BLOCK_BYTES as u64, 0, "unaligned zero fill end");
        let mut pos = from;
        while pos < to {
            let n = (to - pos).min(ZERO_FILL_WRITE_BYTES_MAX) as usize;
            self.write_at(self.alloc_buf(n), pos).await?;
            pos += n as u64;
        }
        Ok(())
    }
    async fn size(&self) -> Result<u64>;
    fn path(&self) -> &Path;
    async fn close(self) -> Result<()>;
}

/// Writes `bytes` as the whole content of an open file: block-padded write, then truncate
/// to the exact length (O_DIRECT cannot write a partial block), then fdatasync.
pub async fn write_whole<F: StorageFile>(file: &F, bytes: &[u8]) -> Result<()> {
    let padded = align_up(bytes.len() as u64) as usize;
    if padded > 0 {
        let mut buf = file.alloc_buf(padded);
        buf.as_mut()[..bytes.len()].copy_from_slice(bytes);
        buf.as_mut()[bytes.len()..].fill(0);
        file.write_at(buf, 0).await?;
    }
    file.truncate(bytes.len() as u64).await?;
    file.fdatasync().await
}

/// Kafka's way of replacing a small file atomically: write `<name>.tmp`, fdatasync, rename
/// over `<name>`, fsync the directory. A crash leaves either the old or the new content.
pub async fn write_file_atomic<S: Storage>(
    storage: &S,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let file = storage.open(&tmp, true).await?;
    write_whole(&file, bytes).await?;
    file.close().await?;
    storage.rename(&tmp, &dir.join(name)).await?;
    storage.sync_dir(dir).await
}

/// Reads a whole small file; `None` when it does not exist.
pub async fn read_file<S: Storage>(storage: &S, path: &Path) -> Result<Option<Vec<u8>>> {
    if !storage.exists(path).await? {
        return Ok(None);
    }
    let file = storage.open(path, false).await?;
    let size = file.size().await?;
    if size > SMALL_FILE_BYTES_MAX {
        return Err(Error::Invalid(format!(
            "{} is {size} bytes, more than the {SMALL_FILE_BYTES_MAX} expected of a side file",
            path.display()
        )));
    }
    let bytes = file.read_at(0, size as usize).await?;
    file.close().await?;
    if bytes.len() as u64 != size {
        return Err(Error::io(
            path,
            std::io::Error::other("short read of a whole file"),
        ));
    }
    Ok(Some(bytes))
}

/// Creates `path` and any missing parents, fsyncing each parent whose entries changed.
pub async fn create_dir_all<S: Storage>(storage: &S, path: &Path) -> Result<()> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        if p.as_os_str().is_empty() || storage.exists(p).await? {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    for p in missing.iter().rev() {
        storage.create_dir(p).await?;
        if let Some(parent) = p.parent().filter(|q| !q.as_os_str().is_empty()) {
            storage.sync_dir(parent).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
