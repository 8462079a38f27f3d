//! The store behind one interface: users, TOTP state, the lockout ledger
//! and the known-good pairs. Every statement lives in a back end; the rules
//! (which keys an attempt is charged to, when a key locks) are the
//! ledger's and the verifier's. SQLite ([`SqliteStore`]) keeps one host's
//! store in a file; PostgreSQL ([`PgStore`]) one store for many hosts.

pub mod outage;
pub mod postgres;
mod sqlite;

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::common::ledger::{Charge, Entry, KeyKind, Limits, Reservation};
use crate::common::recovery::RecoverySet;

pub use postgres::{PgSettings, PgStore};
pub use sqlite::SqliteStore;

/// Why the store could not do what was asked. Sources are kept; the
/// variant says what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path} does not exist")]
    Missing { path: PathBuf },
    /// The file exists but this process may not read and write it.
    #[error("database {path}: permission denied")]
    PermissionDenied { path: PathBuf },
    #[error("database {path} is not a veil database or is damaged: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// Written by a newer veil (a downgrade): nothing is changed; the
    /// message says which release to install.
    #[error(
        "database {path}: this veil ({release}) speaks schema {supported}; the database is at \
         schema {found}, written by a newer veil: install that release or newer \
         (nothing was migrated)",
        release = env!("CARGO_PKG_VERSION")
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// A file of the database that may have been planted to steer root
    /// (a link, another owner): left untouched.
    #[error("database file {path}: {reason}")]
    Refused { path: PathBuf, reason: String },
    #[error("database {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A PostgreSQL store: `target` is its URL (it never holds a password).
    #[error("PostgreSQL {target}: {message}")]
    Postgres {
        target: String,
        message: String,
        #[source]
        source: ::postgres::Error,
    },
    /// A PostgreSQL store that cannot be used as configured (password
    /// file, CA file, URL).
    #[error("PostgreSQL {target}: {source}")]
    PostgresSetup {
        target: String,
        #[source]
        source: postgres::SetupError,
    },
    /// The thread making a reservation (`verify/reserver.rs`) ended
    /// without answering: nothing is known of the store's state.
    #[error("the reservation thread ended without an answer")]
    ReservationThreadGone,
    /// `veilctl store copy` found a user there with other contents:
    /// nothing was copied.
    #[error("PostgreSQL {target}: {source}")]
    CopyConflict {
        target: String,
        #[source]
        source: postgres::UserConflict,
    },
    #[error("no such user: {0}")]
    NoSuchUser(String),
    #[error("user already exists: {0}")]
    UserExists(String),
}

impl StoreError {
    /// PostgreSQL refused for want of privilege: the role is a login role
    /// (`veil_login`) and the statement an administrator's.
    pub fn is_pg_permission_denied(&self) -> bool {
        matches!(self, StoreError::Postgres { source, .. }
            if source.code() == Some(&::postgres::error::SqlState::INSUFFICIENT_PRIVILEGE))
    }

    /// PostgreSQL could not be reached or went away: no answer from the
    /// server (refused, timed out, closed), or its connection-exception
    /// (08) or operator-intervention (57: shutting down, starting up)
    /// classes. Not a wrong statement, a missing privilege or a full disk:
    /// those are the store's answer, and `outage = "local"` does not apply.
    pub fn is_outage(&self) -> bool {
        match self {
            StoreError::Postgres { source, .. } => match source.code() {
                None => true,
                Some(state) => matches!(&state.code()[..2], "08" | "57"),
            },
            _ => false,
        }
    }
}

/// The `phc` of a row that exists only to hold a system account's TOTP
/// state (`source = "system"`, made by `veilctl totp enroll`): no argon2
/// hash, so with `source = "veil"` it is verified against the dummy and
/// never matches.
pub const SYSTEM_ONLY_PHC: &str = "!system";

/// How a caller wants the file opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file (mode 0600) if it does not exist. veild's first start.
    CreateIfMissing,
    /// The file must exist (veild reopening after a fault).
    MustExist,
    /// Create the file if it does not exist, owned by the owner and group
    /// of its directory (veil's, made by the package), mode 0600: veilctl
    /// run as root before veild's first start. The file appears complete
    /// (linked in from a private name), never root-owned for a moment.
    CreateAsDirOwner,
}

