//! The ledger's SQL on PostgreSQL: counters, known-good pairs, pruning and
//! the row cap. The rules are [`crate::common::ledger`]'s.

use std::collections::HashMap;

use postgres::Client;

use super::hints::Hints;
use super::{Statements, locks};
use crate::common::ledger::{self, Charge, Counter, Entry, Key, KeyKind, Limits, Reservation};
use crate::common::store::{Export, Imported, Success};

/// Locks an attempt's keys (one advisory lock each, in a fixed order, held
/// to the end of the transaction) and reads its known-good pair and its
/// counters: one round trip (the function `veil_lock_read`).
pub const LOCK_READ: &str =
    "SELECT * FROM veil_lock_read($1::text[], $2::text[], $3::text[], $4, $5)";

/// An attempt's known-good pair (a row without a key) and counters, read
/// without locks: what an optimistic plan is made from.
pub const READ: &str =
    "SELECT NULL::text, NULL::text, NULL::text, g.last_success, 0::int8, 0::int8,
         0::int8, 0::int8
     FROM known_good g WHERE g.username = $4 AND g.source = $5
     UNION ALL
     SELECT l.kind, l.username, l.source, l.failures, l.window_start, l.locked_until, l.locks,
         l.locks_remembered_until
     FROM ledger l JOIN unnest($1::text[], $2::text[], $3::text[]) AS t(k, u, s)
       ON l.kind = t.k AND l.username = t.u AND l.source = t.s";

/// [`READ`] with the row `user_or_dummy` reads for `$6` after it (kind
/// [`USER_ROW`], the record in columns 8 to 14): the login's lookup in
/// the reservation's first round trip.
pub const READ_WITH_USER: &str =
    "SELECT NULL::text, NULL::text, NULL::text, g.last_success, 0::int8, 0::int8,
         0::int8, 0::int8, NULL::text, NULL::bytea, NULL::int8, NULL::bytea, NULL::bytea,
         NULL::int8, NULL::boolean
     FROM known_good g WHERE g.username = $4 AND g.source = $5
     UNION ALL
     SELECT l.kind, l.username, l.source, l.failures, l.window_start, l.locked_until, l.locks,
         l.locks_remembered_until, NULL, NULL, NULL, NULL, NULL, NULL, NULL
     FROM ledger l JOIN unnest($1::text[], $2::text[], $3::text[]) AS t(k, u, s)
       ON l.kind = t.k AND l.username = t.u AND l.source = t.s
     UNION ALL
     (SELECT '@', NULL, NULL, 0, 0, 0, 0, 0, phc, totp_secret, totp_last_step, recovery_key,
          recovery_hashes, recovery_used, name <> '' FROM users
      WHERE name IN ($6, '') ORDER BY name DESC LIMIT 1)";

/// The kind of [`READ_WITH_USER`]'s user row: no key has it.
pub const USER_ROW: &str = "@";

/// The checked write of an optimistic plan (`veil_reserve`).
pub const RESERVE: &str = "SELECT * FROM veil_reserve($1::text[], $2::text[], $3::text[], $4, $5,
     $6, $7::text[], $8::text[], $9::text[], $10::boolean[], $11::int8[], $12::int8[],
     $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::int8[], $18::int8[], $19::int8[],
     $20::int8[], $21)";

/// [`RESERVE`] with the row `user_or_dummy` reads for `$22` after it, as
/// in [`READ_WITH_USER`].
pub const RESERVE_WITH_USER: &str = "SELECT r.*, NULL::text, NULL::bytea, NULL::int8, NULL::bytea,
         NULL::bytea, NULL::int8, NULL::boolean
     FROM veil_reserve($1::text[], $2::text[], $3::text[], $4, $5,
     $6, $7::text[], $8::text[], $9::text[], $10::boolean[], $11::int8[], $12::int8[],
     $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::int8[], $18::int8[], $19::int8[],
     $20::int8[], $21) r
     UNION ALL
     (SELECT '@', NULL, NULL, 0, 0, 0, 0, 0, phc, totp_secret, totp_last_step, recovery_key,
          recovery_hashes, recovery_used, name <> '' FROM users
      WHERE name IN ($22, '') ORDER BY name DESC LIMIT 1)";

