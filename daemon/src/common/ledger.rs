//! The lockout ledger: failure counters that lock a key for a while.
//!
//! Keys (scope "source", the default): (user, source) with limit `deny`;
//! (user, any remote source) with `user_deny`; (source, any user) with
//! `source_deny`. The source ([`Origin`]) is PAM_RHOST for a remote attempt
//! (an IPv6 address counts as its /64, which one host can rotate through);
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
//! its reservation. Unknown names go through exactly the same statements.

use serde::Serialize;

use crate::common::config::{Lockout, LockoutScope};

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
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::UserSource => "user+source",
            KeyKind::UserRemote => "user+remote",
            KeyKind::Source => "source",
            KeyKind::User => "user",
            KeyKind::Peer => "peer",
        }
    }

    pub fn parse(s: &str) -> Option<KeyKind> {
        [
            KeyKind::UserSource,
            KeyKind::UserRemote,
            KeyKind::Source,
            KeyKind::User,
            KeyKind::Peer,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// A success clears this key outright (rather than only undoing its own reservation).
    pub fn cleared_by_success(self) -> bool {
        matches!(self, KeyKind::UserSource | KeyKind::User)
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
        }
    }
}

impl Limits {
    pub fn limit(&self, kind: KeyKind) -> i64 {
        i64::from(match kind {
            KeyKind::UserSource | KeyKind::User | KeyKind::Peer => self.deny,
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

/// The source named by PAM_RHOST, or [`LOCAL`].
pub fn source_of(rhost: &str) -> &str {
    if rhost.is_empty() { LOCAL } else { rhost }
}

/// The stored source for a PAM_RHOST: empty for local, an IPv6 address as
/// its /64 (IPv4-mapped ones as IPv4), anything else as given.
pub fn source_key(rhost: &str) -> String {
    let bare = rhost.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::Ipv6Addr>() {
        Ok(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
        Err(_) => rhost.to_owned(),
    }
}

/// The stored form of a source an admin typed (`veilctl unlock --source`).
pub fn source_from_admin(typed: &str) -> String {
    if typed == LOCAL {
        String::new()
    } else {
        source_key(typed)
    }
}

/// PAM services whose root-started application (real uid 0) with no
/// remote host is someone at the console: getty's `login` and the display
/// managers. Nobody but root can start these as root.
pub const CONSOLE_SERVICES: &[&str] = &["login", "gdm-password", "lightdm", "sddm", "xdm"];

/// Where an attempt comes from, as the ledger charges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// PAM_RHOST as root reported it, in its stored form ([`source_key`]).
    Remote(String),
    /// A local requester: `uid:N` for whoever ran the program (a setuid
    /// front end's caller, or a local user's own program), `service:NAME`
    /// for a program root started that is not a console login.
    Caller(String),
    /// A console login service ([`CONSOLE_SERVICES`]) started by root,
    /// with no remote host.
    Console,
}

impl Origin {
    /// A root peer's report. `ruid` is the real uid of the PAM application:
    /// not 0, it is whoever ran a setuid front end, whatever the program
    /// set as PAM_RHOST or PAM_RUSER (both are the program's claims, and a
    /// user can start it). From 0 (a program root started): PAM_RHOST if
    /// set, else the console for a console service, else the service.
    pub fn from_root(rhost: &str, ruid: u32, service: &str) -> Origin {
        if ruid != 0 {
            Origin::local_uid(ruid)
        } else if !rhost.is_empty() {
            Origin::Remote(source_key(rhost))
        } else if CONSOLE_SERVICES.contains(&service) {
            Origin::Console
        } else {
            Origin::Caller(format!("service:{service}"))
        }
    }

    /// A local user's own program, asking about its own account.
    pub fn local_uid(uid: u32) -> Origin {
        Origin::Caller(format!("uid:{uid}"))
    }

    /// The stored source string.
    pub fn source(&self) -> &str {
        match self {
            Origin::Remote(s) | Origin::Caller(s) => s,
            Origin::Console => "",
        }
    }
}

/// What one attempt is charged to: its keys, and the (user, source) pair
/// whose known-good standing can spare it the wide keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub user: String,
    pub source: String,
    pub keys: Vec<Key>,
}

/// The keys an attempt at `user` from `origin` counts against.
pub fn charge_for(limits: &Limits, user: &str, origin: &Origin) -> Charge {
    let key = |kind, user: &str, source: &str| Key {
        kind,
        user: user.to_owned(),
        source: source.to_owned(),
    };
    let source = origin.source();
    let keys = match (limits.scope, origin) {
        (LockoutScope::User, _) => vec![key(KeyKind::User, user, "")],
        (LockoutScope::Source, Origin::Console) => vec![key(KeyKind::UserSource, user, "")],
        (LockoutScope::Source, Origin::Caller(_)) => vec![
            key(KeyKind::UserSource, user, source),
            key(KeyKind::Source, "", source),
        ],
        (LockoutScope::Source, Origin::Remote(_)) => vec![
            key(KeyKind::UserSource, user, source),
            key(KeyKind::UserRemote, user, ""),
            key(KeyKind::Source, "", source),
        ],
    };
    Charge {
        user: user.to_owned(),
        source: source.to_owned(),
        keys,
    }
}

/// The one key of a non-root peer that asked about an account not its own.
pub fn peer_charge(uid: u32) -> Charge {
    let source = format!("uid:{uid}");
    Charge {
        user: String::new(),
        keys: vec![Key {
            kind: KeyKind::Peer,
            user: String::new(),
            source: source.clone(),
        }],
        source,
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
    pub locking: Vec<Key>,
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

    /// Locks the key from `now`, for longer the more often it was locked.
    pub fn lock(&mut self, now: i64, limits: &Limits) {
        self.locks = self.locks.saturating_add(1);
        self.locked_until = now.saturating_add(limits.lock_time(self.locks));
        self.locks_remembered_until = self.locked_until.saturating_add(limits.unlock_time_max);
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
                locking.push(key.clone());
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
}

#[cfg(test)]
mod tests;
