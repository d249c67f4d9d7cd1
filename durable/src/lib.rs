//! Durable, atomic file replacement, the one way logpipe writes a small state file: the broker's topic
//! metadata, checkpoints and producer snapshots, the agent's registry, the generator's summary.
//!
//! [`write_atomic`] writes to `<path>.tmp`, fsyncs it, renames it over `path`, then fsyncs the directory
//! so the rename itself survives a power cut. A reader sees the old file or the whole new one, never
//! half of one. Errors name the file.
//!
//! [`create_dir_all`] makes a directory durably: a new directory's name lives in its parent, so each
//! directory it creates is followed by an fsync of the parent. Without it a power cut soon after the
//! first start takes a fresh data directory away with everything fsynced inside it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Options for [`write_atomic_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Unix permission bits of the new file (e.g. `0o600` for a file only its owner may read); the
    /// process umask applies otherwise.
    pub mode: Option<u32>,
    /// Create the parent directory first if it is missing.
    pub create_dir: bool,
}

/// Writes `bytes` to `path` atomically and durably (tmp → fsync → rename → fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, WriteOptions::default())
}

/// [`write_atomic`] with a file mode and, optionally, the directory created first.
pub fn write_atomic_with(path: &Path, bytes: &[u8], options: WriteOptions) -> io::Result<()> {
    let dir = parent(path);
    if options.create_dir {
        create_dir_all(dir)?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let write = || -> io::Result<()> {
        let mut open = OpenOptions::new();
        open.write(true).create(true).truncate(true);
        if let Some(mode) = options.mode {
            open.mode(mode);
        }
        let mut f = open.open(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| annotate(e, tmp))?;
    fs::rename(tmp, path).map_err(|e| annotate(e, path))?;
    sync_dir(dir)
}

/// `fs::create_dir_all`, durably: after each directory it creates, the parent that names it is fsynced.
/// Directories that already exist cost nothing.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_all(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => sync_parent(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(annotate(e, dir)),
    }
}

/// Fsyncs a directory, making file creations, renames and deletions in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| annotate(e, dir))
}

/// Fsyncs the directory that holds `path`.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    sync_dir(parent(path))
}

/// Reads a file that may not exist yet.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(annotate(e, path)),
    }
}

/// Adds the file path to an I/O error, so an operator knows which file to look at.
pub fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!dir.path().join("meta.json.tmp").exists());
        assert_eq!(read_optional(&dir.path().join("missing")).unwrap(), None);
    }

    #[test]
    fn mode_and_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("registry.json");
        write_atomic_with(&path, b"{}", WriteOptions { mode: Some(0o600), create_dir: true }).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn creates_nested_directories_and_accepts_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a").join("b").join("c");
        create_dir_all(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_all(&deep).unwrap();
        fs::write(dir.path().join("file"), b"x").unwrap();
        let err = create_dir_all(&dir.path().join("file").join("sub")).unwrap_err().to_string();
        assert!(err.contains("file"), "{err}");
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("x");
        let err = write_atomic(&path, b"x").unwrap_err().to_string();
        assert!(err.contains("no-such-dir"), "{err}");
    }
}
