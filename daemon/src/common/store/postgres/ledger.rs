//! The ledger's SQL on PostgreSQL beside the reservation (`reserve.rs`): a
//! success's writes, pruning and the row cap, the admin's listings, the
//! import. The rules are [`crate::common::ledger`]'s.

use postgres::Client;

use super::reserve::columns;
use super::{Statements, locks};
use crate::common::ledger::{self, Entry, Key, KeyKind, Limits};
use crate::common::store::{Export, Imported, Success};

/// A success's writes in one call and one commit (`veil_success`).
pub const SUCCESS: &str = "SELECT veil_success($1, $2, $3::text[], $4::text[], $5::text[],
     $6::boolean[], $7::int8[], $8, $9, $10, $11, $12, $13)";

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
