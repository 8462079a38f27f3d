//! veild's listening socket: the one systemd passes, or one bound here in
//! a directory nobody else may write.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::net::UnixListener;

use crate::common::files::{FileError, check_not_writable_by_others};

/// Where the listening socket came from.
#[derive(Debug)]
pub enum Listener {
    /// Bound by veild; the path is removed at shutdown.
    Bound(UnixListener, PathBuf),
    /// Passed by systemd (`LISTEN_FDS`); systemd owns the path.
    Inherited(UnixListener),
}

/// Why veild cannot listen; each message names the socket or its directory.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("socket passed by systemd: {0}")]
    Passed(#[source] io::Error),
    #[error("systemd passed no Unix socket")]
    NotUnix,
    #[error("{0}")]
    Setup(#[source] io::Error),
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("socket directory: {0}")]
    Directory(#[source] FileError),
    #[error("another veild is already listening on {}", path.display())]
    InUse { path: PathBuf },
    #[error("cannot remove stale socket {}: {source}", path.display())]
    Stale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("chmod {}: {source}", path.display())]
    Chmod {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Takes a socket passed by systemd, or binds `path` with mode 0666 (the
/// peer policy, not file permissions, decides who may ask what).
pub fn listen(path: &Path) -> Result<Listener, ListenError> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() > 0 {
        let std_listener = fds
            .take_unix_listener(0)
            .map_err(ListenError::Passed)?
            .ok_or(ListenError::NotUnix)?;
        std_listener
            .set_nonblocking(true)
            .map_err(ListenError::Setup)?;
        return Ok(Listener::Inherited(UnixListener::from_std(std_listener)));
    }
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir).map_err(|source| ListenError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(ListenError::Setup)?;
    }
    // Whoever can write the directory can bind the path before veild does
    // (and answer ALLOW) or swap the socket: refuse such a place.
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        check_not_writable_by_others(dir).map_err(ListenError::Directory)?;
    }
    let path_buf = || path.to_owned();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ListenError::InUse { path: path_buf() });
            }
            // A socket nobody listens on is left over from a crash.
            std::fs::remove_file(path).map_err(|source| ListenError::Stale {
                path: path_buf(),
                source,
            })?;
        }
        Ok(_) => return Err(ListenError::NotASocket { path: path_buf() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ListenError::Stat {
                path: path_buf(),
                source,
            });
        }
    }
    let listener = UnixListener::bind(path).map_err(|source| ListenError::Bind {
        path: path_buf(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(|source| {
        ListenError::Chmod {
            path: path_buf(),
            source,
        }
    })?;
    Ok(Listener::Bound(listener, path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_in_a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = listen(&open.join("veild.sock")).unwrap_err().to_string();
        assert!(
            err.contains("socket directory") && err.contains("writable"),
            "{err}"
        );
        assert!(!open.join("veild.sock").exists(), "nothing was bound");
        // The same directory, closed to others, is fine.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(listen(&open.join("veild.sock")).is_ok());
    }
}
