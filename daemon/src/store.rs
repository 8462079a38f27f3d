//! The SQLite store: schema migrations and the users table. The lockout
//! ledger lives in the same file but in its own module, [`crate::ledger`].

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, named_params};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("database {path} does not exist")]
    Missing { path: PathBuf },
    #[error("database {path} is not a veil database or is damaged: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("database {path} has schema version {found}, newer than this veil ({supported})")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("no such user: {0}")]
    NoSuchUser(String),
    #[error("user already exists: {0}")]
    UserExists(String),
}

/// Numbered migrations; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: users and the ledger.
    "CREATE TABLE users (
         name TEXT PRIMARY KEY NOT NULL,
         phc TEXT NOT NULL,
         totp_secret BLOB,
         totp_pending BLOB,
         totp_last_step INTEGER NOT NULL DEFAULT -1,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE ledger (
         kind TEXT NOT NULL,
         user TEXT NOT NULL,
         source TEXT NOT NULL,
         failures INTEGER NOT NULL,
         window_start INTEGER NOT NULL,
         locked_until INTEGER NOT NULL,
         last_seen INTEGER NOT NULL,
         PRIMARY KEY (kind, user, source)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX ledger_by_last_seen ON ledger(last_seen);
     CREATE INDEX ledger_by_source ON ledger(source);
     CREATE TABLE ledger_size (id INTEGER PRIMARY KEY CHECK (id = 1), rows INTEGER NOT NULL) STRICT;
     INSERT INTO ledger_size (id, rows) VALUES (1, 0);
     CREATE TRIGGER ledger_count_insert AFTER INSERT ON ledger
         BEGIN UPDATE ledger_size SET rows = rows + 1 WHERE id = 1; END;
     CREATE TRIGGER ledger_count_delete AFTER DELETE ON ledger
         BEGIN UPDATE ledger_size SET rows = rows - 1 WHERE id = 1; END;",
    // 2: escalating locks, and the (user, source) pairs that succeeded.
    "ALTER TABLE ledger ADD COLUMN locks INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE ledger ADD COLUMN locks_remembered_until INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE known_good (
         user TEXT NOT NULL,
         source TEXT NOT NULL,
         last_success INTEGER NOT NULL,
         PRIMARY KEY (user, source)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX known_good_by_time ON known_good(last_success);",
    // 3: a reservation counts its own inserts in one statement that every
    // attempt runs (a trigger fired only for new rows, so a first attempt
    // wrote more than a repeated one, and took longer).
    //    Likewise the ledger's two secondary indexes: an attempt that adds
    //    rows also wrote index pages that a repeated one did not. Their
    //    users (prune, eviction past the cap, veilctl) scan instead.
    //    And every write changes its row (`writes` counts them): SQLite
    //    skips a write that leaves a row as it was, so a locked key asked
    //    twice in one second committed nothing and answered sooner.
    "DROP TRIGGER ledger_count_insert;
     DROP INDEX ledger_by_last_seen;
     DROP INDEX ledger_by_source;
     ALTER TABLE ledger ADD COLUMN writes INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE ledger_size ADD COLUMN writes INTEGER NOT NULL DEFAULT 0;",
];

/// How a caller wants the file opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file (mode 0600) if it does not exist. veild's first start.
    CreateIfMissing,
    /// The file must exist (veilctl, and veild reopening after a fault).
    MustExist,
}

/// One user's record as the verifier needs it.
#[derive(Clone)]
pub struct UserRecord {
    pub phc: String,
    pub totp_secret: Option<Zeroizing<Vec<u8>>>,
    pub totp_last_step: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("totp", &self.totp_secret.is_some())
            .field("totp_last_step", &self.totp_last_step)
            .finish_non_exhaustive()
    }
}

/// A row of `veilctl user list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserSummary {
    pub name: String,
    pub totp: bool,
    pub totp_pending: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// The stored hash, to compare its parameters with the current ones.
    #[serde(skip)]
    pub phc: String,
    /// Filled in by the caller that knows the current parameters.
    pub hash_current: bool,
}

#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Device and inode of the file opened, to notice it being replaced or deleted.
    identity: (u64, u64),
}

