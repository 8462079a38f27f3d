//! Self-service over veild's socket: a local user (not root; SO_PEERCRED
//! says who) enrols their own TOTP secret, changes their own veil
//! password or makes their own recovery codes. Each request is checked like a login of that user from their
//! own uid (`uid:N`), by the login's own [`Verifier`]: the same ledger
//! keys and reservation, the same argon2 or crypt work, the same account
//! state checks, the code (with replay protection) whenever a secret is
//! active. So a wrong password here counts towards the same lock as at a
//! screen locker, and re-enrolment is no way around the second factor.
//! The only difference from a login: a user with no secret yet passes on
//! the password alone, whatever `[totp] policy` says, since enrolling is
//! how they get one. Recovery codes are made only for a user whose secret
//! is active (refused at once otherwise), so their check always includes
//! the code.
//!
//! A new secret is made here and sent only to the peer that proved the
//! password; it waits in memory, keyed by that uid, until one of its codes
//! confirms it (with the begin's ticket), for at most [`ENROL_TTL_S`] and
//! [`CONFIRM_TRIES`] codes. The active secret stays in force until then.
//! Every failure is one answer, [`SelfAnswer::Failed`], sent at the
//! denial deadline; the audit log has the reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq;
use veil_proto::self_service::{
    CONFIRM_TRIES, Operation, Refusal, SecretText, SelfAnswer, SelfRequest,
};
use veil_proto::{Request, Verdict};
use zeroize::Zeroizing;

use crate::common::config::{Config, PasswordSource, TotpPolicy};
use crate::common::ledger::Limits;
use crate::common::password::Hasher;
use crate::common::peer::{self, Peer};
use crate::common::quality::{Checker, Quality};
use crate::common::recovery;
use crate::common::store::{self, OpenMode, Store, StoreError, Success, UserRecord};
use crate::common::totp::{self, CodeCheck};
use crate::common::verify::{Decision, SystemAccounts, Verifier, charge_of};

/// How long a new secret waits for its confirming code.
pub const ENROL_TTL_S: u64 = 600;
/// Pending enrolments held at once (one per uid); beyond it, `Busy`.
pub const MAX_PENDING: usize = 1024;

/// The config self-service checks run under: the host's, except that a
/// user with no secret passes on the password alone (see the module doc).
/// Any rollout setting that refuses users without a secret must be
/// neutralised here too.
pub fn self_service_config(config: &Config) -> Config {
    let mut config = config.clone();
    config.totp.policy = TotpPolicy::IfEnrolled;
    // The rollout's deadlines decide who may log in without a code; enrolling
    // is how such a user gets one, so they do not apply here.
    config.totp.required_groups.clear();
    config.totp.enrol_by = None;
    // A change of credentials is the fleet's to write: during an outage
    // it is refused, never checked against a host's outage copy.
    config.postgres.outage = crate::common::config::pg::Outage::Deny;
    config
}

struct PendingEnrolment {
    user: String,
    secret: Zeroizing<Vec<u8>>,
    ticket: String,
    expires_at: u64,
    tries_left: u8,
}

/// The secrets waiting for their confirming code, shared by every worker.
#[derive(Default)]
pub struct PendingEnrolments {
    by_uid: HashMap<u32, PendingEnrolment>,
}

impl std::fmt::Debug for PendingEnrolments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingEnrolments")
            .field("count", &self.by_uid.len())
            .finish_non_exhaustive()
    }
}

impl PendingEnrolments {
    /// Entries in force at `now`.
    fn in_force(&self, now: u64) -> usize {
        self.by_uid.values().filter(|e| e.expires_at > now).count()
    }

    /// Holds `entry` for `uid`, replacing that uid's earlier one. False
    /// when [`MAX_PENDING`] other uids have one in force.
    fn insert(&mut self, uid: u32, entry: PendingEnrolment, now: u64) -> bool {
        self.by_uid.retain(|_, e| e.expires_at > now);
        if !self.by_uid.contains_key(&uid) && self.by_uid.len() >= MAX_PENDING {
            return false;
        }
        self.by_uid.insert(uid, entry);
        true
    }

    /// The secret `uid` may try one code against: its entry for `user`
    /// with this ticket, in force. Every call uses up one try.
    fn try_secret(
        &mut self,
        uid: u32,
        user: &str,
        ticket: &str,
        now: u64,
    ) -> Option<Zeroizing<Vec<u8>>> {
        let entry = self.by_uid.get_mut(&uid)?;
        if entry.expires_at <= now || entry.tries_left == 0 {
            self.by_uid.remove(&uid);
            return None;
        }
        entry.tries_left -= 1;
        let matches =
            entry.user == user && bool::from(entry.ticket.as_bytes().ct_eq(ticket.as_bytes()));
        let secret = matches.then(|| entry.secret.clone());
        if entry.tries_left == 0 {
            self.by_uid.remove(&uid);
        }
        secret
    }

