//! A fleet's store fails over: a primary with a synchronous streaming
//! standby (both real clusters started here), veild given both in its URL
//! (`target_session_attrs=read-write`). The primary stops, the standby is
//! promoted, and veild follows without a restart; a code used before the
//! failover is still used after it (the step was on the standby before
//! the login was allowed), so it cannot be replayed; a lock made before
//! the failover holds after it.

use std::time::{Duration, Instant};

use veil_proto::{ALLOW, DENY};
use veil_tests::Veild;
use veil_tests::postgres::{Cluster, host_config};
use veil_tests::wire::*;

fn query_i64(url: &str, sql: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Waits for the standby to stream from `primary` as a synchronous one.
fn wait_synchronous(primary: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sync = query_i64(
            &primary.url("postgres"),
            "SELECT count(*) FROM pg_stat_replication
             WHERE state = 'streaming' AND sync_state = 'sync'",
        );
        if sync == 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the standby never became synchronous"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The reasons of the audit lines for `user`, in order.
/// The reasons of `user`'s attempts, once the log holds at least `n` of
/// them: veild writes audit lines on their own thread, just after the
/// answer may have left (a loaded CI run read the log before bob's line).
fn reasons(veild: &Veild, user: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen: Vec<String> = veild
            .stderr()
            .lines()
            .filter(|l| l.contains("event=attempt") && l.contains(&format!("user={user} ")))
            .filter_map(|l| l.split(" reason=").nth(1))
            .map(|r| r.split(' ').next().unwrap_or_default().to_owned())
            .collect();
        if seen.len() >= n || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_promoted_synchronous_standby_serves_logins_and_no_code_is_replayable() {
    let primary = Cluster::start();
    primary.sql(
        "postgres",
        "ALTER SYSTEM SET synchronous_standby_names = '*'",
    );
    primary.sql("postgres", "SELECT pg_reload_conf()");
    primary.sql("veil", "SELECT 1");
    let mut primary = primary;
    let standby = primary.standby();
    wait_synchronous(&primary);
    // The standby got the primary's settings; once promoted it has no
    // standby of its own, and would make every commit wait for one.
    standby.sql("postgres", "ALTER SYSTEM RESET synchronous_standby_names");
    standby.sql("postgres", "SELECT pg_reload_conf()");

    let url = primary.url_either(&standby, "veil");
    let veild = Veild::launch_shared(host_config(&url, ""));
    veild.enrol("alice", true);
    veild.enrol("bob", true);
    veild.enrol("carol", true);
    // deny = 5 (the default): five wrong passwords lock carol's pair.
    for _ in 0..5 {
        assert_eq!(
            veild.ask_from("carol", "wrong", &code_now(), "192.0.2.3"),
            DENY
        );
    }
    assert_eq!(
        reasons(&veild, "carol", 5).last().map(String::as_str),
        Some("wrong-password")
    );
    let code = code_now();
    assert_eq!(veild.ask_from("alice", PASSWORD, &code, "192.0.2.1"), ALLOW);

    // Failover: the primary goes, the standby is promoted; veild is not
    // restarted.
    primary.stop();
    standby.promote();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(20);
    // The same code again: DENY whatever happens; once the store answers,
    // the reason must be the replay, never a success.
    for asked in 2.. {
        let answer = veild.ask_from("alice", PASSWORD, &code, "192.0.2.1");
        assert_eq!(answer, DENY, "{}", veild.stderr());
        let seen = reasons(&veild, "alice", asked);
        let last = seen.last().cloned().unwrap_or_default();
        if last != "store-error" && !last.is_empty() {
            assert_eq!(last, "replayed-code", "{seen:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store never came back: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Another user's login succeeds (a worker whose connection still went
    // to the old primary answers one store error first, then reconnects).
    let code = code_now();
    let mut answers = Vec::new();
    while answers.last() != Some(&ALLOW.to_vec()) {
        assert!(answers.len() < 4, "bob: {:?}", reasons(&veild, "bob", 0));
        answers.push(veild.ask_from("bob", PASSWORD, &code, "192.0.2.2"));
    }
    let seen = reasons(&veild, "bob", answers.len());
    assert!(
        seen[..seen.len() - 1].iter().all(|r| r == "store-error"),
        "{seen:?}"
    );
    // carol's lock, made on the old primary, holds on the new one: her
    // right password and code are denied as locked.
    // (A worker still on the old primary answers one store error first.)
    for tries in 1.. {
        assert_eq!(
            veild.ask_from("carol", PASSWORD, &code_now(), "192.0.2.3"),
            DENY
        );
        let seen = reasons(&veild, "carol", 5 + tries);
        if seen.last().map(String::as_str) != Some("store-error") {
            assert_eq!(seen.last().map(String::as_str), Some("locked"), "{seen:?}");
            break;
        }
        assert!(tries < 4, "carol: {seen:?}");
    }
    eprintln!(
        "logins back {:.1} s after the promotion",
        started.elapsed().as_secs_f64()
    );
}