impl Store {
    pub fn open(path: &Path, mode: OpenMode) -> Result<Store, StoreError> {
        let open_err = |e: &dyn std::fmt::Display| StoreError::Open {
            path: path.to_owned(),
            message: e.to_string(),
        };
        match std::fs::symlink_metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if mode == OpenMode::MustExist {
                    return Err(StoreError::Missing {
                        path: path.to_owned(),
                    });
                }
                // Created here with 0600 so SQLite never makes it with the
                // process umask; its -wal and -shm files copy these bits.
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| open_err(&e))?;
            }
            Err(e) => return Err(open_err(&e)),
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| open_err(&e))?;
        let meta = std::fs::metadata(path).map_err(|e| open_err(&e))?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
            identity: (meta.dev(), meta.ino()),
        };
        store.configure().map_err(|e| store.classify(e))?;
        store.migrate().map_err(|e| match e {
            StoreError::Sql(e) => store.classify(e),
            other => other,
        })?;
        Ok(store)
    }

    fn classify(&self, e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase)
            | Some(rusqlite::ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                path: self.path.clone(),
                message: e.to_string(),
            },
            _ => StoreError::Open {
                path: self.path.clone(),
                message: e.to_string(),
            },
        }
    }

    fn configure(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(Duration::from_secs(5))?;
        // WAL lets veilctl read while veild writes; FULL makes every
        // committed ledger write survive a power cut, not just a crash.
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        self.conn.pragma_update(None, "secure_delete", "ON")?;
        Ok(())
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                supported,
            });
        }
        // An existing file that is not ours (version 0 but with tables) is refused.
        if version == 0 {
            let tables: i64 =
                self.conn
                    .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
            if tables > 0 {
                return Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    message: "it holds tables but no veil schema version".into(),
                });
            }
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// False when the file was deleted or replaced since it was opened:
    /// writes would go to an orphaned inode, so the caller must stop.
    pub fn still_on_disk(&self) -> bool {
        std::fs::metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == self.identity)
            .unwrap_or(false)
    }

    /// Writes the record unknown names are checked against, as a row
    /// under the empty name (which no request can carry), so that every
    /// lookup reads and parses one row the same way.
    pub fn put_dummy(&mut self, record: &UserRecord, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO users (name, phc, totp_secret, totp_last_step, created_at, updated_at)
             VALUES ('', :phc, :secret, :step, :now, :now)
             ON CONFLICT (name) DO UPDATE SET phc = excluded.phc, totp_secret = excluded.totp_secret,
                 totp_last_step = excluded.totp_last_step, updated_at = excluded.updated_at",
            named_params! {
                ":phc": record.phc,
                ":secret": record.totp_secret.as_deref().map(Vec::as_slice),
                ":step": record.totp_last_step,
                ":now": now,
            },
        )?;
        Ok(())
    }

    /// The user's row, or else the dummy row: one statement, one row read
    /// and parsed either way. `None` only if the dummy row is missing.
    pub fn user_or_dummy(&self, name: &str) -> Result<Option<(UserRecord, bool)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT phc, totp_secret, totp_last_step, name <> '' FROM users
                 WHERE name IN (:name, '') ORDER BY name DESC LIMIT 1",
            )?
            .query_row(named_params! {":name": name}, |r| {
                Ok((
                    UserRecord {
                        phc: r.get(0)?,
                        totp_secret: r.get::<_, Option<Vec<u8>>>(1)?.map(Zeroizing::new),
                        totp_last_step: r.get(2)?,
                    },
                    r.get(3)?,
                ))
            })
            .optional()?)
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT phc, totp_secret, totp_last_step FROM users WHERE name = :name AND name <> ''",
            )?
            .query_row(named_params! {":name": name}, |r| {
                Ok(UserRecord {
                    phc: r.get(0)?,
                    totp_secret: r.get::<_, Option<Vec<u8>>>(1)?.map(Zeroizing::new),
                    totp_last_step: r.get(2)?,
                })
            })
            .optional()?)
    }

    pub fn add_user(&mut self, name: &str, phc: &str, now: i64) -> Result<(), StoreError> {
        let inserted = self.conn.execute(
            "INSERT INTO users (name, phc, created_at, updated_at) VALUES (:name, :phc, :now, :now)
             ON CONFLICT (name) DO NOTHING",
            named_params! {":name": name, ":phc": phc, ":now": now},
        )?;
        if inserted == 0 {
            return Err(StoreError::UserExists(name.to_owned()));
        }
        Ok(())
    }

    pub fn set_password(&mut self, name: &str, phc: &str, now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET phc = :phc, updated_at = :now WHERE name = :name",
            named_params! {":name": name, ":phc": phc, ":now": now},
        )
    }

    pub fn delete_user(&mut self, name: &str) -> Result<(), StoreError> {
        self.update_one(
            name,
            "DELETE FROM users WHERE name = :name",
            named_params! {":name": name},
        )
    }

    pub fn list_users(&self) -> Result<Vec<UserSummary>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, totp_secret IS NOT NULL, totp_pending IS NOT NULL, created_at, updated_at, phc
             FROM users WHERE name <> '' ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(UserSummary {
                name: r.get(0)?,
                totp: r.get(1)?,
                totp_pending: r.get(2)?,
                created_at: r.get(3)?,
                updated_at: r.get(4)?,
                phc: r.get(5)?,
                hash_current: true,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores a secret that is not used for logins until activated.
    pub fn set_totp_pending(
        &mut self,
        name: &str,
        secret: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET totp_pending = :s, updated_at = :now WHERE name = :name",
            named_params! {":name": name, ":s": secret, ":now": now},
        )
    }

    pub fn totp_pending(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let row: Option<Option<Vec<u8>>> = self
            .conn
            .query_row(
                "SELECT totp_pending FROM users WHERE name = :name",
                named_params! {":name": name},
                |r| r.get(0),
            )
            .optional()?;
        match row {
            None => Err(StoreError::NoSuchUser(name.to_owned())),
            Some(s) => Ok(s.map(Zeroizing::new)),
        }
    }

    /// Makes the pending secret the active one. `used_step` is the step of
    /// the confirming code, so that code cannot be replayed at login.
    pub fn activate_totp(
        &mut self,
        name: &str,
        used_step: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = :step,
                              updated_at = :now
             WHERE name = :name AND totp_pending IS NOT NULL",
            named_params! {":name": name, ":step": used_step, ":now": now},
        )
    }

    pub fn disable_totp(&mut self, name: &str, now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = -1, updated_at = :now
             WHERE name = :name",
            named_params! {":name": name, ":now": now},
        )
    }

    /// Records an accepted code's step; false if that step (or a newer one)
    /// was already used, so two concurrent logins cannot share one code.
    pub fn accept_totp_step(&mut self, name: &str, step: i64) -> Result<bool, StoreError> {
        Ok(accept_totp_step(&self.conn, name, step)?)
    }

    fn update_one(
        &mut self,
        name: &str,
        sql: &str,
        params: &[(&str, &dyn rusqlite::ToSql)],
    ) -> Result<(), StoreError> {
        if self.conn.execute(sql, params)? == 0 {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        Ok(())
    }
}

