//! The log store's file operations (write, sync, truncate, rename, remove), behind one seam so
//! a test can fail or cut short any one of them, as SQLite's and FoundationDB's tests do.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// The operations the log store's durability rests on. `Disk` is the real one.
pub trait Fs: Send + Sync + 'static {
    /// Writes all of `buf` at the file's end (it is opened to append) or its position.
    fn write(&self, file: &File, buf: &[u8]) -> std::io::Result<()>;
    /// `fdatasync`: what was written is on disk.
    fn sync(&self, file: &File) -> std::io::Result<()>;
    fn set_len(&self, file: &File, len: u64) -> std::io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    fn remove(&self, path: &Path) -> std::io::Result<()>;
    /// Makes the directory's entries (a file created, renamed or removed) durable.
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
    /// A sync of the log failed: the kernel may have dropped the dirty pages and marked them
    /// clean, so a retry could report success for data that never reached the disk
    /// (PostgreSQL's "fsyncgate", 2018). The only safe answer is to stop and replay the log
    /// from disk, which holds exactly what was made durable. `Disk` exits the process; the
    /// store refuses every later write either way.
    fn sync_failed(&self, error: &str);
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct Disk;

impl Fs for Disk {
    fn write(&self, mut file: &File, buf: &[u8]) -> std::io::Result<()> {
        file.write_all(buf)
    }

    fn sync(&self, file: &File) -> std::io::Result<()> {
        file.sync_data()
    }

    fn set_len(&self, file: &File, len: u64) -> std::io::Result<()> {
        file.set_len(len)
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> std::io::Result<()> {
        super::wal::remove_paced(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        File::open(dir).and_then(|d| d.sync_all())
    }

    fn sync_failed(&self, error: &str) {
        tracing::error!(
            error,
            "a sync of the store's log failed: exiting at once, so the next start replays the log from disk (a retried sync can claim data that was lost)"
        );
        eprintln!("berth: a sync of the store's log failed ({error}): exiting; the next start replays the log");
        std::process::exit(70);
    }
}

/// Writes through an `Fs`, for a `BufWriter` (the snapshot's copy).
pub(super) struct FsFile<'a> {
    pub fs: &'a dyn Fs,
    pub file: File,
}

impl Write for FsFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.fs.write(&self.file, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
