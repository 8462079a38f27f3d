//! The SQLite back end on temp files: creation, refusal of what is not
//! ours, users, TOTP state.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

fn temp_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("veil.db"), OpenMode::CreateIfMissing).unwrap();
    (dir, store)
}

#[test]
fn a_new_database_is_private_and_migrated() {
    let (dir, store) = temp_store();
    let mode = std::fs::metadata(dir.path().join("veil.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let v: i64 = store
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, MIGRATIONS.len() as i64);
    let journal: String = store
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    drop(store);
    SqliteStore::open(&dir.path().join("veil.db"), OpenMode::MustExist).unwrap();
}

#[test]
fn a_missing_database_is_not_created_when_it_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(&dir.path().join("nope.db"), OpenMode::MustExist).unwrap_err();
    assert!(matches!(err, StoreError::Missing { .. }));
    assert!(!dir.path().join("nope.db").exists());
}

#[test]
fn a_database_made_for_the_dir_owner_is_private_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("veil.db");
    drop(SqliteStore::open(&path, OpenMode::CreateAsDirOwner).unwrap());
    let meta = std::fs::metadata(&path).unwrap();
    let owner = std::fs::metadata(dir.path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), (owner.uid(), owner.gid()));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["veil.db"], "only the database is left");
    // A second open, and one that must exist, use the same file.
    drop(SqliteStore::open(&path, OpenMode::CreateAsDirOwner).unwrap());
    SqliteStore::open(&path, OpenMode::MustExist).unwrap();
}

#[test]
#[ignore = "needs root (hands a file to another uid): scripts/test.sh runs it as root"]
fn root_makes_the_database_for_the_account_that_owns_its_directory() {
    assert!(nix::unistd::geteuid().is_root(), "run as root");
    let dir = tempfile::tempdir().unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    nix::unistd::chown(dir.path(), Some(nobody.uid), Some(nobody.gid)).unwrap();
    let path = dir.path().join("veil.db");
    let mut store = SqliteStore::open(&path, OpenMode::CreateAsDirOwner).unwrap();
    store.add_user("alice", "$argon2id$x", 1).unwrap();
    // While open, the WAL and its index exist: SQLite, run as root, gives
    // them the database's owner, so veild (that account) can open them.
    for name in ["veil.db", "veil.db-wal", "veil.db-shm"] {
        let meta = std::fs::metadata(dir.path().join(name)).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (nobody.uid.as_raw(), nobody.gid.as_raw()),
            "{name}"
        );
        assert_eq!(meta.permissions().mode() & 0o077, 0, "{name}");
    }
}

#[test]
fn a_corrupt_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("veil.db");
    let garbage = vec![0x5au8; 8192];
    std::fs::write(&path, &garbage).unwrap();
    let err = SqliteStore::open(&path, OpenMode::CreateIfMissing).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()));
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn a_foreign_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&path, OpenMode::MustExist),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn users_are_added_listed_and_deleted() {
    let (_dir, mut store) = temp_store();
    store.add_user("alice", "$argon2id$x", 1).unwrap();
    assert!(matches!(
        store.add_user("alice", "$argon2id$y", 2),
        Err(StoreError::UserExists(_))
    ));
    assert_eq!(store.user("alice").unwrap().unwrap().phc, "$argon2id$x");
    assert!(store.user("bob").unwrap().is_none());
    store.set_password("alice", "$argon2id$z", 3).unwrap();
    assert_eq!(store.user("alice").unwrap().unwrap().phc, "$argon2id$z");
    assert!(matches!(
        store.set_password("bob", "x", 3),
        Err(StoreError::NoSuchUser(_))
    ));
    assert_eq!(store.list_users().unwrap().len(), 1);
    store.delete_user("alice").unwrap();
    assert!(store.user("alice").unwrap().is_none());
}

#[test]
fn a_lookup_reads_the_user_or_else_the_dummy_row_which_is_no_user() {
    let (_dir, mut store) = temp_store();
    assert!(
        store.user_or_dummy("ghost").unwrap().is_none(),
        "no dummy yet"
    );
    let dummy = UserRecord {
        phc: "$argon2id$dummy".into(),
        totp_secret: Some(Zeroizing::new(vec![7; 20])),
        totp_last_step: -1,
        recovery: None,
    };
    store.put_dummy(&dummy, 1).unwrap();
    store.put_dummy(&dummy, 2).unwrap();
    store.add_user("alice", "$argon2id$alice", 3).unwrap();
    let (row, found) = store.user_or_dummy("ghost").unwrap().unwrap();
    assert!(!found);
    assert_eq!(row.phc, "$argon2id$dummy");
    let (row, found) = store.user_or_dummy("alice").unwrap().unwrap();
    assert!(found);
    assert_eq!(row.phc, "$argon2id$alice");
    assert!(store.user("").unwrap().is_none());
    assert_eq!(store.list_users().unwrap().len(), 1, "the dummy is no user");
}

