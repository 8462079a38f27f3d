//! The lockout ledger: failure counters that lock a key for a while.
//!
//! Keys (scope "source", the default): (user, source) with limit `deny`;
//! (user, any remote source) with `user_deny`; (source, any user) with
//! `source_deny`. The source ([`Origin`]) is PAM_RHOST for a remote attempt
//! (one address grouped by the configured prefix, every host name the one
//! source `names`; an exempt network's address is charged to its (user,
//! source) key only: see [`source`]);
//! for a local attempt it is whoever ran the program, as the kernel says:
//! the real uid of the PAM application (`uid:N`: a setuid front end such as
//! su, sudo or polkit-agent-helper-1 keeps its caller's real uid), or a
//! local user's own program (`uid:N` too), so mallory's `su alice` failures
//! lock mallory's attempts at alice and never alice's own sudo or console.
//! PAM_RUSER is a claim and is never charged. A program root started with
//! no remote host is the console only for the console login services
//! ([`CONSOLE_SERVICES`]); any other (a socket-activated polkit helper,
//! chfn run by root, a daemon) is its service (`service:NAME`), with its
//! own keys and share. The console is stored as the empty string, shown as
//! "local", and has no source-wide key: otherwise one console user could
//! block it for everyone. Scope "user" keeps one counter per user. A
//! non-root peer asking about an account that is not its own is charged to
//! its own uid (`peer`), never to the account it names.
//!
//! A (user, source) pair that succeeded within `known_good_days` is
//! known-good: its attempts are charged to its own (user, source) key only,
//! so a botnet or a spray that runs up the wide keys cannot lock the real
//! user out of the place they log in from. Each further lock of one key
//! lasts twice the one before (capped), and a key forgets its locks only
//! `unlock_time_max` after the last one ended.
//!
//! Every attempt is *reserved* before its password is checked: each key's
//! counter goes up by one in one transaction of the store (SQLite's is
//! `BEGIN IMMEDIATE`, committed with `synchronous = FULL`). An attempt that would pass a limit, or meets
//! a locked key, is refused (the caller still does the same work and
//! denies). A failure therefore needs no further write; a success undoes
//! its reservation (and clears the user's own keys: [`KeyKind::cleared_by_success`]).
//! Unknown names go through exactly the same statements.
//!
//! The rules both back ends apply live here: which keys ([`charge_for`],
//! in `ledger/charge.rs`), known-good ([`is_known_good`]), the plan
//! ([`plan`]), what a success clears, when a row may be pruned or evicted
//! ([`Counter::harmless_at`]: never while it limits anything), and what a
//! full ledger does ([`needs_overflow`], [`overflow_charge`]: keys without
//! a row are charged to a few coarse overflow keys, so it gets stricter,
//! never forgetful).

use serde::Serialize;

mod charge;
mod settings;
pub use crate::common::source::{self, NAMES, Sources};
pub use charge::{
    CONSOLE_SERVICES, Charge, Origin, charge_for, peer_charge, source_from_admin, source_of,
};
pub use settings::{Lockout, LockoutScope};

