//! The same work for every request on what it read (one password verify,
//! one TOTP check, one recovery check, the rollout's group lookups) and the
//! one reason drawn from it in a fixed order. Its own file: the checks and
//! their order are one concern, apart from the reads and the writes.

use veil_proto::{Reply, Request};

use crate::common::crypt;
use crate::common::policy::Policy;
use crate::common::recovery::{self, RecoveryCheck};
use crate::common::shadow::State;
use crate::common::store::{SYSTEM_ONLY_PHC, UserRecord};
use crate::common::totp::{self, CodeCheck};

use super::read::Read;
use super::{Reason, Verifier};

/// What the same work for every request found ([`Verifier::check`]).
pub(super) struct Checks {
    pub(super) password_ok: bool,
    pub(super) enrolled: bool,
    pub(super) code: CodeCheck,
    pub(super) has_codes: bool,
    pub(super) recovery: RecoveryCheck,
    pub(super) code_required: bool,
    /// The service's policy accepts the module line's factors.
    pub(super) policy_ok: bool,
    /// The code counts (not under `factors = ["password"]`).
    pub(super) code_used: bool,
    /// The service's fresh-code window is open for this user in the
    /// peer's audit session.
    pub(super) fresh: bool,
}

impl Verifier {
    /// The same work for every request: one password verify, one TOTP
    /// check, one recovery check, the rollout's group lookups. Code only
    /// still verifies a password, against the dummy for every user, so it
    /// costs what any request does and its result is unused.
    pub(super) fn check(
        &mut self,
        request: &Request,
        read: &Read,
        policy: &Policy,
        now: u64,
    ) -> Checks {
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
                match &read.early {
                    // Verified during the reservation, against this hash.
                    Some(early) if early.phc.as_str() == phc.as_str() => early.matched,
                    _ => self
                        .hasher
                        .verify_with(&mut self.memory, phc, request.password.bytes()),
                }
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
    pub(super) fn reason(
        &self,
        request: &Request,
        read: &Read,
        checks: &Checks,
        permitted: bool,
    ) -> Reason {
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
}

/// A reply that can never match: missing, or cut to the wire's size.
fn unusable(field: &'static str, reply: &Reply) -> Option<Reason> {
    (!reply.is_whole()).then_some(Reason::UnusableReply {
        field,
        state: reply.state(),
    })
}