/// One user's record as the verifier needs it.
#[derive(Clone)]
pub struct UserRecord {
    pub phc: String,
    pub totp_secret: Option<Zeroizing<Vec<u8>>>,
    pub totp_last_step: i64,
    /// The user's recovery codes (keyed hashes), if any were made.
    pub recovery: Option<RecoverySet>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("totp", &self.totp_secret.is_some())
            .field("totp_last_step", &self.totp_last_step)
            .field("recovery", &self.recovery)
            .finish_non_exhaustive()
    }
}

/// A row of `veilctl user list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserSummary {
    pub name: String,
    pub totp: bool,
    pub totp_pending: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// The stored hash, to compare its parameters with the current ones.
    #[serde(skip)]
    pub phc: String,
    /// Filled in by the caller that knows the current parameters.
    pub hash_current: bool,
    /// `source = "system"`: the shadow hash's method and cost when they
    /// differ from the dummy's (`yescrypt j9T`, `sha512 rounds=5000`), or
    /// the account's state (`locked`, `no-system-account`, ...); `None`
    /// when it costs what the dummy does. Filled in by the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_hash: Option<String>,
}

/// The writes of a successful login, done together (one commit): the
/// code's time step (compare-and-set), the ledger, and a new hash when the
/// parameters changed.
#[derive(Debug)]
pub struct Success<'a> {
    pub user: &'a str,
    /// The accepted code's step, when the user has a TOTP secret.
    pub step: Option<i64>,
    pub reservation: &'a Reservation,
    pub new_hash: Option<&'a str>,
    /// A recovery code used in place of the TOTP code: its slot is marked
    /// used in the same commit (compare-and-set on that slot's bit).
    pub recovery: Option<RecoveryUse<'a>>,
    pub now: i64,
}

/// A store's whole contents as `veilctl store copy` moves them: users
/// (with their secrets: zeroized on drop), raw ledger rows, known-good pairs.
#[derive(Debug, Default)]
pub struct Export {
    pub users: Vec<ExportedUser>,
    pub ledger: Vec<LedgerRow>,
    /// (user, source, last success).
    pub known_good: Vec<(String, String, i64)>,
}

pub struct ExportedUser {
    pub name: String,
    pub phc: String,
    pub totp_secret: Option<Zeroizing<Vec<u8>>>,
    pub totp_pending: Option<Zeroizing<Vec<u8>>>,
    pub totp_last_step: i64,
    /// Recovery codes: the set's key, its hashes blob, the used bits.
    pub recovery: Option<(Zeroizing<Vec<u8>>, Vec<u8>, i64)>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for ExportedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub kind: String,
    pub user: String,
    pub source: String,
    pub failures: i64,
    pub window_start: i64,
    pub locked_until: i64,
    pub last_seen: i64,
    pub locks: i64,
    pub locks_remembered_until: i64,
}

/// What an import wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub users: usize,
    /// Users that were there already with the same hash and secret.
    pub unchanged: usize,
    pub ledger_rows: usize,
    pub known_good: usize,
}

/// Which recovery code a success used: its slot, and the key of the set
/// it was checked against (a set replaced meanwhile is not touched).
#[derive(Debug, Clone, Copy)]
pub struct RecoveryUse<'a> {
    pub slot: u8,
    pub key: &'a [u8],
}

/// One audit session's fresh-code binding ([`crate::common::fresh`]):
/// the host and boot its session id belongs to (ids are per kernel and
/// start again at each boot), the id, and the user who bound it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionKey<'a> {
    pub host: &'a str,
    pub boot: &'a str,
    pub session: u32,
    pub user: &'a str,
}

/// A reservation and the row [`Store::user_or_dummy`] gives for the
/// request's name, read with it ([`Store::reserve_and_look_up`]).
#[derive(Debug)]
pub struct Reserved {
    pub reservation: Reservation,
    pub row: Result<Option<(UserRecord, bool)>, StoreError>,
}

