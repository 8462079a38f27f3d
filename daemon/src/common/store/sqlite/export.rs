//! The SQLite file read whole, for `veilctl store copy` (users with their
//! TOTP and recovery state, ledger rows, known-good pairs). Its own file:
//! only the copy reads every table at once, and not on the login path.

use zeroize::Zeroizing;

use super::SqliteStore;
use crate::common::store::{Export, ExportedUser, LedgerRow, StoreError};

impl SqliteStore {
    /// Everything in the file, for `veilctl store copy` (the dummy row is
    /// left out: each veild writes its own).
    pub fn export(&self) -> Result<Export, StoreError> {
        let mut users = self.conn.prepare(
            "SELECT name, phc, totp_secret, totp_pending, totp_last_step, created_at, updated_at,
                    recovery_key, recovery_hashes, recovery_used
             FROM users WHERE name <> '' ORDER BY name",
        )?;
        let users = users
            .query_map([], |r| {
                Ok(ExportedUser {
                    name: r.get(0)?,
                    phc: r.get(1)?,
                    totp_secret: r.get::<_, Option<Vec<u8>>>(2)?.map(Zeroizing::new),
                    totp_pending: r.get::<_, Option<Vec<u8>>>(3)?.map(Zeroizing::new),
                    totp_last_step: r.get(4)?,
                    created_at: r.get(5)?,
                    updated_at: r.get(6)?,
                    recovery: match (r.get::<_, Option<Vec<u8>>>(7)?, r.get(8)?) {
                        (Some(key), Some(hashes)) => Some((Zeroizing::new(key), hashes, r.get(9)?)),
                        _ => None,
                    },
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut ledger = self.conn.prepare(
            "SELECT kind, user, source, failures, window_start, locked_until, last_seen, locks,
                    locks_remembered_until FROM ledger",
        )?;
        let ledger = ledger
            .query_map([], |r| {
                Ok(LedgerRow {
                    kind: r.get(0)?,
                    user: r.get(1)?,
                    source: r.get(2)?,
                    failures: r.get(3)?,
                    window_start: r.get(4)?,
                    locked_until: r.get(5)?,
                    last_seen: r.get(6)?,
                    locks: r.get(7)?,
                    locks_remembered_until: r.get(8)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut known_good = self
            .conn
            .prepare("SELECT user, source, last_success FROM known_good")?;
        let known_good = known_good
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(Export {
            users,
            ledger,
            known_good,
        })
    }
}
