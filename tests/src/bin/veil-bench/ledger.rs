//! The ledger's cost against how full it is: reservations of fresh pairs
//! (three new keys each, `synchronous = FULL` as veild runs it) with the
//! table at 10 %, 90 % and 100 % of a cap, and the database file's size
//! there. The table is filled directly with live rows (one failure each,
//! in its window: rows eviction may not take), as an attacker's spray
//! would leave it, so that the figure does not wait on a million argon2
//! checks. The same on PostgreSQL follows (ledger_pg.rs).

use std::time::Instant;

use veil_daemon::common::config::Lockout;
use veil_daemon::common::ledger::{self, Limits, Origin};
use veil_daemon::common::store::{OpenMode, SqliteStore, Store};
use veil_tests::stats::{median, quantile};

pub(crate) const NOW: i64 = 1_800_000_000;

fn fill(store: &mut SqliteStore, from: i64, to: i64, limits: &Limits) {
    let conn = store.conn();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO ledger (kind, user, source, failures, window_start, locked_until,
                                     last_seen, locks, locks_remembered_until, writes, harmless_at)
                 VALUES ('user+source', ?1, ?2, 1, ?3, 0, ?3, 0, 0, 1, ?4)",
            )
            .unwrap();
        for i in from..to {
            let source = format!("198.18.{}.{}", (i >> 8) % 256, i % 256);
            insert
                .execute(rusqlite::params![
                    format!("spray{i}"),
                    source,
                    NOW,
                    NOW + limits.fail_interval
                ])
                .unwrap();
        }
        tx.execute(
            "UPDATE ledger_size SET rows = rows + ?1 WHERE id = 1",
            [to - from],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
}

/// `attempts` reservations of fresh remote pairs (3 new keys each) for
/// `round`, timed one by one: their cost in µs, and how many overflowed.
pub(crate) fn timed_reservations(
    store: &mut dyn Store,
    limits: &Limits,
    round: usize,
    attempts: usize,
) -> (Vec<f64>, usize) {
    let mut cost_us = Vec::with_capacity(attempts);
    let mut overflowed = 0;
    for i in 0..attempts {
        let rhost = format!("203.{round}.{}.{}", i / 256, i % 256);
        let charge = ledger::charge_for(
            limits,
            &format!("fresh{round}-{i}"),
            &Origin::from_root(&rhost, 0, "sshd"),
        );
        let t = Instant::now();
        let r = store.reserve(limits, charge, NOW + 1).expect("reserve");
        cost_us.push(t.elapsed().as_secs_f64() * 1e6);
        overflowed += usize::from(r.overflow);
    }
    (cost_us, overflowed)
}

pub fn ledger_report(quick: bool, say: &mut dyn FnMut(String)) {
    let cap: i64 = if quick { 100_000 } else { 1_000_000 };
    let attempts = if quick { 300 } else { 2_000 };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ledger.db");
    let mut store = SqliteStore::open(&path, OpenMode::CreateIfMissing).expect("ledger database");
    let limits = Limits::from(&Lockout {
        max_ledger_rows: cap as u64,
        ..Lockout::default()
    });
    say("## 6. Ledger write cost against how full it is\n".into());
    say(format!(
        "On SQLite: one reservation of a fresh remote pair (3 new keys; check + reserve in one `BEGIN IMMEDIATE` transaction, `synchronous = FULL`), {attempts} attempts per row, cap {cap} rows, the table filled with live rows (a failure in its window) first.\n"
    ));
    say("| full | rows before | median µs | p99 µs | overflowed | database MiB |".into());
    say("|---|---|---|---|---|---|".into());
    let mut filled = 0;
    for (round, pct) in [10i64, 90, 100].into_iter().enumerate() {
        let target = cap * pct / 100;
        if target > filled {
            fill(&mut store, filled, target, &limits);
        }
        let before = store.ledger_rows().unwrap();
        let (cost_us, overflowed) = timed_reservations(&mut store, &limits, round, attempts);
        filled = store.ledger_rows().unwrap();
        store
            .conn()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        say(format!(
            "| {pct} % | {before} | {:.0} | {:.0} | {overflowed} of {attempts} | {:.1} |",
            median(&cost_us),
            quantile(&cost_us, 0.99),
            size as f64 / 1_048_576.0
        ));
    }
    say(String::new());
    drop(store);
    crate::ledger_pg::postgres_table(cap, attempts, say);
}