/// Optimistic tries before a reservation takes the locks first (a key
/// that many attempts race for).
const OPTIMISTIC_TRIES: usize = 4;

pub const WRITE_COUNTERS: &str =
    "INSERT INTO ledger (kind, username, source, failures, window_start,
         locked_until, locks, locks_remembered_until, last_seen)
     SELECT k, u, s, f, w, l, n, r, $9
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[],
                 $7::int8[], $8::int8[]) AS t(k, u, s, f, w, l, n, r)
     ON CONFLICT (kind, username, source) DO UPDATE SET
         failures = excluded.failures, window_start = excluded.window_start,
         locked_until = excluded.locked_until, locks = excluded.locks,
         locks_remembered_until = excluded.locks_remembered_until, last_seen = excluded.last_seen";

/// A success's writes in one call and one commit (`veil_success`).
pub const SUCCESS: &str = "SELECT veil_success($1, $2, $3::text[], $4::text[], $5::text[],
     $6::boolean[], $7::int8[], $8, $9, $10, $11, $12, $13)";

/// The keys as three columns, for `unnest`.
fn columns(keys: &[Key]) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    (
        keys.iter().map(|k| k.kind.as_str()).collect(),
        keys.iter().map(|k| k.user.as_str()).collect(),
        keys.iter().map(|k| k.source.as_str()).collect(),
    )
}

type Found = HashMap<(String, String, String), Counter>;

/// Rows of READ / LOCK_READ / a refused RESERVE: the known-good pair's last
/// success and the counters by key (the marker row is skipped).
fn parse(rows: &[postgres::Row]) -> (Option<i64>, Found) {
    let mut last = None;
    let mut found = Found::new();
    for r in rows {
        match r.get::<_, Option<String>>(0) {
            None => last = Some(r.get(3)),
            Some(kind) if kind == "!" || kind == USER_ROW => {}
            Some(kind) => {
                found.insert(
                    (kind, r.get(1), r.get(2)),
                    Counter {
                        failures: r.get(3),
                        window_start: r.get(4),
                        locked_until: r.get(5),
                        locks: r.get(6),
                        locks_remembered_until: r.get(7),
                    },
                );
            }
        }
    }
    (last, found)
}

fn id(k: &Key) -> (String, String, String) {
    (k.kind.as_str().to_owned(), k.user.clone(), k.source.clone())
}

/// Whether the pair's last success (as read) makes it known-good now.
fn is_known_good(limits: &Limits, last: Option<i64>, now: i64) -> bool {
    ledger::is_known_good(limits, last, now)
}

/// The plan for `charge` from what was read.
fn plan_from(
    limits: &Limits,
    charge: Charge,
    last: Option<i64>,
    found: &Found,
    now: i64,
) -> ledger::Plan {
    let known_good = is_known_good(limits, last, now);
    let charge = ledger::spare_known_good(charge, known_good);
    let stored = charge
        .keys
        .iter()
        .map(|k| found.get(&id(k)).copied())
        .collect();
    ledger::plan(limits, charge, known_good, stored, now)
}

/// Checks and reserves one attempt on all its keys, committed (durably:
/// synchronous_commit) before the password is checked. Optimistic first:
/// one read, then one call that takes the keys' locks, checks nothing
/// changed since and writes (two round trips, one commit); when another
/// attempt got there in between, again from what it wrote; after
/// [`OPTIMISTIC_TRIES`], a transaction that locks before it reads.
///
/// A known-good pair locks only the keys it is charged to: otherwise a
/// flood of the user's name from many sources, queueing on the wide keys'
/// locks, could make the user's own login from a known source wait past
/// `lock_timeout` (a store-error denial aimed at them). That is safe
/// because the pair's known-good row is written only under its own key's
/// lock (`veil_success`), and `veil_reserve` checks it is unchanged.
///
/// `full`: the ledger was over the cap at this host's last prune, so an
/// attempt whose keys have no row (and whose pair is not known-good) is
/// charged to overflow keys: decided once from the first read, and the
/// rest runs on that charge.
pub fn reserve(
    client: &mut Client,
    st: &Statements,
    limits: &Limits,
    charge: Charge,
    full: bool,
    now: i64,
) -> Result<Reservation, postgres::Error> {
    let (kinds, users, sources) = columns(&charge.keys);
    let rows = client.query(
        &st.read,
        &[&kinds, &users, &sources, &charge.user, &charge.source],
    )?;
    reserve_from(client, st, limits, charge, full, now, rows)
}

