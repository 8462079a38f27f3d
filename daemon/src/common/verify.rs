//! The verification pipeline, run by one worker thread per core. Every
//! request that decodes does the same work whoever the user is: ledger
//! reservation, one argon2id verify (the dummy hash for unknown users),
//! one TOTP check over the same number of steps (a dummy secret when the
//! user has none), and the same ledger writes. With `[password] source =
//! "system"` the password check is one libxcrypt verify instead (against
//! the account's shadow hash, or the dummy of the host's method), and in
//! both sources the shadow file is read once per request, for the
//! account's lock and expiry.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use veil_proto::one_prompt;
use veil_proto::{Request, Verdict};

use crate::common::config::Config;
use crate::common::crypt::Scratch;
use crate::common::fresh::{self, Recent};
use crate::common::ledger::{self, Limits, Lock};
use crate::common::password::{HashError, Hasher, Memory};
use crate::common::peer::{self, Peer};
use crate::common::policy::Policies;
use crate::common::recovery::{self, RecoveryCheck};
use crate::common::store::{
    self, Location, OpenMode, RecoveryUse, Store, StoreError, Success, UserRecord,
};
use crate::common::totp::{self, CodeCheck};

mod checks;
mod known;
mod outage;
mod read;
mod reason;
mod reserver;
mod window;
pub use known::KnownHashes;
pub use outage::{HandOver, OutageError};
pub use read::charge_of;
pub use reason::Reason;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Reason,
    /// Keys this failure locked, each with its escalation.
    pub locked: Vec<Lock>,
    /// The ledger was full: the attempt was charged to overflow keys.
    pub ledger_full: bool,
    /// Decided on the host's outage copy (`[postgres] outage = "local"`):
    /// the shared store did not answer.
    pub offline: bool,
}

/// What the verifier reads of the system's accounts, set at start.
#[derive(Debug, Clone, Default)]
pub struct SystemAccounts {
    /// The shadow file, read on every request for the account's state
    /// (and, with a crypt dummy, its hash). `None`: not read (`source =
    /// "veil"` on a host where veild cannot read it).
    pub shadow: Option<PathBuf>,
    /// `source = "system"`: the dummy hash of the host's method and cost,
    /// verified for unknown names, unusable hashes and refused accounts.
    /// `None`: `source = "veil"`.
    pub crypt_dummy: Option<String>,
}

/// Why a verifier has no usable store (the request is denied, the
/// reason audited).
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store opened, but the dummy row every unknown name reads could
    /// not be written.
    #[error("writing the dummy row: {0}")]
    Dummy(#[source] StoreError),
}

/// One worker's verifier: its own database connection, the shared dummy record.
pub struct Verifier {
    limits: Limits,
    policies: Policies,
    skew: u8,
    hasher: Hasher,
    dummy: UserRecord,
    database: Location,
    store: Option<Box<dyn Store>>,
    memory: Memory,
    system: SystemAccounts,
    scratch: Scratch,
    /// Time spent in the store since [`Verifier::take_store_time`].
    store_time: std::time::Duration,
    /// Time spent in the checks since [`Verifier::take_check_time`].
    check_time: std::time::Duration,
    /// Logins that may bind their session (shared by veild's workers).
    recent: Arc<Mutex<Recent>>,
    /// This host's name, in the fresh-code bindings' key.
    host: String,
    /// `[postgres] outage = "local"`: the copy's file, and the copy once opened.
    outage_cache: Option<PathBuf>,
    cache: Option<store::outage::Cache>,
    /// The request being decided is decided on the copy.
    offline: bool,
    /// The hash each (user, source) pair last logged in with (shared by
    /// veild's workers).
    known: KnownHashes,
    /// A known pair's password is verified during its reservation: not at
    /// `failure_delay_ms = 0`, where a denial leaves when decided and the
    /// time saved would tell which names logged in from a source.
    early_verify: bool,
    /// The thread that makes a known pair's reservation meanwhile; `None`
    /// until [`Verifier::start_reserver`] (or if no thread could be had).
    reserver: Option<reserver::Reserver>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// The shared store in `slot`, opened again if it was never opened, the
/// file was deleted or replaced, or (PostgreSQL) the connection failed.
/// A function of the fields it needs, so that the caller may borrow the
/// verifier's others beside it.
fn shared_store<'a>(
    slot: &'a mut Option<Box<dyn Store>>,
    database: &Location,
    dummy: &UserRecord,
) -> Result<&'a mut dyn Store, VerifierError> {
    let store = open_shared(slot, database, dummy)?;
    Ok(slot.insert(store).as_mut())
}

