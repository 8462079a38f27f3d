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

/// Longest value quoted in a log line.
const MAX_LOGGED: usize = 64;

/// A value fit to quote in a log line: control characters become `?` (so a
/// crafted user name cannot forge a line), at most 64 characters.
pub fn sanitize(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(MAX_LOGGED)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if value.chars().nth(MAX_LOGGED).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_removes_control_characters_and_bounds_length() {
        assert_eq!(sanitize("alice"), "alice");
        assert_eq!(sanitize("a\nb\rc\u{1b}[31m\u{0}"), "a?b?c?[31m?");
        let long = "x".repeat(500);
        let shown = sanitize(&long);
        assert_eq!(shown.len(), MAX_LOGGED + 3);
        assert!(shown.ends_with("..."));
        assert_eq!(sanitize(&"é".repeat(64)), "é".repeat(64));
    }
}