/// [`reserve`], reading also the row `user_or_dummy` gives for `name`
/// (`None` only if the dummy row is missing) in its first statement. A
/// pair `hints` remembers as known-good (and not `full`) skips the read:
/// its first statement is the checked write of the plan made from what
/// was remembered ([`super::hints`]), so a repeated login reserves in one
/// round trip; a stale hint is refused and answered with what is there.
#[allow(clippy::too_many_arguments)]
pub fn reserve_looking_up(
    client: &mut Client,
    st: &Statements,
    limits: &Limits,
    charge: Charge,
    name: &str,
    full: bool,
    now: i64,
    hints: &Hints,
) -> Result<(Reservation, Option<postgres::Row>), postgres::Error> {
    let hint = hints
        .last_success(&charge.user, &charge.source)
        .filter(|&last| !full && is_known_good(limits, Some(last), now));
    if let Some(last) = hint {
        let tried = try_plan(
            client,
            st,
            limits,
            &charge,
            (Some(last), &Found::new()),
            now,
            Some(name),
        )?;
        let (rows, user) = take_user_row(tried.rows);
        if let Some(reservation) = tried.reservation {
            return Ok((reservation, user));
        }
        hints.saw(&charge.user, &charge.source, parse(&rows).0);
        let reservation = optimistic(
            client,
            st,
            limits,
            charge,
            rows,
            tried.narrowed,
            now,
            OPTIMISTIC_TRIES - 1,
        )?;
        return Ok((reservation, user));
    }
    let (kinds, users, sources) = columns(&charge.keys);
    let rows = client.query(
        &st.read_with_user,
        &[
            &kinds,
            &users,
            &sources,
            &charge.user,
            &charge.source,
            &name,
        ],
    )?;
    let (rows, user) = take_user_row(rows);
    hints.saw(&charge.user, &charge.source, parse(&rows).0);
    let reservation = reserve_from(client, st, limits, charge, full, now, rows)?;
    Ok((reservation, user))
}

/// Splits [`USER_ROW`]'s row off the rest.
fn take_user_row(mut rows: Vec<postgres::Row>) -> (Vec<postgres::Row>, Option<postgres::Row>) {
    let user = rows
        .iter()
        .position(|r| r.get::<_, Option<&str>>(0) == Some(USER_ROW))
        .map(|i| rows.remove(i));
    (rows, user)
}

/// [`reserve`] from its first read's `rows`.
fn reserve_from(
    client: &mut Client,
    st: &Statements,
    limits: &Limits,
    charge: Charge,
    full: bool,
    now: i64,
    rows: Vec<postgres::Row>,
) -> Result<Reservation, postgres::Error> {
    if full {
        let (last, found) = parse(&rows);
        let known_good = is_known_good(limits, last, now);
        let spared = ledger::spare_known_good(charge.clone(), known_good);
        let stored: Vec<Option<Counter>> = spared
            .keys
            .iter()
            .map(|k| found.get(&id(k)).copied())
            .collect();
        if ledger::needs_overflow(known_good, &stored, 0) {
            let overflowed = ledger::overflow_charge(spared, &stored);
            let mut reservation = reserve(client, st, limits, overflowed, false, now)?;
            reservation.overflow = true;
            return Ok(reservation);
        }
    }
    optimistic(
        client,
        st,
        limits,
        charge,
        rows,
        false,
        now,
        OPTIMISTIC_TRIES,
    )
}

/// Up to `tries` optimistic tries from `rows` (which cover only the
/// pair's own keys if `narrowed`), then [`reserve_locked`].
#[allow(clippy::too_many_arguments)]
fn optimistic(
    client: &mut Client,
    st: &Statements,
    limits: &Limits,
    charge: Charge,
    mut rows: Vec<postgres::Row>,
    mut narrowed: bool,
    now: i64,
    tries: usize,
) -> Result<Reservation, postgres::Error> {
    let (kinds, users, sources) = columns(&charge.keys);
    for _ in 0..tries {
        let (mut last, mut found) = parse(&rows);
        if narrowed && !is_known_good(limits, last, now) {
            // What came back covers only the pair's own keys; the plan
            // now needs them all.
            rows = client.query(
                &st.read,
                &[&kinds, &users, &sources, &charge.user, &charge.source],
            )?;
            (last, found) = parse(&rows);
        }
        let tried = try_plan(client, st, limits, &charge, (last, &found), now, None)?;
        if let Some(reservation) = tried.reservation {
            return Ok(reservation);
        }
        (rows, narrowed) = (tried.rows, tried.narrowed);
    }
    reserve_locked(client, st, limits, charge, now)
}

