//! The SQLite back end: one file with users, TOTP state and the ledger;
//! WAL (veilctl reads while veild writes), `synchronous = FULL` (a
//! committed failure survives a power cut), numbered migrations keyed on
//! `PRAGMA user_version`.

mod export;
mod file;
mod ledger;
mod sessions;

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, named_params};
use zeroize::Zeroizing;

use super::{OpenMode, SessionKey, Store, StoreError, Success, UserRecord, UserSummary};
use crate::common::ledger::{Charge, Entry, KeyKind, Limits, Reservation};
use crate::common::recovery::RecoverySet;

/// Numbered migrations; `PRAGMA user_version` records how many have run.
/// Each file says why it is there.
const MIGRATIONS: &[&str] = &[
    // 1: users and the ledger.
    include_str!("sqlite/migrations/0001_users_and_ledger.sql"),
    // 2: escalating locks, and the (user, source) pairs that succeeded.
    include_str!("sqlite/migrations/0002_escalation_known_good.sql"),
    // 3: every attempt writes alike (no insert trigger, no secondary indexes).
    include_str!("sqlite/migrations/0003_uniform_writes.sql"),
    // 4: recovery codes, in the user's row.
    include_str!("sqlite/migrations/0004_recovery_codes.sql"),
    // 5: `harmless_at`, indexed: what prune and eviction may take.
    include_str!("sqlite/migrations/0005_harmless_at.sql"),
    // 6: the fresh-code window's session bindings.
    include_str!("sqlite/migrations/0006_fresh_code_sessions.sql"),
];

/// A row's recovery columns as a set; absent or malformed columns are no set.
fn recovery_of(key: Option<Vec<u8>>, hashes: Option<Vec<u8>>, used: i64) -> Option<RecoverySet> {
    RecoverySet::from_parts(key?, &hashes?, used)
}

/// The SQLite back end: one file, WAL, `synchronous = FULL`.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Device and inode of the file opened, to notice it being replaced or deleted.
    identity: (u64, u64),
}