    fn remove(&mut self, uid: u32) {
        self.by_uid.remove(&uid);
    }
}

/// What one self-service request came to, for the answer and the log.
#[derive(Debug)]
pub struct Outcome {
    pub answer: SelfAnswer,
    /// The login-like check it ran, as the verifier saw and decided it.
    pub check: Option<(Request, Decision)>,
    /// For the audit line: why, in a word.
    pub reason: &'static str,
    /// A store's or the system's error, for the audit line.
    pub error: Option<String>,
}

impl Outcome {
    fn new(answer: SelfAnswer, reason: &'static str) -> Outcome {
        Outcome {
            answer,
            check: None,
            reason,
            error: None,
        }
    }

    fn store_error(answer: SelfAnswer, error: impl std::fmt::Display) -> Outcome {
        Outcome {
            error: Some(error.to_string()),
            ..Outcome::new(answer, "store-error")
        }
    }
}

/// One worker's self-service handler: its own verifier and store connection.
pub struct SelfService {
    verifier: Verifier,
    hasher: Hasher,
    limits: Limits,
    skew: u8,
    source: PasswordSource,
    /// New passwords' quality (libpwquality, the breached list).
    quality: Checker,
    database: store::Location,
    store: Option<Box<dyn Store>>,
    pending: Arc<Mutex<PendingEnrolments>>,
    /// Checked when no secret is pending, so a confirm costs the same.
    dummy_secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SelfService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfService")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl SelfService {
    /// Enrolments started and not yet confirmed or expired, for the metrics.
    pub fn pending(&self, now: u64) -> usize {
        self.pending.lock().map_or(0, |p| p.in_force(now))
    }

    pub fn new(
        config: &Config,
        hasher: Hasher,
        dummy: UserRecord,
        system: SystemAccounts,
        pending: Arc<Mutex<PendingEnrolments>>,
    ) -> SelfService {
        let dummy_secret = dummy.totp_secret.clone().unwrap_or_default();
        SelfService {
            verifier: Verifier::new(&self_service_config(config), hasher.clone(), dummy, system),
            hasher,
            limits: Limits::from(&config.lockout),
            skew: config.totp.skew,
            source: config.password.source,
            quality: Checker::new(&config.password),
            database: store::Location::of(config),
            store: None,
            pending,
            dummy_secret,
        }
    }

    /// The store for the writes after a check, reopened as the verifier's is.
    fn store(&mut self) -> Result<&mut dyn Store, StoreError> {
        let store = match self.store.take() {
            Some(store) if store.still_usable() => store,
            _ => store::open(&self.database, OpenMode::MustExist)?,
        };
        Ok(self.store.insert(store).as_mut())
    }

    /// Serves one request at Unix time `now`.
    pub fn handle(&mut self, request: &SelfRequest, peer: Peer, now: u64) -> Outcome {
        // The fleet's clock, as for a login (a code's step, the ledger).
        let now = self.verifier.fleet_now(now);
        if peer.uid == 0 {
            return Outcome::new(
                SelfAnswer::Refused {
                    reason: Refusal::RootPeer,
                },
                "root-peer",
            );
        }
        match request.op {
            Operation::EnrolBegin => self.begin(request, peer, now),
            Operation::EnrolConfirm => self.confirm(request, peer, now),
            Operation::Passwd => self.passwd(request, peer, now),
            Operation::RecoveryNew => self.recovery_new(request, peer, now),
        }
    }

    /// The password (and the code when a secret is active), as a login.
    fn check(&mut self, request: &SelfRequest, peer: Peer, now: u64, service: &str) -> Outcome {
        // A local login: no rhost, no ruser (a non-root peer's are not believed anyway).
        let mut login = Request::new(
            &request.user,
            request.password.clone(),
            request.code.clone(),
        );
        login.service = service.to_owned();
        login.ruid = peer.uid;
        let decision = self.verifier.decide(&login, peer, now);
        let answer = if decision.verdict == Verdict::Allow {
            SelfAnswer::Done
        } else {
            SelfAnswer::Failed
        };
        Outcome {
            answer,
            reason: decision.reason.as_str(),
            error: None,
            check: Some((login, decision)),
        }
    }