/// How the source of an attempt without PAM_RHOST is shown.
pub const LOCAL: &str = "local";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyKind {
    #[serde(rename = "user+source")]
    UserSource,
    #[serde(rename = "user+remote")]
    UserRemote,
    #[serde(rename = "source")]
    Source,
    #[serde(rename = "user")]
    User,
    /// A non-root peer asking about someone else's account.
    #[serde(rename = "peer")]
    Peer,
    /// While the ledger is full: one of [`OVERFLOW_BUCKETS`] coarse keys
    /// that stands for every key without a row (see [`overflow_charge`]).
    #[serde(rename = "overflow")]
    Overflow,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::UserSource => "user+source",
            KeyKind::UserRemote => "user+remote",
            KeyKind::Source => "source",
            KeyKind::User => "user",
            KeyKind::Peer => "peer",
            KeyKind::Overflow => "overflow",
        }
    }

    pub fn parse(s: &str) -> Option<KeyKind> {
        [
            KeyKind::UserSource,
            KeyKind::UserRemote,
            KeyKind::Source,
            KeyKind::User,
            KeyKind::Peer,
            KeyKind::Overflow,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// A success clears this key outright, count, lock and lock history
    /// (rather than only undoing its own reservation): the keys that are
    /// the user's alone. The user proved both factors, so a botnet's
    /// escalation of their name from anywhere ends with their next
    /// success. A source-wide key (and an overflow key) only gets back the
    /// one count: its escalation comes from many names, and one stolen or
    /// shared login there must not reset it.
    pub fn cleared_by_success(self) -> bool {
        matches!(
            self,
            KeyKind::UserSource | KeyKind::User | KeyKind::UserRemote
        )
    }
}

/// One counter's identity. Unused parts are empty strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Key {
    pub kind: KeyKind,
    pub user: String,
    pub source: String,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            KeyKind::UserSource => {
                write!(f, "user+source:{}@{}", self.user, source_of(&self.source))
            }
            KeyKind::UserRemote => write!(f, "user+remote:{}", self.user),
            KeyKind::Source => write!(f, "source:{}", self.source),
            KeyKind::User => write!(f, "user:{}", self.user),
            KeyKind::Peer => write!(f, "peer:{}", self.source),
            KeyKind::Overflow => write!(f, "overflow:{}", self.source),
        }
    }
}

/// The limits in force, read from `[lockout]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub scope: LockoutScope,
    pub deny: u32,
    pub user_deny: u32,
    pub source_deny: u32,
    pub fail_interval: i64,
    pub unlock_time: i64,
    pub unlock_time_max: i64,
    /// Seconds a success keeps its (user, source) pair known-good; 0: never.
    pub known_good: i64,
    pub max_rows: i64,
    /// How remote addresses are grouped, and the exempt networks.
    pub sources: Sources,
}

impl From<&Lockout> for Limits {
    fn from(l: &Lockout) -> Limits {
        Limits {
            scope: l.scope,
            deny: l.deny,
            user_deny: l.user_deny,
            source_deny: l.source_deny,
            fail_interval: l.fail_interval_s.min(i64::MAX as u64) as i64,
            unlock_time: l.unlock_time_s.min(i64::MAX as u64) as i64,
            unlock_time_max: l.unlock_time_max_s.min(i64::MAX as u64) as i64,
            known_good: i64::from(l.known_good_days) * 86_400,
            max_rows: l.max_ledger_rows.min(i64::MAX as u64) as i64,
            sources: Sources {
                ipv4_prefix: l.ipv4_prefix,
                ipv6_prefix: l.ipv6_prefix,
                exempt: l.exempt_networks.clone(),
            },
        }
    }
}

impl Limits {
    pub fn limit(&self, kind: KeyKind) -> i64 {
        i64::from(match kind {
            KeyKind::UserSource | KeyKind::User | KeyKind::Peer | KeyKind::Overflow => self.deny,
            KeyKind::UserRemote => self.user_deny,
            KeyKind::Source => self.source_deny,
        })
    }

    /// How long the `nth` consecutive lock of a key lasts (n from 1):
    /// `unlock_time` doubled per earlier lock, at most `unlock_time_max`.
    pub fn lock_time(&self, nth: i64) -> i64 {
        let doublings = nth.saturating_sub(1).clamp(0, 62) as u32;
        self.unlock_time
            .saturating_mul(1i64 << doublings)
            .min(self.unlock_time_max)
            .max(self.unlock_time)
    }
}

/// A key that refused an attempt, for the audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub key: Key,
    pub failures: i64,
    pub locked_until: i64,
}

/// What reserving an attempt decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The pair a success makes known-good.
    pub user: String,
    pub source: String,
    /// The keys reserved (a known-good pair's own key only).
    pub keys: Vec<Key>,
    /// The pair was known-good, so the wide keys were left alone.
    pub known_good: bool,
    /// None: the attempt may be evaluated. Some: it is a failure whatever
    /// the password says.
    pub refused: Option<Refusal>,
    /// Keys that reach their limit with this attempt (locked if it fails).
    pub locking: Vec<Lock>,
    /// The ledger was full: keys without a row were charged to overflow
    /// keys (the store sets this; the admin is told in the audit line).
    pub overflow: bool,
}

