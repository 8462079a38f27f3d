//! How one attempt ended ([`Outcome`], [`Denial`]), and [`pam_code`], the
//! one function that turns an outcome into a PAM return code.
#![forbid(unsafe_code)]

use veil_proto::ClientError;

use crate::vocab::{PamCode, PamFailure};

/// How one authentication attempt ended, as far as the module knows.
#[derive(Debug)]
pub enum Outcome {
    /// veild answered with the exact ALLOW frame.
    Allowed,
    Denied(Denial),
}

/// Why the module denied. Only the system log ever sees this; the user gets
/// `PAM_AUTH_ERR` and the same two prompts whatever it is. The two local
/// denials cannot depend on the account: the arguments are the stack's,
/// and without a user name there is no account to tell apart. Everything
/// about the replies is veild's to judge (see `conv::ask_credentials`).
#[derive(Debug)]
pub enum Denial {
    /// An unknown, malformed, repeated or conflicting module argument.
    BadArguments,
    /// `pam_get_user` failed.
    NoUser(PamFailure),
    /// veild answered DENY; the daemon logs the reason.
    DaemonDenied,
    /// No verdict: veild missing, refusing, slow or answering garbage.
    DaemonTrouble(ClientError),
}

/// The one place an outcome becomes a PAM code. Every denial is
/// `PAM_AUTH_ERR`: never `PAM_USER_UNKNOWN`, `PAM_MAXTRIES`,
/// `PAM_AUTHINFO_UNAVAIL` or `PAM_PERM_DENIED`, on which stacks branch.
pub fn pam_code(outcome: &Outcome) -> PamCode {
    match outcome {
        Outcome::Allowed => PamCode::Success,
        Outcome::Denied(_) => PamCode::AuthErr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_denial_is_pam_auth_err_and_only_allow_succeeds() {
        let failure = || PamFailure::NoConversation;
        let denials = [
            Denial::BadArguments,
            Denial::NoUser(failure()),
            Denial::DaemonDenied,
            Denial::DaemonTrouble(ClientError::TimedOut),
            Denial::DaemonTrouble(ClientError::Garbage),
        ];
        for denial in denials {
            assert_eq!(pam_code(&Outcome::Denied(denial)), PamCode::AuthErr);
        }
        assert_eq!(pam_code(&Outcome::Allowed), PamCode::Success);
    }
}
