//! `[postgres] outage = "local"`: while the shared store does not answer,
//! a request is decided on the host's copy ([`Cache`]) by the same code
//! (same reservation on the copy's own ledger, same limits, same success
//! writes, so a code's step is taken on this host), and every such
//! decision is journaled. When the store answers again, a tick off the
//! login path hands the journal to the fleet (each denial charged through
//! the fleet's own reservation, each used step and recovery slot raised
//! there) and refreshes the copy.

use std::path::PathBuf;

use crate::common::config::Config;
use crate::common::config::pg::Outage;
use crate::common::ledger::{self, Charge};
use crate::common::store::outage::{Cache, Entry};
use crate::common::store::{self, Location, StoreError, UserRecord};
use crate::common::totp::CodeCheck;

use super::{Reason, Verifier, VerifierError};

static TICK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The most ledger rows a refresh copies (locks first): a spray's worth of
/// counts is not copied to every host every minute.
pub const COPIED_ROWS: i64 = 100_000;

/// The copy's path, when the config asks for one (a PostgreSQL store
/// with `outage = "local"`).
pub(super) fn cache_path(config: &Config) -> Option<PathBuf> {
    match (Location::of(config), config.postgres.outage) {
        (Location::Postgres(_), Outage::Local) => Some(config.postgres.outage_cache.clone()),
        _ => None,
    }
}

/// What one tick handed to the fleet and copied from it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HandOver {
    /// Offline denials charged to the fleet's ledger.
    pub failures: usize,
    /// Offline successes whose code step (or recovery slot) the fleet now has.
    pub uses: usize,
    /// Users in the copy after the refresh.
    pub users: usize,
    /// Users removed from the copy (gone from the fleet).
    pub removed: usize,
    /// The fleet's ledger rows copied (locks and counts in force).
    pub ledger_rows: usize,
}

