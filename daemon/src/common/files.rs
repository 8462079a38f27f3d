//! Who may write the files veild trusts: its config, its database, the
//! directory of its socket.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Refuses a file that someone other than its owner may write: a config or
/// database that others can change lets them change who may log in.
pub fn check_not_writable_by_others(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:o}); run: chmod go-w {}",
            path.display(),
            mode & 0o7777,
            path.display()
        ));
    }
    // Whoever owns it can make it writable again, or replace its contents.
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!(
            "{} is owned by uid {}, neither root nor veild's own uid {me}; run: chown root {}",
            path.display(),
            meta.uid(),
            path.display()
        ));
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
        let err = check_not_writable_by_others(&path).unwrap_err();
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
        let err = check_not_writable_by_others(&path).unwrap_err();
        assert!(
            err.contains("owned by uid") && err.contains("chown root"),
            "{err}"
        );
    }
}
