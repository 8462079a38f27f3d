//! What veild's metrics read of the ledger: the locks in force by kind
//! (the store's one query) and which lock of a key is an escalation. Runs
//! on SQLite here and on PostgreSQL through `the_rules_hold_on_postgresql`.

use super::*;

fn in_force(s: &dyn Store, now: i64) -> Vec<(&'static str, i64)> {
    let mut counted: Vec<_> = s
        .locks_in_force(now)
        .unwrap()
        .into_iter()
        .map(|(k, n)| (k.as_str(), n))
        .collect();
    counted.sort();
    counted
}

fn three_failures(s: &mut dyn Store, l: &Limits, user: &str, now: i64) -> Vec<Lock> {
    let mut locks = Vec::new();
    for i in 0..3 {
        let r = fail(s, l, user, "192.0.2.7", now + i);
        assert!(r.evaluated(), "{user} at {}", now + i);
        locks.extend(r.locking);
    }
    locks
}

/// Fails without the locks-in-force query (no such store method) and
/// without `Lock::nth` (the ledger told no one which lock of a key it
/// made, so veild could not count escalations).
pub(super) fn locks_in_force_are_counted_by_kind_and_a_relock_is_an_escalation() {
    let (_d, mut s) = store();
    let l = limits();
    let t0 = 10_000;
    assert_eq!(in_force(&*s, t0), []);
    let first = three_failures(&mut *s, &l, "alice", t0);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].key.to_string(), "user+source:alice@192.0.2.7");
    assert_eq!(first[0].nth, 1);
    assert!(!first[0].escalated());
    assert_eq!(in_force(&*s, t0 + 2), [("user+source", 1)]);
    // Its end is not in force (`locked_until` > now, like a login's check).
    assert_eq!(in_force(&*s, t0 + 2 + l.unlock_time), []);

    // Every window over, the lock remembered: the next lock escalates.
    let t1 = t0 + 200;
    let again = three_failures(&mut *s, &l, "alice", t1);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].nth, 2);
    assert!(again[0].escalated());
    // bob's third failure is the source's sixth (source_deny = 6).
    let bob = three_failures(&mut *s, &l, "bob", t1 + 3);
    let mut kinds: Vec<_> = bob.iter().map(|b| (b.key.kind.as_str(), b.nth)).collect();
    kinds.sort();
    assert_eq!(kinds, [("source", 1), ("user+source", 1)]);
    assert_eq!(in_force(&*s, t1 + 10), [("source", 1), ("user+source", 2)]);
}

#[test]
fn locks_in_force_and_escalations_on_sqlite() {
    locks_in_force_are_counted_by_kind_and_a_relock_is_an_escalation();
}
