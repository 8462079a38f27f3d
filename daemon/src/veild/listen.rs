//! veild's listening socket: the one systemd passes, or one bound here in
//! a directory nobody else may write.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::net::UnixListener;

/// Where the listening socket came from.
#[derive(Debug)]
pub enum Listener {
    /// Bound by veild; the path is removed at shutdown.
    Bound(UnixListener, PathBuf),
    /// Passed by systemd (`LISTEN_FDS`); systemd owns the path.
    Inherited(UnixListener),
}

/// Takes a socket passed by systemd, or binds `path` with mode 0666 (the
/// peer policy, not file permissions, decides who may ask what).
pub fn listen(path: &Path) -> Result<Listener, String> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() > 0 {
        let std_listener = fds
            .take_unix_listener(0)
            .map_err(|e| format!("socket passed by systemd: {e}"))?
            .ok_or("systemd passed no Unix socket")?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        return Ok(Listener::Inherited(UnixListener::from_std(std_listener)));
    }
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    // Whoever can write the directory can bind the path before veild does
    // (and answer ALLOW) or swap the socket: refuse such a place.
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        crate::common::files::check_not_writable_by_others(dir)
            .map_err(|e| format!("socket directory: {e}"))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "another veild is already listening on {}",
                    path.display()
                ));
            }
            // A socket nobody listens on is left over from a crash.
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
        }
        Ok(_) => {
            return Err(format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
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
        let err = listen(&open.join("veild.sock")).unwrap_err();
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
