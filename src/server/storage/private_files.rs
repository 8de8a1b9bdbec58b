//! The data directory, the database and backups are readable by their owner only.
//!
//! Documents are private to whoever holds their links, so the files holding them must not be
//! readable by other accounts on the machine. Everything is created with its final mode
//! (never created open and narrowed afterwards), so there is no moment at which another user
//! could open it. Paths that already exist are left as they are: an operator may have chosen
//! their permissions on purpose, so loose ones get a warning rather than a silent change.

use super::StoreError;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Mode of the data directory: only its owner may list or enter it.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the database, its write-ahead log and shared-memory files, and backups.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700, or warns if it exists and other users
/// can read or enter it.
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            warn_if_shared(dir, "data directory")
        }
        Err(error) if error.kind() == ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)?;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Creates the file at `path` with mode 0600 unless something is already there, so that the
/// engine opening it afterwards (and the files it creates beside it with the same mode) never
/// widens access. An existing file is kept, with a warning if others can read it.
pub fn create_private_file_if_missing(path: &Path, what: &str) -> Result<(), StoreError> {
    match new_private_file(path) {
        Ok(_) => Ok(()),
        Err(StoreError::Exists(_)) => warn_if_shared(path, what),
        Err(error) => Err(error),
    }
}

/// Creates a new, empty file with mode 0600. Fails with [`StoreError::Exists`] if anything
/// is at `path`, a symbolic link included (dangling or not): `O_CREAT | O_EXCL` never follows
/// one, so a link planted there cannot redirect the write onto another file.
pub fn new_private_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|error| match error.kind() {
            ErrorKind::AlreadyExists => StoreError::Exists(path.to_path_buf()),
            _ => error.into(),
        })
}

/// Removes the file at `path` if it is still `file` (the one this process created), so a
/// failed write never deletes something another process put there meanwhile.
pub fn remove_if_same(path: &Path, file: &File) {
    let ours = file.metadata();
    let there = std::fs::symlink_metadata(path);
    if let (Ok(ours), Ok(there)) = (ours, there) {
        if ours.dev() == there.dev() && ours.ino() == there.ino() {
            if let Err(error) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), %error, "could not remove an unfinished file");
            }
        }
    }
}

fn warn_if_shared(path: &Path, what: &str) -> Result<(), StoreError> {
    let mode = std::fs::metadata(path)?.mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the {what} is accessible to other users; `chmod go-rwx` it to keep documents private"
        );
    }
    Ok(())
}
