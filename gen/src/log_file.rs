//! One log file that is appended to in whole lines and rotated the way logrotate rotates nginx's logs:
//! by renaming (the default), or by copying and truncating (logrotate's `copytruncate`). No compression.
//!
//! Lines are collected in a buffer and written with one `write` per flush, and a flush only ever
//! writes whole lines: a tailer never sees a line cut between two writes (it may still see a write
//! land partially, as with any writer; it waits for the newline).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Flush early once this much is buffered, so a burst at a high rate stays a few writes of bounded
/// size.
const FLUSH_BYTES: usize = 256 * 1024;

/// An append-only log file with rename or copytruncate rotation.
pub struct LogFile {
    path: PathBuf,
    file: File,
    pending: Vec<u8>,
}

impl LogFile {
    /// Opens `path` for appending, creating it if needed; existing content is kept, as nginx does.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let file = open_append(&path)?;
        Ok(LogFile { path, file, pending: Vec::with_capacity(FLUSH_BYTES) })
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a line (given without its newline); it reaches the file at the next flush at the latest.
    pub fn append(&mut self, line: &str) -> Result<()> {
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        if self.pending.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered lines.
    pub fn flush(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            self.file.write_all(&self.pending).map_err(|source| Error::Write { path: self.path.clone(), source })?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Flushes, then rotates so that `keep` files remain, the live one included: `path.(keep-1)` is
    /// removed, `path.i` becomes `path.(i+1)`, `path` becomes `path.1`, and a fresh `path` is created.
    /// With `keep` 1 the live file is removed instead. The old file is closed only after the rename,
    /// so every line written before this call is in `path.1`.
    pub fn rotate(&mut self, keep: u32) -> Result<()> {
        self.flush()?;
        if keep <= 1 {
            fs::remove_file(&self.path).map_err(rotate_err(&self.path))?;
        } else {
            self.shift_numbered(keep)?;
            fs::rename(&self.path, numbered(&self.path, 1)).map_err(rotate_err(&self.path))?;
        }
        self.file = open_append(&self.path)?;
        Ok(())
    }

    /// Flushes, then rotates like logrotate's `copytruncate`: the numbered files shift as in
    /// [`rotate`](Self::rotate), the live file is copied to `path.1`, and the live file is truncated to
    /// 0 and written on from its start through the same open handle. With `keep` 1 there is no copy;
    /// the live file is only truncated.
    ///
    /// logrotate copies while the program keeps writing, so lines written between the copy and the
    /// truncate are lost. Here the writer is the one rotating, so nothing is written in between: every
    /// line written before this call is in `path.1`, every later one in `path`.
    pub fn copy_truncate(&mut self, keep: u32) -> Result<()> {
        self.flush()?;
        if keep > 1 {
            self.shift_numbered(keep)?;
            fs::copy(&self.path, numbered(&self.path, 1)).map_err(rotate_err(&self.path))?;
        }
        self.file.set_len(0).map_err(rotate_err(&self.path))
    }

    /// Makes room for a new `path.1`: removes `path.(keep-1)` and renames `path.i` to `path.(i+1)`.
    fn shift_numbered(&self, keep: u32) -> Result<()> {
        let rotated = keep.saturating_sub(1);
        let oldest = numbered(&self.path, rotated);
        remove_if_present(&oldest).map_err(rotate_err(&oldest))?;
        for i in (1..rotated).rev() {
            let from = numbered(&self.path, i);
            rename_if_present(&from, &numbered(&self.path, i + 1)).map_err(rotate_err(&from))?;
        }
        Ok(())
    }
}

/// Maps an I/O error of a rotation step to [`Error::Rotate`] naming `path`.
fn rotate_err(path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Rotate { path, source }
}

/// `access.log` → `access.log.3`.
pub(crate) fn numbered(path: &Path, i: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{i}"));
    PathBuf::from(name)
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| Error::Open { path: path.to_path_buf(), source })
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Appends `lines` numbered lines starting at `first`.
    fn write_lines(log: &mut LogFile, first: u32, lines: u32) {
        for n in first..first + lines {
            log.append(&format!("line {n}")).unwrap();
        }
    }

    #[test]
    fn appends_whole_lines_at_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        fs::write(&path, "from before\n").unwrap();
        let mut log = LogFile::open(&path).unwrap();
        write_lines(&mut log, 1, 3);
        assert_eq!(read(&path), "from before\n", "nothing is written before the flush");
        log.flush().unwrap();
        assert_eq!(read(&path), "from before\nline 1\nline 2\nline 3\n");
    }

