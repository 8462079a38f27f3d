//! The row cap: a full ledger gets stricter, never forgetful. Each rule
//! runs on SQLite here and on PostgreSQL through `the_rules_hold_on_postgresql`.

use super::*;

/// Lets the store notice how full it is: PostgreSQL's hosts look at the
/// minute's prune; SQLite checks in every reservation (its prune then
/// only removes rows that limit nothing).
fn settle(s: &mut dyn Store, l: &Limits, now: i64) {
    s.prune(l, now).unwrap();
}

fn small_cap() -> Limits {
    Limits {
        max_rows: 100,
        unlock_time: 100_000,
        unlock_time_max: 400_000,
        ..limits()
    }
}

/// Fails on the old main: with the cap nearly all locked rows, eviction
/// took the victim's new rows (not locked, least recently seen) right
/// after the attempt that wrote them, so no guess was ever counted: 30 of
/// 30 evaluated, against deny = 3.
pub(super) fn a_ledger_full_of_locks_still_counts_a_victims_guesses() {
    let (_d, mut s) = store();
    let l = small_cap();
    for i in 0..99 {
        for j in 0..3 {
            attempt(
                &mut *s,
                &l,
                &format!("locked{i}"),
                &Origin::Console,
                1000 + j,
            );
        }
    }
    settle(&mut *s, &l, 1010);
    let mut evaluated = 0;
    for i in 0..30 {
        if fail(&mut *s, &l, "victim", "192.0.2.50", 1100 + i).evaluated() {
            evaluated += 1;
        }
        settle(&mut *s, &l, 1100 + i);
    }
    assert!(evaluated <= l.deny as usize, "{evaluated} of 30 evaluated");
    assert!(s.locks(&l, 1200).unwrap().len() >= 99);
}

/// Fails on the old main: the spray pushed the key's remembered locks
/// out (least recently seen, no lock in force), so its third lock lasted
/// as long as its first (50, 100, 50 instead of 50, 100, 200).
pub(super) fn a_spray_past_the_cap_does_not_reset_a_keys_escalation() {
    let (_d, mut s) = store();
    let l = Limits {
        unlock_time: 50,
        ..small_cap()
    };
    let mut now = 1000;
    let mut durations = Vec::new();
    for round in 0..3 {
        let mut locked_at = None;
        for _ in 0..3 {
            let r = attempt(&mut *s, &l, "alice", &Origin::Console, now);
            assert!(r.evaluated(), "round {round} at {now}: {:?}", r.refused);
            if !r.locking.is_empty() {
                locked_at = Some(now);
            }
            now += 1;
        }
        let entry = s.status(&l, "alice", now).unwrap()[0].clone();
        durations.push(entry.locked_until - locked_at.expect("the third failure locks"));
        now = entry.locked_until;
        if round == 1 {
            // Ten times the cap of fresh pairs, once the second lock ended.
            for i in 0..1000 {
                fail(&mut *s, &l, &format!("spray{i}"), "198.51.100.7", now);
            }
            settle(&mut *s, &l, now);
        }
    }
    assert_eq!(durations, vec![50, 100, 200]);
}

/// Known-good pairs keep working when the ledger is full of an attacker's
/// rows: their own key may pass the cap (such rows exist only after a real
/// success); a new pair is charged to overflow keys, and says so.
pub(super) fn a_full_ledger_still_admits_known_good_pairs_and_marks_overflow() {
    let (_d, mut s) = store();
    let l = small_cap();
    succeed(
        &mut *s,
        &l,
        "alice",
        &Origin::from_root("192.0.2.9", 0, "sshd"),
        1000,
    );
    for i in 0..200 {
        fail(
            &mut *s,
            &l,
            &format!("spray{i}"),
            &format!("10.1.0.{i}"),
            1001,
        );
    }
    settle(&mut *s, &l, 1002);
    let r = fail(&mut *s, &l, "alice", "192.0.2.9", 1003);
    assert!(r.evaluated() && r.known_good && !r.overflow, "{r:?}");
    let r = fail(&mut *s, &l, "bob", "203.0.113.4", 1003);
    assert!(r.overflow, "{r:?}");
    assert!(r.keys.iter().all(|k| k.kind == KeyKind::Overflow), "{r:?}");
}

