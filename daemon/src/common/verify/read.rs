//! What one request reads, whoever the user is: the ledger's reservation,
//! one user-or-dummy row, the shadow file (and who the attempt is charged
//! to). Its own file: the reads are one concern of the verifier, apart
//! from the checks made on them (`checks.rs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use veil_proto::Request;
use zeroize::Zeroizing;

use crate::common::ledger::{self, Limits, Origin};
use crate::common::peer::Peer;
use crate::common::shadow::{self, State};
use crate::common::store::{Reserved, Store, StoreError, UserRecord};

use super::reserver::Job;
use super::{Verifier, VerifierError, open_shared};

/// The shadow file could not be read: every request is denied.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub(super) struct ShadowUnreadable {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// What one request read ([`Verifier::read`]).
pub(super) struct Read {
    pub(super) reservation: Option<ledger::Reservation>,
    /// The user's row, or the dummy's; `None` only if the store failed.
    pub(super) row: Option<UserRecord>,
    /// The row is the user's own.
    pub(super) found: bool,
    pub(super) account: Result<Option<shadow::Entry>, ShadowUnreadable>,
    pub(super) state: Option<State>,
    pub(super) store_error: Option<String>,
    /// The store failed for want of an answer
    /// ([`StoreError::is_outage`](crate::common::store::StoreError::is_outage)).
    pub(super) outage: bool,
    /// The source of the (user, source) pair this login counts for, when
    /// it may use the pair's known hash (`known.rs`).
    pub(super) pair_source: Option<String>,
    /// The password verified against the pair's known hash while the
    /// store reserved: the hash, and whether it matched.
    pub(super) early: Option<Early>,
}

impl Read {
    /// The user's own veil row, if there is one.
    pub(super) fn record(&self) -> Option<&UserRecord> {
        if self.found { self.row.as_ref() } else { None }
    }
}

impl Verifier {
    /// What a request reads, whoever the user is: the ledger's
    /// reservation, one user-or-dummy row, the shadow file. `verified`:
    /// an earlier read of this request already verified its password
    /// early (the store then failed): kept, not verified again.
    pub(super) fn read(
        &mut self,
        request: &Request,
        peer: Peer,
        permitted: bool,
        now: u64,
        verified: Option<Early>,
    ) -> Read {
        let now_i = now.min(i64::MAX as u64) as i64;
        let limits = self.limits.clone();
        let charge = charge_of(&limits, request, peer, permitted);
        // A veil password checked against the user's own row, on the
        // shared store, denials held to their deadline: the pair's known
        // hash may be verified early.
        let pair_source = (self.early_verify
            && permitted
            && !request.code_only
            && !self.offline
            && self.system.crypt_dummy.is_none())
        .then(|| charge.source.clone());
        let guess = pair_source
            .as_deref()
            .filter(|_| verified.is_none())
            .and_then(|source| self.known.get(&request.user, source));
        let mut store_error: Option<String> = None;
        let mut outage = false;
        let started = std::time::Instant::now();
        // One row read either way: the user's, or the dummy row veild
        // wrote at start (with the reservation where the store can).
        let (reserved, early) = self.reserve(&limits, charge, request, now_i, guess);
        let (reservation, looked_up) = match reserved {
            Ok(Ok(r)) => (Some(r.reservation), Some(r.row)),
            Ok(Err(e)) => {
                outage = e.is_outage();
                store_error = Some(format!("ledger: {e}"));
                (None, None)
            }
            Err(e) => {
                outage = matches!(&e, VerifierError::Store(e) if e.is_outage());
                store_error = Some(e.to_string());
                (None, None)
            }
        };
        // No reservation: the row on its own, from the in-memory copy if
        // the store failed.
        let looked_up = looked_up.or_else(|| {
            let users: Option<&dyn Store> = if self.offline {
                self.cache.as_ref().map(|c| c.store_ref() as &dyn Store)
            } else {
                self.store.as_deref()
            };
            users.map(|s| s.user_or_dummy(&request.user))
        });
        let (row, found) = match looked_up {
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
        // Overlapped, the early verify's time is the checks', not the store's.
        let early_time = early.as_ref().map_or(Duration::ZERO, |e| e.time);
        self.store_time += started.elapsed().saturating_sub(early_time);
        self.check_time += early_time;
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
            pair_source,
            early: early.or(verified),
        }
    }

    /// The reservation and the user's row; with `guess` (the pair's known
    /// hash), the password verified against it on this thread while
    /// another thread waits for the store. The verify's answer is only
    /// read after the reservation returned, so a guess still counts
    /// before it is evaluated.
    fn reserve(
        &mut self,
        limits: &Limits,
        charge: ledger::Charge,
        request: &Request,
        now: i64,
        guess: Option<Zeroizing<String>>,
    ) -> (
        Result<Result<Reserved, StoreError>, VerifierError>,
        Option<Early>,
    ) {
        // Without a known hash or a thread of its own: the reservation,
        // then (in `check`) the verify.
        let (Some(phc), Some(reserver)) = (guess.filter(|_| !self.offline), self.reserver.as_ref())
        else {
            return match self.store() {
                Ok(store) => (
                    Ok(store.reserve_and_look_up(limits, charge, &request.user, now)),
                    None,
                ),
                Err(e) => (Err(e), None),
            };
        };
        let store = match open_shared(&mut self.store, &self.database, &self.dummy) {
            Ok(store) => store,
            Err(e) => return (Err(e), None),
        };
        let job = Job {
            store,
            charge,
            user: request.user.clone(),
            now,
        };
        let (hasher, memory) = (&self.hasher, &mut self.memory);
        let (store, reserved, (matched, time)) = reserver.reserve_while(job, || {
            let started = Instant::now();
            let matched = hasher.verify_with(memory, &phc, request.password.bytes());
            (matched, started.elapsed())
        });
        self.store = store;
        (Ok(reserved), Some(Early { phc, matched, time }))
    }
}

/// A password verified against a pair's known hash during the reservation.
pub(super) struct Early {
    /// The hash it was verified against.
    pub(super) phc: Zeroizing<String>,
    pub(super) matched: bool,
    /// The verify's own time (the checks', not the store's).
    time: Duration,
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
