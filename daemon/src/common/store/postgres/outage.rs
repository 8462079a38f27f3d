//! What a host's outage copy reads from and hands back to the shared
//! store: every user's record, the ledger rows that limit something, and
//! the codes and recovery slots used while the server was away. Its own
//! file: only the outage copy (`common/verify/outage.rs`) calls these.

use super::PgStore;
use crate::common::store::{LedgerRow, StoreError, UserRecord};

impl PgStore {
    /// Every user's record (not the dummy's), for a host's outage copy:
    /// one statement, the columns a login role may read.
    pub fn records(&self) -> Result<Vec<(String, UserRecord)>, StoreError> {
        self.with(|c, _| {
            let rows = c.query(
                "SELECT phc, totp_secret, totp_last_step, recovery_key, recovery_hashes,
                        recovery_used, name FROM users WHERE name <> '' ORDER BY name",
                &[],
            )?;
            Ok(rows.iter().map(|r| (r.get(6), super::record(r))).collect())
        })
    }

    /// The fleet's ledger rows that limit something at `now` (a lock in
    /// force or remembered, failures in their window), at most `cap` of
    /// them, locks in force first, then the most recent: what a host's
    /// outage copy starts from, so that an outage does not wipe a lock or
    /// a count.
    pub fn limiting_rows(
        &self,
        now: i64,
        fail_interval: i64,
        cap: i64,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        self.with(|c, _| {
            let rows = c.query(
                "SELECT kind, username, source, failures, window_start, locked_until,
                        last_seen, locks, locks_remembered_until FROM ledger
                 WHERE locked_until > $1 OR locks_remembered_until > $1
                    OR (failures > 0 AND window_start > $1 - $2)
                 ORDER BY locked_until > $1 DESC, last_seen DESC LIMIT $3",
                &[&now, &fail_interval, &cap],
            )?;
            Ok(rows
                .iter()
                .map(|r| LedgerRow {
                    kind: r.get(0),
                    user: r.get(1),
                    source: r.get(2),
                    failures: r.get(3),
                    window_start: r.get(4),
                    locked_until: r.get(5),
                    last_seen: r.get(6),
                    locks: r.get(7),
                    locks_remembered_until: r.get(8),
                })
                .collect())
        })
    }

    /// Raises a user's code watermark to `step` (never lowers it), and
    /// marks the recovery slots `used` as used when the set is still the
    /// one with `key`: what a host used while the server was unreachable.
    /// Both columns a login role may update.
    pub fn hand_over_use(
        &self,
        name: &str,
        step: i64,
        recovery: Option<(&[u8], i64)>,
    ) -> Result<(), StoreError> {
        self.with(|c, _| {
            c.execute(
                "UPDATE users SET totp_last_step = greatest(totp_last_step, $2)
                 WHERE name = $1 AND name <> ''",
                &[&name, &step],
            )?;
            if let Some((key, used)) = recovery {
                c.execute(
                    "UPDATE users SET recovery_used = recovery_used | $3
                     WHERE name = $1 AND name <> '' AND recovery_key = $2",
                    &[&name, &key, &used],
                )?;
            }
            Ok(())
        })
    }
}