/// [`shared_store`], taken out of `slot` (to lend to another thread).
fn open_shared(
    slot: &mut Option<Box<dyn Store>>,
    database: &Location,
    dummy: &UserRecord,
) -> Result<Box<dyn Store>, VerifierError> {
    match slot.take() {
        Some(store) if store.still_usable() => Ok(store),
        _ => {
            let mut store = store::open(database, OpenMode::MustExist)?;
            // Written on every open, so a restored or replaced file has it too.
            store.put_dummy(dummy, 0).map_err(VerifierError::Dummy)?;
            Ok(store)
        }
    }
}

/// The record an unknown name is checked against: a hash of random bytes
/// made at start with the current parameters, a random TOTP secret, and
/// ten random recovery hashes (also checked for users without codes).
pub fn dummy_record(hasher: &Hasher) -> Result<UserRecord, HashError> {
    Ok(UserRecord {
        phc: hasher.dummy()?,
        totp_secret: Some(totp::new_secret().map_err(HashError::Random)?),
        totp_last_step: -1,
        recovery: Some(recovery::dummy().map_err(HashError::Random)?),
    })
}

impl Verifier {
    pub fn new(
        config: &Config,
        hasher: Hasher,
        dummy: UserRecord,
        system: SystemAccounts,
    ) -> Verifier {
        Verifier {
            limits: Limits::from(&config.lockout),
            policies: Policies::from(config),
            skew: config.totp.skew,
            hasher,
            dummy,
            database: Location::of(config),
            store: None,
            memory: Memory::default(),
            system,
            scratch: Scratch::default(),
            store_time: std::time::Duration::ZERO,
            check_time: std::time::Duration::ZERO,
            recent: Arc::default(),
            host: totp::host_name(),
            outage_cache: outage::cache_path(config),
            cache: None,
            offline: false,
            known: KnownHashes::default(),
            early_verify: config.failure_delay_ms > 0,
            reserver: None,
        }
    }

    /// Shares the pairs' known hashes with the other workers (a pair's
    /// next login may reach any of them).
    pub fn share_known(&mut self, known: KnownHashes) {
        self.known = known;
    }

    /// Starts the thread that makes a known pair's reservation while this
    /// verifier checks the password (`verify/reserver.rs`). Without it
    /// (veilctl, a start refused a thread) the two run in turn.
    pub fn start_reserver(&mut self) {
        if self.early_verify && self.reserver.is_none() {
            self.reserver = reserver::Reserver::start(&self.limits);
        }
    }

    /// Opens its store from `database` (a clone of the other workers'):
    /// PostgreSQL connections made from one [`Location`] share what the
    /// process remembers of known-good pairs (`store/postgres/hints.rs`).
    pub fn share_database(&mut self, database: &Location) {
        self.database = database.clone();
        self.store = None;
    }

    /// The store, reopened if it was never opened, the file was deleted or
    /// replaced, or (PostgreSQL) the connection failed. A missing file or
    /// schema is never recreated here.
    fn store(&mut self) -> Result<&mut dyn Store, VerifierError> {
        if self.offline {
            return Ok(self.cache()?.store());
        }
        shared_store(&mut self.store, &self.database, &self.dummy)
    }

    /// The Unix time to decide at for a host clock reading `local`: the
    /// store's (PostgreSQL: the database server's, so a host whose clock
    /// is off neither writes day-long locks for the fleet nor moves its
    /// users' code watermark). The local clock if the store is unusable
    /// (the request is then denied for that anyway).
    pub fn fleet_now(&mut self, local: u64) -> u64 {
        let local_i = local.min(i64::MAX as u64) as i64;
        match self.store() {
            Ok(store) => store.fleet_now(local_i).map_or(local, |t| t.max(0) as u64),
            Err(_) => local,
        }
    }

