//! `[postgres]` and a `postgresql://` database URL: the settings, and the
//! checks veild and veilctl run on them before connecting. Apart from the
//! store, so that the config does not depend on the store that depends on it.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use postgres::config::Host;
use serde::{Deserialize, Serialize};

use super::Invalid;

/// `[postgres]`: read only when `database` is a `postgresql://` URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Postgres {
    /// A file holding the role's password (first line), owned by root or
    /// veild's user and readable by its owner only. Never in the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// `verify-full`: TLS, the server's certificate checked against
    /// `ca_file` and its name against the URL's host. `disable`: no TLS
    /// (a Unix socket needs none and gets none whatever this says).
    pub sslmode: PgSslMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Bounds on connecting and on each statement (lock waits included),
    /// so an unreachable or slow server gives a DENY within PAM's timeout.
    pub connect_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    /// What a login gets while the server cannot be reached: `deny`, or
    /// `local`: verified against this host's copy ([`Postgres::outage_cache`]).
    pub outage: Outage,
    /// The local copy for `outage = "local"`: a SQLite file (mode 0600)
    /// with the users' rows, a local ledger and the journal of offline
    /// decisions handed to the fleet when it is back.
    pub outage_cache: PathBuf,
    /// How often (seconds) the copy is refreshed and the journal handed over.
    pub outage_refresh_s: u64,
}

/// `[postgres] outage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outage {
    /// Every login is denied while the server is unreachable.
    #[default]
    Deny,
    /// Logins are verified against the local copy, failures charged to a
    /// local ledger with the same limits.
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgSslMode {
    Disable,
    VerifyFull,
}

impl Default for Postgres {
    fn default() -> Postgres {
        Postgres {
            password_file: None,
            sslmode: PgSslMode::VerifyFull,
            ca_file: None,
            connect_timeout_ms: 1000,
            statement_timeout_ms: 1000,
            outage: Outage::Deny,
            outage_cache: PathBuf::from("/var/lib/veil/outage-cache.db"),
            outage_refresh_s: 60,
        }
    }
}

/// Whether a config's `database` names a PostgreSQL server.
pub fn is_url(database: &Path) -> bool {
    database
        .to_str()
        .is_some_and(|s| s.starts_with("postgresql://") || s.starts_with("postgres://"))
}

/// A URL as it may be shown: any password in it replaced by `***`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@') {
            let userinfo = &out[rest..rest + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    // `?password=...` in the query string.
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query = query
            .split('&')
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***".to_owned()
                } else {
                    kv.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{head}{query}");
    }
    out
}

/// Checks `database` and `[postgres]` as veild would use them.
pub fn check_config(database: &Path, pg: &Postgres) -> Result<(), Invalid> {
    let url = database.to_str().unwrap_or_default();
    if url.contains("sslmode=") || url.contains("sslrootcert=") {
        return Err(invalid(
            "database",
            "set TLS in [postgres] (sslmode, ca_file), not in the URL",
        ));
    }
    let parsed = postgres::Config::from_str(url)
        .map_err(|e| invalid("database", format!("{}: {e}", redact(url))))?;
    if parsed.get_password().is_some() {
        return Err(invalid(
            "database",
            "must not hold a password (veild.toml is world-readable): use [postgres] password_file",
        ));
    }
    if parsed.get_hosts().is_empty() {
        return Err(invalid("database", "names no host"));
    }
    if pg.sslmode == PgSslMode::VerifyFull && !unix_only(&parsed) && pg.ca_file.is_none() {
        return Err(invalid(
            "postgres.ca_file",
            "sslmode = \"verify-full\" needs the CA that signed the server's certificate",
        ));
    }
    for (key, ms) in [
        ("postgres.connect_timeout_ms", pg.connect_timeout_ms),
        ("postgres.statement_timeout_ms", pg.statement_timeout_ms),
    ] {
        if !(100..=30_000).contains(&ms) {
            return Err(invalid(key, "must be between 100 and 30000"));
        }
    }
    if !(1..=86_400).contains(&pg.outage_refresh_s) {
        return Err(invalid(
            "postgres.outage_refresh_s",
            "must be between 1 and 86400",
        ));
    }
    if pg.outage == Outage::Local && !pg.outage_cache.is_absolute() {
        return Err(invalid("postgres.outage_cache", "must be an absolute path"));
    }
    Ok(())
}

fn invalid(key: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        key,
        message: message.into(),
    }
}

pub fn unix_only(config: &postgres::Config) -> bool {
    config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, Host::Unix(_)))
}