#[test]
fn a_pending_secret_is_inactive_until_activated() {
    let (_dir, mut store) = temp_store();
    store.add_user("alice", "x", 1).unwrap();
    store
        .set_totp_pending("alice", b"0123456789abcdefghij", 2)
        .unwrap();
    assert!(store.user("alice").unwrap().unwrap().totp_secret.is_none());
    store.activate_totp("alice", 100, 3).unwrap();
    let rec = store.user("alice").unwrap().unwrap();
    assert_eq!(
        rec.totp_secret.as_deref().map(Vec::as_slice),
        Some(&b"0123456789abcdefghij"[..])
    );
    assert_eq!(rec.totp_last_step, 100);
    assert!(
        store.activate_totp("alice", 101, 4).is_err(),
        "nothing pending any more"
    );
}

#[test]
fn a_time_step_is_accepted_once() {
    let (_dir, mut store) = temp_store();
    store.add_user("alice", "x", 1).unwrap();
    let limits = Limits::from(&crate::common::config::Lockout::default());
    let reservation = store
        .reserve(
            &limits,
            crate::common::ledger::charge_for(
                &limits,
                "alice",
                &crate::common::ledger::Origin::Console,
            ),
            1,
        )
        .unwrap();
    let mut success = |step| {
        store
            .commit_success(
                &limits,
                &Success {
                    user: "alice",
                    step: Some(step),
                    reservation: &reservation,
                    new_hash: None,
                    recovery: None,
                    now: 1,
                },
            )
            .unwrap()
    };
    assert!(success(10));
    assert!(!success(10));
    assert!(!success(9));
    assert!(success(11));
}

#[test]
fn a_deleted_database_is_noticed() {
    let (dir, store) = temp_store();
    assert!(store.still_on_disk());
    std::fs::remove_file(dir.path().join("veil.db")).unwrap();
    assert!(!store.still_on_disk());
}

#[test]
fn a_recovery_slot_is_taken_once_and_only_in_the_set_that_was_checked() {
    use crate::common::recovery;
    use crate::common::store::RecoveryUse;
    let (_dir, mut store) = temp_store();
    store.add_user("alice", "x", 1).unwrap();
    assert!(store.user("alice").unwrap().unwrap().recovery.is_none());
    let new = recovery::generate().unwrap();
    store.set_recovery("alice", Some(&new.set), 2).unwrap();
    let stored = store.user("alice").unwrap().unwrap().recovery.unwrap();
    assert_eq!(stored.left(), 10);
    assert_eq!(stored.hashes, new.set.hashes);
    let limits = Limits::from(&crate::common::config::Lockout::default());
    let reservation = store
        .reserve(
            &limits,
            crate::common::ledger::charge_for(
                &limits,
                "alice",
                &crate::common::ledger::Origin::Console,
            ),
            1,
        )
        .unwrap();
    let other_key = recovery::generate().unwrap().set.key;
    let mut take = |slot, key: &[u8]| {
        store
            .commit_success(
                &limits,
                &Success {
                    user: "alice",
                    step: None,
                    reservation: &reservation,
                    new_hash: None,
                    recovery: Some(RecoveryUse { slot, key }),
                    now: 3,
                },
            )
            .unwrap()
    };
    assert!(take(3, &new.set.key));
    assert!(!take(3, &new.set.key), "a slot is taken once");
    assert!(!take(4, &other_key), "a replaced set is not touched");
    assert!(take(4, &new.set.key));
    let stored = store.user("alice").unwrap().unwrap().recovery.unwrap();
    assert_eq!((stored.left(), stored.used), (8, 0b11000));
    store.set_recovery("alice", None, 4).unwrap();
    assert!(store.user("alice").unwrap().unwrap().recovery.is_none());
    assert!(matches!(
        store.set_recovery("ghost", Some(&new.set), 5),
        Err(StoreError::NoSuchUser(_))
    ));
    assert!(matches!(
        store.set_recovery("", Some(&new.set), 5),
        Err(StoreError::NoSuchUser(_))
    ));
}

/// Fails on the old main: the store opened the link's target, an empty
/// file, as a new database and wrote the schema into it.
#[test]
fn a_symlinked_database_is_refused_and_its_target_left_empty() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, b"").unwrap();
    let link = dir.path().join("veil.db");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for mode in [OpenMode::MustExist, OpenMode::CreateIfMissing] {
        let Err(err) = SqliteStore::open(&link, mode) else {
            panic!("a link was opened");
        };
        assert!(
            matches!(&err, StoreError::Refused { path, .. } if *path == link),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"");
    assert!(!dir.path().join("elsewhere-wal").exists());
}

/// The database may sit behind a linked directory (root's to make): only
/// the file and its -wal/-shm must not be links.
#[test]
fn a_database_behind_a_linked_directory_opens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("via")).unwrap();
    let path = dir.path().join("via").join("veil.db");
    SqliteStore::open(&path, OpenMode::CreateIfMissing).unwrap();
    assert!(dir.path().join("real").join("veil.db").is_file());
}