/// Rows that limit nothing (window over, no lock, none remembered) make
/// room; the count kept for the cap matches the table.
pub(super) fn stale_rows_make_room_and_the_count_stays_true() {
    let (_d, mut s) = store();
    let l = small_cap();
    for i in 0..90 {
        fail(&mut *s, &l, &format!("old{i}"), "", 1000);
    }
    // Windows (100 s) over: these may go; the new pairs are not overflowed.
    let mut overflowed = 0;
    for i in 0..50 {
        if fail(&mut *s, &l, &format!("new{i}"), "", 1200).overflow {
            overflowed += 1;
        }
        settle(&mut *s, &l, 1200);
    }
    assert_eq!(overflowed, 0);
    assert!(
        s.ledger_rows().unwrap() <= 100,
        "{}",
        s.ledger_rows().unwrap()
    );
}

#[test]
fn full_of_locks() {
    a_ledger_full_of_locks_still_counts_a_victims_guesses();
}

#[test]
fn spray_keeps_escalation() {
    a_spray_past_the_cap_does_not_reset_a_keys_escalation();
}

#[test]
fn known_good_past_the_cap() {
    a_full_ledger_still_admits_known_good_pairs_and_marks_overflow();
}

#[test]
fn stale_rows_make_room() {
    stale_rows_make_room_and_the_count_stays_true();
}

/// The eviction a reservation may run finds its rows through the
/// `harmless_at` index, so its cost does not grow with the table. Fails on
/// the old main (it scanned and sorted the whole ledger by `last_seen`).
#[test]
fn eviction_searches_an_index_not_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("l.db"), OpenMode::CreateIfMissing).unwrap();
    let plan: Vec<String> = {
        let conn = s.conn();
        let mut stmt = conn
            .prepare(
                "EXPLAIN QUERY PLAN DELETE FROM ledger WHERE (kind, user, source) IN (
                     SELECT kind, user, source FROM ledger WHERE harmless_at <= 5
                     ORDER BY harmless_at LIMIT 64)",
            )
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(
        plan.iter().any(|p| p.contains("ledger_by_harmless_at")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
}

#[test]
fn overflow_keys_are_few_stable_and_distinct_per_kind() {
    let key = |kind, user: &str, source: &str| Key {
        kind,
        user: user.into(),
        source: source.into(),
    };
    let a = overflow_key(&key(KeyKind::UserSource, "alice", "192.0.2.1"));
    assert_eq!(
        a,
        overflow_key(&key(KeyKind::UserSource, "alice", "192.0.2.1"))
    );
    assert!(a.source.starts_with("user+source/"));
    let mut buckets = std::collections::HashSet::new();
    for i in 0..10_000 {
        buckets.insert(overflow_key(&key(KeyKind::Source, "", &format!("10.0.{i}"))).source);
    }
    assert_eq!(buckets.len() as u64, OVERFLOW_BUCKETS);
    // A charge keeps its existing keys and replaces only the missing ones.
    let l = limits();
    let charge = charge_for(&l, "alice", &Origin::from_root("192.0.2.1", 0, "sshd"));
    let stored = vec![None, Some(Counter::fresh(1)), None];
    let over = overflow_charge(charge.clone(), &stored);
    assert_eq!(over.keys[1], charge.keys[1]);
    assert_eq!(over.keys[0].kind, KeyKind::Overflow);
    assert!(needs_overflow(false, &stored, 1));
    assert!(!needs_overflow(false, &stored, 2));
    assert!(!needs_overflow(true, &stored, 0));
}