    /// Time `decide` spent in the store (open, reads, writes) since the last call.
    pub fn take_store_time(&mut self) -> std::time::Duration {
        std::mem::take(&mut self.store_time)
    }

    /// Time `decide` spent in its checks (password hash, code) since the
    /// last call.
    pub fn take_check_time(&mut self) -> std::time::Duration {
        std::mem::take(&mut self.check_time)
    }

    /// Decides one request at Unix time `now` ([`Verifier::fleet_now`]).
    pub fn decide(&mut self, request: &Request, peer: Peer, now: u64) -> Decision {
        // `one_prompt`: the one answer, split by the rule that looks only
        // at its bytes, and verified from here on like two answers: the
        // same checks whichever way it split.
        let split;
        let request = if request.one_prompt && !request.code_only {
            let (password, code) = one_prompt::split(&request.password);
            split = Request {
                password,
                code,
                ..request.clone()
            };
            &split
        } else {
            request
        };
        let now_i = now.min(i64::MAX as u64) as i64;
        // Code only (`factors=code`: an earlier method proved the account)
        // is root's alone: from anyone else it would be a password-free
        // oracle for codes.
        let code_only = request.code_only;
        let permitted = peer::permits(peer, &request.user) && (!code_only || peer.uid == 0);
        self.offline = false;
        let connected = self.store.as_ref().is_some_and(|s| s.still_usable());
        let mut read = self.read(request, peer, permitted, now, None);
        if read.outage && connected && self.outage_cache.is_some() {
            // A connection made before a server restart fails once: a new
            // one answers, and the fleet (not the copy) decides (a failed
            // reservation was not committed, so this is charged once).
            let early = read.early.take();
            read = self.read(request, peer, permitted, now, early);
        }
        if read.outage && self.outage_cache.is_some() {
            // The shared store did not answer: the same decision on the
            // host's copy, its own ledger charged (see outage.rs).
            self.offline = true;
            let early = read.early.take();
            read = self.read(request, peer, permitted, now, early);
        }
        let policy = self.policies.of(&request.service, peer.uid);
        let started = std::time::Instant::now();
        let mut checks = self.check(request, &read, &policy, now);
        self.check_time += started.elapsed();
        checks.fresh = self.fresh_window(request, peer, now_i);
        let reason = self.reason(request, &read, &checks, permitted);

        let used_slot = match (&reason, checks.recovery) {
            (Reason::RecoveryCode { .. }, RecoveryCheck::Matched(slot)) => Some(slot),
            _ => None,
        };
        let reservation = read.reservation.as_ref();
        let reason = match (reason, reservation) {
            (Reason::FreshWindow, Some(res)) => {
                // No code was accepted: no step is written.
                match self.commit_success(
                    request,
                    res,
                    read.record(),
                    CodeCheck::Wrong,
                    None,
                    now_i,
                ) {
                    Reason::Success => Reason::FreshWindow,
                    other => other,
                }
            }
            (r, Some(res)) if r.allows() => {
                self.commit_success(request, res, read.record(), checks.code, used_slot, now_i)
            }
            (other, _) => other,
        };
        if matches!(reason, Reason::Success | Reason::RecoveryCode { .. }) {
            self.remember_fresh_login(request, peer, &checks, now);
        }
        self.learn_hash(request, &read, &reason);
        let locked = match (&reason, reservation) {
            (_, None) => Vec::new(),
            (r, _) if r.allows() => Vec::new(),
            (_, Some(r)) => r.locking.clone(),
        };
        let reason = match (self.offline, reservation) {
            (true, Some(res)) => {
                self.journal(res, &reason, checks.code, used_slot, read.record(), now_i)
            }
            (false, Some(_)) if reason.allows() => {
                self.cache_success(request, read.record(), checks.code, used_slot, now_i);
                reason
            }
            _ => reason,
        };
        // Only this request: the next one, a prune or a tick asks the
        // shared store first.
        let offline = std::mem::take(&mut self.offline);
        let verdict = if reason.allows() {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        Decision {
            verdict,
            reason,
            locked,
            ledger_full: reservation.is_some_and(|r| r.overflow),
            offline,
        }
    }

    /// Keeps the hash a pair logged in with (`known.rs`), unless it is
    /// replaced at this login; forgets a kept hash the row no longer has.
    fn learn_hash(&self, request: &Request, read: &read::Read, reason: &Reason) {
        // A failed store read nothing: what is kept stays.
        if read.store_error.is_some() {
            return;
        }
        let Some(source) = read.pair_source.as_deref() else {
            return;
        };
        let phc = read.record().map(|r| r.phc.as_str());
        match phc {
            Some(phc) if reason.allows() && !self.hasher.needs_rehash(phc) => {
                self.known.remember(&request.user, source, phc);
            }
            _ if read
                .early
                .as_ref()
                .is_some_and(|early| Some(early.phc.as_str()) != phc) =>
            {
                self.known.forget(&request.user, source);
            }
            _ => {}
        }
    }

    /// The writes of a success, in one transaction (one fsync): the code's
    /// step or the recovery code's slot (compare-and-set, so a code racing
    /// itself wins once), the ledger, and a rehash if the parameters changed.
    fn commit_success(
        &mut self,
        request: &Request,
        reservation: &ledger::Reservation,
        record: Option<&UserRecord>,
        code: CodeCheck,
        recovery_slot: Option<u8>,
        now: i64,
    ) -> Reason {
        let limits = self.limits.clone();
        // Hashed before the transaction, so the write lock is not held for
        // it. System hashes are passwd's to change, never veil's.
        let new_hash = match record {
            Some(r)
                if self.system.crypt_dummy.is_none()
                    && !request.code_only
                    && self.hasher.needs_rehash(&r.phc) =>
            {
                self.hasher.hash(request.password.bytes()).ok()
            }
            _ => None,
        };
        let started = std::time::Instant::now();
        let Ok(store) = self.store() else {
            return Reason::Store("store vanished".into());
        };
        let set = record.and_then(|r| r.recovery.as_ref());
        let recovery = match (recovery_slot, set) {
            (Some(slot), Some(set)) => Some(RecoveryUse {
                slot,
                key: set.key.as_slice(),
            }),
            _ => None,
        };
        let step = match code {
            CodeCheck::Accepted(step)
                if recovery.is_none() && record.is_some_and(|r| r.totp_secret.is_some()) =>
            {
                Some(step)
            }
            _ => None,
        };
        let success = Success {
            user: &request.user,
            step,
            reservation,
            new_hash: new_hash.as_deref(),
            recovery,
            now,
        };
        let written = store.commit_success(&limits, &success);
        self.store_time += started.elapsed();
        match (written, recovery, set) {
            (Ok(true), Some(_), Some(set)) => Reason::RecoveryCode {
                left: set.left().saturating_sub(1),
            },
            (Ok(true), _, _) => Reason::Success,
            (Ok(false), Some(_), _) => Reason::UsedRecoveryCode,
            (Ok(false), None, _) => Reason::ReplayedCode,
            (Err(e), _, _) => Reason::Store(format!("success writes: {e}")),
        }
    }

    /// The ledger's rows, for the metrics.
    pub fn ledger_rows(&mut self) -> Result<i64, VerifierError> {
        Ok(self.store()?.ledger_rows()?)
    }

    /// Deletes expired ledger rows and fresh-code bindings older than
    /// the largest window.
    pub fn prune(&mut self, now: u64) -> Result<usize, VerifierError> {
        let limits = self.limits.clone();
        let store = self.store()?;
        let now = now.min(i64::MAX as u64) as i64;
        let ledger = store.prune(&limits, now)?;
        let bindings = store.fresh_prune(now.saturating_sub(fresh::MAX_WINDOW_S as i64))?;
        Ok(ledger + bindings)
    }
}

#[cfg(test)]
mod fresh_tests;
#[cfg(test)]
mod known_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod tests;
