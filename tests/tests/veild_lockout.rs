//! The lockout ledger end to end, through a real veild: keys per source,
//! concurrency, crashes, and a spray of unknown names.

use std::time::Duration;

use rand_free::*;
use veil_proto::{ALLOW, DENY};
use veil_tests::Veild;
use veil_tests::wire::*;

/// Tiny deterministic generator: the tests need variety, not secrecy.
mod rand_free {
    pub struct Lcg(pub u64);
    impl Lcg {
        pub fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }
}

fn ledger_failures(d: &Veild, kind: &str, user: &str, source: &str) -> i64 {
    let conn = rusqlite::Connection::open(d.dir.path().join("veil.db")).unwrap();
    conn.query_row(
        "SELECT coalesce(sum(failures), 0) FROM ledger WHERE kind = ?1 AND user = ?2 AND source = ?3",
        [kind, user, source],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_hundred_concurrent_guesses_from_one_source_evaluate_at_most_deny() {
    let d = Veild::from_toml(
        "[lockout]\ndeny = 5\n[limits]\nqueue = 256\nmax_connections_per_user = 128\n",
    );
    d.enrol("alice", true);
    let replies: Vec<Vec<u8>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..100)
            .map(|i| {
                let d = &d;
                s.spawn(move || {
                    d.ask_from("alice", &format!("guess-{i}"), "000000", "198.51.100.7")
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(replies.iter().all(|r| r == &DENY));
    let log = d.log_with(100);
    let evaluated = log
        .lines()
        .filter(|l| l.contains("reason=wrong-password"))
        .count();
    assert!(evaluated <= 5, "{evaluated} evaluated");
    assert_eq!(
        d.ask_from("alice", PASSWORD, &code_now(), "198.51.100.7"),
        DENY.to_vec()
    );
    assert!(
        d.log_with(101)
            .contains("reason=locked key=user+source:alice@198.51.100.7")
    );
}

#[test]
fn thirty_sources_lock_remote_logins_of_a_user_and_the_console_still_works() {
    let d = Veild::from_toml("[lockout]\ndeny = 5\nuser_deny = 20\n");
    d.enrol("bob", true);
    for i in 0..30 {
        assert_eq!(
            d.ask_from("bob", "wrong", "000000", &format!("203.0.113.{i}")),
            DENY
        );
    }
    let log = d.log_with(30);
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("reason=wrong-password"))
            .count(),
        20,
        "{log}"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("reason=locked key=user+remote:bob"))
            .count(),
        10,
        "{log}"
    );
    // A new address is refused even with the right answers...
    assert_eq!(
        d.ask_from("bob", PASSWORD, &code_at(0), "192.0.2.200"),
        DENY
    );
    // ...but the console is not.
    assert_eq!(d.ask("bob", PASSWORD, &code_at(1)), ALLOW);
}

#[test]
fn one_source_spraying_fifty_names_is_blocked_and_another_source_works() {
    let d = Veild::from_toml("[lockout]\nsource_deny = 20\n");
    for i in 0..5 {
        d.enrol(&format!("real{i}"), true);
    }
    let mut names: Vec<String> = (0..45).map(|i| format!("ghost{i}")).collect();
    names.extend((0..5).map(|i| format!("real{i}")));
    let mut rng = Lcg(7);
    for i in (1..names.len()).rev() {
        names.swap(i, rng.next() as usize % (i + 1));
    }
    for name in &names {
        assert_eq!(
            d.ask_from(name, "Winter2026!", "000000", "192.0.2.66"),
            DENY
        );
    }
    let log = d.log_with(50);
    let evaluated = log
        .lines()
        .filter(|l| l.contains("reason=wrong-password") || l.contains("reason=unknown-user"))
        .count();
    assert_eq!(evaluated, 20, "{log}");
    assert!(log.contains("key=source:192.0.2.66"));
    assert_eq!(
        d.ask_from("real0", PASSWORD, &code_at(0), "192.0.2.66"),
        DENY,
        "the source stays blocked"
    );
    assert_eq!(
        d.ask_from("real0", PASSWORD, &code_at(1), "192.0.2.67"),
        ALLOW,
        "another source works"
    );
}

#[test]
fn a_victim_locked_from_the_network_logs_in_at_the_console() {
    let d = Veild::from_toml("[lockout]\ndeny = 3\n");
    d.enrol("victim", true);
    for _ in 0..6 {
        d.ask_from("victim", "wrong", "000000", "198.51.100.99");
    }
    assert_eq!(
        d.ask_from("victim", PASSWORD, &code_at(0), "198.51.100.99"),
        DENY
    );
    assert_eq!(d.ask("victim", PASSWORD, &code_at(1)), ALLOW);
    let (rc, out, _) = d.ctl(&["status", "victim", "--json"], "");
    assert_eq!(rc, 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let counters = status["counters"].as_array().unwrap();
    assert!(
        counters
            .iter()
            .any(|c| c["source"] == "198.51.100.99" && c["locked"] == true),
        "{out}"
    );
    let (rc, _, _) = d.ctl(&["unlock", "--source", "198.51.100.99"], "");
    assert_eq!(rc, 0);
    let (_, out, _) = d.ctl(&["locks", "--json"], "");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// kill -9 at random moments while a client streams failures: every DENY
/// that reached the client was on disk before it was sent.
#[test]
fn no_answered_failure_is_lost_when_veild_is_killed() {
    let mut d = Veild::from_toml("failure_delay_ms = 0\n[lockout]\ndeny = 100\n");
    let mut rng = Lcg(42);
    let mut answered = 0;
    for round in 0..20 {
        let user = format!("crash{round}");
        let kill_after = Duration::from_millis(20 + rng.next() % 120);
        let pid = nix::unistd::Pid::from_raw(d.child.as_ref().unwrap().id() as i32);
        let denies = std::thread::scope(|s| {
            let client = s.spawn(|| {
                let mut denies = 0;
                for _ in 0..90 {
                    match d.ask(&user, "wrong", "000000").as_slice() {
                        r if r == DENY => denies += 1,
                        _ => break,
                    }
                }
                denies
            });
            std::thread::sleep(kill_after);
            nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL).unwrap();
            client.join().unwrap()
        });
        let _ = d.child.take().unwrap().wait();
        let counted = ledger_failures(&d, "user+source", &user, "");
        assert!(
            counted >= denies,
            "round {round}: {denies} DENY answers but {counted} failures on disk"
        );
        answered += denies;
        d.spawn();
    }
    assert!(
        answered > 20,
        "the client got only {answered} answers: the test proved little"
    );
    eprintln!("{answered} DENY answers over 20 kills, none missing from the ledger");
}

/// 10 000 random unknown names through veild: the ledger stays under its
/// cap (plus the bounded overflow keys), and the names past it are still
/// counted, on overflow keys, which the audit log says.
#[test]
fn ten_thousand_names_through_veild_stay_under_the_cap() {
    let d = Veild::from_toml(
        "failure_delay_ms = 0\n[lockout]\nmax_ledger_rows = 1000\nsource_deny = 100000\n[limits]\nqueue = 1024\n",
    );
    let mut rng = Lcg(1);
    let names: Vec<String> = (0..10_000).map(|_| format!("u{:x}", rng.next())).collect();
    std::thread::scope(|s| {
        for chunk in names.chunks(2500) {
            let d = &d;
            s.spawn(move || {
                for (i, name) in chunk.iter().enumerate() {
                    let rhost = format!("10.{}.{}.{}", i % 7, i % 11, i % 13);
                    assert_eq!(d.ask_from(name, "pw", "000000", &rhost), DENY);
                }
            });
        }
    });
    let conn = rusqlite::Connection::open(d.dir.path().join("veil.db")).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
        .unwrap();
    let bound = 1000 + 5 * veil_daemon::common::ledger::OVERFLOW_BUCKETS as i64;
    assert!(rows <= bound, "{rows} rows");
    let overflow: i64 = conn
        .query_row(
            "SELECT count(*) FROM ledger WHERE kind = 'overflow'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(overflow > 0, "no attempt was charged to an overflow key");
    assert!(d.log_with(10_000).contains("ledger=full"));
}
