//! What one request reads, whoever the user is: the ledger's reservation,
//! one user-or-dummy row, the shadow file (and who the attempt is charged
//! to). Its own file: the reads are one concern of the verifier, apart
//! from the checks made on them (`checks.rs`).

use std::path::PathBuf;

use veil_proto::Request;

use crate::common::ledger::{self, Limits, Origin};
use crate::common::peer::Peer;
use crate::common::shadow::{self, State};
use crate::common::store::{Store, UserRecord};

use super::{Verifier, VerifierError};

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
}

impl Read {
    /// The user's own veil row, if there is one.
    pub(super) fn record(&self) -> Option<&UserRecord> {
        if self.found { self.row.as_ref() } else { None }
    }
}

impl Verifier {
    /// What a request reads, whoever the user is: the ledger's
    /// reservation, one user-or-dummy row, the shadow file.
    pub(super) fn read(
        &mut self,
        request: &Request,
        peer: Peer,
        permitted: bool,
        now: u64,
    ) -> Read {
        let now_i = now.min(i64::MAX as u64) as i64;
        let limits = self.limits.clone();
        let charge = charge_of(&limits, request, peer, permitted);
        let mut store_error: Option<String> = None;
        let mut outage = false;
        let started = std::time::Instant::now();
        // One row read either way: the user's, or the dummy row veild
        // wrote at start (with the reservation where the store can).
        let (reservation, looked_up) = match self.store() {
            Ok(store) => match store.reserve_and_look_up(&limits, charge, &request.user, now_i) {
                Ok(r) => (Some(r.reservation), Some(r.row)),
                Err(e) => {
                    outage = e.is_outage();
                    store_error = Some(format!("ledger: {e}"));
                    (None, None)
                }
            },
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
