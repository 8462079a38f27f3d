//! Who may write the files veild trusts: its config, its database, the
//! directory of its socket.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a file veild trusts was refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {source}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is writable by group or others (mode {mode:o}); run: chmod go-w {}",
        path.display(),
        path.display()
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error(
        "{} is owned by uid {uid}, neither root nor veild's own uid {me}; run: chown root {}",
        path.display(),
        path.display()
    )]
    ForeignOwner { path: PathBuf, uid: u32, me: u32 },
}

/// A database file that may have been planted to steer root: the file,
/// and why it was refused.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct Planted {
    pub path: PathBuf,
    pub reason: String,
}

/// Refuses a file that someone other than its owner may write: a config or
/// database that others can change lets them change who may log in.
pub fn check_not_writable_by_others(path: &Path) -> Result<(), FileError> {
    let meta = std::fs::metadata(path).map_err(|source| FileError::Stat {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(FileError::Writable {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    // Whoever owns it can make it writable again, or replace its contents.
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(FileError::ForeignOwner {
            path: path.to_owned(),
            uid: meta.uid(),
            me,
        });
    }
    Ok(())
}

/// Refuses what veild's account could have planted in the database
/// directory, which it may write, to steer root's next veilctl: the
/// database or its `-wal`/`-shm` as a symbolic link or not a regular file
/// (for anyone), and, for root, one with another hard link or an owner
/// other than root or the directory's owner. Run as root, SQLite follows a
/// link to the database (and writes its schema into the target), and it
/// truncates, rewrites and chowns an existing `-shm` to the database's
/// owner: through a hard link, any file. Returns the file and the reason.
/// Checked before SQLite opens anything; SQLite itself opens every file
/// with `O_NOFOLLOW` (and the database with `SQLITE_OPEN_NOFOLLOW`), so a
/// link swapped in afterwards fails too; a hard link swapped in afterwards
/// needs `fs.protected_hardlinks = 0`.
pub fn check_not_planted(database: &Path) -> Result<(), Planted> {
    let root = nix::unistd::geteuid().is_root();
    let dir = match database.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir_owner = std::fs::metadata(dir).map(|m| m.uid()).ok();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Planted {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        let kind = meta.file_type();
        let refusal = if kind.is_symlink() {
            Some("refused: it is a symbolic link, which the database must never be".to_owned())
        } else if !kind.is_file() {
            Some("refused: it is not a regular file".to_owned())
        } else if root && meta.nlink() > 1 {
            Some(format!(
                "refused: it has {} hard links; a database file has one",
                meta.nlink()
            ))
        } else if root && meta.uid() != 0 && Some(meta.uid()) != dir_owner {
            Some(format!(
                "refused: it is owned by uid {}, neither root nor the owner of {}",
                meta.uid(),
                dir.display()
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Err(Planted { path, reason });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_or_world_writable_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("veild.toml");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        check_not_writable_by_others(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = check_not_writable_by_others(&path).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
    }

    #[test]
    #[ignore = "needs root (hands a file to another uid): scripts/test.sh runs it as root"]
    fn a_file_owned_by_another_account_is_refused() {
        assert!(nix::unistd::geteuid().is_root(), "run as root");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("veild.toml");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        check_not_writable_by_others(&path).unwrap();
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        nix::unistd::chown(&path, Some(nobody.uid), None).unwrap();
        let err = check_not_writable_by_others(&path).unwrap_err().to_string();
        assert!(
            err.contains("owned by uid") && err.contains("chown root"),
            "{err}"
        );
    }
}