    fn begin(&mut self, request: &SelfRequest, peer: Peer, now: u64) -> Outcome {
        let mut outcome = self.check(request, peer, now, "veilctl-totp-enroll");
        if outcome.answer != SelfAnswer::Done {
            return outcome;
        }
        let (secret, ticket) = match (totp::new_secret(), new_ticket()) {
            (Ok(s), Ok(t)) => (s, t),
            _ => {
                outcome.answer = SelfAnswer::Refused {
                    reason: Refusal::Error,
                };
                outcome.reason = "no-randomness";
                return outcome;
            }
        };
        let shown = SecretText::new(totp::to_base32(&secret));
        let entry = PendingEnrolment {
            user: request.user.clone(),
            secret,
            ticket: ticket.clone(),
            expires_at: now.saturating_add(ENROL_TTL_S),
            tries_left: CONFIRM_TRIES,
        };
        let held = match self.pending.lock() {
            Ok(mut pending) => pending.insert(peer.uid, entry, now),
            Err(_) => false,
        };
        if held {
            outcome.answer = SelfAnswer::Challenge {
                secret: shown,
                ticket,
                expires_in_s: ENROL_TTL_S,
            };
            outcome.reason = "secret-pending";
        } else {
            outcome.answer = SelfAnswer::Refused {
                reason: Refusal::Busy,
            };
            outcome.reason = "too-many-pending";
        }
        outcome
    }

    /// One code of the pending secret. Reserved on the ledger like any
    /// attempt; a success activates the secret and counts as one.
    fn confirm(&mut self, request: &SelfRequest, peer: Peer, now: u64) -> Outcome {
        let now_i = now.min(i64::MAX as u64) as i64;
        let permitted = peer::permits(peer, &request.user);
        let limits = self.limits.clone();
        let as_login = Request::new(
            &request.user,
            request.password.clone(),
            request.code.clone(),
        );
        let charge = charge_of(&limits, &as_login, peer, permitted);
        let secret = if permitted {
            self.pending
                .lock()
                .ok()
                .and_then(|mut p| p.try_secret(peer.uid, &request.user, &request.ticket, now))
        } else {
            None
        };
        let code = totp::check(
            secret
                .as_deref()
                .map_or(&self.dummy_secret[..], Vec::as_slice),
            request.code.bytes(),
            now,
            self.skew,
            -1,
        );
        let failed = |reason: &'static str| Outcome::new(SelfAnswer::Failed, reason);
        let system = self.source == PasswordSource::System;
        let store = match self.store() {
            Ok(s) => s,
            Err(e) => return Outcome::store_error(SelfAnswer::Failed, e),
        };
        let reservation = match store.reserve(&limits, charge, now_i) {
            Ok(r) => r,
            Err(e) => return Outcome::store_error(SelfAnswer::Failed, format!("ledger: {e}")),
        };
        let step = match (permitted, &reservation.refused, &secret, code) {
            (false, _, _, _) => return failed("peer-not-permitted"),
            (_, Some(_), _, _) => return failed("locked"),
            (_, _, None, _) => return failed("no-pending-enrolment"),
            _ if !request.code.is_whole() => return failed("no-code"),
            (_, _, Some(_), CodeCheck::Accepted(step)) => step,
            _ => return failed("wrong-code"),
        };
        let Some(secret) = secret else {
            return failed("no-pending-enrolment");
        };
        let user = request.user.as_str();
        let written = (|| {
            store.self_enrol(user, &secret, step, system, now_i)?;
            let success = Success {
                user,
                step: None,
                reservation: &reservation,
                new_hash: None,
                recovery: None,
                now: now_i,
            };
            store.commit_success(&limits, &success)
        })();
        if let Err(e) = written {
            return Outcome::store_error(
                SelfAnswer::Refused {
                    reason: Refusal::Error,
                },
                e,
            );
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(peer.uid);
        }
        Outcome::new(SelfAnswer::Done, "enrolled")
    }

