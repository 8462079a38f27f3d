//! root's `veilctl` and what veild's account can plant in the database
//! directory: a compromised veild (user `veil`, who may write
//! `/var/lib/veil`) must not steer root's next `veilctl` into writing,
//! truncating or chowning another file through `veil.db`, `veil.db-wal`
//! or `veil.db-shm`. The real veilctl binary, run as root, on a directory
//! owned by `nobody` (playing `veil`).
//!
//! Ignored in a plain `cargo test` (only root's veilctl is the danger);
//! `scripts/test.sh` runs them as root; run as another user, they fail.

#![forbid(unsafe_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use veil_tests::paths;
use veil_tests::root::require_root;

/// A database directory owned by `nobody`, a config naming `veil.db` in
/// it, and a root-owned file elsewhere that nobody may touch.
struct Scene {
    _top: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
    target: PathBuf,
}

fn scene(target_bytes: &[u8]) -> Scene {
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("lib-veil");
    std::fs::create_dir(&dir).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    nix::unistd::chown(&dir, Some(nobody.uid), Some(nobody.gid)).unwrap();
    let target = top.path().join("root-owned");
    std::fs::write(&target, target_bytes).unwrap();
    let config = top.path().join("veild.toml");
    std::fs::write(
        &config,
        format!(
            "database = {:?}\nsocket = {:?}\n",
            dir.join("veil.db"),
            top.path().join("veild.sock")
        ),
    )
    .unwrap();
    Scene {
        _top: top,
        dir,
        config,
        target,
    }
}

/// Runs the real veilctl as root: (exit code, stderr).
fn veilctl(config: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(paths::veilctl())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run veilctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The target's bytes, owner and mode, to show they are untouched.
fn state(path: &Path) -> (Vec<u8>, u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (
        std::fs::read(path).unwrap(),
        meta.uid(),
        meta.gid(),
        meta.mode(),
    )
}

/// Fails on the old main: veilctl opened the link's target, an empty
/// root-owned file, as a new database and wrote veil's schema into it
/// (and made a WAL beside it).
#[test]
#[ignore = "needs root (root's veilctl is the one steered): scripts/test.sh runs it as root"]
fn a_symlinked_database_is_refused_and_its_target_left_unchanged() {
    require_root();
    let s = scene(b"");
    let link = s.dir.join("veil.db");
    std::os::unix::fs::symlink(&s.target, &link).unwrap();
    let before = state(&s.target);
    let (rc, err) = veilctl(&s.config, &["user", "list"]);
    assert_ne!(rc, 0, "veilctl followed the link: {err}");
    assert!(err.contains(&link.display().to_string()), "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(state(&s.target), before, "the target changed");
    assert!(
        !Path::new(&format!("{}-wal", s.target.display())).exists(),
        "a WAL was made beside the target"
    );
}

/// Fails on the old main: root's SQLite opened the hard-linked `-shm`
/// (its index of the WAL), gave it the database's owner (nobody) and
/// rewrote it.
#[test]
#[ignore = "needs root (root's veilctl is the one steered): scripts/test.sh runs it as root"]
fn a_hard_linked_wal_index_is_refused_and_its_target_left_unchanged() {
    require_root();
    let s = scene(b"root's own bytes, not a WAL index\n");
    // A genuine database, made by veilctl as it would be, then closed.
    let (rc, err) = veilctl(&s.config, &["user", "list"]);
    assert_eq!(rc, 0, "{err}");
    let shm = s.dir.join("veil.db-shm");
    let _ = std::fs::remove_file(&shm);
    // veil can make such a link where fs.protected_hardlinks is 0.
    std::fs::hard_link(&s.target, &shm).unwrap();
    let before = state(&s.target);
    let (rc, err) = veilctl(&s.config, &["user", "list"]);
    assert_ne!(rc, 0, "veilctl used the linked file: {err}");
    assert!(err.contains(&shm.display().to_string()), "{err}");
    assert_eq!(state(&s.target), before, "the target changed");
}

/// Passes on the old main too (SQLite opens `-wal` with `O_NOFOLLOW` and
/// failed, naming no file): a guard that the check before the open keeps
/// refusing it, and names the file.
#[test]
#[ignore = "needs root (root's veilctl is the one steered): scripts/test.sh runs it as root"]
fn a_symlinked_wal_is_refused_and_its_target_left_unchanged() {
    require_root();
    let s = scene(b"");
    let (rc, err) = veilctl(&s.config, &["user", "list"]);
    assert_eq!(rc, 0, "{err}");
    let wal = s.dir.join("veil.db-wal");
    let _ = std::fs::remove_file(&wal);
    std::os::unix::fs::symlink(&s.target, &wal).unwrap();
    let before = state(&s.target);
    let (rc, err) = veilctl(&s.config, &["user", "list"]);
    assert_ne!(rc, 0, "veilctl used the linked file: {err}");
    assert!(err.contains(&wal.display().to_string()), "{err}");
    assert_eq!(state(&s.target), before, "the target changed");
}
