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

/// Checks and reserves one attempt on all its keys, in one `BEGIN
/// IMMEDIATE` transaction committed before the password is checked.
pub fn reserve(
    conn: &mut Connection,
    limits: &Limits,
    charge: Charge,
    now: i64,
) -> rusqlite::Result<Reservation> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let known_good = is_known_good(&tx, limits, &charge.user, &charge.source, now)?;
    let charge = ledger::spare_known_good(charge, known_good);
    let stored = charge
        .keys
        .iter()
        .map(|key| read_counter(&tx, key))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let plan = ledger::plan(limits, charge, known_good, stored, now);
    for (key, counter) in &plan.writes {
        write_counter(&tx, key, *counter, now)?;
    }
    // One statement for every attempt, whether it added rows or not.
    tx.prepare_cached(
        "UPDATE ledger_size SET rows = rows + :new, writes = writes + 1 WHERE id = 1",
    )?
    .execute(named_params! {":new": plan.new_rows})?;
    enforce_cap(&tx, limits, now)?;
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

/// Rows in the table (kept in `ledger_size`, so this is one lookup).
pub fn row_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT rows FROM ledger_size WHERE id = 1", [], |r| {
        r.get(0)
    })
}
