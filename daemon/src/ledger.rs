//! The lockout ledger: failure counters that lock a key for a while.
//!
//! Keys (scope "source", the default): (user, source) with limit `deny`;
//! (user, any remote source) with `user_deny`; (source, any user) with
//! `source_deny`. The source ([`Origin`]) is PAM_RHOST for a remote attempt
//! (an IPv6 address counts as its /64, which one host can rotate through);
//! for a local attempt it is whoever asked: the caller of a root front end
//! (`ruser:NAME`, from PAM_RUSER: su, sudo) or a local user's own program
//! (`uid:N`), so mallory's `su alice` failures lock mallory's attempts at
//! alice and never alice's own sudo or console. The console (root, neither
//! PAM_RHOST nor PAM_RUSER) is stored as the empty string, shown as
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
//! counter goes up by one in one `BEGIN IMMEDIATE` transaction, committed
//! with `synchronous = FULL`. An attempt that would pass a limit, or meets
//! a locked key, is refused (the caller still does the same work and
//! denies). A failure therefore needs no further write; a success undoes
//! its reservation. Unknown names go through exactly the same statements.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, named_params};
use serde::Serialize;

use crate::config::{Lockout, LockoutScope};

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

    fn parse(s: &str) -> Option<KeyKind> {
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
    fn cleared_by_success(self) -> bool {
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
    fn limit(&self, kind: KeyKind) -> i64 {
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

/// Where an attempt comes from, as the ledger charges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// PAM_RHOST as root reported it, in its stored form ([`source_key`]).
    Remote(String),
    /// A local requester: `ruser:NAME` for a root front end's caller,
    /// `uid:N` for a local user's own program.
    Caller(String),
    /// root with neither PAM_RHOST nor PAM_RUSER: the console.
    Console,
}

impl Origin {
    /// Root's report: PAM_RHOST if set, else PAM_RUSER, else the console.
    pub fn from_root(rhost: &str, ruser: &str) -> Origin {
        if !rhost.is_empty() {
            Origin::Remote(source_key(rhost))
        } else if !ruser.is_empty() {
            Origin::Caller(format!("ruser:{ruser}"))
        } else {
            Origin::Console
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

/// The keys of a root attempt with PAM_RHOST `rhost` and no PAM_RUSER.
pub fn keys_for(limits: &Limits, user: &str, rhost: &str) -> Vec<Key> {
    charge_for(limits, user, &Origin::from_root(rhost, "")).keys
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

impl Reservation {
    pub fn evaluated(&self) -> bool {
        self.refused.is_none()
    }
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: i64,
    window_start: i64,
    locked_until: i64,
    /// Consecutive locks of this key, remembered until `locks_remembered_until`.
    locks: i64,
    locks_remembered_until: i64,
}

impl Counter {
    fn fresh(now: i64) -> Counter {
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
    fn at(self, now: i64, limits: &Limits) -> Counter {
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
    fn lock(&mut self, now: i64, limits: &Limits) {
        self.locks = self.locks.saturating_add(1);
        self.locked_until = now.saturating_add(limits.lock_time(self.locks));
        self.locks_remembered_until = self.locked_until.saturating_add(limits.unlock_time_max);
    }
}

fn read_counter(conn: &Connection, key: &Key) -> rusqlite::Result<Option<Counter>> {
    conn.prepare_cached(
        "SELECT failures, window_start, locked_until, locks, locks_remembered_until FROM ledger
         WHERE kind = :kind AND user = :user AND source = :source",
    )?
    .query_row(
        named_params! {":kind": key.kind.as_str(), ":user": key.user, ":source": key.source},
        |r| {
            Ok(Counter {
                failures: r.get(0)?,
                window_start: r.get(1)?,
                locked_until: r.get(2)?,
                locks: r.get(3)?,
                locks_remembered_until: r.get(4)?,
            })
        },
    )
    .optional()
}

fn write_counter(conn: &Connection, key: &Key, c: Counter, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO ledger (kind, user, source, failures, window_start, locked_until, last_seen,
                             locks, locks_remembered_until, writes)
         VALUES (:kind, :user, :source, :failures, :window_start, :locked_until, :now,
                 :locks, :remembered, 1)
         ON CONFLICT (kind, user, source) DO UPDATE SET
             failures = excluded.failures, window_start = excluded.window_start,
             locked_until = excluded.locked_until, last_seen = excluded.last_seen,
             locks = excluded.locks, locks_remembered_until = excluded.locks_remembered_until,
             writes = ledger.writes + 1",
    )?
    .execute(named_params! {
        ":kind": key.kind.as_str(), ":user": key.user, ":source": key.source,
        ":failures": c.failures, ":window_start": c.window_start, ":locked_until": c.locked_until,
        ":now": now, ":locks": c.locks, ":remembered": c.locks_remembered_until,
    })?;
    Ok(())
}

/// Whether (user, source) succeeded within the known-good window. Every
/// attempt runs this one read, unknown names and peers too.
fn is_known_good(
    conn: &Connection,
    limits: &Limits,
    user: &str,
    source: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let last: Option<i64> = conn
        .prepare_cached(
            "SELECT last_success FROM known_good WHERE user = :user AND source = :source",
        )?
        .query_row(named_params! {":user": user, ":source": source}, |r| {
            r.get(0)
        })
        .optional()?;
    Ok(limits.known_good > 0 && last.is_some_and(|t| now - t < limits.known_good))
}

/// Checks and reserves one root attempt (PAM_RHOST `rhost`, no PAM_RUSER).
pub fn reserve(
    conn: &mut Connection,
    limits: &Limits,
    user: &str,
    rhost: &str,
    now: i64,
) -> rusqlite::Result<Reservation> {
    reserve_charge(
        conn,
        limits,
        charge_for(limits, user, &Origin::from_root(rhost, "")),
        now,
    )
}

/// Checks and reserves one attempt on all its keys, atomically and durably.
pub fn reserve_charge(
    conn: &mut Connection,
    limits: &Limits,
    charge: Charge,
    now: i64,
) -> rusqlite::Result<Reservation> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Charge {
        user,
        source,
        mut keys,
    } = charge;
    let known_good = is_known_good(&tx, limits, &user, &source, now)?;
    if known_good {
        keys.retain(|k| !matches!(k.kind, KeyKind::UserRemote | KeyKind::Source));
    }
    let mut counters = Vec::with_capacity(keys.len());
    let mut refused = None;
    let mut new_rows = 0i64;
    for key in &keys {
        let stored = read_counter(&tx, key)?;
        new_rows += i64::from(stored.is_none());
        let c = stored.map_or(Counter::fresh(now), |c| c.at(now, limits));
        let limit = limits.limit(key.kind);
        if refused.is_none() && (c.locked_until > now || c.failures >= limit) {
            refused = Some(Refusal {
                key: key.clone(),
                failures: c.failures,
                locked_until: c.locked_until,
            });
        }
        counters.push(c);
    }
    let mut locking = Vec::new();
    for (key, mut c) in keys.iter().zip(counters) {
        let limit = limits.limit(key.kind);
        if refused.is_none() {
            c.failures += 1;
            if c.failures >= limit {
                c.lock(now, limits);
                locking.push(key.clone());
            }
            write_counter(&tx, key, c, now)?;
        } else {
            // A refused attempt counts against no key (one locked source
            // could otherwise run up the user's remote count); its refusing
            // keys are (re)locked. Every key is still written, unchanged
            // but for last_seen, so that a refused attempt does the same
            // statements as an evaluated one and takes the same time.
            if c.locked_until <= now && c.failures >= limit {
                c.lock(now, limits);
            }
            write_counter(&tx, key, c, now)?;
        }
    }
    tx.prepare_cached(
        "UPDATE ledger_size SET rows = rows + :new, writes = writes + 1 WHERE id = 1",
    )?
    .execute(named_params! {":new": new_rows})?;
    enforce_cap(&tx, limits, now)?;
    tx.commit()?;
    if let Some(r) = &mut refused {
        // Report the lock as it now stands on disk.
        r.locked_until = r.locked_until.max(now);
    }
    Ok(Reservation {
        user,
        source,
        keys,
        known_good,
        refused,
        locking,
    })
}

/// Undoes a successful attempt's reservation: its (user, source) or user
/// key is cleared, the wider keys lose only the one count this attempt
/// added, and the pair becomes (or stays) known-good. Runs inside the
/// caller's transaction (with the other writes of a success, so a success
/// costs one commit).
pub fn record_success(
    conn: &Connection,
    limits: &Limits,
    reservation: &Reservation,
    now: i64,
) -> rusqlite::Result<()> {
    for key in &reservation.keys {
        let params = named_params! {":kind": key.kind.as_str(), ":user": key.user, ":source": key.source,
        ":limit": limits.limit(key.kind), ":now": now};
        if key.kind.cleared_by_success() {
            conn.prepare_cached(
                "DELETE FROM ledger WHERE kind = :kind AND user = :user AND source = :source",
            )?
            .execute(&params[..3])?;
        } else {
            conn.prepare_cached(
                "UPDATE ledger SET failures = max(failures - 1, 0),
                     locked_until = CASE WHEN failures - 1 < :limit THEN 0 ELSE locked_until END,
                     last_seen = :now
                 WHERE kind = :kind AND user = :user AND source = :source",
            )?
            .execute(params)?;
        }
    }
    if limits.known_good > 0 {
        conn.prepare_cached(
            "INSERT INTO known_good (user, source, last_success) VALUES (:user, :source, :now)
             ON CONFLICT (user, source) DO UPDATE SET last_success = excluded.last_success",
        )?
        .execute(
            named_params! {":user": reservation.user, ":source": reservation.source, ":now": now},
        )?;
    }
    Ok(())
}

/// Keeps the table under `max_rows`: when over, evicts the least recently
/// seen rows that hold no active lock, down to 90 % of the cap (in batches,
/// so a spray pays for eviction once per many inserts).
fn enforce_cap(conn: &Connection, limits: &Limits, now: i64) -> rusqlite::Result<()> {
    let rows: i64 = conn
        .prepare_cached("SELECT rows FROM ledger_size WHERE id = 1")?
        .query_row([], |r| r.get(0))?;
    if rows <= limits.max_rows {
        return Ok(());
    }
    let target = limits.max_rows - limits.max_rows / 10;
    conn.prepare_cached(
        "DELETE FROM ledger WHERE (kind, user, source) IN (
             SELECT kind, user, source FROM ledger WHERE locked_until <= :now
             ORDER BY last_seen LIMIT :excess)",
    )?
    .execute(named_params! {":now": now, ":excess": rows - target})?;
    Ok(())
}

/// Deletes rows whose window and lock have both passed, in small
/// transactions so that logins are never held up for long. Returns how many.
pub fn prune(conn: &mut Connection, limits: &Limits, now: i64) -> rusqlite::Result<usize> {
    let mut total = 0;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx
            .prepare_cached(
                "DELETE FROM ledger WHERE (kind, user, source) IN (
                     SELECT kind, user, source FROM ledger
                     WHERE locked_until <= :now AND window_start <= :now - :interval
                       AND locks_remembered_until <= :now LIMIT 1000)",
            )?
            .execute(named_params! {":now": now, ":interval": limits.fail_interval})?;
        let old_successes = tx
            .prepare_cached(
                "DELETE FROM known_good WHERE (user, source) IN (
                     SELECT user, source FROM known_good WHERE last_success <= :now - :window LIMIT 1000)",
            )?
            .execute(named_params! {":now": now, ":window": limits.known_good})?;
        tx.commit()?;
        total += n;
        if n < 1000 && old_successes < 1000 {
            return Ok(total);
        }
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

fn entries(
    conn: &Connection,
    limits: &Limits,
    sql: &str,
    params: &[(&str, &dyn rusqlite::ToSql)],
) -> rusqlite::Result<Vec<Entry>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params, |r| {
        let kind: String = r.get(0)?;
        Ok((
            kind,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, user, source, failures, window_start, locked_until, last_seen, locks) = row?;
        let Some(kind) = KeyKind::parse(&kind) else {
            continue;
        };
        out.push(Entry {
            key: Key { kind, user, source },
            failures,
            limit: limits.limit(kind),
            window_start,
            locked_until,
            last_seen,
            locks,
        });
    }
    Ok(out)
}

const COLUMNS: &str = "kind, user, source, failures, window_start, locked_until, last_seen, locks";

/// Every lock in force.
pub fn locks(conn: &Connection, limits: &Limits, now: i64) -> rusqlite::Result<Vec<Entry>> {
    entries(
        conn,
        limits,
        &format!(
            "SELECT {COLUMNS} FROM ledger WHERE locked_until > :now ORDER BY locked_until DESC"
        ),
        named_params! {":now": now},
    )
}

/// Every live counter that concerns a user (expired ones are left out).
pub fn status(
    conn: &Connection,
    limits: &Limits,
    user: &str,
    now: i64,
) -> rusqlite::Result<Vec<Entry>> {
    let all = entries(
        conn,
        limits,
        &format!("SELECT {COLUMNS} FROM ledger WHERE user = :user ORDER BY kind, source"),
        named_params! {":user": user},
    )?;
    Ok(all
        .into_iter()
        .filter(|e| {
            e.locked_until > now
                || (e.locked_until == 0 && now - e.window_start < limits.fail_interval)
        })
        .collect())
}

/// Clears every key of a user. Returns the rows removed.
pub fn unlock_user(conn: &mut Connection, user: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM ledger WHERE user = :user",
        named_params! {":user": user},
    )
}

/// Clears every key of a source. Returns the rows removed.
pub fn unlock_source(conn: &mut Connection, source: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM ledger WHERE source = :source",
        named_params! {":source": source},
    )
}

/// Rows in the table (kept by triggers, so this is one lookup).
pub fn row_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT rows FROM ledger_size WHERE id = 1", [], |r| {
        r.get(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OpenMode, Store};

    fn limits() -> Limits {
        Limits::from(&Lockout {
            deny: 3,
            user_deny: 5,
            source_deny: 6,
            fail_interval_s: 100,
            unlock_time_s: 50,
            ..Lockout::default()
        })
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("l.db"), OpenMode::CreateIfMissing).unwrap();
        (dir, s)
    }

    fn fail(s: &mut Store, l: &Limits, user: &str, rhost: &str, now: i64) -> Reservation {
        reserve(s.conn(), l, user, rhost, now).unwrap()
    }

    #[test]
    fn deny_failures_lock_the_pair_and_the_next_attempt_is_refused() {
        let (_d, mut s) = store();
        let l = limits();
        for i in 0..3 {
            let r = fail(&mut s, &l, "alice", "", 1000 + i);
            assert!(r.evaluated(), "attempt {i}");
            assert_eq!(r.locking.is_empty(), i < 2);
        }
        let r = fail(&mut s, &l, "alice", "", 1003);
        let refusal = r.refused.unwrap();
        assert_eq!(refusal.key.to_string(), "user+source:alice@local");
        assert_eq!(refusal.locked_until, 1002 + 50);
        assert_eq!(locks(s.conn(), &l, 1003).unwrap().len(), 1);
    }

    #[test]
    fn a_lock_expires_after_unlock_time() {
        let (_d, mut s) = store();
        let l = limits();
        for i in 0..3 {
            fail(&mut s, &l, "alice", "", 1000 + i);
        }
        assert!(!fail(&mut s, &l, "alice", "", 1051).evaluated());
        assert!(
            fail(&mut s, &l, "alice", "", 1052).evaluated(),
            "lock set at 1002 for 50 s"
        );
        assert!(locks(s.conn(), &l, 1052).unwrap().is_empty());
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let (_d, mut s) = store();
        let l = limits();
        fail(&mut s, &l, "alice", "", 1000);
        fail(&mut s, &l, "alice", "", 1050);
        let r = fail(&mut s, &l, "alice", "", 1100);
        assert!(
            r.evaluated() && r.locking.is_empty(),
            "window restarted at 1100"
        );
        assert_eq!(status(s.conn(), &l, "alice", 1100).unwrap()[0].failures, 1);
    }

    #[test]
    fn success_clears_the_pair_and_returns_its_count_to_wider_keys() {
        let (_d, mut s) = store();
        let l = limits();
        fail(&mut s, &l, "alice", "192.0.2.1", 1000);
        fail(&mut s, &l, "alice", "192.0.2.1", 1001);
        let r = fail(&mut s, &l, "alice", "192.0.2.1", 1002);
        assert_eq!(r.locking.len(), 1, "the third reaches deny=3 for the pair");
        record_success(s.conn(), &l, &r, 1002).unwrap();
        assert!(s.conn().is_autocommit());
        let st = status(s.conn(), &l, "alice", 1002).unwrap();
        assert!(
            st.iter().all(|e| e.key.kind != KeyKind::UserSource),
            "{st:?}"
        );
        let remote = st
            .iter()
            .find(|e| e.key.kind == KeyKind::UserRemote)
            .unwrap();
        assert_eq!((remote.failures, remote.locked_until), (2, 0));
        assert!(locks(s.conn(), &l, 1002).unwrap().is_empty());
    }

    #[test]
    fn a_network_lock_leaves_the_console_open() {
        let (_d, mut s) = store();
        let l = limits();
        for i in 0..3 {
            fail(&mut s, &l, "victim", "198.51.100.9", 1000 + i);
        }
        assert!(!fail(&mut s, &l, "victim", "198.51.100.9", 1003).evaluated());
        assert!(fail(&mut s, &l, "victim", "", 1003).evaluated());
        assert!(
            fail(&mut s, &l, "victim", "203.0.113.5", 1003).evaluated(),
            "another source too"
        );
    }

    #[test]
    fn many_sources_lock_remote_logins_of_a_user_but_not_local_ones() {
        let (_d, mut s) = store();
        let l = limits();
        for i in 0..5 {
            assert!(fail(&mut s, &l, "bob", &format!("10.0.0.{i}"), 1000).evaluated());
        }
        let r = fail(&mut s, &l, "bob", "10.0.0.99", 1000);
        assert_eq!(r.refused.unwrap().key.kind, KeyKind::UserRemote);
        assert!(fail(&mut s, &l, "bob", "", 1000).evaluated());
    }

    #[test]
    fn one_source_spraying_names_is_blocked_and_others_are_not() {
        let (_d, mut s) = store();
        let l = limits();
        for i in 0..6 {
            assert!(fail(&mut s, &l, &format!("name{i}"), "192.0.2.66", 1000).evaluated());
        }
        let r = fail(&mut s, &l, "alice", "192.0.2.66", 1000);
        assert_eq!(r.refused.unwrap().key.to_string(), "source:192.0.2.66");
        assert!(fail(&mut s, &l, "alice", "192.0.2.67", 1000).evaluated());
    }

    #[test]
    fn refused_attempts_do_not_count_against_wider_keys() {
        let (_d, mut s) = store();
        let l = limits();
        for i in 0..10 {
            fail(&mut s, &l, "carol", "192.0.2.1", 1000 + i);
        }
        let remote = status(s.conn(), &l, "carol", 1010).unwrap();
        let remote = remote
            .iter()
            .find(|e| e.key.kind == KeyKind::UserRemote)
            .unwrap();
        assert_eq!(remote.failures, 3, "only the 3 evaluated attempts count");
    }

    #[test]
    fn a_remote_host_named_local_is_not_the_console() {
        let (_d, mut s) = store();
        let l = limits();
        for i in 0..3 {
            fail(&mut s, &l, "frank", "local", 1000 + i);
        }
        assert!(!fail(&mut s, &l, "frank", "local", 1003).evaluated());
        assert!(fail(&mut s, &l, "frank", "", 1003).evaluated());
    }

    #[test]
    fn an_ipv6_source_counts_as_its_64() {
        assert_eq!(source_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(source_key("2001:db8:1:2:ffff:1:2:3"), "2001:db8:1:2::/64");
        assert_eq!(source_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(source_key("192.0.2.1"), "192.0.2.1");
        assert_eq!(source_key("host.example"), "host.example");
        assert_eq!(source_key(""), "");
        assert_eq!(source_from_admin("local"), "");
        let (_d, mut s) = store();
        let l = limits();
        for i in 0..6 {
            fail(
                &mut s,
                &l,
                &format!("n{i}"),
                &format!("2001:db8:1:2::{i:x}"),
                1000,
            );
        }
        let r = fail(&mut s, &l, "alice", "2001:db8:1:2::ffff", 1000);
        assert_eq!(
            r.refused.unwrap().key.to_string(),
            "source:2001:db8:1:2::/64"
        );
    }

    #[test]
    fn a_peer_key_is_its_own_counter() {
        let (_d, mut s) = store();
        let l = limits();
        for _ in 0..3 {
            assert!(
                reserve_charge(s.conn(), &l, peer_charge(1000), 1000)
                    .unwrap()
                    .evaluated()
            );
        }
        let r = reserve_charge(s.conn(), &l, peer_charge(1000), 1000).unwrap();
        assert_eq!(r.refused.unwrap().key.to_string(), "peer:uid:1000");
        assert!(
            fail(&mut s, &l, "root", "", 1000).evaluated(),
            "root's own keys untouched"
        );
        assert_eq!(unlock_source(s.conn(), "uid:1000").unwrap(), 1);
    }

    #[test]
    fn user_scope_is_plain_per_user() {
        let (_d, mut s) = store();
        let l = Limits {
            scope: LockoutScope::User,
            ..limits()
        };
        fail(&mut s, &l, "dave", "192.0.2.1", 1000);
        fail(&mut s, &l, "dave", "192.0.2.2", 1000);
        fail(&mut s, &l, "dave", "", 1000);
        let r = fail(&mut s, &l, "dave", "", 1001);
        assert_eq!(r.refused.unwrap().key.to_string(), "user:dave");
    }

    #[test]
    fn unlock_clears_a_user_or_a_source() {
        let (_d, mut s) = store();
        let l = limits();
        for i in 0..3 {
            fail(&mut s, &l, "erin", "192.0.2.9", 1000 + i);
        }
        for i in 0..6 {
            fail(&mut s, &l, &format!("n{i}"), "192.0.2.10", 1000);
        }
        assert_eq!(locks(s.conn(), &l, 1010).unwrap().len(), 2);
        assert!(unlock_user(s.conn(), "erin").unwrap() >= 2);
        assert!(unlock_source(s.conn(), "192.0.2.10").unwrap() >= 1);
        assert!(locks(s.conn(), &l, 1010).unwrap().is_empty());
        assert!(fail(&mut s, &l, "erin", "192.0.2.9", 1010).evaluated());
    }

    #[test]
    fn pruning_removes_only_expired_rows() {
        let (_d, mut s) = store();
        let l = limits();
        fail(&mut s, &l, "old", "", 1000);
        for i in 0..3 {
            fail(&mut s, &l, "locked", "", 1060 + i);
        }
        fail(&mut s, &l, "recent", "", 1090);
        assert_eq!(
            prune(s.conn(), &l, 1101).unwrap(),
            1,
            "only 'old' is past its window and unlocked"
        );
        assert_eq!(row_count(s.conn()).unwrap(), 2);
        assert_eq!(
            prune(s.conn(), &l, 1200).unwrap(),
            1,
            "'locked' remembers its lock"
        );
        assert_eq!(row_count(s.conn()).unwrap(), 1);
        assert_eq!(prune(s.conn(), &l, 1112 + l.unlock_time_max).unwrap(), 1);
        assert_eq!(row_count(s.conn()).unwrap(), 0);
    }

    #[test]
    fn the_cap_evicts_stale_rows_and_never_an_active_lock() {
        let (_d, mut s) = store();
        let l = Limits {
            max_rows: 100,
            unlock_time: 100_000,
            ..limits()
        };
        for i in 0..3 {
            fail(&mut s, &l, "locked", "", 1000 + i);
        }
        for i in 0..1000 {
            fail(&mut s, &l, &format!("spray{i}"), "", 1010 + i);
            assert!(row_count(s.conn()).unwrap() <= 100);
        }
        let real: i64 = s
            .conn()
            .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
            .unwrap();
        assert_eq!(real, row_count(s.conn()).unwrap(), "trigger count matches");
        assert!(
            !fail(&mut s, &l, "locked", "", 1020).evaluated(),
            "the lock survived eviction"
        );
    }

    #[test]
    fn concurrent_guesses_never_exceed_the_limit() {
        let (dir, _s) = store();
        let l = limits();
        let path = dir.path().join("l.db");
        let evaluated = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    let mut s = Store::open(&path, OpenMode::MustExist).unwrap();
                    for _ in 0..5 {
                        if fail(&mut s, &l, "target", "192.0.2.1", 1000).evaluated() {
                            evaluated.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        assert_eq!(evaluated.into_inner(), 3);
    }

    fn attempt(s: &mut Store, l: &Limits, user: &str, origin: &Origin, now: i64) -> Reservation {
        reserve_charge(s.conn(), l, charge_for(l, user, origin), now).unwrap()
    }

    fn succeed(s: &mut Store, l: &Limits, user: &str, origin: &Origin, now: i64) {
        let r = attempt(s, l, user, origin, now);
        assert!(
            r.evaluated(),
            "{user} from {origin:?} refused: {:?}",
            r.refused
        );
        record_success(s.conn(), l, &r, now).unwrap();
    }

    #[test]
    fn su_failures_by_one_caller_never_lock_the_target_from_anywhere_else() {
        let (_d, mut s) = store();
        let l = limits();
        let mallory = Origin::from_root("", "mallory");
        for i in 0..6 {
            attempt(&mut s, &l, "alice", &mallory, 1000 + i);
        }
        let refused = attempt(&mut s, &l, "alice", &mallory, 1010)
            .refused
            .unwrap();
        assert_eq!(refused.key.to_string(), "user+source:alice@ruser:mallory");
        for other in [
            Origin::from_root("", "alice"),
            Origin::Console,
            Origin::local_uid(1000),
        ] {
            assert!(
                attempt(&mut s, &l, "alice", &other, 1010).evaluated(),
                "{other:?}"
            );
        }
    }

    #[test]
    fn a_local_caller_spraying_names_blocks_only_itself() {
        let (_d, mut s) = store();
        let l = limits();
        let mallory = Origin::from_root("", "mallory");
        for i in 0..6 {
            assert!(attempt(&mut s, &l, &format!("n{i}"), &mallory, 1000).evaluated());
        }
        let r = attempt(&mut s, &l, "root", &mallory, 1000);
        assert_eq!(r.refused.unwrap().key.to_string(), "source:ruser:mallory");
        assert!(attempt(&mut s, &l, "root", &Origin::Console, 1000).evaluated());
    }

    #[test]
    fn a_botnet_cannot_lock_the_user_out_of_a_known_good_source() {
        let (_d, mut s) = store();
        let l = limits();
        let home = Origin::from_root("192.0.2.10", "");
        succeed(&mut s, &l, "alice", &home, 1000);
        // user_deny = 5 here: two sources with 3 failures each pass it.
        for (i, bot) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
            .iter()
            .enumerate()
        {
            for j in 0..3 {
                attempt(
                    &mut s,
                    &l,
                    "alice",
                    &Origin::from_root(bot, ""),
                    1001 + (i * 3 + j) as i64,
                );
            }
        }
        let unseen = attempt(
            &mut s,
            &l,
            "alice",
            &Origin::from_root("203.0.113.9", ""),
            1020,
        );
        assert_eq!(unseen.refused.unwrap().key.kind, KeyKind::UserRemote);
        let from_home = attempt(&mut s, &l, "alice", &home, 1020);
        assert!(from_home.known_good && from_home.evaluated());
        assert_eq!(
            from_home.keys.len(),
            1,
            "only its own key: {:?}",
            from_home.keys
        );
    }

    #[test]
    fn a_known_good_source_still_locks_on_its_own_deny() {
        let (_d, mut s) = store();
        let l = limits();
        let home = Origin::from_root("192.0.2.10", "");
        succeed(&mut s, &l, "alice", &home, 1000);
        for i in 0..3 {
            assert!(attempt(&mut s, &l, "alice", &home, 1001 + i).evaluated());
        }
        let r = attempt(&mut s, &l, "alice", &home, 1005);
        assert_eq!(
            r.refused.unwrap().key.to_string(),
            "user+source:alice@192.0.2.10"
        );
    }

    #[test]
    fn known_good_standing_ends_after_its_window() {
        let (_d, mut s) = store();
        let l = Limits {
            known_good: 100,
            ..limits()
        };
        let home = Origin::from_root("192.0.2.10", "");
        succeed(&mut s, &l, "alice", &home, 1000);
        assert!(attempt(&mut s, &l, "alice", &home, 1099).known_good);
        assert!(!attempt(&mut s, &l, "alice", &home, 1100).known_good);
        let off = Limits {
            known_good: 0,
            ..limits()
        };
        succeed(&mut s, &off, "bob", &home, 1000);
        assert!(!attempt(&mut s, &off, "bob", &home, 1001).known_good);
    }

    #[test]
    fn each_consecutive_lock_of_a_key_lasts_twice_the_one_before() {
        let (_d, mut s) = store();
        let l = Limits {
            unlock_time_max: 400,
            ..limits()
        };
        let from = Origin::Console;
        // deny = 3, unlock_time = 50: locks of 50, 100, 200, then 400 (cap), 400.
        let mut now = 1000;
        let mut durations = Vec::new();
        for _ in 0..5 {
            let mut locked_at = None;
            for _ in 0..3 {
                let r = attempt(&mut s, &l, "alice", &from, now);
                assert!(r.evaluated(), "at {now}: {:?}", r.refused);
                if !r.locking.is_empty() {
                    locked_at = Some(now);
                }
                now += 1;
            }
            let locked_at = locked_at.expect("the third failure locks");
            let entry = status(s.conn(), &l, "alice", now).unwrap()[0].clone();
            durations.push(entry.locked_until - locked_at);
            assert!(!attempt(&mut s, &l, "alice", &from, entry.locked_until - 1).evaluated());
            now = entry.locked_until;
        }
        assert_eq!(durations, vec![50, 100, 200, 400, 400]);
    }

    #[test]
    fn lock_history_is_forgotten_once_unlock_time_max_has_passed_and_on_success() {
        let (_d, mut s) = store();
        let l = Limits {
            unlock_time_max: 400,
            ..limits()
        };
        let console = Origin::Console;
        for i in 0..3 {
            attempt(&mut s, &l, "alice", &console, 1000 + i);
        }
        // Locked at 1002 for 50 s; remembered until 1052 + 400.
        for i in 0..3 {
            attempt(&mut s, &l, "alice", &console, 1060 + i);
        }
        let second = status(s.conn(), &l, "alice", 1062).unwrap()[0].clone();
        assert_eq!((second.locks, second.locked_until), (2, 1062 + 100));
        // Long after: the history is gone, the next lock is a first one again.
        for i in 0..3 {
            attempt(&mut s, &l, "alice", &console, 1162 + 400 + i);
        }
        let later = status(s.conn(), &l, "alice", 1564).unwrap()[0].clone();
        assert_eq!((later.locks, later.locked_until), (1, 1564 + 50));
        // A success clears the pair, history and all.
        succeed(&mut s, &l, "alice", &console, 1614);
        assert!(status(s.conn(), &l, "alice", 1614).unwrap().is_empty());
    }

    #[test]
    fn pruning_keeps_a_key_while_it_remembers_its_locks() {
        let (_d, mut s) = store();
        let l = Limits {
            unlock_time_max: 400,
            ..limits()
        };
        for i in 0..3 {
            attempt(&mut s, &l, "alice", &Origin::Console, 1000 + i);
        }
        // Lock ends at 1052, window long over by 1300: kept, it remembers.
        prune(s.conn(), &l, 1300).unwrap();
        assert_eq!(row_count(s.conn()).unwrap(), 1);
        prune(s.conn(), &l, 1052 + 400).unwrap();
        assert_eq!(row_count(s.conn()).unwrap(), 0);
    }
}