/// [`Store::accept_totp_step`] inside a caller's transaction.
pub fn accept_totp_step(conn: &Connection, name: &str, step: i64) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE users SET totp_last_step = :step WHERE name = :name AND totp_last_step < :step",
        )?
        .execute(named_params! {":name": name, ":step": step})?;
    Ok(changed == 1)
}

/// Replaces a hash inside a caller's transaction (a rehash at login).
pub fn replace_hash(conn: &Connection, name: &str, phc: &str, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE users SET phc = :phc, updated_at = :now WHERE name = :name")?
        .execute(named_params! {":name": name, ":phc": phc, ":now": now})?;
    Ok(())
}

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

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("veil.db"), OpenMode::CreateIfMissing).unwrap();
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
        Store::open(&dir.path().join("veil.db"), OpenMode::MustExist).unwrap();
    }

    #[test]
    fn a_missing_database_is_not_created_when_it_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open(&dir.path().join("nope.db"), OpenMode::MustExist).unwrap_err();
        assert!(matches!(err, StoreError::Missing { .. }));
        assert!(!dir.path().join("nope.db").exists());
    }

    #[test]
    fn a_corrupt_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("veil.db");
        let garbage = vec![0x5au8; 8192];
        std::fs::write(&path, &garbage).unwrap();
        let err = Store::open(&path, OpenMode::CreateIfMissing).unwrap_err();
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
            Store::open(&path, OpenMode::MustExist),
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
        assert!(store.accept_totp_step("alice", 10).unwrap());
        assert!(!store.accept_totp_step("alice", 10).unwrap());
        assert!(!store.accept_totp_step("alice", 9).unwrap());
        assert!(store.accept_totp_step("alice", 11).unwrap());
    }

    #[test]
    fn a_deleted_database_is_noticed() {
        let (dir, store) = temp_store();
        assert!(store.still_on_disk());
        std::fs::remove_file(dir.path().join("veil.db")).unwrap();
        assert!(!store.still_on_disk());
    }

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
