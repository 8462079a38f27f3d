//! A host's copy of what verification needs, for `[postgres] outage =
//! "local"`: a SQLite store of the same schema (so the verifier runs on it
//! unchanged: the same reservation, one user-or-dummy row, the same
//! success writes) holding the fleet's users as of the last refresh, a
//! local ledger, and a journal of every decision made on it, handed to the
//! fleet when the server answers again.

use std::path::Path;

use rusqlite::params;

use super::{LedgerRow, OpenMode, SqliteStore, Store, StoreError, UserRecord};
use crate::common::ledger::{Charge, Counter, Key, KeyKind, Limits};

/// The journal, beside the store's own tables (not a migration: only a
/// cache file has it).
const JOURNAL: &str = "CREATE TABLE IF NOT EXISTS outage_journal (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    user TEXT NOT NULL,
    source TEXT NOT NULL,
    keys TEXT NOT NULL,
    allowed INTEGER NOT NULL,
    step INTEGER,
    recovery_key BLOB,
    recovery_slot INTEGER
) STRICT";

/// One decision made on the copy.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: i64,
    /// The attempt's keys: a denial's are charged to the fleet's ledger.
    pub charge: Charge,
    pub allowed: bool,
    /// The code's step an allowed login used.
    pub step: Option<i64>,
    /// The recovery code an allowed login used: its set's key and slot.
    pub recovery: Option<(Vec<u8>, u8)>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("at", &self.at)
            .field("charge", &self.charge)
            .field("allowed", &self.allowed)
            .field("step", &self.step)
            .field("recovery_slot", &self.recovery.as_ref().map(|r| r.1))
            .finish()
    }
}

/// The outage copy: a [`SqliteStore`] and its journal.
#[derive(Debug)]
pub struct Cache {
    store: SqliteStore,
}

impl Cache {
    /// Opens (or makes, mode 0600) the copy at `path`.
    pub fn open(path: &Path) -> Result<Cache, StoreError> {
        let mut store = SqliteStore::open(path, OpenMode::CreateIfMissing)?;
        store.conn().execute_batch(JOURNAL)?;
        Ok(Cache { store })
    }

    pub fn store(&mut self) -> &mut SqliteStore {
        &mut self.store
    }

    pub fn store_ref(&self) -> &SqliteStore {
        &self.store
    }

    /// False once the file was deleted or replaced.
    pub fn still_usable(&self) -> bool {
        self.store.still_usable()
    }

    /// Writes `users` (the fleet's rows) into the copy. With `complete`
    /// (every user of the fleet), a user not among them is removed, so a
    /// user deleted in the fleet never logs in from the copy. A code step
    /// or recovery slot used here and not yet handed over is kept (max, or).
    pub fn put_users(
        &mut self,
        users: &[(String, UserRecord)],
        complete: bool,
        now: i64,
    ) -> Result<usize, StoreError> {
        let tx = self.store.conn().transaction()?;
        let mut removed = 0;
        if complete {
            tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS fleet_names (name TEXT PRIMARY KEY); DELETE FROM fleet_names")?;
            for (name, _) in users {
                tx.execute("INSERT OR IGNORE INTO fleet_names VALUES (?1)", [name])?;
            }
            removed = tx.execute(
                "DELETE FROM users WHERE name <> '' AND name NOT IN (SELECT name FROM fleet_names)",
                [],
            )?;
        }
        for (name, r) in users {
            let secret = r.totp_secret.as_deref().map(Vec::as_slice);
            let rkey = r.recovery.as_ref().map(|s| s.key.to_vec());
            let rhashes = r.recovery.as_ref().map(|s| s.hashes_blob());
            let rused = r.recovery.as_ref().map_or(0, |s| i64::from(s.used));
            tx.execute(
                "INSERT INTO users (name, phc, totp_secret, totp_pending, totp_last_step,
                     created_at, updated_at, recovery_key, recovery_hashes, recovery_used)
                 VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?5, ?6, ?7, ?8)
                 ON CONFLICT (name) DO UPDATE SET
                     phc = excluded.phc,
                     totp_secret = excluded.totp_secret,
                     totp_last_step = max(users.totp_last_step, excluded.totp_last_step),
                     updated_at = excluded.updated_at,
                     recovery_used = CASE WHEN users.recovery_key IS excluded.recovery_key
                         THEN users.recovery_used | excluded.recovery_used
                         ELSE excluded.recovery_used END,
                     recovery_key = excluded.recovery_key,
                     recovery_hashes = excluded.recovery_hashes",
                params![
                    name,
                    r.phc,
                    secret,
                    r.totp_last_step,
                    now,
                    rkey,
                    rhashes,
                    rused
                ],
            )?;
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Replaces the copy's ledger with the fleet's rows that limit
    /// something ([`super::PgStore::limiting_rows`]): locks and counts in
    /// force in the fleet hold on the copy, and a key the fleet unlocked
    /// is unlocked here. Called right after the journal was handed over,
    /// so the fleet's rows already hold this host's offline failures.
    pub fn put_ledger(&mut self, rows: &[LedgerRow], limits: &Limits) -> Result<(), StoreError> {
        let tx = self.store.conn().transaction()?;
        tx.execute("DELETE FROM ledger", [])?;
        for row in rows {
            let counter = Counter {
                failures: row.failures,
                window_start: row.window_start,
                locked_until: row.locked_until,
                locks: row.locks,
                locks_remembered_until: row.locks_remembered_until,
            };
            tx.execute(
                "INSERT OR REPLACE INTO ledger (kind, user, source, failures, window_start,
                     locked_until, last_seen, locks, locks_remembered_until, writes, harmless_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10)",
                params![
                    row.kind,
                    row.user,
                    row.source,
                    row.failures,
                    row.window_start,
                    row.locked_until,
                    row.last_seen,
                    row.locks,
                    row.locks_remembered_until,
                    counter.harmless_at(limits),
                ],
            )?;
        }
        tx.execute(
            "UPDATE ledger_size SET rows = (SELECT count(*) FROM ledger) WHERE id = 1",
            [],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Users in the copy (the dummy aside).
    pub fn users(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .store
            .conn()
            .query_row("SELECT count(*) FROM users WHERE name <> ''", [], |r| {
                r.get(0)
            })?)
    }