/// What one optimistic try came back with.
struct Tried {
    /// Written: the plan's reservation.
    reservation: Option<Reservation>,
    /// The statement's rows: when refused, what is there now.
    rows: Vec<postgres::Row>,
    /// Only the pair's own keys were locked and, when refused, read back.
    narrowed: bool,
}

/// Plans from `read` (the pair's last success and the counters found) and
/// has `veil_reserve` write the plan if nothing changed since; with
/// `name`, the same statement reads that name's row too
/// ([`RESERVE_WITH_USER`]).
fn try_plan(
    client: &mut Client,
    st: &Statements,
    limits: &Limits,
    charge: &Charge,
    read: (Option<i64>, &Found),
    now: i64,
    name: Option<&str>,
) -> Result<Tried, postgres::Error> {
    let (last, found) = read;
    let (kinds, users, sources) = columns(&charge.keys);
    let plan = plan_from(limits, charge.clone(), last, found, now);
    let keys: Vec<Key> = plan.writes.iter().map(|(k, _)| k.clone()).collect();
    let (ek, eu, es) = columns(&keys);
    let narrowed = is_known_good(limits, last, now);
    let (lk, lu, ls) = if narrowed {
        (ek.clone(), eu.clone(), es.clone())
    } else {
        (kinds, users, sources)
    };
    let expected: Vec<Option<Counter>> = keys.iter().map(|k| found.get(&id(k)).copied()).collect();
    let present: Vec<bool> = expected.iter().map(Option::is_some).collect();
    let old = |f: fn(&Counter) -> i64| {
        expected
            .iter()
            .map(|c| c.as_ref().map_or(0, f))
            .collect::<Vec<_>>()
    };
    let new = |f: fn(&Counter) -> i64| plan.writes.iter().map(|(_, c)| f(c)).collect::<Vec<_>>();
    let (of, ow, ol, on, or) = (
        old(|c| c.failures),
        old(|c| c.window_start),
        old(|c| c.locked_until),
        old(|c| c.locks),
        old(|c| c.locks_remembered_until),
    );
    let (nf, nw, nl, nn, nr) = (
        new(|c| c.failures),
        new(|c| c.window_start),
        new(|c| c.locked_until),
        new(|c| c.locks),
        new(|c| c.locks_remembered_until),
    );
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![
        &lk,
        &lu,
        &ls,
        &charge.user,
        &charge.source,
        &last,
        &ek,
        &eu,
        &es,
        &present,
        &of,
        &ow,
        &ol,
        &on,
        &or,
        &nf,
        &nw,
        &nl,
        &nn,
        &nr,
        &now,
    ];
    let statement = match &name {
        Some(name) => {
            params.push(name);
            &st.reserve_with_user
        }
        None => &st.reserve,
    };
    let rows = client.query(statement, &params)?;
    let written = rows
        .iter()
        .any(|r| r.get::<_, Option<&str>>(0) == Some("!") && r.get::<_, i64>(3) == 1);
    Ok(Tried {
        reservation: written.then_some(plan.reservation),
        rows,
        narrowed,
    })
}

/// The reservation that cannot be overtaken: lock, read, write, commit.
/// A pair read as known-good locks only its own keys (see [`reserve`]);
/// if it is no longer known-good once locked, it starts again with them all.
pub(super) fn reserve_locked(
    client: &mut Client,
    st: &Statements,
    limits: &Limits,
    charge: Charge,
    now: i64,
) -> Result<Reservation, postgres::Error> {
    let (kinds, users, sources) = columns(&charge.keys);
    let rows = client.query(
        &st.read,
        &[&kinds, &users, &sources, &charge.user, &charge.source],
    )?;
    let (last, _) = parse(&rows);
    // A pair read as known-good tries its own keys first; every key's
    // locks always plan, so the second pass returns.
    let mut lock = ledger::spare_known_good(charge.clone(), is_known_good(limits, last, now)).keys;
    loop {
        let narrowed = lock.len() < charge.keys.len();
        if let Some(reservation) = locked_pass(client, st, limits, &charge, &lock, narrowed, now)? {
            return Ok(reservation);
        }
        lock = charge.keys.clone();
    }
}

