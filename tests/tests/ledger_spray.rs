//! A spray of a million random unknown names through the ledger's own API:
//! the table never passes its cap, the file stays bounded, and active
//! locks survive eviction. (Only this test relaxes `synchronous`.)

use veil_daemon::common::config::Lockout;
use veil_daemon::common::ledger::{self, Limits};
use veil_daemon::common::store::{OpenMode, SqliteStore, Store};

#[test]
fn a_million_random_names_cannot_grow_the_ledger_past_its_cap() {
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
        ..Lockout::default()
    });
    assert_eq!(limits.max_rows, 100_000, "the default cap");

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
    for i in 0..1_000_000i64 {
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
                t0 + 10 + i / 1000,
            )
            .unwrap();
        assert!(r.refused.is_none());
        if i % 10_000 == 0 {
            let rows = store.ledger_rows().unwrap();
            assert!(rows <= limits.max_rows, "{rows} rows after {i} names");
            max_rows = max_rows.max(rows);
        }
    }
    let elapsed = started.elapsed();
    let rows = store.ledger_rows().unwrap();
    let counted: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, counted);
    assert!(rows <= limits.max_rows);
    let now = t0 + 10 + 1000;
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
        "spray: 1000000 names in {:.1} s ({:.1} us each, synchronous=OFF); {rows} rows (peak sampled {max_rows}); database {:.1} MiB",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / 1e6,
        size as f64 / 1048576.0
    );
    assert!(size < 64 * 1024 * 1024, "database grew to {size} bytes");
}