/// A key an attempt locks, and which consecutive lock of it this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub key: Key,
    /// 1 for a first lock; more: an escalation (a key still remembering
    /// earlier locks), which lasts longer.
    pub nth: i64,
}

impl Lock {
    pub fn escalated(&self) -> bool {
        self.nth > 1
    }
}

/// One key's counter as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub failures: i64,
    pub window_start: i64,
    pub locked_until: i64,
    /// Consecutive locks of this key, remembered until `locks_remembered_until`.
    pub locks: i64,
    pub locks_remembered_until: i64,
}

impl Counter {
    pub fn fresh(now: i64) -> Counter {
        Counter {
            failures: 0,
            window_start: now,
            locked_until: 0,
            locks: 0,
            locks_remembered_until: 0,
        }
    }

    /// Drops an expired lock or window; the lock history stays until it
    /// too has expired.
    pub fn at(self, now: i64, limits: &Limits) -> Counter {
        let mut c = self;
        if c.locks > 0 && c.locks_remembered_until <= now {
            c.locks = 0;
            c.locks_remembered_until = 0;
        }
        let lock_ended = c.locked_until > 0 && c.locked_until <= now;
        let window_over = c.locked_until == 0 && now - c.window_start >= limits.fail_interval;
        if lock_ended || window_over {
            c.failures = 0;
            c.window_start = now;
            c.locked_until = 0;
        }
        c
    }

    /// From when the row limits nothing (no lock in force, no failure in
    /// its window, no lock remembered): only then may it be pruned or
    /// evicted. A row that still counts or remembers is never forgotten,
    /// however full the ledger is.
    pub fn harmless_at(&self, limits: &Limits) -> i64 {
        let window_end = if self.failures > 0 {
            self.window_start.saturating_add(limits.fail_interval)
        } else {
            0
        };
        self.locked_until
            .max(self.locks_remembered_until)
            .max(window_end)
    }

    /// Locks the key from `now`, for longer the more often it was locked.
    pub fn lock(&mut self, now: i64, limits: &Limits) {
        self.locks = self.locks.saturating_add(1);
        self.locked_until = now.saturating_add(limits.lock_time(self.locks));
        self.locks_remembered_until = self.locked_until.saturating_add(limits.unlock_time_max);
    }
}

/// How many coarse keys stand for the keys without a row while the ledger
/// is full: few enough that their rows never matter for the cap, enough
/// that one locked bucket refuses only a small share of new pairs.
pub const OVERFLOW_BUCKETS: u64 = 256;

/// The overflow key that stands for `key` while the ledger is full: a
/// bucket of a stable hash of the key (the same on every host of a fleet).
pub fn overflow_key(key: &Key) -> Key {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [key.kind.as_str(), &key.user, &key.source] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let bucket = u64::from_le_bytes(first) % OVERFLOW_BUCKETS;
    Key {
        kind: KeyKind::Overflow,
        user: String::new(),
        source: format!("{}/{bucket}", key.kind.as_str()),
    }
}

/// Whether an attempt must be charged to overflow keys: it needs new rows,
/// the ledger has no room for them, and its pair is not known-good (a
/// known-good pair's own key may pass the cap: such rows exist only after
/// a real success, so an attacker cannot make them).
pub fn needs_overflow(known_good: bool, stored: &[Option<Counter>], room: i64) -> bool {
    let new_rows = stored.iter().filter(|c| c.is_none()).count() as i64;
    !known_good && new_rows > 0 && new_rows > room
}

/// The charge of an attempt while the ledger is full: every key without a
/// row (`stored[i]` is `None`) is replaced by its overflow key, once. The
/// attempt is still counted, on coarser keys with the lowest limit: a full
/// ledger gets stricter, never forgetful.
pub fn overflow_charge(charge: Charge, stored: &[Option<Counter>]) -> Charge {
    let Charge { user, source, keys } = charge;
    let mut out: Vec<Key> = Vec::with_capacity(keys.len());
    for (key, counter) in keys.into_iter().zip(stored) {
        let key = if counter.is_none() {
            overflow_key(&key)
        } else {
            key
        };
        if !out.contains(&key) {
            out.push(key);
        }
    }
    Charge {
        user,
        source,
        keys: out,
    }
}