/// One locked pass: takes `lock`'s keys' locks, reads, and writes the
/// plan; `None` (rolled back) when only the pair's own keys were locked
/// (`narrowed`) and it is not known-good any more.
fn locked_pass(
    client: &mut Client,
    st: &Statements,
    limits: &Limits,
    charge: &Charge,
    lock: &[Key],
    narrowed: bool,
    now: i64,
) -> Result<Option<Reservation>, postgres::Error> {
    let mut tx = client.transaction()?;
    let (kinds, users, sources) = columns(lock);
    let rows = tx.query(
        &st.lock_read,
        &[&kinds, &users, &sources, &charge.user, &charge.source],
    )?;
    let (last, found) = parse(&rows);
    if narrowed && !is_known_good(limits, last, now) {
        tx.rollback()?;
        return Ok(None);
    }
    let plan = plan_from(limits, charge.clone(), last, &found, now);
    write_plan(&mut tx, st, &plan, now)?;
    tx.commit()?;
    Ok(Some(plan.reservation))
}

/// Writes a plan's counters (under the caller's locks, in its transaction).
fn write_plan(
    tx: &mut postgres::Transaction,
    st: &Statements,
    plan: &ledger::Plan,
    now: i64,
) -> Result<(), postgres::Error> {
    let keys: Vec<Key> = plan.writes.iter().map(|(k, _)| k.clone()).collect();
    let (kinds, users, sources) = columns(&keys);
    let field = |f: fn(&Counter) -> i64| plan.writes.iter().map(|(_, c)| f(c)).collect::<Vec<_>>();
    tx.execute(
        &st.write_counters,
        &[
            &kinds,
            &users,
            &sources,
            &field(|c| c.failures),
            &field(|c| c.window_start),
            &field(|c| c.locked_until),
            &field(|c| c.locks),
            &field(|c| c.locks_remembered_until),
            &now,
        ],
    )?;
    Ok(())
}

/// A success's writes, in one call (its own transaction: `veil_success`
/// takes the keys' locks first): the code's step, or the recovery code's
/// slot, by compare-and-set (`Ok(false)`, nothing written, when it was
/// taken meanwhile), then the
/// reservation undone (the (user, source) or user key cleared, the wider
/// keys less the one count it added), the pair known-good, a new hash.
pub fn commit_success(
    client: &mut Client,
    st: &Statements,
    limits: &Limits,
    success: &Success,
    rehash: bool,
) -> Result<bool, postgres::Error> {
    let keys = &success.reservation.keys;
    let new_hash = success.new_hash.as_ref().filter(|_| rehash);
    let (kinds, users, sources) = columns(keys);
    let cleared: Vec<bool> = keys.iter().map(|k| k.kind.cleared_by_success()).collect();
    let limit: Vec<i64> = keys.iter().map(|k| limits.limit(k.kind)).collect();
    let recovery_bit = success.recovery.map(|r| 1i64 << r.slot);
    let recovery_key = success.recovery.map(|r| r.key);
    let row = client.query_one(
        &st.success,
        &[
            &success.user,
            &success.step,
            &kinds,
            &users,
            &sources,
            &cleared,
            &limit,
            &success.reservation.source,
            &success.now,
            &ledger::records_known_good(limits),
            &new_hash,
            &recovery_bit,
            &recovery_key,
        ],
    )?;
    Ok(row.get(0))
}

/// Deletes the rows that limit nothing any more, on one host at a time (a
/// session advisory lock; the others skip this round); rows a login holds
/// are skipped, not waited for. Rows that count failures, hold a lock or
/// remember one are never deleted, however full the table. Returns the
/// rows removed and whether the table is still over `max_rows` (every
/// host counts: until its next prune, its new pairs go to overflow keys).
pub fn prune(
    client: &mut Client,
    limits: &Limits,
    now: i64,
) -> Result<(usize, bool), postgres::Error> {
    let mine = locks::try_lock_session(client, locks::PRUNE)?;
    let mut removed = 0;
    if mine {
        let result = prune_locked(client, limits, now);
        let unlocked = locks::unlock_session(client, locks::PRUNE);
        removed = result?;
        unlocked?;
    }
    let rows: i64 = client.query_one("SELECT count(*) FROM ledger", &[])?.get(0);
    Ok((removed, rows > limits.max_rows))
}

