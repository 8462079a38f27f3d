//! A spray of random unknown names from random addresses through the
//! ledger's own API, at a small cap: the table never passes its cap (but
//! for the bounded overflow keys), the file stays bounded, active locks
//! survive, and the attempts past the cap are still counted. (Only this
//! test relaxes `synchronous`. The same spray at the default cap, with its
//! cost at 10 %, 90 % and 100 % full, is the benchmark's: BENCHMARKS.md.)

use veil_daemon::common::config::Lockout;
use veil_daemon::common::ledger::{self, KeyKind, Limits, OVERFLOW_BUCKETS};
use veil_daemon::common::store::{OpenMode, SqliteStore, Store};

#[test]
fn a_spray_of_random_names_cannot_grow_the_ledger_past_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spray.db");
    let mut store = SqliteStore::open(&path, OpenMode::CreateIfMissing).unwrap();
    store
        .conn()
        .pragma_update(None, "synchronous", "OFF")
        .unwrap();
    let limits = Limits::from(&Lockout {
        deny: 3,
        source_deny: u32::MAX,
        user_deny: u32::MAX,
        unlock_time_s: 1_000_000_000,
        max_ledger_rows: 1_000,
        ..Lockout::default()
    });
    // Overflow keys: one per bucket and kind of key they stand for.
    let bound = limits.max_rows + 5 * OVERFLOW_BUCKETS as i64;

    let t0 = 1_800_000_000i64;
    for i in 0..3 {
        store
            .reserve(
                &limits,
                ledger::charge_for(
                    &limits,
                    "victim",
                    &ledger::Origin::from_root("192.0.2.1", 0, "sshd"),
                ),
                t0 + i,
            )
            .unwrap();
    }
    assert_eq!(store.locks(&limits, t0 + 3).unwrap().len(), 1);

    let mut x: u64 = 0x9e3779b97f4a7c15;
    let started = std::time::Instant::now();
    let mut max_rows = 0;
    let mut overflowed = 0;
    let names = 20_000i64;
    for i in 0..names {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let name = format!("{x:016x}");
        let rhost = format!("198.51.{}.{}", (x >> 8) % 256, x % 256);
        let r = store
            .reserve(
                &limits,
                ledger::charge_for(
                    &limits,
                    &name,
                    &ledger::Origin::from_root(&rhost, 0, "sshd"),
                ),
                t0 + 10 + i / 100,
            )
            .unwrap();
        if r.overflow {
            overflowed += 1;
            assert!(r.keys.iter().any(|k| k.kind == KeyKind::Overflow));
        }
        if i % 100 == 0 {
            let rows = store.ledger_rows().unwrap();
            assert!(rows <= bound, "{rows} rows after {i} names");
            max_rows = max_rows.max(rows);
        }
    }
    // Past the cap every new pair was charged to overflow keys (whose
    // locks then refuse most of the spray): counted, never forgotten.
    assert!(overflowed > names / 2, "{overflowed} of {names} overflowed");
    let elapsed = started.elapsed();
    let rows = store.ledger_rows().unwrap();
    let counted: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, counted);
    assert!(rows <= bound);
    let now = t0 + 10 + names / 100;
    let locks = store.locks(&limits, now).unwrap();
    assert!(
        locks.iter().any(|e| e.key.user == "victim"),
        "the victim's lock was evicted"
    );
    assert!(
        store
            .reserve(
                &limits,
                ledger::charge_for(
                    &limits,
                    "victim",
                    &ledger::Origin::from_root("192.0.2.1", 0, "sshd")
                ),
                now
            )
            .unwrap()
            .refused
            .is_some()
    );

    store
        .conn()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!(
        "spray: {names} names in {:.1} s ({:.1} us each, synchronous=OFF); {rows} rows (peak sampled {max_rows}); database {:.1} MiB",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / names as f64,
        size as f64 / 1048576.0
    );
    assert!(size < 4 * 1024 * 1024, "database grew to {size} bytes");
}