/// Everything veild and veilctl ask of a store.
pub trait Store: Send + std::fmt::Debug {
    /// False once the store can no longer be used (its file was deleted or
    /// replaced): the caller opens it again.
    fn still_usable(&self) -> bool;

    /// The PostgreSQL store, if this is one (the outage hand-over's
    /// statements are its own).
    fn as_pg(&mut self) -> Option<&mut PgStore> {
        None
    }

    // The login path.
    /// Writes the record unknown names are checked against, as a row that
    /// no request can name, so that every lookup reads one row alike.
    fn put_dummy(&mut self, record: &UserRecord, now: i64) -> Result<(), StoreError>;
    /// The user's record and `true`, or the dummy's and `false`: one
    /// statement either way. `None` only if the dummy row is missing.
    fn user_or_dummy(&self, name: &str) -> Result<Option<(UserRecord, bool)>, StoreError>;
    /// Checks and reserves one attempt on all its keys, atomically and
    /// durably, before its password is checked.
    fn reserve(
        &mut self,
        limits: &Limits,
        charge: Charge,
        now: i64,
    ) -> Result<Reservation, StoreError>;
    /// [`Store::reserve`], and the row [`Store::user_or_dummy`] gives for
    /// `name`. PostgreSQL reads the row in the reservation's first
    /// statement: one round trip fewer per login.
    fn reserve_and_look_up(
        &mut self,
        limits: &Limits,
        charge: Charge,
        name: &str,
        now: i64,
    ) -> Result<Reserved, StoreError> {
        let reservation = self.reserve(limits, charge, now)?;
        Ok(Reserved {
            reservation,
            row: self.user_or_dummy(name),
        })
    }
    /// A success's writes; `Ok(false)` when the code's step was taken
    /// meanwhile (a replay racing it), or its recovery code's slot was
    /// used meanwhile (or its set replaced), and then nothing is written.
    fn commit_success(&mut self, limits: &Limits, success: &Success) -> Result<bool, StoreError>;
    /// Deletes expired ledger rows and known-good pairs; returns how many.
    fn prune(&mut self, limits: &Limits, now: i64) -> Result<usize, StoreError>;
    /// The time the store's state is written in, for a host whose clock
    /// reads `local_now`: SQLite (one host) its own clock; PostgreSQL the
    /// database server's, so that every host of a fleet writes lock
    /// windows and ends, known-good ages and the TOTP replay watermark by
    /// one clock (measured once a minute per connection; within
    /// [`postgres::CLOCK_DEAD_BAND_S`] a host keeps its own).
    fn fleet_now(&mut self, local_now: i64) -> Result<i64, StoreError> {
        Ok(local_now)
    }

    // The fresh-code window (veild).
    /// Binds the session at `now` (a new bind of the same key moves it).
    fn fresh_bind(&mut self, key: &SessionKey, now: i64) -> Result<(), StoreError>;
    /// When the session was bound, if it is.
    fn fresh_bound_at(&self, key: &SessionKey) -> Result<Option<i64>, StoreError>;
    /// Ends the session's binding; returns the rows removed.
    fn fresh_unbind(&mut self, key: &SessionKey) -> Result<usize, StoreError>;
    /// Deletes bindings made before `before`; returns how many.
    fn fresh_prune(&mut self, before: i64) -> Result<usize, StoreError>;

