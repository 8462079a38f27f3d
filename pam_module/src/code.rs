//! Linux-PAM return codes as a total enum, and the one function that turns
//! an authentication outcome into a code.
#![forbid(unsafe_code)]

use std::fmt;

use veil_proto::ClientError;

use crate::pam::PamFailure;

/// Every Linux-PAM return code, plus whatever else a C int might hold.
/// `from_raw` and `to_raw` are total and inverse to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PamCode {
    Success,
    OpenErr,
    SymbolErr,
    ServiceErr,
    SystemErr,
    BufErr,
    PermDenied,
    AuthErr,
    CredInsufficient,
    AuthinfoUnavail,
    UserUnknown,
    Maxtries,
    NewAuthtokReqd,
    AcctExpired,
    SessionErr,
    CredUnavail,
    CredExpired,
    CredErr,
    NoModuleData,
    ConvErr,
    AuthtokErr,
    AuthtokRecoveryErr,
    AuthtokLockBusy,
    AuthtokDisableAging,
    TryAgain,
    Ignore,
    Abort,
    AuthtokExpired,
    ModuleUnknown,
    BadItem,
    ConvAgain,
    Incomplete,
    /// A value Linux-PAM 1.5 does not define.
    Unknown(i32),
}

/// The known codes in numeric order: `KNOWN[n]` has the value `n`
/// (see `/usr/include/security/_pam_types.h`).
const KNOWN: [PamCode; 32] = [
    PamCode::Success,
    PamCode::OpenErr,
    PamCode::SymbolErr,
    PamCode::ServiceErr,
    PamCode::SystemErr,
    PamCode::BufErr,
    PamCode::PermDenied,
    PamCode::AuthErr,
    PamCode::CredInsufficient,
    PamCode::AuthinfoUnavail,
    PamCode::UserUnknown,
    PamCode::Maxtries,
    PamCode::NewAuthtokReqd,
    PamCode::AcctExpired,
    PamCode::SessionErr,
    PamCode::CredUnavail,
    PamCode::CredExpired,
    PamCode::CredErr,
    PamCode::NoModuleData,
    PamCode::ConvErr,
    PamCode::AuthtokErr,
    PamCode::AuthtokRecoveryErr,
    PamCode::AuthtokLockBusy,
    PamCode::AuthtokDisableAging,
    PamCode::TryAgain,
    PamCode::Ignore,
    PamCode::Abort,
    PamCode::AuthtokExpired,
    PamCode::ModuleUnknown,
    PamCode::BadItem,
    PamCode::ConvAgain,
    PamCode::Incomplete,
];

impl PamCode {
    pub fn from_raw(raw: i32) -> PamCode {
        usize::try_from(raw)
            .ok()
            .and_then(|i| KNOWN.get(i).copied())
            .unwrap_or(PamCode::Unknown(raw))
    }

    pub fn to_raw(self) -> i32 {
        match self {
            PamCode::Unknown(raw) => raw,
            known => KNOWN
                .iter()
                .position(|k| *k == known)
                .map_or(-1, |i| i as i32),
        }
    }
}

impl fmt::Display for PamCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PamCode::Unknown(raw) => write!(f, "unknown PAM code {raw}"),
            known => write!(f, "{known:?} ({})", known.to_raw()),
        }
    }
}

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
    use pam::constants::PamResultCode;

    #[test]
    fn every_c_int_round_trips() {
        for raw in (-1000..1000).chain([i32::MIN, i32::MAX]) {
            assert_eq!(PamCode::from_raw(raw).to_raw(), raw, "{raw}");
        }
        assert_eq!(PamCode::from_raw(32), PamCode::Unknown(32));
        assert_eq!(PamCode::from_raw(-1), PamCode::Unknown(-1));
    }

    #[test]
    fn known_codes_agree_with_pam_bindings() {
        for raw in 0..32 {
            let theirs = PamResultCode::try_from(raw).expect("pam-bindings knows 0..32");
            let ours = PamCode::from_raw(raw);
            assert!(!matches!(ours, PamCode::Unknown(_)), "{raw}");
            assert_eq!(
                format!("{theirs:?}").replace('_', "").to_lowercase(),
                format!("pam{ours:?}").to_lowercase()
            );
        }
        assert_eq!(
            PamCode::AuthErr.to_raw(),
            PamResultCode::PAM_AUTH_ERR as i32
        );
        assert_eq!(PamCode::Ignore.to_raw(), PamResultCode::PAM_IGNORE as i32);
        assert_eq!(PamCode::Success.to_raw(), PamResultCode::PAM_SUCCESS as i32);
    }

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