    /// Records one decision made on the copy (durably: the file is
    /// `synchronous = FULL`).
    pub fn record(&mut self, entry: &Entry) -> Result<(), StoreError> {
        let keys: Vec<[&str; 3]> = entry
            .charge
            .keys
            .iter()
            .map(|k| [k.kind.as_str(), k.user.as_str(), k.source.as_str()])
            .collect();
        let keys = serde_json::to_string(&keys).unwrap_or_else(|_| "[]".to_owned());
        self.store.conn().execute(
            "INSERT INTO outage_journal (at, user, source, keys, allowed, step, recovery_key,
                 recovery_slot) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                entry.at,
                entry.charge.user,
                entry.charge.source,
                keys,
                entry.allowed,
                entry.step,
                entry.recovery.as_ref().map(|r| r.0.as_slice()),
                entry.recovery.as_ref().map(|r| r.1),
            ],
        )?;
        Ok(())
    }

    /// The journal, oldest first, with each entry's id.
    pub fn journal(&mut self) -> Result<Vec<(i64, Entry)>, StoreError> {
        let conn = self.store.conn();
        let mut st = conn.prepare(
            "SELECT id, at, user, source, keys, allowed, step, recovery_key, recovery_slot
             FROM outage_journal ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let keys: String = r.get(4)?;
            let rkey: Option<Vec<u8>> = r.get(7)?;
            let rslot: Option<u8> = r.get(8)?;
            Ok((
                r.get::<_, i64>(0)?,
                Entry {
                    at: r.get(1)?,
                    charge: Charge {
                        user: r.get(2)?,
                        source: r.get(3)?,
                        keys: parse_keys(&keys),
                    },
                    allowed: r.get(5)?,
                    step: r.get(6)?,
                    recovery: rkey.zip(rslot),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes the entry `id`, once the fleet has it.
    pub fn forget(&mut self, id: i64) -> Result<(), StoreError> {
        self.store
            .conn()
            .execute("DELETE FROM outage_journal WHERE id = ?1", [id])?;
        Ok(())
    }
}

/// A journal entry's keys; one that does not parse is left out (the
/// file is veild's own, written by [`Cache::record`]).
fn parse_keys(text: &str) -> Vec<Key> {
    let parts: Vec<[String; 3]> = serde_json::from_str(text).unwrap_or_default();
    parts
        .into_iter()
        .filter_map(|[kind, user, source]| {
            Some(Key {
                kind: KeyKind::parse(&kind)?,
                user,
                source,
            })
        })
        .collect()
}
