//! The ledger's rules, through the SQLite store on a temp file (not
//! `:memory:`, which hides WAL behaviour), with an injected clock; and the
//! same rules through PostgreSQL on a throwaway cluster
//! ([`the_rules_hold_on_postgresql`]).

use std::cell::RefCell;

use super::*;
use crate::common::store::postgres::scratch::Cluster;
use crate::common::store::{Location, OpenMode, PgSettings, SqliteStore, Store, Success};

mod capacity;
mod in_force;

thread_local! {
    /// Set while a test runs against PostgreSQL: the database to use.
    static POSTGRES: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Where a test's store lives, to open more connections to it.
struct Place {
    _dir: Option<tempfile::TempDir>,
    location: Location,
}

impl Place {
    fn open(&self) -> Box<dyn Store> {
        crate::common::store::open(&self.location, OpenMode::MustExist).unwrap()
    }
}

/// Whether a reservation lets the attempt be evaluated.
trait Evaluated {
    fn evaluated(&self) -> bool;
}

impl Evaluated for Reservation {
    fn evaluated(&self) -> bool {
        self.refused.is_none()
    }
}

fn record_success(
    s: &mut dyn Store,
    l: &Limits,
    r: &Reservation,
    now: i64,
) -> Result<bool, crate::common::store::StoreError> {
    s.commit_success(
        l,
        &Success {
            user: &r.user,
            step: None,
            reservation: r,
            new_hash: None,
            recovery: None,
            now,
        },
    )
}

fn limits() -> Limits {
    Limits::from(&Lockout {
        deny: 3,
        user_deny: 5,
        source_deny: 6,
        fail_interval_s: 100,
        unlock_time_s: 50,
        ..Lockout::default()
    })
}

fn store() -> (Place, Box<dyn Store>) {
    if let Some(url) = POSTGRES.with(|p| p.borrow().clone()) {
        let pg = crate::common::config::Postgres::default();
        let location = Location::Postgres(PgSettings::new(std::path::Path::new(&url), &pg));
        let s = crate::common::store::open(&location, OpenMode::CreateIfMissing).unwrap();
        return (
            Place {
                _dir: None,
                location,
            },
            s,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let s = SqliteStore::open(&path, OpenMode::CreateIfMissing).unwrap();
    (
        Place {
            _dir: Some(dir),
            location: Location::Sqlite(path),
        },
        Box::new(s),
    )
}

fn fail(s: &mut dyn Store, l: &Limits, user: &str, rhost: &str, now: i64) -> Reservation {
    // No host: a console login (root's `login`); else sshd's.
    let service = if rhost.is_empty() { "login" } else { "sshd" };
    let origin = Origin::from_root(rhost, 0, service);
    s.reserve(l, charge_for(l, user, &origin), now).unwrap()
}

#[test]
fn deny_failures_lock_the_pair_and_the_next_attempt_is_refused() {
    let (_d, mut s) = store();
    let l = limits();
    for i in 0..3 {
        let r = fail(&mut *s, &l, "alice", "", 1000 + i);
        assert!(r.evaluated(), "attempt {i}");
        assert_eq!(r.locking.is_empty(), i < 2);
    }
    let r = fail(&mut *s, &l, "alice", "", 1003);
    let refusal = r.refused.unwrap();
    assert_eq!(refusal.key.to_string(), "user+source:alice@local");
    assert_eq!(refusal.locked_until, 1002 + 50);
    assert_eq!(s.locks(&l, 1003).unwrap().len(), 1);
}

#[test]
fn a_lock_expires_after_unlock_time() {
    let (_d, mut s) = store();
    let l = limits();
    for i in 0..3 {
        fail(&mut *s, &l, "alice", "", 1000 + i);
    }
    assert!(!fail(&mut *s, &l, "alice", "", 1051).evaluated());
    assert!(
        fail(&mut *s, &l, "alice", "", 1052).evaluated(),
        "lock set at 1002 for 50 s"
    );
    assert!(s.locks(&l, 1052).unwrap().is_empty());
}

#[test]
fn failures_outside_the_window_do_not_add_up() {
    let (_d, mut s) = store();
    let l = limits();
    fail(&mut *s, &l, "alice", "", 1000);
    fail(&mut *s, &l, "alice", "", 1050);
    let r = fail(&mut *s, &l, "alice", "", 1100);
    assert!(
        r.evaluated() && r.locking.is_empty(),
        "window restarted at 1100"
    );
    assert_eq!(s.status(&l, "alice", 1100).unwrap()[0].failures, 1);
}

#[test]
fn success_clears_the_users_keys_and_returns_its_count_to_the_source() {
    let (_d, mut s) = store();
    let l = limits();
    fail(&mut *s, &l, "alice", "192.0.2.1", 1000);
    fail(&mut *s, &l, "alice", "192.0.2.1", 1001);
    let r = fail(&mut *s, &l, "alice", "192.0.2.1", 1002);
    assert_eq!(r.locking.len(), 1, "the third reaches deny=3 for the pair");
    assert!(record_success(&mut *s, &l, &r, 1002).unwrap());
    let st = s.status(&l, "alice", 1002).unwrap();
    assert!(st.is_empty(), "the pair and the user-wide key: {st:?}");
    let source = s
        .reserve(
            &l,
            charge_for(&l, "probe", &Origin::from_root("192.0.2.1", 0, "sshd")),
            1003,
        )
        .unwrap();
    assert!(source.evaluated());
    assert!(s.locks(&l, 1003).unwrap().is_empty());
}

/// Fails on the old main: a user's success left the escalation of their
/// user-wide key (many sources, any of them a botnet's) in place, so the
/// botnet's next lock of the name lasted four times the first.
/// A source-wide key's escalation is not reset by a success there.
pub(super) fn a_users_success_ends_the_escalation_of_their_name_not_of_the_source() {
    let (_d, mut s) = store();
    let l = Limits {
        user_deny: 3,
        source_deny: 3,
        unlock_time_max: 10_000,
        ..limits()
    };
    // A botnet: each lock of alice's name from anywhere needs 3 sources.
    let botnet = |s: &mut dyn Store, now: i64, round: i64| {
        for i in 0..3 {
            fail(s, &l, "alice", &format!("203.0.{round}.{i}"), now + i);
        }
    };
    botnet(&mut *s, 1000, 0);
    let first = s.locks(&l, 1002).unwrap();
    let name = first
        .iter()
        .find(|e| e.key.kind == KeyKind::UserRemote)
        .unwrap();
    assert_eq!(name.locked_until, 1002 + 50);
    botnet(&mut *s, 1100, 1);
    let second = s.status(&l, "alice", 1102).unwrap();
    let name = second
        .iter()
        .find(|e| e.key.kind == KeyKind::UserRemote)
        .unwrap();
    assert_eq!((name.locks, name.locked_until), (2, 1102 + 100));
    // A source escalated by three names, once alice's name is free again.
    for round in 0..2 {
        for i in 0..3 {
            fail(
                &mut *s,
                &l,
                &format!("spray{round}{i}"),
                "198.51.100.9",
                1300 + 100 * round + i,
            );
        }
    }
    // alice logs in, from that very source, with both factors.
    succeed(
        &mut *s,
        &l,
        "alice",
        &Origin::from_root("198.51.100.9", 0, "sshd"),
        1600,
    );
    botnet(&mut *s, 1700, 2);
    let third = s.status(&l, "alice", 1702).unwrap();
    let name = third
        .iter()
        .find(|e| e.key.kind == KeyKind::UserRemote)
        .unwrap();
    assert_eq!((name.locks, name.locked_until), (1, 1702 + 50), "{third:?}");
    // The source still remembers its two locks: its third is four times the first.
    for i in 0..3 {
        fail(&mut *s, &l, &format!("spray2{i}"), "198.51.100.9", 1800 + i);
    }
    let source = s
        .locks(&l, 1802)
        .unwrap()
        .into_iter()
        .find(|e| e.key.kind == KeyKind::Source && e.key.source == "198.51.100.9")
        .unwrap();
    assert_eq!((source.locks, source.locked_until), (3, 1802 + 200));
}

#[test]
fn success_ends_the_names_escalation() {
    a_users_success_ends_the_escalation_of_their_name_not_of_the_source();
}

#[test]
fn a_network_lock_leaves_the_console_open() {
    let (_d, mut s) = store();
    let l = limits();
    for i in 0..3 {
        fail(&mut *s, &l, "victim", "198.51.100.9", 1000 + i);
    }
    assert!(!fail(&mut *s, &l, "victim", "198.51.100.9", 1003).evaluated());
    assert!(fail(&mut *s, &l, "victim", "", 1003).evaluated());
    assert!(
        fail(&mut *s, &l, "victim", "203.0.113.5", 1003).evaluated(),
        "another source too"
    );
}

#[test]
fn many_sources_lock_remote_logins_of_a_user_but_not_local_ones() {
    let (_d, mut s) = store();
    let l = limits();
    for i in 0..5 {
        assert!(fail(&mut *s, &l, "bob", &format!("10.0.0.{i}"), 1000).evaluated());
    }
    let r = fail(&mut *s, &l, "bob", "10.0.0.99", 1000);
    assert_eq!(r.refused.unwrap().key.kind, KeyKind::UserRemote);
    assert!(fail(&mut *s, &l, "bob", "", 1000).evaluated());
}

#[test]
fn one_source_spraying_names_is_blocked_and_others_are_not() {
    let (_d, mut s) = store();
    let l = limits();
    for i in 0..6 {
        assert!(fail(&mut *s, &l, &format!("name{i}"), "192.0.2.66", 1000).evaluated());
    }
    let r = fail(&mut *s, &l, "alice", "192.0.2.66", 1000);
    assert_eq!(r.refused.unwrap().key.to_string(), "source:192.0.2.66");
    assert!(fail(&mut *s, &l, "alice", "192.0.2.67", 1000).evaluated());
}

#[test]
fn refused_attempts_do_not_count_against_wider_keys() {
    let (_d, mut s) = store();
    let l = limits();
    for i in 0..10 {
        fail(&mut *s, &l, "carol", "192.0.2.1", 1000 + i);
    }
    let remote = s.status(&l, "carol", 1010).unwrap();
    let remote = remote
        .iter()
        .find(|e| e.key.kind == KeyKind::UserRemote)
        .unwrap();
    assert_eq!(remote.failures, 3, "only the 3 evaluated attempts count");
}

#[test]
fn a_remote_host_named_local_is_not_the_console() {
    let (_d, mut s) = store();
    let l = limits();
    for i in 0..3 {
        fail(&mut *s, &l, "frank", "local", 1000 + i);
    }
    assert!(!fail(&mut *s, &l, "frank", "local", 1003).evaluated());
    assert!(fail(&mut *s, &l, "frank", "", 1003).evaluated());
}

#[test]
fn an_ipv6_source_counts_as_its_64() {
    let sources = Sources::default();
    assert_eq!(sources.key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
    assert_eq!(sources.key("2001:db8:1:2:ffff:1:2:3"), "2001:db8:1:2::/64");
    assert_eq!(sources.key("::ffff:192.0.2.1"), "192.0.2.1");
    assert_eq!(sources.key("192.0.2.1"), "192.0.2.1");
    assert_eq!(sources.key("host.example"), NAMES);
    assert_eq!(source_from_admin(&sources, "local"), "");
    assert_eq!(
        source_from_admin(&sources, "2001:db8:1:2::9"),
        "2001:db8:1:2::/64"
    );
    assert_eq!(source_from_admin(&sources, "ruser:bob"), "ruser:bob");
    let (_d, mut s) = store();
    let l = limits();
    for i in 0..6 {
        fail(
            &mut *s,
            &l,
            &format!("n{i}"),
            &format!("2001:db8:1:2::{i:x}"),
            1000,
        );
    }
    let r = fail(&mut *s, &l, "alice", "2001:db8:1:2::ffff", 1000);
    assert_eq!(
        r.refused.unwrap().key.to_string(),
        "source:2001:db8:1:2::/64"
    );
}

#[test]
fn a_peer_key_is_its_own_counter() {
    let (_d, mut s) = store();
    let l = limits();
    for _ in 0..3 {
        assert!(s.reserve(&l, peer_charge(1000), 1000).unwrap().evaluated());
    }
    let r = s.reserve(&l, peer_charge(1000), 1000).unwrap();
    assert_eq!(r.refused.unwrap().key.to_string(), "peer:uid:1000");
    assert!(
        fail(&mut *s, &l, "root", "", 1000).evaluated(),
        "root's own keys untouched"
    );
    assert_eq!(s.unlock_source("uid:1000").unwrap(), 1);
}

#[test]
fn user_scope_is_plain_per_user() {
    let (_d, mut s) = store();
    let l = Limits {
        scope: LockoutScope::User,
        ..limits()
    };
    fail(&mut *s, &l, "dave", "192.0.2.1", 1000);
    fail(&mut *s, &l, "dave", "192.0.2.2", 1000);
    fail(&mut *s, &l, "dave", "", 1000);
    let r = fail(&mut *s, &l, "dave", "", 1001);
    assert_eq!(r.refused.unwrap().key.to_string(), "user:dave");
}

#[test]
fn unlock_clears_a_user_or_a_source() {
    let (_d, mut s) = store();
    let l = limits();
    for i in 0..3 {
        fail(&mut *s, &l, "erin", "192.0.2.9", 1000 + i);
    }
    for i in 0..6 {
        fail(&mut *s, &l, &format!("n{i}"), "192.0.2.10", 1000);
    }
    assert_eq!(s.locks(&l, 1010).unwrap().len(), 2);
    assert!(s.unlock_user("erin").unwrap() >= 2);
    assert!(s.unlock_source("192.0.2.10").unwrap() >= 1);
    assert!(s.locks(&l, 1010).unwrap().is_empty());
    assert!(fail(&mut *s, &l, "erin", "192.0.2.9", 1010).evaluated());
}

#[test]
fn pruning_removes_only_expired_rows() {
    let (_d, mut s) = store();
    let l = limits();
    fail(&mut *s, &l, "old", "", 1000);
    for i in 0..3 {
        fail(&mut *s, &l, "locked", "", 1060 + i);
    }
    fail(&mut *s, &l, "recent", "", 1090);
    assert_eq!(
        s.prune(&l, 1101).unwrap(),
        1,
        "only 'old' is past its window and unlocked"
    );
    assert_eq!(s.ledger_rows().unwrap(), 2);
    assert_eq!(s.prune(&l, 1200).unwrap(), 1, "'locked' remembers its lock");
    assert_eq!(s.ledger_rows().unwrap(), 1);
    assert_eq!(s.prune(&l, 1112 + l.unlock_time_max).unwrap(), 1);
    assert_eq!(s.ledger_rows().unwrap(), 0);
}

#[test]
fn concurrent_guesses_never_exceed_the_limit() {
    let (place, _s) = store();
    let l = limits();
    let evaluated = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let mut s = place.open();
                for _ in 0..5 {
                    if fail(&mut *s, &l, "target", "192.0.2.1", 1000).evaluated() {
                        evaluated.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(evaluated.into_inner(), 3);
}

fn attempt(s: &mut dyn Store, l: &Limits, user: &str, origin: &Origin, now: i64) -> Reservation {
    s.reserve(l, charge_for(l, user, origin), now).unwrap()
}

fn succeed(s: &mut dyn Store, l: &Limits, user: &str, origin: &Origin, now: i64) {
    let r = attempt(s, l, user, origin, now);
    assert!(
        r.evaluated(),
        "{user} from {origin:?} refused: {:?}",
        r.refused
    );
    assert!(record_success(s, l, &r, now).unwrap());
}

#[test]
fn su_failures_by_one_caller_never_lock_the_target_from_anywhere_else() {
    let (_d, mut s) = store();
    let l = limits();
    // mallory (uid 1001) runs su: a root peer whose real uid is hers.
    let mallory = Origin::from_root("", 1001, "su");
    for i in 0..6 {
        attempt(&mut *s, &l, "alice", &mallory, 1000 + i);
    }
    let refused = attempt(&mut *s, &l, "alice", &mallory, 1010)
        .refused
        .unwrap();
    assert_eq!(refused.key.to_string(), "user+source:alice@uid:1001");
    for other in [
        Origin::from_root("", 1000, "sudo"),
        Origin::Console,
        Origin::local_uid(1000),
    ] {
        assert!(
            attempt(&mut *s, &l, "alice", &other, 1010).evaluated(),
            "{other:?}"
        );
    }
}

#[test]
fn a_local_caller_spraying_names_blocks_only_itself() {
    let (_d, mut s) = store();
    let l = limits();
    let mallory = Origin::from_root("", 1001, "sudo");
    for i in 0..6 {
        assert!(attempt(&mut *s, &l, &format!("n{i}"), &mallory, 1000).evaluated());
    }
    let r = attempt(&mut *s, &l, "root", &mallory, 1000);
    assert_eq!(r.refused.unwrap().key.to_string(), "source:uid:1001");
    assert!(attempt(&mut *s, &l, "root", &Origin::Console, 1000).evaluated());
}

#[test]
fn a_botnet_cannot_lock_the_user_out_of_a_known_good_source() {
    let (_d, mut s) = store();
    let l = limits();
    let home = Origin::from_root("192.0.2.10", 0, "sshd");
    succeed(&mut *s, &l, "alice", &home, 1000);
    // user_deny = 5 here: two sources with 3 failures each pass it.
    for (i, bot) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .enumerate()
    {
        for j in 0..3 {
            attempt(
                &mut *s,
                &l,
                "alice",
                &Origin::from_root(bot, 0, "sshd"),
                1001 + (i * 3 + j) as i64,
            );
        }
    }
    let unseen = attempt(
        &mut *s,
        &l,
        "alice",
        &Origin::from_root("203.0.113.9", 0, "sshd"),
        1020,
    );
    assert_eq!(unseen.refused.unwrap().key.kind, KeyKind::UserRemote);
    let from_home = attempt(&mut *s, &l, "alice", &home, 1020);
    assert!(from_home.known_good && from_home.evaluated());
    assert_eq!(
        from_home.keys.len(),
        1,
        "only its own key: {:?}",
        from_home.keys
    );
}

#[test]
fn a_known_good_source_still_locks_on_its_own_deny() {
    let (_d, mut s) = store();
    let l = limits();
    let home = Origin::from_root("192.0.2.10", 0, "sshd");
    succeed(&mut *s, &l, "alice", &home, 1000);
    for i in 0..3 {
        assert!(attempt(&mut *s, &l, "alice", &home, 1001 + i).evaluated());
    }
    let r = attempt(&mut *s, &l, "alice", &home, 1005);
    assert_eq!(
        r.refused.unwrap().key.to_string(),
        "user+source:alice@192.0.2.10"
    );
}

#[test]
fn known_good_standing_ends_after_its_window() {
    let (_d, mut s) = store();
    let l = Limits {
        known_good: 100,
        ..limits()
    };
    let home = Origin::from_root("192.0.2.10", 0, "sshd");
    succeed(&mut *s, &l, "alice", &home, 1000);
    assert!(attempt(&mut *s, &l, "alice", &home, 1099).known_good);
    assert!(!attempt(&mut *s, &l, "alice", &home, 1100).known_good);
    let off = Limits {
        known_good: 0,
        ..limits()
    };
    succeed(&mut *s, &off, "bob", &home, 1000);
    assert!(!attempt(&mut *s, &off, "bob", &home, 1001).known_good);
}

#[test]
fn each_consecutive_lock_of_a_key_lasts_twice_the_one_before() {
    let (_d, mut s) = store();
    let l = Limits {
        unlock_time_max: 400,
        ..limits()
    };
    let from = Origin::Console;
    // deny = 3, unlock_time = 50: locks of 50, 100, 200, then 400 (cap), 400.
    let mut now = 1000;
    let mut durations = Vec::new();
    for _ in 0..5 {
        let mut locked_at = None;
        for _ in 0..3 {
            let r = attempt(&mut *s, &l, "alice", &from, now);
            assert!(r.evaluated(), "at {now}: {:?}", r.refused);
            if !r.locking.is_empty() {
                locked_at = Some(now);
            }
            now += 1;
        }
        let locked_at = locked_at.expect("the third failure locks");
        let entry = s.status(&l, "alice", now).unwrap()[0].clone();
        durations.push(entry.locked_until - locked_at);
        assert!(!attempt(&mut *s, &l, "alice", &from, entry.locked_until - 1).evaluated());
        now = entry.locked_until;
    }
    assert_eq!(durations, vec![50, 100, 200, 400, 400]);
}

#[test]
fn lock_history_is_forgotten_once_unlock_time_max_has_passed_and_on_success() {
    let (_d, mut s) = store();
    let l = Limits {
        unlock_time_max: 400,
        ..limits()
    };
    let console = Origin::Console;
    for i in 0..3 {
        attempt(&mut *s, &l, "alice", &console, 1000 + i);
    }
    // Locked at 1002 for 50 s; remembered until 1052 + 400.
    for i in 0..3 {
        attempt(&mut *s, &l, "alice", &console, 1060 + i);
    }
    let second = s.status(&l, "alice", 1062).unwrap()[0].clone();
    assert_eq!((second.locks, second.locked_until), (2, 1062 + 100));
    // Long after: the history is gone, the next lock is a first one again.
    for i in 0..3 {
        attempt(&mut *s, &l, "alice", &console, 1162 + 400 + i);
    }
    let later = s.status(&l, "alice", 1564).unwrap()[0].clone();
    assert_eq!((later.locks, later.locked_until), (1, 1564 + 50));
    // A success clears the pair, history and all.
    succeed(&mut *s, &l, "alice", &console, 1614);
    assert!(s.status(&l, "alice", 1614).unwrap().is_empty());
}

#[test]
fn pruning_keeps_a_key_while_it_remembers_its_locks() {
    let (_d, mut s) = store();
    let l = Limits {
        unlock_time_max: 400,
        ..limits()
    };
    for i in 0..3 {
        attempt(&mut *s, &l, "alice", &Origin::Console, 1000 + i);
    }
    // Lock ends at 1052, window long over by 1300: kept, it remembers.
    s.prune(&l, 1300).unwrap();
    assert_eq!(s.ledger_rows().unwrap(), 1);
    s.prune(&l, 1052 + 400).unwrap();
    assert_eq!(s.ledger_rows().unwrap(), 0);
}

#[test]
fn a_success_leaves_no_transaction_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("l.db"), OpenMode::CreateIfMissing).unwrap();
    let l = limits();
    let r = fail(&mut s, &l, "alice", "192.0.2.1", 1000);
    assert!(record_success(&mut s, &l, &r, 1000).unwrap());
    assert!(s.conn().is_autocommit());
}

/// Every rule above (but the SQLite-only ones) against a real PostgreSQL:
/// one throwaway cluster, a fresh database per rule.
#[test]
fn the_rules_hold_on_postgresql() {
    let cluster = Cluster::start();
    let rules: &[(&str, fn())] = &[
        (
            "deny",
            deny_failures_lock_the_pair_and_the_next_attempt_is_refused,
        ),
        ("expiry", a_lock_expires_after_unlock_time),
        ("window", failures_outside_the_window_do_not_add_up),
        (
            "success",
            success_clears_the_users_keys_and_returns_its_count_to_the_source,
        ),
        (
            "success_ends_escalation",
            a_users_success_ends_the_escalation_of_their_name_not_of_the_source,
        ),
        ("console", a_network_lock_leaves_the_console_open),
        (
            "sources",
            many_sources_lock_remote_logins_of_a_user_but_not_local_ones,
        ),
        (
            "spray",
            one_source_spraying_names_is_blocked_and_others_are_not,
        ),
        ("refused", refused_attempts_do_not_count_against_wider_keys),
        ("local_name", a_remote_host_named_local_is_not_the_console),
        ("ipv6", an_ipv6_source_counts_as_its_64),
        ("peer", a_peer_key_is_its_own_counter),
        ("user_scope", user_scope_is_plain_per_user),
        ("unlock", unlock_clears_a_user_or_a_source),
        ("prune", pruning_removes_only_expired_rows),
        (
            "full_of_locks",
            capacity::a_ledger_full_of_locks_still_counts_a_victims_guesses,
        ),
        (
            "spray_keeps_escalation",
            capacity::a_spray_past_the_cap_does_not_reset_a_keys_escalation,
        ),
        (
            "known_good_past_the_cap",
            capacity::a_full_ledger_still_admits_known_good_pairs_and_marks_overflow,
        ),
        (
            "stale_rows",
            capacity::stale_rows_make_room_and_the_count_stays_true,
        ),
        (
            "in_force",
            in_force::locks_in_force_are_counted_by_kind_and_a_relock_is_an_escalation,
        ),
        ("concurrent", concurrent_guesses_never_exceed_the_limit),
        (
            "su",
            su_failures_by_one_caller_never_lock_the_target_from_anywhere_else,
        ),
        (
            "local_spray",
            a_local_caller_spraying_names_blocks_only_itself,
        ),
        (
            "botnet",
            a_botnet_cannot_lock_the_user_out_of_a_known_good_source,
        ),
        (
            "known_good_deny",
            a_known_good_source_still_locks_on_its_own_deny,
        ),
        (
            "known_good_window",
            known_good_standing_ends_after_its_window,
        ),
        (
            "doubling",
            each_consecutive_lock_of_a_key_lasts_twice_the_one_before,
        ),
        (
            "history",
            lock_history_is_forgotten_once_unlock_time_max_has_passed_and_on_success,
        ),
        (
            "prune_history",
            pruning_keeps_a_key_while_it_remembers_its_locks,
        ),
    ];
    for (name, rule) in rules {
        let url = cluster.database(&format!("rule_{name}"));
        POSTGRES.with(|p| *p.borrow_mut() = Some(url));
        rule();
        POSTGRES.with(|p| *p.borrow_mut() = None);
    }
}

#[test]
fn an_exempt_address_is_charged_to_its_own_key_only_and_grouped() {
    // On the old main there were no exempt networks and no prefixes:
    // every remote attempt ran up the wide keys, at /64 or as given.
    let mut l = limits();
    l.sources = Sources {
        ipv4_prefix: 24,
        ipv6_prefix: 64,
        exempt: vec!["198.51.100.0/24".parse().unwrap()],
    };
    let admin = charge_for(
        &l,
        "alice",
        &Origin::from_root("::ffff:198.51.100.7", 0, "sshd"),
    );
    assert_eq!(admin.source, "198.51.100.0/24");
    assert_eq!(admin.keys.len(), 1);
    assert_eq!(
        admin.keys[0].to_string(),
        "user+source:alice@198.51.100.0/24"
    );
    let other = charge_for(&l, "alice", &Origin::from_root("203.0.113.9", 0, "sshd"));
    assert_eq!(other.source, "203.0.113.0/24");
    assert_eq!(other.keys.len(), 3);
    let named = charge_for(&l, "alice", &Origin::from_root("bot7.example", 0, "sshd"));
    assert_eq!(named.source, NAMES);
    assert_eq!(named.keys.len(), 3);
}

/// Who ran the PAM application decides the origin, never what it claims.
/// Fails on the old main, where `from_root` took PAM_RUSER: polkit's
/// helper run by mallory names alice there, and the attempt was charged
/// to `ruser:alice`, the key of alice's own sudo.
#[test]
fn the_origin_is_who_ran_the_program_not_what_it_claims() {
    // A setuid front end run by uid 1001: that uid, whatever else is set.
    for (rhost, service) in [("", "polkit-1"), ("", "su"), ("192.0.2.7", "sudo")] {
        assert_eq!(
            Origin::from_root(rhost, 1001, service),
            Origin::local_uid(1001),
            "{rhost} {service}"
        );
    }
    // Started by root: the host, the console services, else the service.
    assert_eq!(
        Origin::from_root("192.0.2.7", 0, "sshd"),
        Origin::Remote("192.0.2.7".into())
    );
    assert_eq!(Origin::from_root("", 0, "login"), Origin::Console);
    for service in ["polkit-1", "chfn", "su", "sudo", ""] {
        let origin = Origin::from_root("", 0, service);
        assert_eq!(
            origin,
            Origin::Caller(format!("service:{service}")),
            "{service}"
        );
    }
    // A service's keys are its own: the console's stay untouched.
    let l = limits();
    let polkit = charge_for(&l, "alice", &Origin::from_root("", 0, "polkit-1"));
    let console = charge_for(&l, "alice", &Origin::Console);
    assert!(polkit.keys.iter().all(|k| !console.keys.contains(k)));
}
