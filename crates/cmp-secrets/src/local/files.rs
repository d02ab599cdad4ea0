//! File primitives of the local store: owner-only permissions, atomic replacement
//! (temporary file, fsync, rename, fsync of the directory) and I/O errors that name the path.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::SecretError;

/// Prefix of temporary files; never a record or master key file name.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Mode of every file the store writes.
const FILE_MODE: u32 = 0o600;
/// Mode of directories the store creates.
const DIR_MODE: u32 = 0o700;

/// An [`SecretError::Io`] naming what was done to which path.
pub(crate) fn io_error(action: &str, path: &Path, err: &io::Error) -> SecretError {
    SecretError::Io(format!("{action} {}: {err}", path.display()))
}

/// Creates `dir` and its parents (mode 0700 for the ones created here).
pub(crate) fn create_dir(dir: &Path) -> Result<(), SecretError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| io_error("creating directory", dir, &e))
}

/// Writes `contents` to a new temporary file (mode 0600) in `dir` and fsyncs it; returns its
/// path. The caller renames or links it into place.
pub(crate) fn write_temp(dir: &Path, contents: &[u8]) -> Result<std::path::PathBuf, SecretError> {
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix)
        .map_err(|_| SecretError::Unavailable("the system random generator failed".into()))?;
    let path = dir.join(format!("{TEMP_PREFIX}{}", hex::encode(suffix)));
    let result = (|| {
        let mut file =
            OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(&path)?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(io_error("writing", &path, &e))
        }
    }
}

/// Atomically replaces (or creates) `dir/file_name` with `contents`, durable on return.
pub(crate) fn write_atomic(
    dir: &Path,
    file_name: &str,
    contents: &[u8],
) -> Result<(), SecretError> {
    let temp = write_temp(dir, contents)?;
    let target = dir.join(file_name);
    if let Err(e) = fs::rename(&temp, &target) {
        let _ = fs::remove_file(&temp);
        return Err(io_error("renaming into", &target, &e));
    }
    sync_dir(dir)
}

/// Creates `dir/file_name` with `contents` only if it does not exist yet, atomically (the file
/// never exists half-written). Returns false if it already existed.
pub(crate) fn create_atomic(
    dir: &Path,
    file_name: &str,
    contents: &[u8],
) -> Result<bool, SecretError> {
    let temp = write_temp(dir, contents)?;
    let target = dir.join(file_name);
    // A hard link fails if the target exists, unlike rename, which would replace it.
    let linked = fs::hard_link(&temp, &target);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => sync_dir(dir).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error("creating", &target, &e)),
    }
}

/// Removes `dir/file_name`; true if it existed.
pub(crate) fn remove(dir: &Path, file_name: &str) -> Result<bool, SecretError> {
    let path = dir.join(file_name);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("removing", &path, &e)),
    }
}

/// Reads `path`; `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, SecretError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("reading", path, &e)),
    }
}

/// Fsyncs a directory so that renames and unlinks in it survive a crash.
fn sync_dir(dir: &Path) -> Result<(), SecretError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error("syncing directory", dir, &e))
}
