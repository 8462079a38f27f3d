//! The ledger's SQL: counters, known-good pairs, pruning and the row cap.
//! The rules (which keys, when a key locks) are [`crate::common::ledger`]'s.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, named_params};

use crate::common::ledger::{self, Charge, Counter, Entry, Key, KeyKind, Limits, Reservation};

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

fn write_counter(
    conn: &Connection,
    limits: &Limits,
    key: &Key,
    c: Counter,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO ledger (kind, user, source, failures, window_start, locked_until, last_seen,
                             locks, locks_remembered_until, writes, harmless_at)
         VALUES (:kind, :user, :source, :failures, :window_start, :locked_until, :now,
                 :locks, :remembered, 1, :harmless_at)
         ON CONFLICT (kind, user, source) DO UPDATE SET
             failures = excluded.failures, window_start = excluded.window_start,
             locked_until = excluded.locked_until, last_seen = excluded.last_seen,
             locks = excluded.locks, locks_remembered_until = excluded.locks_remembered_until,
             writes = ledger.writes + 1, harmless_at = excluded.harmless_at",
    )?
    .execute(named_params! {
        ":kind": key.kind.as_str(), ":user": key.user, ":source": key.source,
        ":failures": c.failures, ":window_start": c.window_start, ":locked_until": c.locked_until,
        ":now": now, ":locks": c.locks, ":remembered": c.locks_remembered_until,
        ":harmless_at": c.harmless_at(limits),
    })?;
    Ok(())
}

fn read_counters(conn: &Connection, keys: &[Key]) -> rusqlite::Result<Vec<Option<Counter>>> {
    keys.iter().map(|key| read_counter(conn, key)).collect()
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
    Ok(ledger::is_known_good(limits, last, now))
}

/// Checks and reserves one attempt on all its keys, in one `BEGIN
/// IMMEDIATE` transaction committed before the password is checked. When
/// its keys need rows the ledger has no room for (after evicting rows
/// that limit nothing), they are charged to overflow keys instead.
pub fn reserve(
    conn: &mut Connection,
    limits: &Limits,
    charge: Charge,
    now: i64,
) -> rusqlite::Result<Reservation> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let known_good = is_known_good(&tx, limits, &charge.user, &charge.source, now)?;
    let mut charge = ledger::spare_known_good(charge, known_good);
    let mut stored = read_counters(&tx, &charge.keys)?;
    let wanted = stored.iter().filter(|c| c.is_none()).count() as i64;
    let mut overflow = false;
    if wanted > 0 && !known_good {
        let room = make_room(&tx, limits, now, wanted)?;
        if ledger::needs_overflow(known_good, &stored, room) {
            charge = ledger::overflow_charge(charge, &stored);
            stored = read_counters(&tx, &charge.keys)?;
            overflow = true;
        }
    }
    let mut plan = ledger::plan(limits, charge, known_good, stored, now);
    plan.reservation.overflow = overflow;
    for (key, counter) in &plan.writes {
        write_counter(&tx, limits, key, *counter, now)?;
    }
    // One statement for every attempt, whether it added rows or not.
    tx.prepare_cached(
        "UPDATE ledger_size SET rows = rows + :new, writes = writes + 1 WHERE id = 1",
    )?
    .execute(named_params! {":new": plan.new_rows})?;
    tx.commit()?;
    Ok(plan.reservation)
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
    if ledger::records_known_good(limits) {
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

/// Rows evicted at most by one reservation: more than an attempt adds,
/// so a table with rows to spare shrinks back under the cap, and few
/// enough that no login pays for a large delete (the minute's prune
/// takes the rest).
const EVICT_BATCH: i64 = 64;

/// Room under `max_rows` for `wanted` new rows, after evicting up to
/// [`EVICT_BATCH`] rows that limit nothing (oldest first, by the
/// `harmless_at` index: the cost does not grow with the table). Rows that
/// count failures, hold a lock or remember one are never evicted.
fn make_room(conn: &Connection, limits: &Limits, now: i64, wanted: i64) -> rusqlite::Result<i64> {
    let rows: i64 = conn
        .prepare_cached("SELECT rows FROM ledger_size WHERE id = 1")?
        .query_row([], |r| r.get(0))?;
    let room = limits.max_rows - rows;
    if room >= wanted {
        return Ok(room);
    }
    let evicted = conn
        .prepare_cached(
            "DELETE FROM ledger WHERE (kind, user, source) IN (
                 SELECT kind, user, source FROM ledger WHERE harmless_at <= :now
                 ORDER BY harmless_at LIMIT :batch)",
        )?
        .execute(named_params! {":now": now, ":batch": EVICT_BATCH})?;
    Ok(room + evicted as i64)
}

/// Deletes rows that limit nothing any more (`harmless_at`), in small
/// transactions so that logins are never held up for long. Returns how many.
pub fn prune(conn: &mut Connection, limits: &Limits, now: i64) -> rusqlite::Result<usize> {
    let mut total = 0;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx
            .prepare_cached(
                "DELETE FROM ledger WHERE (kind, user, source) IN (
                     SELECT kind, user, source FROM ledger WHERE harmless_at <= :now LIMIT 1000)",
            )?
            .execute(named_params! {":now": now})?;
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
    Ok(all.into_iter().filter(|e| e.live_at(now, limits)).collect())
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

/// Rows in the table (kept in `ledger_size`, so this is one lookup).
/// Keys locked at `now`, counted by kind. A scan of the ledger (no index
/// on `locked_until`: 0003 keeps a lock's write from touching more pages
/// than another attempt's); about 60 ms at 1 000 000 rows, run every
/// `[metrics] interval_s` on the metrics thread's own connection, which
/// WAL lets read beside veild's writers.
pub fn locks_in_force(conn: &Connection, now: i64) -> rusqlite::Result<Vec<(KeyKind, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT kind, count(*) FROM ledger WHERE locked_until > :now GROUP BY kind",
    )?;
    let rows = stmt.query_map(named_params! {":now": now}, |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, n) = row?;
        // A kind this build does not know (a newer host's) is not counted.
        if let Some(kind) = KeyKind::parse(&kind) {
            out.push((kind, n));
        }
    }
    Ok(out)
}

pub fn row_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT rows FROM ledger_size WHERE id = 1", [], |r| {
        r.get(0)
    })
}