/// What one reservation writes, decided from the counters as stored: the
/// rule every back end applies inside its own transaction.
#[derive(Debug)]
pub struct Plan {
    pub reservation: Reservation,
    /// Every key of the attempt with its new counter. A refused attempt
    /// writes every key too (unchanged but for `last_seen`), so that it
    /// runs the same statements as an evaluated one and takes the same time.
    pub writes: Vec<(Key, Counter)>,
    /// Keys that had no stored row.
    pub new_rows: i64,
}

/// Whether a pair whose last success was at `last_success` (as stored) is
/// known-good at `now`.
pub fn is_known_good(limits: &Limits, last_success: Option<i64>, now: i64) -> bool {
    limits.known_good > 0 && last_success.is_some_and(|t| now - t < limits.known_good)
}

/// Whether a success makes its pair known-good (the store then records it).
pub fn records_known_good(limits: &Limits) -> bool {
    limits.known_good > 0
}

/// The charge a reservation works on: a known-good pair is charged to its
/// own (user, source) key only, so the wide keys never lock it out.
pub fn spare_known_good(mut charge: Charge, known_good: bool) -> Charge {
    if known_good {
        charge
            .keys
            .retain(|k| !matches!(k.kind, KeyKind::UserRemote | KeyKind::Source));
    }
    charge
}

/// Checks and reserves one attempt: `stored` holds each key's counter as
/// read (`None`: no row yet), in the order of `charge.keys`. An attempt
/// that meets a locked key, or would pass a limit, is refused (the caller
/// still does the same work and denies) and counts against no key.
pub fn plan(
    limits: &Limits,
    charge: Charge,
    known_good: bool,
    stored: Vec<Option<Counter>>,
    now: i64,
) -> Plan {
    let Charge { user, source, keys } = charge;
    let new_rows = stored.iter().filter(|c| c.is_none()).count() as i64;
    let counters: Vec<Counter> = stored
        .into_iter()
        .map(|c| c.map_or(Counter::fresh(now), |c| c.at(now, limits)))
        .collect();
    let refused = keys.iter().zip(&counters).find_map(|(key, c)| {
        (c.locked_until > now || c.failures >= limits.limit(key.kind)).then(|| Refusal {
            key: key.clone(),
            failures: c.failures,
            // Report the lock as it will stand on disk.
            locked_until: c.locked_until.max(now),
        })
    });
    let mut locking = Vec::new();
    let mut writes = Vec::with_capacity(keys.len());
    for (key, mut c) in keys.iter().cloned().zip(counters) {
        let limit = limits.limit(key.kind);
        if refused.is_none() {
            c.failures += 1;
            if c.failures >= limit {
                c.lock(now, limits);
                locking.push(Lock {
                    key: key.clone(),
                    nth: c.locks,
                });
            }
        } else if c.locked_until <= now && c.failures >= limit {
            // A refusing key over its limit but not locked (the limit was
            // lowered): lock it now.
            c.lock(now, limits);
        }
        writes.push((key, c));
    }
    Plan {
        reservation: Reservation {
            user,
            source,
            keys,
            known_good,
            refused,
            locking,
            overflow: false,
        },
        writes,
        new_rows,
    }
}

/// A ledger row as `veilctl` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub key: Key,
    pub failures: i64,
    pub limit: i64,
    pub window_start: i64,
    pub locked_until: i64,
    pub last_seen: i64,
    /// Consecutive locks the key remembers (the next lasts longer).
    pub locks: i64,
}

impl Entry {
    pub fn locked_at(&self, now: i64) -> bool {
        self.locked_until > now
    }

    /// Whether `veilctl status` shows the row: a lock in force, or a
    /// window still open.
    pub fn live_at(&self, now: i64, limits: &Limits) -> bool {
        self.locked_until > now
            || (self.locked_until == 0 && now - self.window_start < limits.fail_interval)
    }
}

#[cfg(test)]
mod tests;