/// Why a tick could not hand over or refresh.
#[derive(Debug, thiserror::Error)]
pub enum OutageError {
    /// The shared store does not answer (yet): the journal waits.
    #[error("shared store: {0}")]
    Shared(#[source] VerifierError),
    #[error("outage copy: {0}")]
    Cache(#[source] VerifierError),
}

impl Verifier {
    /// The copy, opened (mode 0600) if it is not; its dummy row is ours.
    pub(super) fn cache(&mut self) -> Result<&mut Cache, VerifierError> {
        let cache = match self.cache.take() {
            Some(c) if c.still_usable() => c,
            _ => {
                let Some(path) = self.outage_cache.as_deref() else {
                    return Err(VerifierError::Store(StoreError::Missing {
                        path: PathBuf::from("outage cache"),
                    }));
                };
                let mut cache = Cache::open(path)?;
                store::Store::put_dummy(cache.store(), &self.dummy, 0)
                    .map_err(VerifierError::Dummy)?;
                cache
            }
        };
        Ok(self.cache.insert(cache))
    }

    /// Journals an offline decision; a decision that cannot be journaled
    /// is a denial (the fleet would never hear of it).
    pub(super) fn journal(
        &mut self,
        reservation: &ledger::Reservation,
        reason: &Reason,
        code: CodeCheck,
        recovery_slot: Option<u8>,
        record: Option<&UserRecord>,
        now: i64,
    ) -> Reason {
        let allowed = reason.allows();
        let step = match code {
            CodeCheck::Accepted(step) if allowed && recovery_slot.is_none() => Some(step),
            _ => None,
        };
        let recovery = match (
            allowed,
            recovery_slot,
            record.and_then(|r| r.recovery.as_ref()),
        ) {
            (true, Some(slot), Some(set)) => Some((set.key.to_vec(), slot)),
            _ => None,
        };
        let entry = Entry {
            at: now,
            charge: Charge {
                user: reservation.user.clone(),
                source: reservation.source.clone(),
                keys: reservation.keys.clone(),
            },
            allowed,
            step,
            recovery,
        };
        match self.cache().and_then(|c| Ok(c.record(&entry)?)) {
            Ok(()) => reason.clone(),
            Err(e) => Reason::Store(format!("outage journal: {e}")),
        }
    }

    /// After an online success: the user's row as the fleet now has it,
    /// into the copy (the periodic refresh does it too, if this fails).
    pub(super) fn cache_success(
        &mut self,
        request: &veil_proto::Request,
        record: Option<&UserRecord>,
        code: CodeCheck,
        recovery_slot: Option<u8>,
        now: i64,
    ) {
        let (Some(record), Some(_)) = (record, self.outage_cache.as_ref()) else {
            return;
        };
        let mut record = record.clone();
        if let CodeCheck::Accepted(step) = code {
            record.totp_last_step = record.totp_last_step.max(step);
        }
        if let (Some(slot), Some(set)) = (recovery_slot, record.recovery.as_mut()) {
            set.used |= 1 << slot;
        }
        let user = request.user.clone();
        let _ = self
            .cache()
            .and_then(|c| Ok(c.put_users(&[(user, record)], false, now)?));
    }

    /// Off the login path: hands the journal to the fleet (each entry
    /// once: forgotten as soon as the fleet has it), then copies every
    /// user's row from the fleet. Nothing to do without `outage = "local"`.
    /// `done` counts what was handed over even when a later step fails
    /// (each entry handed over is forgotten at once, so it is logged now).
    /// `Ok(false)`: nothing to do (no copy configured, or a tick running).
    pub fn outage_tick(&mut self, now: u64, done: &mut HandOver) -> Result<bool, OutageError> {
        if self.outage_cache.is_none() {
            return Ok(false);
        }
        // One tick at a time in this process: two would hand an entry over twice.
        let Ok(_one) = TICK.try_lock() else {
            return Ok(false);
        };
        let now = now.min(i64::MAX as u64) as i64;
        let limits = self.limits.clone();
        self.offline = false;
        let journal = self.cache().and_then(|c| Ok(c.journal()?));
        let journal = journal.map_err(OutageError::Cache)?;
        for (id, entry) in journal {
            let store = self.store().map_err(OutageError::Shared)?;
            if !entry.allowed {
                // The fleet's own rules: a reservation never committed as
                // a success is a failure on all its keys.
                store
                    .reserve(&limits, entry.charge.clone(), now)
                    .map_err(|e| OutageError::Shared(e.into()))?;
                done.failures += 1;
            }
            if entry.step.is_some() || entry.recovery.is_some() {
                let pg = store.as_pg().ok_or_else(|| {
                    OutageError::Shared(VerifierError::Store(StoreError::Missing {
                        path: PathBuf::from("a PostgreSQL store"),
                    }))
                })?;
                let recovery = entry
                    .recovery
                    .as_ref()
                    .map(|(key, slot)| (key.as_slice(), 1i64 << slot));
                pg.hand_over_use(&entry.charge.user, entry.step.unwrap_or(-1), recovery)
                    .map_err(|e| OutageError::Shared(e.into()))?;
                done.uses += 1;
            }
            self.cache()
                .and_then(|c| Ok(c.forget(id)?))
                .map_err(OutageError::Cache)?;
        }
        let store = self.store().map_err(OutageError::Shared)?;
        let (users, rows) = match store.as_pg() {
            Some(pg) => {
                let shared = |e: StoreError| OutageError::Shared(e.into());
                let users = pg.records().map_err(shared)?;
                let rows = pg
                    .limiting_rows(now, limits.fail_interval, limits.max_rows.min(COPIED_ROWS))
                    .map_err(shared)?;
                (users, rows)
            }
            None => return Ok(true),
        };
        done.users = users.len();
        done.ledger_rows = rows.len();
        let cache = self.cache().map_err(OutageError::Cache)?;
        done.removed = cache
            .put_users(&users, true, now)
            .map_err(|e| OutageError::Cache(e.into()))?;
        cache
            .put_ledger(&rows, &limits)
            .map_err(|e| OutageError::Cache(e.into()))?;
        Ok(true)
    }
}
