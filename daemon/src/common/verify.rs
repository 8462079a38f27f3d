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
use veil_proto::{Reply, Request, Verdict};

use crate::common::config::Config;
use crate::common::crypt::{self, Scratch};
use crate::common::fresh::{self, Claimed, Recent};
use crate::common::ledger::{self, Limits, Lock, Origin};
use crate::common::password::{HashError, Hasher, Memory};
use crate::common::peer::{self, Peer};
use crate::common::policy::{Policies, Policy};
use crate::common::recovery::{self, RecoveryCheck};
use crate::common::shadow::{self, State};
use crate::common::store::{
    self, Location, OpenMode, RecoveryUse, SYSTEM_ONLY_PHC, Store, StoreError, Success, UserRecord,
};
use crate::common::totp::{self, CodeCheck};

mod outage;
mod reason;
pub use outage::{HandOver, OutageError};
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

/// The shadow file could not be read: every request is denied.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
struct ShadowUnreadable {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// What one request read ([`Verifier::read`]).
struct Read {
    reservation: Option<ledger::Reservation>,
    /// The user's row, or the dummy's; `None` only if the store failed.
    row: Option<UserRecord>,
    /// The row is the user's own.
    found: bool,
    account: Result<Option<shadow::Entry>, ShadowUnreadable>,
    state: Option<State>,
    store_error: Option<String>,
    /// The store failed for want of an answer ([`StoreError::is_outage`]).
    outage: bool,
}

impl Read {
    /// The user's own veil row, if there is one.
    fn record(&self) -> Option<&UserRecord> {
        if self.found { self.row.as_ref() } else { None }
    }
}

/// What the same work for every request found ([`Verifier::check`]).
struct Checks {
    password_ok: bool,
    enrolled: bool,
    code: CodeCheck,
    has_codes: bool,
    recovery: RecoveryCheck,
    code_required: bool,
    /// The service's policy accepts the module line's factors.
    policy_ok: bool,
    /// The code counts (not under `factors = ["password"]`).
    code_used: bool,
    /// The service's fresh-code window is open for this user in the
    /// peer's audit session.
    fresh: bool,
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
    /// Logins that may bind their session (shared by veild's workers).
    recent: Arc<Mutex<Recent>>,
    /// This host's name, in the fresh-code bindings' key.
    host: String,
    /// `[postgres] outage = "local"`: the copy's file, and the copy once opened.
    outage_cache: Option<PathBuf>,
    cache: Option<store::outage::Cache>,
    /// The request being decided is decided on the copy.
    offline: bool,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("database", &self.database)
            .finish_non_exhaustive()
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
            recent: Arc::default(),
            host: totp::host_name(),
            outage_cache: outage::cache_path(config),
            cache: None,
            offline: false,
        }
    }

    /// Shares the logins waiting for their session phase with the other
    /// workers (a session note may reach any of them).
    pub fn share_recent(&mut self, recent: Arc<Mutex<Recent>>) {
        self.recent = recent;
    }

    /// Applies a session note ([`fresh::apply_note`]) at `now`.
    pub fn session_note(
        &mut self,
        note: &veil_proto::session::SessionNote,
        peer: Peer,
        now: u64,
    ) -> Result<fresh::NoteOutcome, VerifierError> {
        let any_window = self.policies.any_fresh_window();
        let recent = Arc::clone(&self.recent);
        let host = self.host.clone();
        let store = self.store()?;
        let mut recent = recent.lock().unwrap_or_else(|p| p.into_inner());
        Ok(fresh::apply_note(
            store,
            &mut recent,
            &host,
            note,
            peer,
            any_window,
            now,
        )?)
    }

    /// Whether the service's window is open for this request: the same
    /// work (one store read) for every request of a service with a window
    /// whose module sent a session and boot id, whoever the user is.
    fn fresh_window(&mut self, request: &Request, peer: Peer, now: i64) -> bool {
        let window = self.policies.fresh_window(&request.service, peer.uid);
        if window == 0 || request.code_only || request.one_prompt {
            return false;
        }
        let claimed = Claimed::of_request(request, peer);
        let Some(key) = claimed.key(&self.host, &request.user) else {
            return false;
        };
        let started = std::time::Instant::now();
        let bound_at = match self.store.as_ref() {
            Some(store) => store.fresh_bound_at(&key).ok().flatten(),
            None => None,
        };
        self.store_time += started.elapsed();
        fresh::window_open(bound_at, window, now)
    }

    /// After a success that verified password and code from a root peer
    /// whose real uid is 0 (sshd, login): remember it, for its session
    /// phase to bind (only when some service has a window).
    fn remember_fresh_login(&mut self, request: &Request, peer: Peer, checks: &Checks, now: u64) {
        let verified_both = checks.enrolled && checks.code_used && !request.code_only;
        if !verified_both || peer.uid != 0 || request.ruid != 0 || !self.policies.any_fresh_window()
        {
            return;
        }
        let ppid = Claimed::of_request(request, peer).ppid;
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.record(&request.user, &request.service, peer.pid, ppid, now);
    }

    /// The store, reopened if it was never opened, the file was deleted or
    /// replaced, or (PostgreSQL) the connection failed. A missing file or
    /// schema is never recreated here.
    fn store(&mut self) -> Result<&mut dyn Store, VerifierError> {
        if self.offline {
            return Ok(self.cache()?.store());
        }
        let store = match self.store.take() {
            Some(store) if store.still_usable() => store,
            _ => {
                let mut store = store::open(&self.database, OpenMode::MustExist)?;
                // Written on every open, so a restored or replaced file has it too.
                store
                    .put_dummy(&self.dummy, 0)
                    .map_err(VerifierError::Dummy)?;
                store
            }
        };
        Ok(self.store.insert(store).as_mut())
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
        let mut read = self.read(request, peer, permitted, now);
        if read.outage && connected && self.outage_cache.is_some() {
            // A connection made before a server restart fails once: a new
            // one answers, and the fleet (not the copy) decides (a failed
            // reservation was not committed, so this is charged once).
            read = self.read(request, peer, permitted, now);
        }
        if read.outage && self.outage_cache.is_some() {
            // The shared store did not answer: the same decision on the
            // host's copy, its own ledger charged (see outage.rs).
            self.offline = true;
            read = self.read(request, peer, permitted, now);
        }
        let policy = self.policies.of(&request.service, peer.uid);
        let mut checks = self.check(request, &read, &policy, now);
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

    /// What a request reads, whoever the user is: the ledger's
    /// reservation, one user-or-dummy row, the shadow file.
    fn read(&mut self, request: &Request, peer: Peer, permitted: bool, now: u64) -> Read {
        let now_i = now.min(i64::MAX as u64) as i64;
        let limits = self.limits.clone();
        let charge = charge_of(&limits, request, peer, permitted);
        let mut store_error: Option<String> = None;
        let mut outage = false;
        let started = std::time::Instant::now();
        let reservation = match self.store() {
            Ok(store) => match store.reserve(&limits, charge, now_i) {
                Ok(r) => Some(r),
                Err(e) => {
                    outage = e.is_outage();
                    store_error = Some(format!("ledger: {e}"));
                    None
                }
            },
            Err(e) => {
                outage = matches!(&e, VerifierError::Store(e) if e.is_outage());
                store_error = Some(e.to_string());
                None
            }
        };
        // One row read either way: the user's, or the dummy row veild
        // wrote at start; the in-memory copy only if the store failed.
        let users: Option<&dyn Store> = if self.offline {
            self.cache.as_ref().map(|c| c.store_ref() as &dyn Store)
        } else {
            self.store.as_deref()
        };
        let (row, found) = match users.map(|s| s.user_or_dummy(&request.user)) {
            Some(Ok(Some((row, found)))) => (Some(row), found),
            Some(Ok(None)) => {
                store_error.get_or_insert("users: the dummy row is missing".to_owned());
                (None, false)
            }
            Some(Err(e)) => {
                outage |= e.is_outage();
                store_error.get_or_insert(format!("users: {e}"));
                (None, false)
            }
            None => (None, false),
        };
        self.store_time += started.elapsed();
        // The shadow file, read whole, whoever the user is.
        let account = match &self.system.shadow {
            Some(path) => shadow::lookup(path, &request.user).map_err(|source| ShadowUnreadable {
                path: path.clone(),
                source,
            }),
            None => Ok(None),
        };
        let state = match &account {
            Ok(Some(entry)) => Some(entry.state(shadow::day_of(now))),
            _ => None,
        };
        Read {
            reservation,
            row,
            found,
            account,
            state,
            store_error,
            outage,
        }
    }

    /// The same work for every request: one password verify, one TOTP
    /// check, one recovery check, the rollout's group lookups. Code only
    /// still verifies a password, against the dummy for every user, so it
    /// costs what any request does and its result is unused.
    fn check(&mut self, request: &Request, read: &Read, policy: &Policy, now: u64) -> Checks {
        let code_only = request.code_only;
        let subject = read.row.as_ref().unwrap_or(&self.dummy);
        let password_ok = match &self.system.crypt_dummy {
            Some(dummy) => {
                let hash = match (&read.account, read.state) {
                    (Ok(Some(entry)), Some(State::Usable)) if !code_only => entry.hash.as_str(),
                    _ => dummy.as_str(),
                };
                crypt::verify(&mut self.scratch, hash, request.password.bytes())
            }
            None => {
                let phc = if subject.phc == SYSTEM_ONLY_PHC || code_only {
                    &self.dummy.phc
                } else {
                    &subject.phc
                };
                self.hasher
                    .verify_with(&mut self.memory, phc, request.password.bytes())
            }
        };
        let record = read.record();
        let secret: &[u8] = subject
            .totp_secret
            .as_deref()
            .or(self.dummy.totp_secret.as_deref())
            .map_or(&[], Vec::as_slice);
        let code = totp::check(
            secret,
            request.code.bytes(),
            now,
            self.skew,
            subject.totp_last_step,
        );
        // The same set size for everyone: the user's codes, else the dummy's.
        let recovery = match subject.recovery.as_ref().or(self.dummy.recovery.as_ref()) {
            Some(set) => recovery::check(set, request.code.bytes()),
            None => RecoveryCheck::Wrong,
        };
        Checks {
            password_ok,
            enrolled: record.is_some_and(|r| r.totp_secret.is_some()),
            // Unused under the password alone: it moves no watermark.
            code: Some(code)
                .filter(|_| policy.asks_code())
                .unwrap_or(CodeCheck::Wrong),
            has_codes: record.is_some_and(|r| r.recovery.is_some()),
            recovery,
            // Group lookups for every request alike (see Rollout).
            code_required: code_only || self.policies.code_required(policy, &request.user, now),
            // A `one_prompt` line asks for a code too: under `["password"]`
            // it is a line the policy does not accept.
            policy_ok: policy.accepts(code_only) && (policy.asks_code() || !request.one_prompt),
            code_used: policy.asks_code(),
            fresh: false,
        }
    }

    /// The one reason, from what was read and checked: the first failure
    /// in a fixed order, else success.
    fn reason(&self, request: &Request, read: &Read, checks: &Checks, permitted: bool) -> Reason {
        let code_only = request.code_only;
        if let Some(e) = &read.store_error {
            Reason::Store(e.clone())
        } else if let Err(e) = &read.account {
            Reason::Shadow(e.to_string())
        } else if !permitted {
            Reason::PeerNotPermitted
        } else if !checks.policy_ok {
            Reason::Policy
        } else if let Some(refusal) = read.reservation.as_ref().and_then(|r| r.refused.clone()) {
            Reason::Locked(refusal)
        } else if let Some(refused) = self.account_refusal(read.record(), read.state) {
            refused
        } else if let Some(unusable) =
            unusable("password", &request.password).filter(|_| !code_only)
        {
            unusable
        } else if !checks.password_ok && !code_only {
            Reason::WrongPassword
        } else if !checks.enrolled && checks.code_required {
            Reason::NoTotp
        } else if !checks.enrolled || !checks.code_used {
            Reason::Success
        } else if checks.fresh && request.code.is_whole() && request.code.bytes().is_empty() {
            // Inside the window an empty code stands for the one this
            // session's login gave; a typed code is checked as always.
            Reason::FreshWindow
        } else if let Some(unusable) = unusable("code", &request.code) {
            unusable
        } else {
            match (checks.code, checks.recovery) {
                (CodeCheck::Accepted(_), _) => Reason::Success,
                (_, RecoveryCheck::Matched(_)) if checks.has_codes => {
                    Reason::RecoveryCode { left: 0 }
                }
                (CodeCheck::Replayed, _) => Reason::ReplayedCode,
                (_, RecoveryCheck::Used) if checks.has_codes => Reason::UsedRecoveryCode,
                _ => Reason::WrongCode,
            }
        }
    }

    /// Why the account may not log in whatever the password, if it may
    /// not: no such account for this source, or the system's lock or
    /// expiry. `record` is the user's veil row, `state` its shadow line's.
    fn account_refusal(&self, record: Option<&UserRecord>, state: Option<State>) -> Option<Reason> {
        let system_source = self.system.crypt_dummy.is_some();
        let missing = match (system_source, record, state) {
            (true, None, None) | (false, None, _) => Some(Reason::UnknownUser),
            (true, Some(_), None) => Some(Reason::NoSystemAccount),
            (false, Some(r), _) if r.phc == SYSTEM_ONLY_PHC => Some(Reason::NoVeilPassword),
            _ => None,
        };
        missing.or(match state {
            Some(State::Locked) => Some(Reason::AccountLocked),
            Some(State::Expired) => Some(Reason::AccountExpired),
            Some(State::PasswordInactive) => Some(Reason::PasswordExpired),
            // A veil password does not need a system one.
            Some(State::NoUsableHash) if system_source => Some(Reason::NoUsableHash),
            _ => None,
        })
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

/// A reply that can never match: missing, or cut to the wire's size.
fn unusable(field: &'static str, reply: &Reply) -> Option<Reason> {
    (!reply.is_whole()).then_some(Reason::UnusableReply {
        field,
        state: reply.state(),
    })
}

/// Who an attempt is charged to. Only root (sshd, sudo, su, login) speaks
/// for a remote host or for who ran it (the application's real uid, see
/// [`Origin::from_root`]); a local user's own program (a screen locker) is
/// charged to its uid, and a local user naming someone else's account
/// only to itself, so no local account can run up, let alone lock,
/// another account's or a host's keys.
pub fn charge_of(
    limits: &Limits,
    request: &Request,
    peer: Peer,
    permitted: bool,
) -> ledger::Charge {
    match (peer.uid, permitted) {
        (0, _) => ledger::charge_for(
            limits,
            &request.user,
            &Origin::from_root(&request.rhost, request.ruid, &request.service),
        ),
        (uid, true) => ledger::charge_for(limits, &request.user, &Origin::local_uid(uid)),
        (uid, false) => ledger::peer_charge(uid),
    }
}

#[cfg(test)]
mod fresh_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod tests;