    // Self-service (veild, for the user it checked). On PostgreSQL these
    // are the only writes to a user's credentials a login role may make,
    // through functions that check what the server can; here, the same
    // checks over the administration calls.
    /// Replaces the user's password hash `old_phc` (the one veild checked
    /// the current password against) with `new_phc`; `Ok(false)` if the
    /// row holds another hash now, or is a system account's.
    fn self_passwd(
        &mut self,
        name: &str,
        old_phc: &str,
        new_phc: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        match self.user(name)? {
            Some(r) if r.phc == old_phc && r.phc != SYSTEM_ONLY_PHC => {
                self.set_password(name, new_phc, now)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    /// Makes `secret` the user's active one, confirmed by a code of step
    /// `step`; with `system`, first makes the system account's row.
    fn self_enrol(
        &mut self,
        name: &str,
        secret: &[u8],
        step: i64,
        system: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        if system && self.user(name)?.is_none() {
            self.add_user(name, SYSTEM_ONLY_PHC, now)?;
        }
        self.set_totp_pending(name, secret, now)?;
        self.activate_totp(name, step, now)
    }
    /// Replaces the user's recovery codes with `set`, only beside an
    /// active secret; `Ok(false)` without one.
    fn self_recovery(
        &mut self,
        name: &str,
        set: &RecoverySet,
        now: i64,
    ) -> Result<bool, StoreError> {
        if self.user(name)?.is_none_or(|r| r.totp_secret.is_none()) {
            return Ok(false);
        }
        self.set_recovery(name, Some(set), now)?;
        Ok(true)
    }

    // Administration (veilctl).
    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError>;
    fn add_user(&mut self, name: &str, phc: &str, now: i64) -> Result<(), StoreError>;
    fn set_password(&mut self, name: &str, phc: &str, now: i64) -> Result<(), StoreError>;
    /// Removes the user and every ledger row that names them.
    fn delete_user(&mut self, name: &str) -> Result<(), StoreError>;
    fn list_users(&self) -> Result<Vec<UserSummary>, StoreError>;
    /// Stores a secret that is not used for logins until activated.
    fn set_totp_pending(&mut self, name: &str, secret: &[u8], now: i64) -> Result<(), StoreError>;
    fn totp_pending(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError>;
    /// Makes the pending secret the active one. `used_step` is the step of
    /// the confirming code, so that code cannot be replayed at login.
    fn activate_totp(&mut self, name: &str, used_step: i64, now: i64) -> Result<(), StoreError>;
    fn disable_totp(&mut self, name: &str, now: i64) -> Result<(), StoreError>;
    /// Replaces the user's recovery codes with `set` (its `used` bits as
    /// given), or removes them (`None`). `NoSuchUser` if there is no row.
    fn set_recovery(
        &mut self,
        name: &str,
        set: Option<&RecoverySet>,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Every lock in force.
    fn locks(&mut self, limits: &Limits, now: i64) -> Result<Vec<Entry>, StoreError>;
    /// Every live counter that concerns a user.
    fn status(&mut self, limits: &Limits, user: &str, now: i64) -> Result<Vec<Entry>, StoreError>;
    /// Clears every key of a user; returns the rows removed.
    fn unlock_user(&mut self, user: &str) -> Result<usize, StoreError>;
    /// Clears every key of a source (its stored form); returns the rows removed.
    fn unlock_source(&mut self, source: &str) -> Result<usize, StoreError>;
    /// Rows in the ledger.
    fn ledger_rows(&self) -> Result<i64, StoreError>;
    /// How many keys of each kind are locked at `now` (kinds with none
    /// left out). One query; not on a login's path (veild's metrics).
    fn locks_in_force(&self, now: i64) -> Result<Vec<(KeyKind, i64)>, StoreError>;
}

/// Where a config's store is: `database` as a path, or as a URL.
#[derive(Debug, Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(PgSettings),
}

impl Location {
    pub fn of(config: &crate::common::config::Config) -> Location {
        if postgres::is_url(&config.database) {
            Location::Postgres(PgSettings::new(&config.database, &config.postgres))
        } else {
            Location::Sqlite(config.database.clone())
        }
    }

    /// The SQLite file, if the store is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(settings) => f.write_str(settings.target()),
        }
    }
}

/// Opens the store a config names. For PostgreSQL, `CreateIfMissing`
/// creates (or migrates) the schema; `MustExist` wants it made already.
pub fn open(location: &Location, mode: OpenMode) -> Result<Box<dyn Store>, StoreError> {
    match location {
        Location::Sqlite(path) => Ok(Box::new(SqliteStore::open(path, mode)?)),
        Location::Postgres(settings) => Ok(Box::new(PgStore::open(settings, mode)?)),
    }
}
