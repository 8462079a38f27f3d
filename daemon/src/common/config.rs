//! veild's configuration: strict TOML, every default in one place.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::common::crypt::Kind;
use crate::common::shadow::DEFAULT_SHADOW;
use crate::common::source::Network;

pub mod metrics;
pub mod pg;
pub use pg::{PgSslMode, Postgres};

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
}

impl Default for Password {
    fn default() -> Password {
        Password {
            source: PasswordSource::Veil,
            shadow: PathBuf::from(DEFAULT_SHADOW),
            dummy_method: None,
            dummy_cost: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockoutScope {
    /// Three counters: (user, source), (user, any remote source), (remote source, any user).
    Source,
    /// pam_faillock's plain per-user counter.
    User,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lockout {
    pub scope: LockoutScope,
    /// Failures of one user from one source before that pair locks.
    pub deny: u32,
    pub fail_interval_s: u64,
    /// How long a key's first lock lasts; each further lock of the same key
    /// (no success in between) lasts twice the one before.
    pub unlock_time_s: u64,
    /// The longest a lock lasts however often it repeats. A key forgets its
    /// earlier locks once this long has passed after the last one ended.
    pub unlock_time_max_s: u64,
    /// A (user, source) pair that succeeded within this many days is
    /// known-good: the wide keys (`user_deny`, `source_deny`) do not lock
    /// it out, only its own `deny` does. 0 turns the exemption off.
    pub known_good_days: u32,
    /// Failures of one user from all remote sources before remote logins lock.
    pub user_deny: u32,
    /// Failures from one remote source, over all users, before it is blocked.
    pub source_deny: u32,
    /// Rows the ledger holds before it gets stricter: past it, only rows
    /// that limit nothing are evicted, and keys without a row are charged
    /// to overflow keys. About 114 MiB at 1 000 000 (BENCHMARKS.md).
    pub max_ledger_rows: u64,
    /// Leading bits of an IPv4 address that make one remote source.
    pub ipv4_prefix: u8,
    /// Leading bits of an IPv6 address that make one remote source (one
    /// host usually holds a whole /64).
    pub ipv6_prefix: u8,
    /// Admin networks: an attempt from inside is charged to its own (user,
    /// source) key only, so a botnet's locks of the wide keys never refuse it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exempt_networks: Vec<Network>,
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
        }
    }
}

impl Default for Lockout {
    fn default() -> Lockout {
        Lockout {
            scope: LockoutScope::Source,
            deny: 5,
            fail_interval_s: 900,
            unlock_time_s: 900,
            unlock_time_max_s: 86_400,
            known_good_days: 30,
            user_deny: 20,
            source_deny: 20,
            max_ledger_rows: 1_000_000,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            exempt_networks: Vec::new(),
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
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
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
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: path.to_owned(),
                key,
                message,
            })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        fn check(ok: bool, key: &'static str, message: &str) -> Result<(), (&'static str, String)> {
            if ok {
                Ok(())
            } else {
                Err((key, message.to_owned()))
            }
        }
        check(
            self.socket.is_absolute(),
            "socket",
            "must be an absolute path",
        )?;
        if pg::is_url(&self.database) {
            pg::check_config(&self.database, &self.postgres)?;
        } else {
            check(
                self.database.is_absolute(),
                "database",
                "must be an absolute path or a postgresql:// URL",
            )?;
        }
        check(
            self.failure_delay_ms <= 30_000,
            "failure_delay_ms",
            "must be at most 30000",
        )?;
        let l = &self.lockout;
        check(
            (1..=100).contains(&l.deny),
            "lockout.deny",
            "must be between 1 and 100",
        )?;
        check(
            l.fail_interval_s >= 1,
            "lockout.fail_interval_s",
            "must be at least 1",
        )?;
        check(
            l.unlock_time_s >= 1,
            "lockout.unlock_time_s",
            "must be at least 1",
        )?;
        check(
            l.unlock_time_max_s >= l.unlock_time_s,
            "lockout.unlock_time_max_s",
            "must be at least lockout.unlock_time_s",
        )?;
        check(
            l.known_good_days <= 3650,
            "lockout.known_good_days",
            "must be at most 3650",
        )?;
        check(l.user_deny >= 1, "lockout.user_deny", "must be at least 1")?;
        check(
            l.source_deny >= 1,
            "lockout.source_deny",
            "must be at least 1",
        )?;
        check(
            l.max_ledger_rows >= 100,
            "lockout.max_ledger_rows",
            "must be at least 100",
        )?;
        // Wider blocks would put whole providers behind one counter.
        check(
            (16..=32).contains(&l.ipv4_prefix),
            "lockout.ipv4_prefix",
            "must be between 16 and 32",
        )?;
        check(
            (32..=128).contains(&l.ipv6_prefix),
            "lockout.ipv6_prefix",
            "must be between 32 and 128",
        )?;
        self.metrics.check()?;
        check(self.totp.skew <= 10, "totp.skew", "must be at most 10")?;
        check(
            self.totp
                .enrol_by
                .as_deref()
                .is_none_or(|d| day_start_unix(d).is_some()),
            "totp.enrol_by",
            "must be a date such as \"2026-03-01\" (YYYY-MM-DD, from 00:00 UTC)",
        )?;
        check(
            self.totp
                .required_groups
                .iter()
                .all(|g| !g.is_empty() && g.len() <= 256 && !g.chars().any(char::is_control)),
            "totp.required_groups",
            "must be group names",
        )?;
        check(
            self.totp.issuer.as_deref().is_none_or(|i| {
                !i.trim().is_empty()
                    && i.len() <= 64
                    && !i.contains(':')
                    && !i.contains(char::is_control)
            }),
            "totp.issuer",
            "must be 1 to 64 characters, without ':' or control characters",
        )?;
        let a = &self.argon2;
        check(a.t_cost >= 1, "argon2.t_cost", "must be at least 1")?;
        check(
            (1..=64).contains(&a.p_cost),
            "argon2.p_cost",
            "must be between 1 and 64",
        )?;
        check(
            a.m_cost_kib >= 8 * a.p_cost && a.m_cost_kib <= 4 * 1024 * 1024,
            "argon2.m_cost_kib",
            "must be between 8*p_cost and 4194304",
        )?;
        check(
            self.password.shadow.is_absolute(),
            "password.shadow",
            "must be an absolute path",
        )?;
        check(
            self.password.dummy_cost.is_none_or(|c| c >= 1),
            "password.dummy_cost",
            "must be at least 1 (leave it out for the host's cost)",
        )?;
        let m = &self.limits;
        check(
            (1..=65_536).contains(&m.max_connections),
            "limits.max_connections",
            "must be between 1 and 65536",
        )?;
        check(
            (1..=m.max_connections.max(1)).contains(&m.max_connections_per_user),
            "limits.max_connections_per_user",
            "must be between 1 and limits.max_connections",
        )?;
        check(
            m.workers <= 256,
            "limits.workers",
            "must be at most 256 (0 = one per core)",
        )?;
        check(
            (1..=65_536).contains(&m.queue),
            "limits.queue",
            "must be between 1 and 65536",
        )?;
        check(
            (100..=60_000).contains(&m.request_timeout_ms),
            "limits.request_timeout_ms",
            "must be between 100 and 60000",
        )?;
        Ok(())
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
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/veil/veild.toml"))
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.failure_delay_ms, 2000);
        assert_eq!(
            (
                c.lockout.deny,
                c.lockout.fail_interval_s,
                c.lockout.unlock_time_s
            ),
            (5, 900, 900)
        );
        assert_eq!(
            (c.argon2.m_cost_kib, c.argon2.t_cost, c.argon2.p_cost),
            (19_456, 2, 1)
        );
        assert_eq!(c.totp.policy, TotpPolicy::Required);
    }

