//! The small interface the authentication logic needs from libpam. The FFI
//! handle implements it; unit tests implement it with a scripted fake.
#![forbid(unsafe_code)]

use std::fmt;

use veil_proto::Secret;

use crate::code::PamCode;
use crate::conv::MessageStyle;

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

/// What `pam_sm_authenticate` needs from libpam.
pub trait Pam {
    /// `pam_get_user`: the user name (libpam may itself prompt for it).
    fn user(&mut self) -> Result<String, PamFailure>;
    /// `pam_get_item` for a string item; `None` when unset.
    fn item(&self, item: Item) -> Option<String>;
    /// `PAM_AUTHTOK` as left by an earlier module; `None` when unset.
    fn authtok(&self) -> Result<Option<Secret>, PamFailure>;
    /// Asks one question through the application's conversation.
    fn prompt(&mut self, style: MessageStyle, text: &str) -> Result<Secret, PamFailure>;
    /// Stores `PAM_AUTHTOK` for the modules stacked after this one.
    fn set_authtok(&mut self, token: &Secret) -> Result<(), PamFailure>;
    /// `pam_syslog`. Callers pass text that holds no secret.
    fn log(&self, level: Level, message: &str);
}

/// Log-safe text, the same escaping as veild's audit lines (a crafted
/// user name can neither split nor forge a line).
pub use veil_proto::sanitize::sanitize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_escapes_what_could_forge_a_line() {
        assert_eq!(sanitize("alice"), "alice");
        let forged = sanitize("root\nveild: event=attempt user=root outcome=allow");
        assert!(
            !forged.contains(' ') && !forged.contains('\n') && !forged.contains('='),
            "{forged}"
        );
        assert_eq!(sanitize("a\u{1b}[31m"), "a\\x1b[31m");
        assert!(sanitize(&"x".repeat(500)).ends_with("..."));
    }
}
