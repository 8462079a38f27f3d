//! veilctl's one error type, and the exit statuses scripts can act on
//! (see veilctl(8)).

use std::fmt;

use veil_daemon::common::store::StoreError;

pub const EXIT_FAILURE: u8 = 1;
/// A bad command line or an unusable name; nothing changed.
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NO_SUCH_USER: u8 = 3;
pub const EXIT_NO_DATABASE: u8 = 4;
pub const EXIT_PERMISSION: u8 = 5;
/// A guard of `enable` refused: nothing changed.
pub const EXIT_REFUSED: u8 = 6;
pub use veil_daemon::common::config::EX_CONFIG;

/// What went wrong, with the exit status veilctl uses for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_FAILURE, message)
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_USAGE, message)
    }

    pub fn refused(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_REFUSED, message)
    }

    /// A file could not be read or written.
    pub fn io(message: impl Into<String>) -> Failure {
        Failure::failed(message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        let (code, hint) = match &e {
            StoreError::NoSuchUser(_) | StoreError::UserExists(_) => (EXIT_NO_SUCH_USER, ""),
            StoreError::Missing { .. } => (EXIT_NO_DATABASE, ""),
            StoreError::PermissionDenied { .. } => (EXIT_PERMISSION, " (run veilctl as root)"),
            _ => (EXIT_FAILURE, ""),
        };
        Failure::new(code, format!("{e}{hint}"))
    }
}