    #[test]
    fn a_large_burst_is_flushed_early_in_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut log = LogFile::open(&path).unwrap();
        let line = "x".repeat(999);
        for _ in 0..300 {
            log.append(&line).unwrap();
        }
        let written = read(&path);
        assert!(!written.is_empty() && written.ends_with('\n'));
        assert_eq!(written.len() % 1000, 0);
    }

    #[test]
    fn rotation_keeps_every_line_when_nothing_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut log = LogFile::open(&path).unwrap();
        for round in 0..4 {
            write_lines(&mut log, round * 10, 10);
            log.rotate(5).unwrap();
        }
        write_lines(&mut log, 40, 5);
        log.flush().unwrap();
        // Oldest first: access.log.4 .. access.log.1, then access.log.
        let mut all = String::new();
        for i in (1..=4).rev() {
            all += &read(&numbered(&path, i));
        }
        all += &read(&path);
        let expected: String = (0..45).map(|n| format!("line {n}\n")).collect();
        assert_eq!(all, expected);
        assert!(!numbered(&path, 5).exists());
    }

    #[test]
    fn rotation_drops_the_oldest_beyond_keep() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error.log");
        let mut log = LogFile::open(&path).unwrap();
        for round in 0..6 {
            write_lines(&mut log, round, 1);
            log.rotate(3).unwrap();
        }
        assert_eq!(read(&path), "");
        assert_eq!(read(&numbered(&path, 1)), "line 5\n");
        assert_eq!(read(&numbered(&path, 2)), "line 4\n");
        assert!(!numbered(&path, 3).exists());
    }

    #[test]
    fn keep_one_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut log = LogFile::open(&path).unwrap();
        write_lines(&mut log, 0, 2);
        log.rotate(1).unwrap();
        write_lines(&mut log, 2, 1);
        log.flush().unwrap();
        assert_eq!(read(&path), "line 2\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn copytruncate_copies_then_writes_on_from_the_start_of_the_same_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut log = LogFile::open(&path).unwrap();
        write_lines(&mut log, 0, 3);
        log.rotate(4).unwrap();
        write_lines(&mut log, 3, 4);
        let inode = fs::metadata(&path).unwrap().ino();
        // Lines 3..7 are still buffered: copytruncate flushes them into the copy, not after the truncate.
        log.copy_truncate(4).unwrap();
        assert_eq!(read(&path), "", "the live file is truncated");
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode, "and stays the same file");
        assert_eq!(read(&numbered(&path, 1)), "line 3\nline 4\nline 5\nline 6\n");
        assert_eq!(read(&numbered(&path, 2)), "line 0\nline 1\nline 2\n", "older rotations shift");
        write_lines(&mut log, 7, 2);
        log.flush().unwrap();
        // Appending writes from the new end (0): no hole of NUL bytes where the old content was.
        assert_eq!(read(&path), "line 7\nline 8\n");
        // Every line exactly once, oldest first.
        let all = read(&numbered(&path, 2)) + &read(&numbered(&path, 1)) + &read(&path);
        assert_eq!(all, (0..9).map(|n| format!("line {n}\n")).collect::<String>());
    }

    #[test]
    fn copytruncate_with_keep_one_only_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut log = LogFile::open(&path).unwrap();
        write_lines(&mut log, 0, 2);
        log.copy_truncate(1).unwrap();
        write_lines(&mut log, 2, 1);
        log.flush().unwrap();
        assert_eq!(read(&path), "line 2\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("access.log");
        let message = LogFile::open(&path).err().unwrap().to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
}
