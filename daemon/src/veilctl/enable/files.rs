//! File writes for `enable`/`disable`: read, write in place keeping the
//! owner and mode (atomically), and the root-only backup directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::Failure;

pub fn read(path: &Path) -> Result<String, Failure> {
    fs::read_to_string(path).map_err(|e| Failure::io(format!("{}: {e}", path.display())))
}

/// Replaces `path` with `text` atomically, keeping its mode and owner.
pub fn write_like(path: &Path, text: &str, like: &fs::Metadata) -> Result<(), Failure> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "service".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.veil-tmp"));
    let fail = |e: std::io::Error| Failure::io(format!("{}: {e}", tmp.display()));
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    let result = (|| {
        file.write_all(text.as_bytes())?;
        std::os::unix::fs::fchown(&file, Some(like.uid()), Some(like.gid()))?;
        file.set_permissions(fs::Permissions::from_mode(like.mode() & 0o7777))?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Failure::io(format!("{}: {e}", path.display())));
    }
    Ok(())
}

pub fn backup_path(dir: &Path, service: &str) -> PathBuf {
    dir.join(service)
}

/// Refuses a backup directory others could write to: its contents become
/// PAM configuration on `disable`.
pub fn ensure_backup_dir(dir: &Path) -> Result<(), Failure> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Failure::io(format!("{}: {e}", dir.display())))?;
    }
    check_private(dir)
}

pub fn check_private(path: &Path) -> Result<(), Failure> {
    let meta = fs::metadata(path).map_err(|e| Failure::io(format!("{}: {e}", path.display())))?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.mode() & 0o022 != 0 || (meta.uid() != 0 && meta.uid() != me) {
        return Err(Failure::refused(format!(
            "{} is writable by others or not owned by root; refusing to use it",
            path.display()
        )));
    }
    Ok(())
}
