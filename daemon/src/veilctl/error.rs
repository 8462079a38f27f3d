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
            StoreError::Postgres { target, .. } if e.is_pg_permission_denied() => {
                return Failure::new(EXIT_PERMISSION, pg_denied(target, &e));
            }
            _ => (EXIT_FAILURE, ""),
        };
        Failure::new(code, format!("{e}{hint}"))
    }
}

/// PostgreSQL refused a statement to the role veilctl logged in as: on a
/// host that is its login role, which may not change users; the admin's
/// URL is given on the admin's machine (see veilctl(8)).
fn pg_denied(target: &str, e: &StoreError) -> String {
    let role = target
        .parse::<postgres::Config>()
        .ok()
        .and_then(|c| c.get_user().map(str::to_owned))
        .unwrap_or_default();
    if std::env::var_os(crate::ADMIN_URL_ENV).is_some() {
        return format!(
            "permission denied: the admin URL's role ({role}) may not do this: \
             make it the database's owner or a member of veil_admin ({e})"
        );
    }
    format!(
        "permission denied: this host's role ({role}) is veil_login; run user commands with \
         the admin URL ({}=postgresql://ADMIN@HOST/veil {}=/root/veil-admin-password \
         veilctl ...) ({e})",
        crate::ADMIN_URL_ENV,
        crate::ADMIN_PASSWORD_FILE_ENV
    )
}
