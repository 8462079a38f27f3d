//! The PostgreSQL back end: one store for many hosts. Each veild worker
//! holds one connection; every check-and-reserve is one transaction that
//! takes a transaction-level advisory lock per key (in a fixed order, so
//! two attempts never deadlock, and a key that has no row yet is locked
//! too), so concurrent guesses through any number of hosts are counted one
//! after the other. Any error drops the connection: the next request opens
//! a new one, so veild recovers by itself when the server comes back.
//! Numbered migrations are recorded in `veil_schema`, and so is the
//! generation of the functions file applied after them (`functions.rs`).

mod connect;
mod functions;
mod hints;
mod ledger;
mod locks;
mod outage;
mod reserve;
mod schema;
#[cfg(any(test, feature = "pg-scratch"))]
pub mod scratch;
mod sessions;

use std::cell::{Cell, RefCell};

use postgres::{Client, Statement};
use zeroize::Zeroizing;

use super::{OpenMode, Reserved, SessionKey, Store, StoreError, Success, UserRecord, UserSummary};
pub use crate::common::config::pg::{check_config, is_url, redact};
use crate::common::ledger::{self as ledger_rules, Charge, Entry, KeyKind, Limits, Reservation};
use crate::common::recovery::RecoverySet;
pub use connect::{PasswordFileError, PgSettings, SetupError, TlsError, read_password_file};
pub use ledger::UserConflict;
use schema::MIGRATIONS;
pub use schema::{grant_roles, schema_version};

/// How often (local seconds) a connection measures the server's clock.
const CLOCK_RECHECK_S: i64 = 60;

/// Seconds of difference between a host's clock and the server's that
/// count as none: whole-second clocks read a round trip apart differ by
/// one now and then, and a host in sync by NTP keeps its own.
pub const CLOCK_DEAD_BAND_S: i64 = 2;

/// What to add to this host's clock to write in the server's time.
pub fn fleet_offset(server_epoch: f64, local_now: i64) -> i64 {
    let offset = (server_epoch.floor() as i64).saturating_sub(local_now);
    if offset.abs() <= CLOCK_DEAD_BAND_S {
        0
    } else {
        offset
    }
}

/// A PHC string's algorithm, version and parameters, with the `$` that
/// ends them (`$argon2id$v=19$m=19456,t=2,p=1$`): what makes two hashes
/// cost the same. The whole string if it has fewer parts.
pub fn phc_params(phc: &str) -> &str {
    match phc.match_indices('$').nth(3) {
        Some((i, _)) => &phc[..=i],
        None => phc,
    }
}

/// The statements of the login path, prepared once per connection.
struct Statements {
    user_or_dummy: Statement,
    read: Statement,
    read_with_user: Statement,
    reserve: Statement,
    reserve_with_user: Statement,
    lock_read: Statement,
    write_counters: Statement,
    success: Statement,
}

impl Statements {
    fn prepare(client: &mut Client) -> Result<Statements, postgres::Error> {
        Ok(Statements {
            user_or_dummy: client.prepare(
                "SELECT phc, totp_secret, totp_last_step, recovery_key, recovery_hashes,
                        recovery_used, name <> '' FROM users
                 WHERE name IN ($1, '') ORDER BY name DESC LIMIT 1",
            )?,
            read: client.prepare(reserve::READ)?,
            read_with_user: client.prepare(reserve::READ_WITH_USER)?,
            reserve: client.prepare(reserve::RESERVE)?,
            reserve_with_user: client.prepare(reserve::RESERVE_WITH_USER)?,
            lock_read: client.prepare(reserve::LOCK_READ)?,
            write_counters: client.prepare(reserve::WRITE_COUNTERS)?,
            success: client.prepare(ledger::SUCCESS)?,
        })
    }
}