impl SqliteStore {
    pub fn open(path: &Path, mode: OpenMode) -> Result<SqliteStore, StoreError> {
        let io_err = |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::PermissionDenied {
                StoreError::PermissionDenied {
                    path: path.to_owned(),
                }
            } else {
                StoreError::Io {
                    path: path.to_owned(),
                    source,
                }
            }
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
                // process umask; its -wal and -shm files copy these bits. (No
                // connection to a file that did not exist can hold a lock.)
                // Another process may create it meanwhile (veild and veilctl
                // at once): then that one is used.
                let created = match mode {
                    OpenMode::CreateAsDirOwner => file::create_as_dir_owner(path),
                    _ => std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(path)
                        .map(drop),
                };
                match created {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err(e)),
                }
            }
            Err(e) => return Err(io_err(e)),
        }
        // veild's account may write this directory: nothing it planted
        // there may steer root's veilctl into another file.
        crate::common::files::check_not_planted(path).map_err(|p| StoreError::Refused {
            path: p.path,
            reason: p.reason,
        })?;
        // SQLite opens a file it may only read as read-only, and says so
        // only at the first write: ask the kernel first. access(2), not an
        // open: closing any descriptor of the file would drop every POSIX
        // lock this process holds on it, those of veild's other connections
        // too, and veilctl would then take itself for the last user and
        // delete the WAL under them.
        nix::unistd::access(
            path,
            nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
        )
        .map_err(|e| io_err(e.into()))?;
        let conn = Connection::open_with_flags(
            file::real_dir(path),
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI
                // A link swapped in after the check fails to open.
                // (SQLite refuses a link anywhere in the path: the
                // directory's own links, root's to make, are resolved first.)
                | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )?;
        let meta = std::fs::metadata(path).map_err(io_err)?;
        let mut store = SqliteStore {
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
            Some(rusqlite::ErrorCode::PermissionDenied)
            | Some(rusqlite::ErrorCode::ReadOnly)
            | Some(rusqlite::ErrorCode::CannotOpen) => StoreError::PermissionDenied {
                path: self.path.clone(),
            },
            _ => StoreError::Sql(e),
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

impl Store for SqliteStore {
    fn still_usable(&self) -> bool {
        self.still_on_disk()
    }

    /// Writes the record unknown names are checked against, as a row
    /// under the empty name (which no request can carry), so that every
    /// lookup reads and parses one row the same way.
    fn put_dummy(&mut self, record: &UserRecord, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO users (name, phc, totp_secret, totp_last_step, recovery_key,
                                recovery_hashes, recovery_used, created_at, updated_at)
             VALUES ('', :phc, :secret, :step, :rkey, :rhashes, :rused, :now, :now)
             ON CONFLICT (name) DO UPDATE SET phc = excluded.phc, totp_secret = excluded.totp_secret,
                 totp_last_step = excluded.totp_last_step, recovery_key = excluded.recovery_key,
                 recovery_hashes = excluded.recovery_hashes, recovery_used = excluded.recovery_used,
                 updated_at = excluded.updated_at",
            named_params! {
                ":phc": record.phc,
                ":secret": record.totp_secret.as_deref().map(Vec::as_slice),
                ":step": record.totp_last_step,
                ":rkey": record.recovery.as_ref().map(|r| r.key.to_vec()),
                ":rhashes": record.recovery.as_ref().map(RecoverySet::hashes_blob),
                ":rused": record.recovery.as_ref().map_or(0, |r| i64::from(r.used)),
                ":now": now,
            },
        )?;
        Ok(())
    }

    /// The user's row, or else the dummy row: one statement, one row read
    /// and parsed either way. `None` only if the dummy row is missing.
    fn user_or_dummy(&self, name: &str) -> Result<Option<(UserRecord, bool)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT phc, totp_secret, totp_last_step, name <> '',
                        recovery_key, recovery_hashes, recovery_used FROM users
                 WHERE name IN (:name, '') ORDER BY name DESC LIMIT 1",
            )?
            .query_row(named_params! {":name": name}, |r| {
                Ok((
                    UserRecord {
                        phc: r.get(0)?,
                        totp_secret: r.get::<_, Option<Vec<u8>>>(1)?.map(Zeroizing::new),
                        totp_last_step: r.get(2)?,
                        recovery: recovery_of(r.get(4)?, r.get(5)?, r.get(6)?),
                    },
                    r.get(3)?,
                ))
            })
            .optional()?)
    }

    fn reserve(
        &mut self,
        limits: &Limits,
        charge: Charge,
        now: i64,
    ) -> Result<Reservation, StoreError> {
        Ok(ledger::reserve(&mut self.conn, limits, charge, now)?)
    }

    fn commit_success(&mut self, limits: &Limits, success: &Success) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(step) = success.step {
            // Compare-and-set: two logins racing with one code win once.
            let taken = tx
                .prepare_cached(
                    "UPDATE users SET totp_last_step = :step
                     WHERE name = :name AND totp_last_step < :step",
                )?
                .execute(named_params! {":name": success.user, ":step": step})?;
            if taken == 0 {
                return Ok(false);
            }
        }
        if let Some(used) = success.recovery {
            // Compare-and-set on the slot's bit, in the set that was checked.
            let bit = 1i64 << used.slot;
            let taken = tx
                .prepare_cached(
                    "UPDATE users SET recovery_used = recovery_used | :bit
                     WHERE name = :name AND recovery_key = :key AND recovery_used & :bit = 0",
                )?
                .execute(named_params! {":name": success.user, ":bit": bit, ":key": used.key})?;
            if taken == 0 {
                return Ok(false);
            }
        }
        ledger::record_success(&tx, limits, success.reservation, success.now)?;
        if let Some(phc) = success.new_hash {
            tx.prepare_cached("UPDATE users SET phc = :phc, updated_at = :now WHERE name = :name")?
                .execute(named_params! {":name": success.user, ":phc": phc, ":now": success.now})?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn prune(&mut self, limits: &Limits, now: i64) -> Result<usize, StoreError> {
        Ok(ledger::prune(&mut self.conn, limits, now)?)
    }

    fn fresh_bind(&mut self, key: &SessionKey, now: i64) -> Result<(), StoreError> {
        Ok(sessions::bind(&self.conn, key, now)?)
    }

    fn fresh_bound_at(&self, key: &SessionKey) -> Result<Option<i64>, StoreError> {
        Ok(sessions::bound_at(&self.conn, key)?)
    }

    fn fresh_unbind(&mut self, key: &SessionKey) -> Result<usize, StoreError> {
        Ok(sessions::unbind(&self.conn, key)?)
    }

    fn fresh_prune(&mut self, before: i64) -> Result<usize, StoreError> {
        Ok(sessions::prune(&self.conn, before)?)
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT phc, totp_secret, totp_last_step, recovery_key, recovery_hashes, recovery_used
                 FROM users WHERE name = :name AND name <> ''",
            )?
            .query_row(named_params! {":name": name}, |r| {
                Ok(UserRecord {
                    phc: r.get(0)?,
                    totp_secret: r.get::<_, Option<Vec<u8>>>(1)?.map(Zeroizing::new),
                    totp_last_step: r.get(2)?,
                    recovery: recovery_of(r.get(3)?, r.get(4)?, r.get(5)?),
                })
            })
            .optional()?)
    }

    fn add_user(&mut self, name: &str, phc: &str, now: i64) -> Result<(), StoreError> {
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

    fn set_password(&mut self, name: &str, phc: &str, now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET phc = :phc, updated_at = :now WHERE name = :name",
            named_params! {":name": name, ":phc": phc, ":now": now},
        )
    }

    fn delete_user(&mut self, name: &str) -> Result<(), StoreError> {
        ledger::unlock_user(&mut self.conn, name)?;
        self.update_one(
            name,
            "DELETE FROM users WHERE name = :name",
            named_params! {":name": name},
        )
    }

    fn list_users(&self) -> Result<Vec<UserSummary>, StoreError> {
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
                system_hash: None,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores a secret that is not used for logins until activated.
    fn set_totp_pending(&mut self, name: &str, secret: &[u8], now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET totp_pending = :s, updated_at = :now WHERE name = :name",
            named_params! {":name": name, ":s": secret, ":now": now},
        )
    }

    fn totp_pending(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
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
    fn activate_totp(&mut self, name: &str, used_step: i64, now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = :step,
                              updated_at = :now
             WHERE name = :name AND totp_pending IS NOT NULL",
            named_params! {":name": name, ":step": used_step, ":now": now},
        )
    }

    fn disable_totp(&mut self, name: &str, now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = -1, updated_at = :now
             WHERE name = :name",
            named_params! {":name": name, ":now": now},
        )
    }

    fn set_recovery(
        &mut self,
        name: &str,
        set: Option<&RecoverySet>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET recovery_key = :key, recovery_hashes = :hashes, recovery_used = :used,
                              updated_at = :now
             WHERE name = :name AND name <> ''",
            named_params! {
                ":name": name,
                ":key": set.map(|s| s.key.to_vec()),
                ":hashes": set.map(RecoverySet::hashes_blob),
                ":used": set.map_or(0, |s| i64::from(s.used)),
                ":now": now,
            },
        )
    }

    fn locks(&mut self, limits: &Limits, now: i64) -> Result<Vec<Entry>, StoreError> {
        Ok(ledger::locks(&self.conn, limits, now)?)
    }

    fn status(&mut self, limits: &Limits, user: &str, now: i64) -> Result<Vec<Entry>, StoreError> {
        Ok(ledger::status(&self.conn, limits, user, now)?)
    }

    fn unlock_user(&mut self, user: &str) -> Result<usize, StoreError> {
        Ok(ledger::unlock_user(&mut self.conn, user)?)
    }

    fn unlock_source(&mut self, source: &str) -> Result<usize, StoreError> {
        Ok(ledger::unlock_source(&mut self.conn, source)?)
    }

    fn ledger_rows(&self) -> Result<i64, StoreError> {
        Ok(ledger::row_count(&self.conn)?)
    }

    fn locks_in_force(&self, now: i64) -> Result<Vec<(KeyKind, i64)>, StoreError> {
        Ok(ledger::locks_in_force(&self.conn, now)?)
    }
}

impl SqliteStore {
    /// The schema version this build speaks (the number of migrations), for
    /// `--version` and the refusal of a newer database.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
}

#[cfg(test)]
mod tests;