    fn passwd(&mut self, request: &SelfRequest, peer: Peer, now: u64) -> Outcome {
        if self.source == PasswordSource::System {
            return Outcome::new(
                SelfAnswer::Refused {
                    reason: Refusal::SystemPasswords,
                },
                "system-passwords",
            );
        }
        let new = &request.new_password;
        if !new.is_whole() || new.bytes().is_empty() {
            return Outcome::new(
                SelfAnswer::Refused {
                    reason: Refusal::BadNewPassword,
                },
                "bad-new-password",
            );
        }
        // The hash the check will verify the current password against,
        // read first: the change names it, so a hash replaced meanwhile
        // (an admin's reset) is not overwritten.
        let before = self
            .store()
            .ok()
            .and_then(|s| s.user(&request.user).ok().flatten())
            .map(|r| r.phc);
        let mut outcome = self.check(request, peer, now, "veilctl-passwd");
        if outcome.answer != SelfAnswer::Done {
            return outcome;
        }
        // Only now, with the current password (and code) proved, may the
        // reason reach the peer: it is the account's owner.
        let old = Some(request.password.bytes());
        match self.quality.check(new.bytes(), old, &request.user) {
            Ok(Quality::Good) => {}
            Ok(Quality::Weak(weak)) => {
                outcome.answer = SelfAnswer::Refused {
                    reason: Refusal::weak_password(&weak.why),
                };
                outcome.reason = "weak-password";
                return outcome;
            }
            Err(e) => {
                outcome.answer = SelfAnswer::Refused {
                    reason: Refusal::Error,
                };
                outcome.reason = "quality-check-failed";
                outcome.error = Some(e.to_string());
                return outcome;
            }
        }
        let now_i = now.min(i64::MAX as u64) as i64;
        let saved = match (self.hasher.hash(new.bytes()), before) {
            (Ok(phc), Some(old)) => self
                .store()
                .and_then(|s| s.self_passwd(&request.user, &old, &phc, now_i))
                .map_err(|e| e.to_string())
                .and_then(|changed| match changed {
                    true => Ok(()),
                    false => Err("the password was changed meanwhile".to_owned()),
                }),
            (Ok(_), None) => Err("the user's hash could not be read".to_owned()),
            (Err(e), _) => Err(e.to_string()),
        };
        match saved {
            Ok(()) => outcome.reason = "password-changed",
            Err(e) => {
                outcome.answer = SelfAnswer::Refused {
                    reason: Refusal::Error,
                };
                outcome.reason = "store-error";
                outcome.error = Some(e);
            }
        }
        outcome
    }

    /// Whether `user` has an active TOTP secret in the store.
    fn enrolled(&mut self, user: &str) -> Result<bool, StoreError> {
        let store = self.store()?;
        store
            .user(user)
            .map(|record| record.is_some_and(|r| r.totp_secret.is_some()))
    }

    /// Ten new recovery codes for the peer's own account, after its
    /// password and current code (a recovery code stands in for the code
    /// and is used up, as at a login); the old set is void. Without an
    /// active secret it is refused at once: codes count only beside one,
    /// and the check would pass on the password alone. Only the peer's
    /// own name gets that refusal; any other name goes through the check
    /// and its one failure.
    fn recovery_new(&mut self, request: &SelfRequest, peer: Peer, now: u64) -> Outcome {
        let no_secret = || {
            Outcome::new(
                SelfAnswer::Refused {
                    reason: Refusal::NoSecret,
                },
                "no-secret",
            )
        };
        if peer::permits(peer, &request.user) {
            match self.enrolled(&request.user) {
                Ok(true) => {}
                Ok(false) => return no_secret(),
                Err(e) => return Outcome::store_error(SelfAnswer::Failed, e),
            }
        }
        let mut outcome = self.check(request, peer, now, "veilctl-recovery-new");
        if outcome.answer != SelfAnswer::Done {
            return outcome;
        }
        // The secret may have been removed since the first look, and then
        // the check took the password alone: make nothing.
        match self.enrolled(&request.user) {
            Ok(true) => {}
            Ok(false) => {
                outcome.answer = SelfAnswer::Refused {
                    reason: Refusal::NoSecret,
                };
                outcome.reason = "no-secret";
                return outcome;
            }
            Err(e) => {
                outcome.answer = SelfAnswer::Refused {
                    reason: Refusal::Error,
                };
                outcome.reason = "store-error";
                outcome.error = Some(e.to_string());
                return outcome;
            }
        }
        let Ok(new) = recovery::generate() else {
            outcome.answer = SelfAnswer::Refused {
                reason: Refusal::Error,
            };
            outcome.reason = "no-randomness";
            return outcome;
        };
        let now_i = now.min(i64::MAX as u64) as i64;
        let saved = self
            .store()
            .and_then(|s| s.self_recovery(&request.user, &new.set, now_i))
            .map_err(|e| e.to_string())
            .and_then(|made| match made {
                true => Ok(()),
                false => Err("no active secret".to_owned()),
            });
        match saved {
            Ok(()) => {
                outcome.answer = SelfAnswer::Codes {
                    codes: new.codes.into_iter().map(SecretText::new).collect(),
                };
                outcome.reason = "recovery-codes-made";
            }
            Err(e) => {
                outcome.answer = SelfAnswer::Refused {
                    reason: Refusal::Error,
                };
                outcome.reason = "store-error";
                outcome.error = Some(e.to_string());
            }
        }
        outcome
    }
}

/// 128 random bits as hex: binds a confirm to its begin.
fn new_ticket() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests;
