//! The ledger's cost against how full it is, on PostgreSQL: the same
//! live rows and fresh pairs as the SQLite table (ledger.rs), on a
//! throwaway cluster (Unix socket, fsync and synchronous_commit on), the
//! store opened as veild opens it. The rows are written by the server
//! (`generate_series`), so a million take seconds.
//!
//! PostgreSQL keeps no row counter: a host learns the table is over the
//! cap from its own minute prune (`ledger_full`), and until then its new
//! pairs get rows. So each fill is followed by a prune, as veild's would
//! be, and one more round runs after the prune that finds the table over
//! the cap (the reservations of the 100 % round added rows past it).

use std::path::Path;
use std::time::Instant;

use veil_daemon::common::config::{Lockout, Postgres};
use veil_daemon::common::ledger::Limits;
use veil_daemon::common::store::{self, Location, OpenMode, PgSettings};
use veil_tests::postgres::Cluster;
use veil_tests::stats::{median, quantile};

use crate::ledger::NOW;

/// Live rows `spray{from}`..`spray{to - 1}`, as ledger.rs's fill writes
/// them on SQLite (one failure in its window, no lock), then what a
/// server that had them for a while would have done: VACUUM (so that
/// autovacuum does not start on them mid-measure), ANALYZE, a checkpoint.
fn fill(cluster: &Cluster, db: &str, from: i64, to: i64) {
    cluster.sql(
        db,
        &format!(
            "INSERT INTO ledger (kind, username, source, failures, window_start, locked_until,
                                 last_seen, locks, locks_remembered_until)
             SELECT 'user+source', 'spray' || i,
                    '198.18.' || ((i >> 8) % 256) || '.' || (i % 256), 1, {NOW}, 0, {NOW}, 0, 0
             FROM generate_series({from}::int8, {to}::int8 - 1) AS i"
        ),
    );
    cluster.sql(db, "VACUUM (ANALYZE) ledger");
    cluster.sql(db, "CHECKPOINT");
}

pub fn postgres_table(cap: i64, attempts: usize, say: &mut dyn FnMut(String)) {
    let cluster = Cluster::start();
    let db = "ledger";
    let url = cluster.database(db);
    let settings = PgSettings::new(Path::new(&url), &Postgres::default());
    let mut store =
        store::open(&Location::Postgres(settings), OpenMode::CreateIfMissing).expect("open");
    let mut admin = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    let limits = Limits::from(&Lockout {
        max_ledger_rows: cap as u64,
        ..Lockout::default()
    });
    say(format!(
        "On PostgreSQL {}: the same reservations ({attempts} per row, cap {cap}), the store opened as veild opens it, on a throwaway cluster (Unix socket, fsync and `synchronous_commit` on). The table filled by server-side SQL with the same live rows, then VACUUM, ANALYZE, a checkpoint and one prune (veild's minute prune: PostgreSQL keeps no row counter, so the prune's count sets the host's over-the-cap flag, and a host sends new pairs to overflow keys only once a prune found the table over the cap). The last row is after the next prune, which finds the 100 % round's new rows past the cap.\n",
        server_version(&mut admin)
    ));
    say(
        "| full | rows before | prune ms | median µs | p99 µs | overflowed | table + indexes MiB |"
            .into(),
    );
    say("|---|---|---|---|---|---|---|".into());
    let mut filled = 0;
    let rounds = [
        (10i64, "10 %"),
        (90, "90 %"),
        (100, "100 %"),
        (100, "next prune"),
    ];
    for (round, (pct, label)) in rounds.into_iter().enumerate() {
        let target = cap * pct / 100;
        if target > filled {
            fill(&cluster, db, filled, target);
        }
        let before = store.ledger_rows().expect("count");
        let t = Instant::now();
        let removed = store.prune(&limits, NOW + 1).expect("prune");
        let prune_ms = t.elapsed().as_secs_f64() * 1e3;
        // Every row is live: a prune that removed one would measure another table.
        assert_eq!(removed, 0, "the prune removed live rows");
        let (cost_us, overflowed) =
            crate::ledger::timed_reservations(store.as_mut(), &limits, round, attempts);
        filled = store.ledger_rows().expect("count");
        let size: i64 = admin
            .query_one("SELECT pg_total_relation_size('ledger')", &[])
            .expect("table size")
            .get(0);
        say(format!(
            "| {label} | {before} | {prune_ms:.0} | {:.0} | {:.0} | {overflowed} of {attempts} | {:.1} |",
            median(&cost_us),
            quantile(&cost_us, 0.99),
            size as f64 / 1_048_576.0
        ));
    }
    say(String::new());
}

fn server_version(client: &mut ::postgres::Client) -> String {
    client
        .query_one("SHOW server_version", &[])
        .map(|r| r.get::<_, String>(0))
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}