/// The same test as [`Counter::harmless_at`]` <= now`, on the columns.
fn prune_locked(client: &mut Client, limits: &Limits, now: i64) -> Result<usize, postgres::Error> {
    let mut total = 0;
    loop {
        let n = client.execute(
            "DELETE FROM ledger WHERE ctid IN (
                 SELECT ctid FROM ledger
                 WHERE locked_until <= $1::int8 AND locks_remembered_until <= $1::int8
                   AND (failures = 0 OR window_start <= $1::int8 - $2::int8)
                 LIMIT 1000 FOR UPDATE SKIP LOCKED)",
            &[&now, &limits.fail_interval],
        )? as usize;
        let old = client.execute(
            "DELETE FROM known_good WHERE ctid IN (
                 SELECT ctid FROM known_good WHERE last_success <= $1::int8 - $2::int8
                 LIMIT 1000 FOR UPDATE SKIP LOCKED)",
            &[&now, &limits.known_good],
        )?;
        total += n;
        if n < 1000 && old < 1000 {
            break;
        }
    }
    Ok(total)
}

const COLUMNS: &str =
    "kind, username, source, failures, window_start, locked_until, last_seen, locks";

fn entries(rows: &[postgres::Row], limits: &Limits) -> Vec<Entry> {
    rows.iter()
        .filter_map(|r| {
            let kind = KeyKind::parse(r.get(0))?;
            Some(Entry {
                key: Key {
                    kind,
                    user: r.get(1),
                    source: r.get(2),
                },
                failures: r.get(3),
                limit: limits.limit(kind),
                window_start: r.get(4),
                locked_until: r.get(5),
                last_seen: r.get(6),
                locks: r.get(7),
            })
        })
        .collect()
}

pub fn locks(
    client: &mut Client,
    limits: &Limits,
    now: i64,
) -> Result<Vec<Entry>, postgres::Error> {
    let rows = client.query(
        &format!("SELECT {COLUMNS} FROM ledger WHERE locked_until > $1 ORDER BY locked_until DESC"),
        &[&now],
    )?;
    Ok(entries(&rows, limits))
}

/// Keys locked at `now` (the fleet's clock), counted by kind, across every
/// host of the fleet. A scan, like `ledger_rows`' count: no index on
/// `locked_until`, so no schema change; run every `[metrics] interval_s`
/// per host, never on a login's path.
pub fn locks_in_force(
    client: &mut Client,
    now: i64,
) -> Result<Vec<(KeyKind, i64)>, postgres::Error> {
    let rows = client.query(
        "SELECT kind, count(*) FROM ledger WHERE locked_until > $1 GROUP BY kind",
        &[&now],
    )?;
    // A kind this build does not know (a newer host's) is not counted.
    Ok(rows
        .iter()
        .filter_map(|r| Some((KeyKind::parse(r.get(0))?, r.get::<_, i64>(1))))
        .collect())
}

pub fn status(
    client: &mut Client,
    limits: &Limits,
    user: &str,
    now: i64,
) -> Result<Vec<Entry>, postgres::Error> {
    let rows = client.query(
        &format!("SELECT {COLUMNS} FROM ledger WHERE username = $1 ORDER BY kind, source"),
        &[&user],
    )?;
    Ok(entries(&rows, limits)
        .into_iter()
        .filter(|e| e.live_at(now, limits))
        .collect())
}

/// A user that `veilctl store copy` found there with other contents.
#[derive(Debug, thiserror::Error)]
#[error("user {user} exists there with a different password or TOTP state; nothing was copied")]
pub struct UserConflict {
    pub user: String,
}

