//! The lockout ledger: failure counters that lock a key for a while.
//!
//! Keys (scope "source", the default): (user, source) with limit `deny`;
//! (user, any remote source) with `user_deny`; (remote source, any user)
//! with `source_deny`. The source is PAM_RHOST (an IPv6 address counts as
//! its /64, which one host can rotate through), or local when unset; local
//! is stored as the empty string, which no PAM_RHOST can be, and shown as
//! "local". A local source has no source-wide key: otherwise any local user
//! could lock the console for everyone. Scope "user" keeps one counter per
//! user. A non-root peer asking about an account that is not its own is
//! charged to its own uid (`peer`), never to the account it names.
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

/// The keys an attempt counts against.
pub fn keys_for(limits: &Limits, user: &str, rhost: &str) -> Vec<Key> {
    let key = |kind, user: &str, source: &str| Key {
        kind,
        user: user.to_owned(),
        source: source.to_owned(),
    };
    let source = source_key(rhost);
    match limits.scope {
        LockoutScope::User => vec![key(KeyKind::User, user, "")],
        LockoutScope::Source if source.is_empty() => vec![key(KeyKind::UserSource, user, "")],
        LockoutScope::Source => vec![
            key(KeyKind::UserSource, user, &source),
            key(KeyKind::UserRemote, user, ""),
            key(KeyKind::Source, "", &source),
        ],
    }
}

/// The one key of a non-root peer that asked about an account not its own.
pub fn peer_keys(uid: u32) -> Vec<Key> {
    vec![Key {
        kind: KeyKind::Peer,
        user: String::new(),
        source: format!("uid:{uid}"),
    }]
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
    pub keys: Vec<Key>,
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
}

impl Counter {
    fn fresh(now: i64) -> Counter {
        Counter {
            failures: 0,
            window_start: now,
            locked_until: 0,
        }
    }

    /// Drops an expired lock or window.
    fn at(self, now: i64, limits: &Limits) -> Counter {
        if self.locked_until > 0 && self.locked_until <= now {
            return Counter::fresh(now);
        }
        if self.locked_until == 0 && now - self.window_start >= limits.fail_interval {
            return Counter::fresh(now);
        }
        self
    }
}

fn read_counter(conn: &Connection, key: &Key) -> rusqlite::Result<Option<Counter>> {
    conn.prepare_cached(
        "SELECT failures, window_start, locked_until FROM ledger
         WHERE kind = :kind AND user = :user AND source = :source",
    )?
    .query_row(
        named_params! {":kind": key.kind.as_str(), ":user": key.user, ":source": key.source},
        |r| {
            Ok(Counter {
                failures: r.get(0)?,
                window_start: r.get(1)?,
                locked_until: r.get(2)?,
            })
        },
    )
    .optional()
}

fn write_counter(conn: &Connection, key: &Key, c: Counter, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO ledger (kind, user, source, failures, window_start, locked_until, last_seen)
         VALUES (:kind, :user, :source, :failures, :window_start, :locked_until, :now)
         ON CONFLICT (kind, user, source) DO UPDATE SET
             failures = excluded.failures, window_start = excluded.window_start,
             locked_until = excluded.locked_until, last_seen = excluded.last_seen",
    )?
    .execute(named_params! {
        ":kind": key.kind.as_str(), ":user": key.user, ":source": key.source,
        ":failures": c.failures, ":window_start": c.window_start, ":locked_until": c.locked_until, ":now": now,
    })?;
    Ok(())
}

/// Checks and reserves one attempt on all its keys, atomically and durably.
pub fn reserve(
    conn: &mut Connection,
    limits: &Limits,
    user: &str,
    rhost: &str,
    now: i64,
) -> rusqlite::Result<Reservation> {
    reserve_keys(conn, limits, keys_for(limits, user, rhost), now)
}

/// [`reserve`] on keys the caller chose (see [`peer_keys`]).
pub fn reserve_keys(
    conn: &mut Connection,
    limits: &Limits,
    keys: Vec<Key>,
    now: i64,
) -> rusqlite::Result<Reservation> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut counters = Vec::with_capacity(keys.len());
    let mut refused = None;
    for key in &keys {
        let c = read_counter(&tx, key)?.map_or(Counter::fresh(now), |c| c.at(now, limits));
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
                c.locked_until = now.saturating_add(limits.unlock_time);
                locking.push(key.clone());
            }
            write_counter(&tx, key, c, now)?;
        } else if c.locked_until > now || c.failures >= limit {
            // Only the refusing keys are touched: an attempt that never
            // reached a password must not count against other keys (one
            // locked source could otherwise run up the user's remote count).
            if c.locked_until <= now {
                c.locked_until = now.saturating_add(limits.unlock_time);
            }
            write_counter(&tx, key, c, now)?;
        }
    }
    enforce_cap(&tx, limits, now)?;
    tx.commit()?;
    if let Some(r) = &mut refused {
        // Report the lock as it now stands on disk.
        r.locked_until = r.locked_until.max(now);
    }
    Ok(Reservation {
        keys,
        refused,
        locking,
    })
}

/// Undoes a successful attempt's reservation: its (user, source) or user
/// key is cleared, the wider keys lose only the one count this attempt
/// added. Runs inside the caller's transaction (with the other writes of a
/// success, so a success costs one commit).
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
                     WHERE locked_until <= :now AND window_start <= :now - :interval LIMIT 1000)",
            )?
            .execute(named_params! {":now": now, ":interval": limits.fail_interval})?;
        tx.commit()?;
        total += n;
        if n < 1000 {
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
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, user, source, failures, window_start, locked_until, last_seen) = row?;
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
        });
    }
    Ok(out)
}

const COLUMNS: &str = "kind, user, source, failures, window_start, locked_until, last_seen";

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
                reserve_keys(s.conn(), &l, peer_keys(1000), 1000)
                    .unwrap()
                    .evaluated()
            );
        }
        let r = reserve_keys(s.conn(), &l, peer_keys(1000), 1000).unwrap();
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
        assert_eq!(prune(s.conn(), &l, 1200).unwrap(), 2);
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
}
