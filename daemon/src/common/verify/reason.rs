//! Why a request was allowed or denied: for the audit log and the
//! metrics only, never the client.

use veil_proto::ReplyState;

use crate::common::ledger::Refusal;

/// The real reason behind a verdict; only the audit log sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Success,
    PeerNotPermitted,
    /// The module line's factors are not what the service's policy accepts.
    Policy,
    Locked(Refusal),
    UnknownUser,
    /// The system account is locked (`!` before its shadow hash).
    AccountLocked,
    /// The system account's expire date has come.
    AccountExpired,
    /// The system password is older than its maximum age plus the inactive period.
    PasswordExpired,
    /// `source = "system"`: the shadow line has no hash a password can match (`*`, empty).
    NoUsableHash,
    /// `source = "system"`: a veil row (TOTP only) but no shadow line.
    NoSystemAccount,
    /// `source = "veil"`: a row made for a system account's TOTP, without a veil password.
    NoVeilPassword,
    /// The shadow file could not be read.
    Shadow(String),
    WrongPassword,
    /// A reply the conversation did not give, or one longer than the
    /// wire carries: verified like any other, and never a match.
    UnusableReply {
        field: &'static str,
        state: ReplyState,
    },
    NoTotp,
    WrongCode,
    ReplayedCode,
    /// A success with a recovery code in place of the TOTP code; `left`
    /// codes remain after it.
    RecoveryCode {
        left: u32,
    },
    /// The password alone, with the code left empty, inside the service's
    /// fresh-code window of this audit session ([`crate::common::fresh`]).
    FreshWindow,
    /// A recovery code that was already used.
    UsedRecoveryCode,
    Store(String),
    /// The check itself failed (a panic caught by the worker): a bug.
    Internal,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Success => "success",
            Reason::PeerNotPermitted => "peer-not-permitted",
            Reason::Policy => "policy",
            Reason::Locked(_) => "locked",
            Reason::UnknownUser => "unknown-user",
            Reason::AccountLocked => "account-locked",
            Reason::AccountExpired => "account-expired",
            Reason::PasswordExpired => "password-expired",
            Reason::NoUsableHash => "no-usable-hash",
            Reason::NoSystemAccount => "no-system-account",
            Reason::NoVeilPassword => "no-veil-password",
            Reason::Shadow(_) => "shadow-error",
            Reason::WrongPassword => "wrong-password",
            Reason::UnusableReply { field, state } => match (*field, state) {
                ("password", ReplyState::Overlong) => "overlong-password",
                ("password", _) => "no-password",
                (_, ReplyState::Overlong) => "overlong-code",
                _ => "no-code",
            },
            Reason::NoTotp => "no-totp-enrolled",
            Reason::WrongCode => "wrong-code",
            Reason::ReplayedCode => "replayed-code",
            Reason::RecoveryCode { .. } => "recovery-code",
            Reason::FreshWindow => "fresh-code-window",
            Reason::UsedRecoveryCode => "used-recovery-code",
            Reason::Store(_) => "store-error",
            Reason::Internal => "internal-error",
        }
    }

    /// Whether this reason is a success (ALLOW).
    pub fn allows(&self) -> bool {
        matches!(
            self,
            Reason::Success | Reason::RecoveryCode { .. } | Reason::FreshWindow
        )
    }
}