/// A connection to the shared store.
pub struct PgStore {
    settings: PgSettings,
    client: RefCell<Client>,
    statements: Statements,
    /// Set by any error: the connection may be dead or mid-transaction,
    /// so the caller opens a new one.
    broken: Cell<bool>,
    /// The ledger had more rows than the cap at this host's last prune:
    /// attempts whose keys have no row are charged to overflow keys.
    ledger_full: bool,
    /// (local time it was measured at, server clock minus local clock).
    clock: Option<(i64, i64)>,
    /// This role may write users' hashes (the owner, veil_admin): a login
    /// then stores a rehash. A login role (veil_login) may not, so its
    /// logins keep the hash they checked; veilctl or passwd renews it.
    may_rehash: bool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.settings.target)
            .field("broken", &self.broken.get())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    pub fn open(settings: &PgSettings, mode: OpenMode) -> Result<PgStore, StoreError> {
        Self::open_release(settings, mode, &schema::THIS_RELEASE)
    }

    /// Opens as a build of `release` would (the tests play older ones).
    fn open_release(
        settings: &PgSettings,
        mode: OpenMode,
        release: &schema::Release,
    ) -> Result<PgStore, StoreError> {
        let mut client = settings.connect()?;
        schema::migrate_to(&mut client, settings, mode, release)?;
        let statements = Statements::prepare(&mut client).map_err(|e| settings.pg_error(e))?;
        let may_rehash = client
            .query_one("SELECT has_column_privilege('users', 'phc', 'UPDATE')", &[])
            .map_err(|e| settings.pg_error(e))?
            .get(0);
        Ok(PgStore {
            settings: settings.clone(),
            client: RefCell::new(client),
            statements,
            broken: Cell::new(false),
            ledger_full: false,
            clock: None,
            may_rehash,
        })
    }

    pub fn target(&self) -> &str {
        &self.settings.target
    }

    /// The shared dummy row's hash, if there is one: veild compares its
    /// parameters with its own at start.
    pub fn dummy_phc(&self) -> Result<Option<String>, StoreError> {
        self.with(|c, _| {
            Ok(c.query_opt("SELECT phc FROM users WHERE name = ''", &[])?
                .map(|row| row.get(0)))
        })
    }

    /// Runs `f` on the connection; any error marks it broken.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client, &Statements) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut client = self.client.borrow_mut();
        f(&mut client, &self.statements).map_err(|e| {
            self.broken.set(true);
            self.settings.pg_error(e)
        })
    }

    fn update_one(
        &self,
        name: &str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<(), StoreError> {
        if self.with(|c, _| c.execute(sql, params))? == 0 {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        Ok(())
    }

    /// Copies users, TOTP state, ledger rows and known-good pairs in, in
    /// one transaction; refuses (and writes nothing) if a user exists here
    /// with a different hash or secret. Returns (users added, users already
    /// the same, ledger rows, known-good pairs).
    pub fn import(&mut self, data: &super::Export) -> Result<super::Imported, StoreError> {
        let settings = self.settings.clone();
        let result = self.with(|c, _| ledger::import(c, data));
        match result {
            Ok(Ok(imported)) => Ok(imported),
            Ok(Err(conflict)) => Err(StoreError::CopyConflict {
                target: settings.target,
                source: conflict,
            }),
            Err(e) => Err(e),
        }
    }
}

/// A row's first six columns: phc, totp_secret, totp_last_step and the
/// recovery columns (absent or malformed ones are no set).
fn record(row: &postgres::Row) -> UserRecord {
    record_at(row, 0)
}

/// [`record`] from the columns that start at `at`.
fn record_at(row: &postgres::Row, at: usize) -> UserRecord {
    let key: Option<Vec<u8>> = row.get(at + 3);
    let hashes: Option<Vec<u8>> = row.get(at + 4);
    UserRecord {
        phc: row.get(at),
        totp_secret: row.get::<_, Option<Vec<u8>>>(at + 1).map(Zeroizing::new),
        totp_last_step: row.get(at + 2),
        recovery: key.zip(hashes).and_then(|(key, hashes)| {
            RecoverySet::from_parts(key, &hashes, row.get::<_, i64>(at + 5))
        }),
    }
}

impl Store for PgStore {
    fn still_usable(&self) -> bool {
        !self.broken.get() && !self.client.borrow().is_closed()
    }

    fn as_pg(&mut self) -> Option<&mut PgStore> {
        Some(self)
    }

    fn put_dummy(&mut self, record: &UserRecord, now: i64) -> Result<(), StoreError> {
        let secret = record.totp_secret.as_deref().map(Vec::as_slice);
        let rkey = record.recovery.as_ref().map(|r| r.key.to_vec());
        let rhashes = record.recovery.as_ref().map(RecoverySet::hashes_blob);
        let rused = record.recovery.as_ref().map_or(0, |r| i64::from(r.used));
        let params = phc_params(&record.phc);
        // One dummy for the fleet: written when missing, or when it lacks a
        // part this host's has or was hashed with other parameters (each
        // such host rewrites it; veild warns at start). Not on every
        // connection of every host, which would only churn the row.
        // Through a function: a login role may write this row only.
        self.with(|c, _| {
            c.execute(
                "SELECT veil_put_dummy($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &record.phc,
                    &secret,
                    &record.totp_last_step,
                    &now,
                    &rkey,
                    &rhashes,
                    &rused,
                    &params,
                ],
            )
        })?;
        Ok(())
    }

    fn user_or_dummy(&self, name: &str) -> Result<Option<(UserRecord, bool)>, StoreError> {
        self.with(|c, st| {
            Ok(c.query_opt(&st.user_or_dummy, &[&name])?
                .map(|row| (record(&row), row.get(6))))
        })
    }

    fn reserve(
        &mut self,
        limits: &Limits,
        charge: Charge,
        now: i64,
    ) -> Result<Reservation, StoreError> {
        let full = self.ledger_full;
        self.with(|c, st| reserve::reserve(c, st, limits, charge, full, now))
    }

    fn reserve_and_look_up(
        &mut self,
        limits: &Limits,
        charge: Charge,
        name: &str,
        now: i64,
    ) -> Result<Reserved, StoreError> {
        let full = self.ledger_full;
        let hints = self.settings.hints.clone();
        let (reservation, row) = self.with(|c, st| {
            reserve::reserve_looking_up(c, st, limits, charge, name, full, now, &hints)
        })?;
        Ok(Reserved {
            reservation,
            row: Ok(row.map(|r| (record_at(&r, 8), r.get(14)))),
        })
    }

    fn commit_success(&mut self, limits: &Limits, success: &Success) -> Result<bool, StoreError> {
        let rehash = self.may_rehash;
        let written = self.with(|c, st| ledger::commit_success(c, st, limits, success, rehash))?;
        if written && ledger_rules::records_known_good(limits) {
            // As veil_success left it: the pair known-good since now.
            let pair = success.reservation;
            self.settings
                .hints
                .saw(&pair.user, &pair.source, Some(success.now));
        }
        Ok(written)
    }

    fn fleet_now(&mut self, local_now: i64) -> Result<i64, StoreError> {
        if let Some((_, offset)) = self
            .clock
            .filter(|(at, _)| (*at..*at + CLOCK_RECHECK_S).contains(&local_now))
        {
            return Ok(local_now.saturating_add(offset));
        }
        let server: f64 = self.with(|c, _| {
            Ok(
                c.query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])?
                    .get(0),
            )
        })?;
        let offset = fleet_offset(server, local_now);
        self.clock = Some((local_now, offset));
        Ok(local_now.saturating_add(offset))
    }

    fn prune(&mut self, limits: &Limits, now: i64) -> Result<usize, StoreError> {
        let (removed, full) = self.with(|c, _| ledger::prune(c, limits, now))?;
        self.ledger_full = full;
        Ok(removed)
    }

    fn fresh_bind(&mut self, key: &SessionKey, now: i64) -> Result<(), StoreError> {
        self.with(|c, _| sessions::bind(c, key, now))?;
        Ok(())
    }

    fn fresh_bound_at(&self, key: &SessionKey) -> Result<Option<i64>, StoreError> {
        self.with(|c, _| sessions::bound_at(c, key))
    }

    fn fresh_unbind(&mut self, key: &SessionKey) -> Result<usize, StoreError> {
        self.with(|c, _| sessions::unbind(c, key))
    }

    fn fresh_prune(&mut self, before: i64) -> Result<usize, StoreError> {
        self.with(|c, _| sessions::prune(c, before))
    }

    fn self_passwd(
        &mut self,
        name: &str,
        old_phc: &str,
        new_phc: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.with(|c, _| {
            c.query_one(
                "SELECT veil_self_passwd($1, $2, $3, $4)",
                &[&name, &old_phc, &new_phc, &now],
            )?
            .try_get(0)
        })
    }

    fn self_enrol(
        &mut self,
        name: &str,
        secret: &[u8],
        step: i64,
        system: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        let done: bool = self.with(|c, _| {
            c.query_one(
                "SELECT veil_self_enrol($1, $2, $3, $4, $5)",
                &[&name, &secret, &step, &now, &system],
            )?
            .try_get(0)
        })?;
        if !done {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        Ok(())
    }

    fn self_recovery(
        &mut self,
        name: &str,
        set: &RecoverySet,
        now: i64,
    ) -> Result<bool, StoreError> {
        let key = set.key.to_vec();
        let hashes = set.hashes_blob();
        self.with(|c, _| {
            c.query_one(
                "SELECT veil_self_recovery($1, $2, $3, $4)",
                &[&name, &key, &hashes, &now],
            )?
            .try_get(0)
        })
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.with(|c, _| {
            Ok(c.query_opt(
                "SELECT phc, totp_secret, totp_last_step, recovery_key, recovery_hashes,
                        recovery_used
                 FROM users WHERE name = $1 AND name <> ''",
                &[&name],
            )?
            .map(|row| record(&row)))
        })
    }

    fn add_user(&mut self, name: &str, phc: &str, now: i64) -> Result<(), StoreError> {
        let inserted = self.with(|c, _| {
            c.execute(
                "INSERT INTO users (name, phc, created_at, updated_at) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &phc, &now],
            )
        })?;
        if inserted == 0 {
            return Err(StoreError::UserExists(name.to_owned()));
        }
        Ok(())
    }

    fn set_password(&mut self, name: &str, phc: &str, now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET phc = $2, updated_at = $3 WHERE name = $1",
            &[&name, &phc, &now],
        )
    }

    fn delete_user(&mut self, name: &str) -> Result<(), StoreError> {
        self.unlock_user(name)?;
        self.update_one(name, "DELETE FROM users WHERE name = $1", &[&name])
    }

    fn list_users(&self) -> Result<Vec<UserSummary>, StoreError> {
        self.with(|c, _| {
            // A function: a login role (`veilctl enable` on a host) may
            // see that a secret is pending, not read it.
            let rows = c.query("SELECT * FROM veil_list_users()", &[])?;
            Ok(rows
                .iter()
                .map(|r| UserSummary {
                    name: r.get(0),
                    totp: r.get(1),
                    totp_pending: r.get(2),
                    created_at: r.get(3),
                    updated_at: r.get(4),
                    phc: r.get(5),
                    hash_current: true,
                    system_hash: None,
                })
                .collect())
        })
    }

    fn set_totp_pending(&mut self, name: &str, secret: &[u8], now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET totp_pending = $2, updated_at = $3 WHERE name = $1",
            &[&name, &secret, &now],
        )
    }

    fn totp_pending(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let row = self.with(|c, _| {
            Ok(
                c.query_opt("SELECT totp_pending FROM users WHERE name = $1", &[&name])?
                    .map(|r| r.get::<_, Option<Vec<u8>>>(0)),
            )
        })?;
        match row {
            None => Err(StoreError::NoSuchUser(name.to_owned())),
            Some(s) => Ok(s.map(Zeroizing::new)),
        }
    }

    fn activate_totp(&mut self, name: &str, used_step: i64, now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL,
                              totp_last_step = $2, updated_at = $3
             WHERE name = $1 AND totp_pending IS NOT NULL",
            &[&name, &used_step, &now],
        )
    }

    fn disable_totp(&mut self, name: &str, now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = -1,
                              updated_at = $2
             WHERE name = $1",
            &[&name, &now],
        )
    }

    fn set_recovery(
        &mut self,
        name: &str,
        set: Option<&RecoverySet>,
        now: i64,
    ) -> Result<(), StoreError> {
        let key = set.map(|s| s.key.to_vec());
        let hashes = set.map(RecoverySet::hashes_blob);
        let used = set.map_or(0, |s| i64::from(s.used));
        self.update_one(
            name,
            "UPDATE users SET recovery_key = $2, recovery_hashes = $3, recovery_used = $4,
                              updated_at = $5
             WHERE name = $1 AND name <> ''",
            &[&name, &key, &hashes, &used, &now],
        )
    }

    fn locks(&mut self, limits: &Limits, now: i64) -> Result<Vec<Entry>, StoreError> {
        self.with(|c, _| ledger::locks(c, limits, now))
    }

    fn status(&mut self, limits: &Limits, user: &str, now: i64) -> Result<Vec<Entry>, StoreError> {
        self.with(|c, _| ledger::status(c, limits, user, now))
    }

    fn unlock_user(&mut self, user: &str) -> Result<usize, StoreError> {
        self.with(|c, _| {
            Ok(c.execute("DELETE FROM ledger WHERE username = $1", &[&user])? as usize)
        })
    }

    fn unlock_source(&mut self, source: &str) -> Result<usize, StoreError> {
        self.with(|c, _| {
            Ok(c.execute("DELETE FROM ledger WHERE source = $1", &[&source])? as usize)
        })
    }

    fn ledger_rows(&self) -> Result<i64, StoreError> {
        self.with(|c, _| Ok(c.query_one("SELECT count(*) FROM ledger", &[])?.get(0)))
    }

    fn locks_in_force(&self, now: i64) -> Result<Vec<(KeyKind, i64)>, StoreError> {
        self.with(|c, _| ledger::locks_in_force(c, now))
    }
}

impl PgStore {
    /// The schema version this build speaks (the number of migrations), for
    /// `--version` and the refusal of a newer database.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_errors;
#[cfg(test)]
mod tests_fresh;
#[cfg(test)]
mod tests_functions;
#[cfg(test)]
mod tests_roles;
#[cfg(test)]
mod tests_round_trips;
