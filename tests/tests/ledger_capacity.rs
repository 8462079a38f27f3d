//! The ledger's cap against an attacker with resources, through real libpam
//! and a real veild on a real SQLite file: a ledger filled with locked
//! keys must still count a victim's guesses. (The escalation-survives-a-
//! spray rule is a store-level rule test run on SQLite and PostgreSQL:
//! `common::ledger::tests::capacity` in the daemon crate.)
//!
//! Root-only, like the other front-end tests: only root's PAM_RHOST is
//! believed, so the attacker's sources count as remote ones.

#![forbid(unsafe_code)]

use veil_tests::pam::{self, PAM_AUTH_ERR, socket_args};
use veil_tests::{Attempt, DaemonConfig, PamStack, Veild};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test plays sshd (PAM_RHOST): run it as root (scripts/test.sh does)"
    );
}

/// Fails on the old main: with 99 of the 100 rows locked keys, each new
/// row was evicted by the very attempt that wrote it (least recently seen,
/// no lock in force), so all 30 guesses at the victim were evaluated.
#[test]
#[ignore = "needs root (plays sshd): scripts/test.sh runs it as root"]
fn a_ledger_full_of_locked_keys_still_stops_guesses_at_deny() {
    require_root();
    let veild = Veild::start(DaemonConfig {
        failure_delay_ms: 0,
        deny: 5,
        lockout_extra: "user_deny = 5\nsource_deny = 5\nmax_ledger_rows = 100\n\
                        unlock_time_s = 86400\n"
            .into(),
        ..DaemonConfig::default()
    });
    veild.enrol("victim", true);
    let stack = PamStack::veil(&socket_args(&veild.socket(), "10"));
    // 33 names from 33 addresses, 5 failures each: every one of their
    // three keys (pair, name from anywhere, address for any name) locks.
    let mut attempts = 0;
    for i in 0..33 {
        for j in 0..5 {
            let attempt = Attempt::new(&format!("filler{i}"), &[&format!("x{j}"), "000000"])
                .from_host(&format!("10.20.0.{i}"));
            assert_eq!(pam::authenticate(&stack, &attempt).code, PAM_AUTH_ERR);
            attempts += 1;
        }
    }
    veild.log_with(attempts);
    let conn = rusqlite::Connection::open(veild.database()).unwrap();
    let locked: i64 = conn
        .query_row(
            "SELECT count(*) FROM ledger WHERE locked_until > strftime('%s', 'now')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(locked, 99, "the ledger is 99 % locked keys");
    for i in 0..30 {
        let attempt =
            Attempt::new("victim", &[&format!("guess{i}"), "000000"]).from_host("192.0.2.50");
        assert_eq!(pam::authenticate(&stack, &attempt).code, PAM_AUTH_ERR);
        attempts += 1;
    }
    let log = veild.log_with(attempts);
    let victim: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("event=attempt") && l.contains("user=victim"))
        .collect();
    assert_eq!(victim.len(), 30, "{log}");
    let evaluated = victim
        .iter()
        .filter(|l| !l.contains("reason=locked"))
        .count();
    assert!(evaluated <= 5, "{evaluated} of 30 guesses evaluated\n{log}");
    // The admin is told why new pairs are now held more strictly.
    assert!(victim.iter().any(|l| l.contains("ledger=full")), "{log}");
}
