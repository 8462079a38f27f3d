//! The `[lockout]` settings: what the ledger's rules take as their
//! limits. They live with the ledger (which imports no config); the
//! config file reads them into these types.

use serde::{Deserialize, Serialize};

use crate::common::source::Network;

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
