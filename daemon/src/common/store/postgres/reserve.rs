//! The reservation on PostgreSQL: the ledger read, the optimistic plan
//! and its checked write (`veil_reserve`), the locked fallback, and the
//! user's row read with them. The rules are [`crate::common::ledger`]'s.

use std::collections::HashMap;

use postgres::Client;

use super::Statements;
use super::hints::Hints;
use crate::common::ledger::{self, Charge, Counter, Key, Limits, Reservation};

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

/// The keys as three columns, for `unnest`.
pub(super) fn columns(keys: &[Key]) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
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
    let rows = read(client, st, &charge)?;
    reserve_from(client, st, limits, charge, full, now, rows)
}

/// [`READ`] for `charge`: its pair's known-good row and its keys' counters.
fn read(
    client: &mut Client,
    st: &Statements,
    charge: &Charge,
) -> Result<Vec<postgres::Row>, postgres::Error> {
    let (kinds, users, sources) = columns(&charge.keys);
    client.query(
        &st.read,
        &[&kinds, &users, &sources, &charge.user, &charge.source],
    )
}

/// [`reserve`], reading also the row `user_or_dummy` gives for `name`
/// (`None` only if the dummy row is missing) in its first statement,
/// which (the ledger not `full`) is already the checked write: of the plan
/// made from what `hints` remembers of a known-good pair ([`super::hints`]),
/// else of the plan made from nothing stored (a pair's first login: its
/// keys usually have no rows yet). So a login reserves in one round trip;
/// when the database holds anything else, `veil_reserve` writes nothing
/// and answers with what is there, and the plan is made again from that
/// (two round trips, as a read and a write). A `full` ledger reads first:
/// whether the attempt goes to overflow keys is decided from that read.
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
    if !full {
        let hint = hints
            .last_success(&charge.user, &charge.source)
            .filter(|&last| is_known_good(limits, Some(last), now));
        let tried = try_plan(
            client,
            st,
            limits,
            &charge,
            (hint, &Found::new()),
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
    for _ in 0..tries {
        let (mut last, mut found) = parse(&rows);
        if narrowed && !is_known_good(limits, last, now) {
            // What came back covers only the pair's own keys; the plan
            // now needs them all.
            rows = read(client, st, &charge)?;
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
    let rows = read(client, st, &charge)?;
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
