//! Where the SQLite file is made and found: a new file made as its
//! directory's owner, and the directory's real location. Its own file:
//! plain file-system work, no SQL.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Makes an empty database file (SQLite takes an empty file for a new
/// database) owned by the owner and group of its directory, mode 0600.
/// It is made under a private name, given its owner, then linked to its
/// name: whoever opens `path` finds either nothing or the finished file,
/// never one owned by the caller (root) that veild could not open.
/// `AlreadyExists` if `path` appeared meanwhile.
pub(super) fn create_as_dir_owner(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let owner = std::fs::metadata(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // A private name; one left by a veilctl that died here is skipped.
    let mut attempt = 0;
    let (temp, file) = loop {
        let temp = dir.join(format!(".{name}.new-{}-{attempt}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
        {
            Ok(file) => break (temp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let linked = std::os::unix::fs::fchown(&file, Some(owner.uid()), Some(owner.gid()))
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::hard_link(&temp, path));
    let removed = std::fs::remove_file(&temp);
    linked?;
    removed
}

/// `path` in its directory's real location (links resolved), the file
/// name as given.
pub(super) fn real_dir(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| path.to_owned()),
        _ => path.to_owned(),
    }
}
