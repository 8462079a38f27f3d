//! veild's configuration: strict TOML, every default in one place.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::common::crypt::Kind;
use crate::common::shadow::DEFAULT_SHADOW;

pub mod alerts;
pub mod metrics;
pub mod pg;
pub mod service;
mod validate;
pub use crate::common::ledger::{Lockout, LockoutScope};
pub use pg::{PgSslMode, Postgres};
pub use service::{Factors, Service};

pub const DEFAULT_CONFIG: &str = "/etc/veil/veild.toml";

/// Exit status for an unusable configuration (sysexits' EX_CONFIG), for
/// veild and veilctl alike.
pub const EX_CONFIG: u8 = 78;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where veild listens (unless systemd passes a socket).
    pub socket: PathBuf,
    /// The SQLite file holding users, TOTP secrets and the lockout ledger,
    /// or a `postgresql://` URL for a store shared by many hosts (then
    /// `[postgres]` holds its password file, TLS and timeouts).
    pub database: PathBuf,
    /// Every denial leaves this long after the request arrived.
    pub failure_delay_ms: u64,
    pub lockout: Lockout,
    pub totp: Totp,
    pub argon2: Argon2,
    pub password: Password,
    pub limits: Limits,
    pub postgres: Postgres,
    pub metrics: metrics::Metrics,
    pub alerts: alerts::Alerts,
    /// `[service.NAME]`: per PAM service, the factors it accepts and its
    /// TOTP policy; a service without one takes the host's settings.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub service: std::collections::BTreeMap<String, Service>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PasswordSource {
    /// veil's own argon2id hashes (`veilctl user add`).
    Veil,
    /// The account's hash in the shadow file, checked with libxcrypt.
    System,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Password {
    pub source: PasswordSource,
    /// The shadow file: the hashes (`source = "system"`) and, in both
    /// sources, the lock and expiry of accounts that have a line there.
    pub shadow: PathBuf,
    /// The dummy's method for `source = "system"`; unset: what pam_unix's
    /// `password` line, else login.defs, gives new passwords on this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dummy_method: Option<Kind>,
    /// The dummy's cost (crypt_gensalt's count: yescrypt's cost factor,
    /// sha-crypt's rounds, bcrypt's log2 cost); unset: the host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dummy_cost: Option<u64>,
    /// Check new veil passwords with libpwquality, as pam_pwquality does
    /// for `passwd` (false: only the breached list, if any).
    pub quality: bool,
    /// libpwquality's settings file; unset: its own default,
    /// /etc/security/pwquality.conf and pwquality.conf.d/.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_config: Option<PathBuf>,
    /// A local, sorted list of SHA-1 hashes of breached passwords (Have I
    /// Been Pwned's format); a new password found in it is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breached_list: Option<PathBuf>,
}

impl Default for Password {
    fn default() -> Password {
        Password {
            source: PasswordSource::Veil,
            shadow: PathBuf::from(DEFAULT_SHADOW),
            dummy_method: None,
            dummy_cost: None,
            quality: true,
            quality_config: None,
            breached_list: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TotpPolicy {
    /// A user without an active TOTP secret can never log in.
    Required,
    /// A user without an active TOTP secret logs in with the password alone.
    IfEnrolled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Totp {
    pub policy: TotpPolicy,
    /// Accepted 30-second steps either side of now.
    pub skew: u8,
    /// Gradual rollout: with `policy = "if-enrolled"`, members of these
    /// groups (NSS: listed members or primary group) must have a code.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required_groups: Vec<String>,
    /// Gradual rollout: from this day on (`YYYY-MM-DD`, 00:00 UTC) every
    /// user must have a code, as with `policy = "required"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrol_by: Option<String>,
    /// The issuer an authenticator app shows for this host's entry;
    /// unset: `veil on HOSTNAME`. The account is always `NAME@HOSTNAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl Totp {
    /// `enrol_by` as Unix seconds (validated at load).
    pub fn enrol_by_unix(&self) -> Option<i64> {
        self.enrol_by.as_deref().and_then(day_start_unix)
    }
}

/// 00:00 UTC of a `YYYY-MM-DD` date as Unix seconds (proleptic Gregorian);
/// `None` unless it is such a date.
pub fn day_start_unix(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b[r.clone()]
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| b[r].iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || d < 1
        || d > month_days[(m - 1) as usize]
    {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2 {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open client connections; beyond it a new connection gets DENY at once.
    pub max_connections: usize,
    /// Open connections of one non-root peer uid.
    pub max_connections_per_user: usize,
    /// argon2 worker threads; 0 means one per core.
    pub workers: usize,
    /// Requests waiting for a worker; beyond it the request is denied.
    pub queue: usize,
    /// A client must send its whole request within this time.
    pub request_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            socket: PathBuf::from(veil_proto::DEFAULT_SOCKET),
            database: PathBuf::from("/var/lib/veil/veil.db"),
            failure_delay_ms: 2000,
            lockout: Lockout::default(),
            totp: Totp::default(),
            argon2: Argon2::default(),
            password: Password::default(),
            limits: Limits::default(),
            postgres: Postgres::default(),
            metrics: metrics::Metrics::default(),
            alerts: alerts::Alerts::default(),
            service: std::collections::BTreeMap::new(),
        }
    }
}

impl Default for Totp {
    fn default() -> Totp {
        Totp {
            policy: TotpPolicy::Required,
            skew: 1,
            required_groups: Vec::new(),
            enrol_by: None,
            issuer: None,
        }
    }
}

impl Default for Argon2 {
    /// OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
    fn default() -> Argon2 {
        Argon2 {
            m_cost_kib: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            max_connections_per_user: 16,
            workers: 0,
            queue: 64,
            request_timeout_ms: 5000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: Invalid,
    },
}

/// A value outside its bounds: the key (`lockout.deny`) and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Invalid {
    pub key: &'static str,
    pub message: String,
}

impl Config {
    /// Reads and validates a config file. A missing file is an error: a
    /// security daemon must not run on guessed settings.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses config text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: one_line(&e.to_string()),
        })?;
        config.validate().map_err(|source| ConfigError::Invalid {
            path: path.to_owned(),
            source,
        })?;
        Ok(config)
    }

    /// Worker threads after resolving 0 to the number of cores.
    pub fn workers(&self) -> usize {
        match self.limits.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
