//! The FFI vocabulary every other module may use: PAM return codes and
//! message styles as total enums over C ints, the items veil reads, the log
//! levels it writes, and [`PamFailure`] for a libpam call that went wrong.
//! A leaf: it uses nothing else from the crate.
#![forbid(unsafe_code)]

use std::fmt;

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

/// Linux-PAM message styles, total over C ints. The module only ever asks
/// echo-off questions (it never shows a message, so no failure can be told
/// apart by one); every other style is `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStyle {
    PromptEchoOff,
    /// Any other value: a style the module never sends.
    Unknown(i32),
}

impl MessageStyle {
    pub fn from_raw(raw: i32) -> MessageStyle {
        match raw {
            pam::constants::PAM_PROMPT_ECHO_OFF => MessageStyle::PromptEchoOff,
            other => MessageStyle::Unknown(other),
        }
    }

    pub fn to_raw(self) -> i32 {
        match self {
            MessageStyle::PromptEchoOff => pam::constants::PAM_PROMPT_ECHO_OFF,
            MessageStyle::Unknown(raw) => raw,
        }
    }
}

/// The string items veil reads and forwards to veild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Item {
    /// Read for log lines only; the user comes from `Pam::user`.
    User,
    Service,
    Tty,
    RHost,
    RUser,
}

/// Syslog priorities the module uses (the facility is always LOG_AUTHPRIV,
/// which `pam_syslog` adds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something an administrator must fix or know: bad arguments, daemon
    /// trouble, a failed conversation.
    Err,
    /// Only with the `debug` argument.
    Debug,
}

/// A libpam call that did not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PamFailure {
    /// libpam (or the application's conversation) returned this code.
    Call { call: &'static str, code: PamCode },
    /// Success was returned with a null result.
    Null(&'static str),
    /// A user name, token or reply that is not UTF-8.
    NotUtf8(&'static str),
    /// The application registered no conversation function.
    NoConversation,
}

impl fmt::Display for PamFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PamFailure::Call { call, code } => write!(f, "{call} failed: {code}"),
            PamFailure::Null(what) => write!(f, "{what} returned nothing"),
            PamFailure::NotUtf8(what) => write!(f, "{what} is not UTF-8"),
            PamFailure::NoConversation => write!(f, "the application has no conversation function"),
        }
    }
}

impl std::error::Error for PamFailure {}

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
    fn every_message_style_round_trips() {
        for raw in (-100..100).chain([i32::MIN, i32::MAX]) {
            assert_eq!(MessageStyle::from_raw(raw).to_raw(), raw, "{raw}");
        }
        assert_eq!(MessageStyle::from_raw(1), MessageStyle::PromptEchoOff);
        assert_eq!(
            MessageStyle::PromptEchoOff.to_raw(),
            pam::constants::PAM_PROMPT_ECHO_OFF
        );
        // Echo on, error, text, radio, the unused 6, binary: never sent.
        for raw in 2..=7 {
            assert_eq!(MessageStyle::from_raw(raw), MessageStyle::Unknown(raw));
        }
    }
}
