//! veild when its database misbehaves under it: a full filesystem, a
//! read-only one, a file deleted while it runs, a file others may write.
//! Every request in trouble must get the exact DENY bytes and a clear audit
//! line, veild must stay up, and it must recover once the fault is gone,
//! without ever creating a database it did not find.
//!
//! The filesystem faults need root (a tmpfs mount); CI runs as root. Each
//! mount is undone by a guard, even when a test panics.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use veil_daemon::common::config::Config;
use veil_proto::{ALLOW, DENY};
use veil_tests::Veild;
use veil_tests::paths;
use veil_tests::wire::*;

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small tmpfs on a fresh temp dir, lazily unmounted on drop (even with
/// veild still holding files there, and even when the test panicked).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "veil-test",
                &dir.path().to_string_lossy(),
            ],
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, option: &str) {
        run(
            "mount",
            &[
                "-o",
                &format!("remount,{option}"),
                &self.path().to_string_lossy(),
            ],
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A daemon whose database lives at `database` (so on a fault-injected
/// filesystem), with TOTP off for users without it, so one account can log
/// in again and again, and `alice` enrolled.
fn daemon_with_database(database: &Path) -> Veild {
    let mut d = Veild::from_toml("[totp]\npolicy = \"if-enrolled\"\n");
    d.restart(Config {
        database: database.to_owned(),
        ..d.config()
    });
    d.enrol("alice", false);
    d
}

fn still_running(d: &mut Veild) -> bool {
    matches!(d.child.as_mut().unwrap().try_wait(), Ok(None))
}

/// Asks until ALLOW comes back (the fault is gone), at most 10 s.
fn wait_for_allow(d: &Veild) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tries = 0;
    loop {
        tries += 1;
        if d.ask("alice", PASSWORD, "") == ALLOW {
            return tries;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered:\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Store-error audit lines so far.
fn store_errors(d: &Veild) -> Vec<String> {
    assert!(
        !d.stderr().contains(PASSWORD),
        "the password leaked: {}",
        d.stderr()
    );
    d.stderr()
        .lines()
        .filter(|l| l.contains("reason=store-error"))
        .map(str::to_owned)
        .collect()
}

/// Fills the filesystem holding `dir` until the kernel says ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    path
}

#[test]
#[ignore = "needs root (mounts a tmpfs): scripts/test.sh runs it as root"]
fn a_full_filesystem_denies_with_a_store_error_and_veild_recovers_when_space_returns() {
    veil_tests::root::require_root();
    let fs = Tmpfs::mount("2m");
    let db = fs.path().join("veil.db");
    let mut d = daemon_with_database(&db);
    assert_eq!(d.ask("alice", PASSWORD, ""), ALLOW);

    let filler = fill(fs.path());
    let mut replies = Vec::new();
    for _ in 0..5 {
        replies.push(d.ask("alice", PASSWORD, ""));
        replies.push(d.ask("alice", "wrong", ""));
        replies.push(d.ask("ghost", "wrong", ""));
    }
    assert!(
        replies.iter().all(|r| r == &DENY),
        "a full disk must deny everything, the right password too:\n{}",
        d.stderr()
    );
    assert!(still_running(&mut d));
    let errors = store_errors(&d);
    assert!(
        errors.len() >= replies.len(),
        "every denial says why:\n{}",
        d.stderr()
    );
    assert!(
        errors
            .iter()
            .all(|l| l.contains("full") && l.contains("user=")),
        "{errors:#?}"
    );
    eprintln!("full filesystem: {}", errors[0]);

    std::fs::remove_file(filler).unwrap();
    let tries = wait_for_allow(&d);
    eprintln!("space freed: ALLOW again after {tries} request(s)");
    assert!(still_running(&mut d));
    // The failures written while the disk was full were refused by SQLite,
    // not half-written: the database is intact.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
#[ignore = "needs root (mounts a tmpfs): scripts/test.sh runs it as root"]
fn a_read_only_filesystem_denies_with_a_store_error_and_veild_recovers_when_it_is_writable() {
    veil_tests::root::require_root();
    let fs = Tmpfs::mount("8m");
    let db = fs.path().join("veil.db");
    let mut d = daemon_with_database(&db);
    // No request yet, so no worker holds the database open for writing and
    // the kernel lets the filesystem go read-only (as after an I/O error).
    fs.remount("ro");
    let mut replies = Vec::new();
    for _ in 0..4 {
        replies.push(d.ask("alice", PASSWORD, ""));
        replies.push(d.ask("ghost", "wrong", ""));
    }
    assert!(replies.iter().all(|r| r == &DENY), "{}", d.stderr());
    assert!(still_running(&mut d));
    let errors = store_errors(&d);
    assert!(errors.len() >= replies.len(), "{}", d.stderr());
    eprintln!("read-only filesystem: {}", errors[0]);

    fs.remount("rw");
    let tries = wait_for_allow(&d);
    eprintln!("writable again: ALLOW after {tries} request(s)");
    assert!(still_running(&mut d));
}

#[test]
fn a_database_deleted_under_veild_is_denied_never_recreated_and_a_restored_one_is_used() {
    let mut d = Veild::from_toml("[totp]\npolicy = \"if-enrolled\"\n");
    d.enrol("alice", false);
    let db = d.dir.path().join("veil.db");
    // Both workers open the database.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(d.ask("alice", PASSWORD, ""), ALLOW));
        }
    });
    let backup = d.dir.path().join("backup.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("VACUUM INTO ?1", [backup.to_str().unwrap()])
        .unwrap();

    std::fs::remove_file(&db).unwrap();
    let mut replies = Vec::new();
    for _ in 0..4 {
        replies.push(d.ask("alice", PASSWORD, ""));
        replies.push(d.ask("ghost", "wrong", ""));
    }
    assert!(replies.iter().all(|r| r == &DENY), "{}", d.stderr());
    assert!(!db.exists(), "veild must never recreate a deleted database");
    assert!(still_running(&mut d));
    let errors = store_errors(&d);
    assert!(
        errors.len() >= replies.len()
            && errors.iter().all(|l| l.contains("does\\x20not\\x20exist")),
        "{}",
        d.stderr()
    );
    eprintln!("deleted database: {}", errors[0]);

    // The admin restores the backup (and the stale WAL files go with the old file).
    for stale in ["veil.db-wal", "veil.db-shm"] {
        let _ = std::fs::remove_file(d.dir.path().join(stale));
    }
    std::fs::copy(&backup, &db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let tries = wait_for_allow(&d);
    eprintln!("restored database: ALLOW after {tries} request(s)");
    assert!(still_running(&mut d));
}

#[test]
fn a_database_writable_by_others_stops_veild_with_the_reason() {
    let mut d = Veild::from_toml("");
    d.enrol("alice", true);
    d.stop();
    let db = d.dir.path().join("veil.db");
    for mode in [0o666, 0o620] {
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = Command::new(paths::veild())
            .arg("--config")
            .arg(d.config_path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{mode:o}: {err}");
        assert!(
            err.contains(&db.display().to_string()) && err.contains("writable by group or others"),
            "{mode:o}: {err}"
        );
        assert!(!d.socket().exists(), "it must not have listened");
        eprintln!("mode {mode:o}: {}", err.trim());
    }
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    d.spawn();
    assert_eq!(d.ask("alice", PASSWORD, &code_now()), ALLOW);
}
