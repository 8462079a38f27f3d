//! The verifier's part of the fresh-code window (`common/fresh.rs`): the
//! logins shared between workers, session notes, and whether a request's
//! window is open. Its own file: the window is one feature beside the
//! verifier's common path.

use std::sync::{Arc, Mutex};

use veil_proto::Request;

use crate::common::fresh::{self, Claimed, Recent};
use crate::common::peer::Peer;

use super::checks::Checks;
use super::{Verifier, VerifierError};

impl Verifier {
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
    pub(super) fn fresh_window(&mut self, request: &Request, peer: Peer, now: i64) -> bool {
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
    pub(super) fn remember_fresh_login(
        &mut self,
        request: &Request,
        peer: Peer,
        checks: &Checks,
        now: u64,
    ) {
        let verified_both = checks.enrolled && checks.code_used && !request.code_only;
        if !verified_both || peer.uid != 0 || request.ruid != 0 || !self.policies.any_fresh_window()
        {
            return;
        }
        let ppid = Claimed::of_request(request, peer).ppid;
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.record(&request.user, &request.service, peer.pid, ppid, now);
    }
}