    #[test]
    fn the_shipped_example_parses_to_the_defaults() {
        let text = include_str!("../../../packaging/veild.toml");
        assert_eq!(parse(text).unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let err = parse("failure_delay = 10\n").unwrap_err().to_string();
        assert!(err.contains("failure_delay"), "{err}");
        let err = parse("[lockout]\ndenny = 3\n").unwrap_err().to_string();
        assert!(err.contains("denny"), "{err}");
    }

    #[test]
    fn bad_values_are_errors_that_name_the_key() {
        let err = parse("[lockout]\ndeny = 0\n").unwrap_err().to_string();
        assert!(err.contains("lockout.deny"), "{err}");
        let err = parse("socket = \"relative.sock\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("socket"), "{err}");
        let err = parse("[totp]\npolicy = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("policy") || err.contains("sometimes"), "{err}");
        let err = parse("[argon2]\nm_cost_kib = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("m_cost_kib"), "{err}");
    }

    #[test]
    fn source_grouping_and_exempt_networks_parse_strictly_naming_the_key() {
        // On the old main these keys did not exist: veild refused to start.
        let c = parse(
            "[lockout]\nipv4_prefix = 24\nipv6_prefix = 48\n\
             exempt_networks = [\"198.51.100.0/24\", \"2001:db8:a::/48\"]\n",
        )
        .unwrap();
        let sources = crate::common::ledger::Limits::from(&c.lockout).sources;
        assert_eq!((sources.ipv4_prefix, sources.ipv6_prefix), (24, 48));
        assert_eq!(sources.exempt.len(), 2);
        for (text, key) in [
            ("ipv6_prefix = 16", "lockout.ipv6_prefix"),
            ("ipv6_prefix = 129", "lockout.ipv6_prefix"),
            ("ipv4_prefix = 8", "lockout.ipv4_prefix"),
            ("exempt_networks = [\"10.0.0.1/8\"]", "exempt_networks"),
            ("exempt_networks = [\"admin.example\"]", "exempt_networks"),
            ("exempt_networks = \"10.0.0.0/8\"", "exempt_networks"),
        ] {
            let err = parse(&format!("[lockout]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        let err = parse("[lockout]\nexempt_networks = [\"10.0.0.1/8\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean 10.0.0.0/8?"), "{err}");
    }

    #[test]
    fn password_source_and_dummy_overrides_parse_and_default_to_veil() {
        assert_eq!(parse("").unwrap().password.source, PasswordSource::Veil);
        let c = parse(
            "[password]\nsource = \"system\"\nshadow = \"/tmp/shadow\"\n\
             dummy_method = \"sha512\"\ndummy_cost = 65536\n",
        )
        .unwrap();
        assert_eq!(c.password.source, PasswordSource::System);
        assert_eq!(c.password.shadow, PathBuf::from("/tmp/shadow"));
        assert_eq!(
            (c.password.dummy_method, c.password.dummy_cost),
            (Some(Kind::Sha512), Some(65536))
        );
        let err = parse("[password]\nsource = \"ldap\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ldap") || err.contains("source"), "{err}");
        let err = parse("[password]\nshadow = \"shadow\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("password.shadow"), "{err}");
        let err = parse("[password]\nsalt = 1\n").unwrap_err().to_string();
        assert!(err.contains("salt"), "{err}");
    }

    #[test]
    fn rollout_keys_parse_and_a_bad_date_names_the_key() {
        let c = parse(
            "[totp]\npolicy = \"if-enrolled\"\nrequired_groups = [\"admins\", \"ops\"]\n\
             enrol_by = \"2026-03-01\"\n",
        )
        .unwrap();
        assert_eq!(c.totp.required_groups, vec!["admins", "ops"]);
        assert_eq!(c.totp.enrol_by_unix(), Some(1_772_323_200));
        assert_eq!(day_start_unix("1970-01-01"), Some(0));
        assert_eq!(day_start_unix("2024-02-29"), Some(1_709_164_800));
        for bad in [
            "2026-02-30",
            "2026-3-01",
            "01.03.2026",
            "2026-13-01",
            "tomorrow",
        ] {
            let err = parse(&format!("[totp]\nenrol_by = \"{bad}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("totp.enrol_by"), "{err}");
        }
    }

    #[test]
    fn the_issuer_is_optional_and_checked() {
        assert_eq!(parse("").unwrap().totp.issuer, None);
        let c = parse("[totp]\nissuer = \"Example Corp web-1\"\n").unwrap();
        assert_eq!(c.totp.issuer.as_deref(), Some("Example Corp web-1"));
        for bad in ["\"\"", "\"a:b\"", "\"x\\u0007\""] {
            let err = parse(&format!("[totp]\nissuer = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("totp.issuer"), "{bad}: {err}");
        }
    }

    #[test]
    fn policy_and_scope_spellings() {
        let c = parse("[totp]\npolicy = \"if-enrolled\"\n[lockout]\nscope = \"user\"\n").unwrap();
        assert_eq!(c.totp.policy, TotpPolicy::IfEnrolled);
        assert_eq!(c.lockout.scope, LockoutScope::User);
    }
}