/// `veilctl store copy`: everything of `data`, in one transaction. A user
/// present with other contents makes it write nothing: `Ok(Err(..))`.
pub fn import(
    client: &mut Client,
    data: &Export,
) -> Result<Result<Imported, UserConflict>, postgres::Error> {
    let mut tx = client.transaction()?;
    // The login path's per-key locks, in its order (by lock id) and before
    // any row is touched (veil_success updates users under its key locks),
    // so a login on a copied key waits for the copy, or the copy for it,
    // and neither deadlocks.
    let kinds: Vec<&str> = data.ledger.iter().map(|r| r.kind.as_str()).collect();
    let users: Vec<&str> = data.ledger.iter().map(|r| r.user.as_str()).collect();
    let sources: Vec<&str> = data.ledger.iter().map(|r| r.source.as_str()).collect();
    locks::lock_keys(&mut tx, &kinds, &users, &sources)?;
    let mut imported = Imported::default();
    for u in &data.users {
        let existing = tx.query_opt(
            "SELECT phc, totp_secret, totp_pending, totp_last_step, recovery_key FROM users
             WHERE name = $1",
            &[&u.name],
        )?;
        let secret = u.totp_secret.as_deref().map(Vec::as_slice);
        let pending = u.totp_pending.as_deref().map(Vec::as_slice);
        let rkey = u.recovery.as_ref().map(|r| r.0.as_slice());
        let rhashes = u.recovery.as_ref().map(|r| r.1.as_slice());
        let rused = u.recovery.as_ref().map_or(0, |r| r.2);
        match existing {
            Some(row) => {
                let same = row.get::<_, String>(0) == u.phc
                    && row.get::<_, Option<Vec<u8>>>(1).as_deref() == secret
                    && row.get::<_, Option<Vec<u8>>>(2).as_deref() == pending
                    && row.get::<_, Option<Vec<u8>>>(4).as_deref() == rkey;
                if !same {
                    return Ok(Err(UserConflict {
                        user: u.name.clone(),
                    }));
                }
                // The later of the two steps and every used recovery slot
                // of both, so no code is accepted twice.
                tx.execute(
                    "UPDATE users SET totp_last_step = greatest(totp_last_step, $2),
                                      recovery_used = recovery_used | $3
                     WHERE name = $1",
                    &[&u.name, &u.totp_last_step, &rused],
                )?;
                imported.unchanged += 1;
            }
            None => {
                tx.execute(
                    "INSERT INTO users (name, phc, totp_secret, totp_pending, totp_last_step,
                                        created_at, updated_at, recovery_key, recovery_hashes,
                                        recovery_used)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &u.name,
                        &u.phc,
                        &secret,
                        &pending,
                        &u.totp_last_step,
                        &u.created_at,
                        &u.updated_at,
                        &rkey,
                        &rhashes,
                        &rused,
                    ],
                )?;
                imported.users += 1;
            }
        }
    }
    for r in &data.ledger {
        // The stricter of the two rows: more failures (with the window
        // they were counted in; on a tie the later window), the later lock.
        imported.ledger_rows += tx.execute(
            "INSERT INTO ledger (kind, username, source, failures, window_start, locked_until,
                                 last_seen, locks, locks_remembered_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (kind, username, source) DO UPDATE SET
                 failures = greatest(ledger.failures, excluded.failures),
                 window_start = CASE
                     WHEN excluded.failures > ledger.failures THEN excluded.window_start
                     WHEN excluded.failures < ledger.failures THEN ledger.window_start
                     ELSE greatest(ledger.window_start, excluded.window_start) END,
                 locked_until = greatest(ledger.locked_until, excluded.locked_until),
                 last_seen = greatest(ledger.last_seen, excluded.last_seen),
                 locks = greatest(ledger.locks, excluded.locks),
                 locks_remembered_until =
                     greatest(ledger.locks_remembered_until, excluded.locks_remembered_until)",
            &[
                &r.kind,
                &r.user,
                &r.source,
                &r.failures,
                &r.window_start,
                &r.locked_until,
                &r.last_seen,
                &r.locks,
                &r.locks_remembered_until,
            ],
        )? as usize;
    }
    for (user, source, last) in &data.known_good {
        imported.known_good += tx.execute(
            "INSERT INTO known_good (username, source, last_success) VALUES ($1, $2, $3)
             ON CONFLICT (username, source) DO UPDATE
                 SET last_success = greatest(known_good.last_success, excluded.last_success)",
            &[user, source, last],
        )? as usize;
    }
    tx.commit()?;
    Ok(Ok(imported))
}
