//! `[postgres] outage = "local"` (issue 20, item 5): veild "hosts" on one
//! real PostgreSQL cluster, which the test stops. A host with the option
//! verifies against its own copy (a SQLite file it refreshes), charges
//! failures to a local ledger with the same limits, keeps codes from
//! being replayed on it, journals every offline decision, and hands the
//! journal to the fleet when the server is back: the failures show in the
//! fleet's ledger and a code used offline is refused on another host.
//! A host without the option (`deny`, the default) denies. The PAM test
//! plays sshd, so it needs root: ignored in a plain `cargo test`, run by
//! scripts/test.sh as root (`--include-ignored`); as another user it fails.
//!
//! Every test here fails on the old main: it has no `outage` key, so
//! `host_config` (which validates the TOML as veild does) panics on it.

use std::path::Path;
use std::time::{Duration, Instant};

use veil_proto::{ALLOW, DENY};
use veil_tests::pam;
use veil_tests::postgres::{Cluster, host_config};
use veil_tests::wire::*;
use veil_tests::{Attempt, PamStack, Veild};

fn query_i64(url: &str, sql: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query_one(sql, &[]).unwrap().get(0)
}

/// A host's config with `outage = "local"`, its copy in `dir`, refreshed
/// every `refresh_s`, `deny = 3`, and `extra` TOML.
fn local_host(
    url: &str,
    dir: &Path,
    refresh_s: u64,
    extra: &str,
) -> veil_daemon::common::config::Config {
    host_config(
        url,
        &format!(
            "[postgres]\noutage = \"local\"\noutage_cache = {:?}\noutage_refresh_s = {refresh_s}\n\
             [lockout]\ndeny = 3\n{extra}",
            dir.join("outage-cache.db").display().to_string()
        ),
    )
}

/// Waits until the host's copy holds `user` with their TOTP secret (every
/// user here has one; the copy may hold them a moment before it), or,
/// with `present` false, until it does not.
fn wait_cached(dir: &Path, user: &str, present: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let path = dir.join("outage-cache.db");
    loop {
        let found = rusqlite::Connection::open(&path)
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM users WHERE name = ?1 AND totp_secret IS NOT NULL",
                    [user],
                    |r| r.get::<_, i64>(0),
                )
            })
            .unwrap_or(0)
            == 1;
        if found == present {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the copy never {} {user}",
            if present { "held" } else { "dropped" }
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `n`th (from 1) attempt line for `user`: audit lines trail the answer.
fn attempt(veild: &Veild, user: &str, n: usize) -> String {
    let user = format!("user={user} ");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = veild.stderr();
        let line = log
            .lines()
            .filter(|l| l.contains("event=attempt") && l.contains(&user))
            .nth(n - 1);
        if let Some(line) = line {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no attempt {n} for {user}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_outage_is_served_from_the_local_copy_and_handed_to_the_fleet() {
    let mut cluster = Cluster::start();
    let url = cluster.database("outage_local");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Veild::launch_shared(local_host(&url, dir_a.path(), 1, ""));
    // One worker that refreshes only at start: its one connection, opened
    // before the outage, is still the one it holds when the server is back.
    let b = Veild::launch_shared(local_host(
        &url,
        dir_b.path(),
        3600,
        "[limits]\nworkers = 1\n",
    ));
    assert_eq!(b.ask("nobody", PASSWORD, &code_now()), DENY);
    assert!(!attempt(&b, "nobody", 1).contains("offline"));
    // The default: no copy, every login denied during the outage.
    let strict = Veild::launch_shared(host_config(&url, ""));
    a.enrol("alice", true);
    a.enrol("bob", true);
    wait_cached(dir_a.path(), "alice", true);
    wait_cached(dir_a.path(), "bob", true);
    let copy = std::fs::metadata(dir_a.path().join("outage-cache.db")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&copy.permissions()) & 0o777,
        0o600
    );

    cluster.stop();
    // A fresh code for a cached user passes; the same code again does not.
    let code = code_now();
    assert_eq!(a.ask_from("alice", PASSWORD, &code, "192.0.2.1"), ALLOW);
    let line = attempt(&a, "alice", 1);
    assert!(
        line.contains("offline=1") && line.contains("reason=success"),
        "{line}"
    );
    assert_eq!(a.ask_from("alice", PASSWORD, &code, "192.0.2.1"), DENY);
    let line = attempt(&a, "alice", 2);
    assert!(
        line.contains("offline=1") && line.contains("reason=replayed-code"),
        "{line}"
    );
    // A wrong password fails, with the bytes of any denial.
    assert_eq!(
        a.ask_from("bob", "wrong", &code_at(1), "198.51.100.9"),
        DENY
    );
    let line = attempt(&a, "bob", 1);
    assert!(
        line.contains("offline=1") && line.contains("reason=wrong-password"),
        "{line}"
    );
    // deny = 3: the third failure locks the pair, locally; then even the
    // right password and a fresh code are refused.
    assert_eq!(
        a.ask_from("bob", "wrong", &code_at(1), "198.51.100.9"),
        DENY
    );
    assert_eq!(
        a.ask_from("bob", "wrong", &code_at(1), "198.51.100.9"),
        DENY
    );
    assert_eq!(
        a.ask_from("bob", PASSWORD, &code_now(), "198.51.100.9"),
        DENY
    );
    let line = attempt(&a, "bob", 4);
    assert!(
        line.contains("offline=1") && line.contains("reason=locked"),
        "{line}"
    );
    // A name the copy does not hold never passes.
    assert_eq!(a.ask("mallory", PASSWORD, &code_now()), DENY);
    let line = attempt(&a, "mallory", 1);
    assert!(
        line.contains("reason=unknown-user") && line.contains("offline=1"),
        "{line}"
    );
    // `deny`: the store's error, as before.
    assert_eq!(
        strict.ask_from("alice", PASSWORD, &code_at(1), "192.0.2.1"),
        DENY
    );
    let line = attempt(&strict, "alice", 1);
    assert!(
        line.contains("reason=store-error") && !line.contains("offline"),
        "{line}"
    );

    cluster.start_again();
    // Every offline denial is a failure for the fleet (bob's four,
    // alice's replay, mallory's); alice's success a used step. Summed
    // over the hand-over lines: a tick that fails midway (the server still
    // starting) logs what it handed over, the next one the rest.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = a.stderr();
        let sum = |field: &str| -> usize {
            log.lines()
                .filter(|l| l.contains("event=outage-hand-over"))
                .filter_map(|l| l.split(&format!(" {field}=")).nth(1))
                .filter_map(|v| v.split(' ').next()?.parse::<usize>().ok())
                .sum()
        };
        if (sum("failures"), sum("uses")) == (6, 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hand-over: failures={} uses={}:\n{log}",
            sum("failures"),
            sum("uses")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The code alice used offline is used for the fleet: refused on b,
    // by the fleet (b's connection died with the server; the request is
    // tried once more on a new one, not decided on b's copy).
    assert_eq!(b.ask_from("alice", PASSWORD, &code, "192.0.2.1"), DENY);
    let line = attempt(&b, "alice", 1);
    assert!(line.contains("reason=replayed-code"), "{line}");
    assert!(!line.contains("offline"), "{line}");
    // bob's offline failures are in the fleet's ledger: his pair is locked
    // for b too.
    let failures = query_i64(
        &cluster.url("outage_local"),
        "SELECT coalesce(max(failures), 0) FROM ledger
         WHERE kind = 'user+source' AND username = 'bob'",
    );
    assert!(failures >= 3, "fleet failures for bob: {failures}");
    assert_eq!(
        b.ask_from("bob", PASSWORD, &code_at(1), "198.51.100.9"),
        DENY
    );
    let line = attempt(&b, "bob", 1);
    assert!(line.contains("reason=locked"), "{line}");
    // Handed over once: the journal is empty after.
    let journal = rusqlite::Connection::open(dir_a.path().join("outage-cache.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM outage_journal", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    assert_eq!(journal, 0);
}

#[test]
fn the_copy_holds_what_the_fleet_held_at_its_last_refresh_users_and_locks() {
    let mut cluster = Cluster::start();
    let url = cluster.database("outage_refresh");
    let dir = tempfile::tempdir().unwrap();
    let a = Veild::launch_shared(local_host(&url, dir.path(), 1, ""));
    let b = Veild::launch_shared(host_config(&url, "[lockout]\ndeny = 3\n"));
    a.enrol("carol", true);
    a.enrol("dave", true);
    a.enrol("erin", true);
    wait_cached(dir.path(), "carol", true);
    // Removed in the fleet: gone from the copy at the next refresh.
    let (rc, _, err) = a.ctl(&["user", "del", "carol"], "");
    assert_eq!(rc, 0, "{err}");
    wait_cached(dir.path(), "carol", false);
    // Locked in the fleet (through another host): locked in the copy.
    for _ in 0..3 {
        assert_eq!(
            b.ask_from("erin", "wrong", &code_now(), "203.0.113.5"),
            DENY
        );
    }
    let path = dir.path().join("outage-cache.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    while rusqlite::Connection::open(&path)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM ledger WHERE user = 'erin' AND locked_until > 0",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .unwrap_or(0)
        == 0
    {
        assert!(Instant::now() < deadline, "the copy never got erin's lock");
        std::thread::sleep(Duration::from_millis(100));
    }

    cluster.stop();
    assert_eq!(a.ask("carol", PASSWORD, &code_now()), DENY);
    let line = attempt(&a, "carol", 1);
    assert!(
        line.contains("reason=unknown-user") && line.contains("offline=1"),
        "{line}"
    );
    assert_eq!(
        a.ask_from("erin", PASSWORD, &code_now(), "203.0.113.5"),
        DENY
    );
    let line = attempt(&a, "erin", 1);
    assert!(
        line.contains("reason=locked") && line.contains("offline=1"),
        "{line}"
    );
    // The copy still serves the others.
    assert_eq!(a.ask("dave", PASSWORD, &code_now()), ALLOW);
    let line = attempt(&a, "dave", 1);
    assert!(
        line.contains("reason=success") && line.contains("offline=1"),
        "{line}"
    );

    // A veild started during the outage serves from the copy it kept,
    // step included: dave's code again is a replay, the next one passes.
    let config = a.config();
    let used = code_now();
    let mut a = a;
    a.restart(config);
    a.wait_for_line(&["event=store", "action=deciding"], Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no start line:\n{}", a.stderr()));
    assert_eq!(a.ask("dave", PASSWORD, &used), DENY);
    assert_eq!(a.ask("dave", PASSWORD, &code_at(1)), ALLOW);
}

/// Through real libpam and pam_veil.so, as sshd would ask: during the
/// outage a cached user with a fresh code gets PAM_SUCCESS, a wrong
/// password PAM_AUTH_ERR, as online. Root only: only a root peer's
/// PAM_RHOST is believed (and a non-root peer may ask only for itself).
#[test]
#[ignore = "needs root (plays sshd, whose PAM_RHOST is believed): scripts/test.sh runs it as root"]
fn through_pam_an_outage_login_passes_and_a_wrong_password_fails() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test plays sshd: run it as root (scripts/test.sh does)"
    );
    let mut cluster = Cluster::start();
    let url = cluster.database("outage_pam");
    let dir = tempfile::tempdir().unwrap();
    // The alert for the outage says logins go on, on the copy (on the old
    // main it said they were denied while this host still served them).
    let record = dir.path().join("record.sh");
    std::fs::write(
        &record,
        "#!/bin/sh\nenv > \"$1/$VEIL_EVENT.tmp\" && mv \"$1/$VEIL_EVENT.tmp\" \"$1/$VEIL_EVENT.env\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&record, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let alerts = format!(
        "[alerts]\ncommand = {:?}\nargs = [{:?}]\n",
        record.display().to_string(),
        dir.path().display().to_string()
    );
    let a = Veild::launch_shared(local_host(&url, dir.path(), 1, &alerts));
    a.enrol("frank", true);
    wait_cached(dir.path(), "frank", true);
    let stack = PamStack::veil(&pam::socket_args(&a.socket(), "10"));

    cluster.stop();
    let run = pam::authenticate(
        &stack,
        &Attempt::new("frank", &["wrong", &code_now()]).from_host("192.0.2.77"),
    );
    assert_eq!(run.code, pam::PAM_AUTH_ERR, "{}", a.stderr());
    let run = pam::authenticate(
        &stack,
        &Attempt::new("frank", &[PASSWORD, &code_now()]).from_host("192.0.2.77"),
    );
    assert_eq!(run.code, pam::PAM_SUCCESS, "{}", a.stderr());
    let line = attempt(&a, "frank", 2);
    assert!(
        line.contains("reason=success") && line.contains("offline=1"),
        "{line}"
    );
    let env = dir.path().join("store-outage.env");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !env.exists() {
        assert!(
            Instant::now() < deadline,
            "no store-outage alert: {}",
            a.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&env).unwrap();
    assert!(
        text.contains(r"logins\x20are\x20decided\x20on\x20this\x20host's\x20outage\x20copy"),
        "{text}"
    );
}

/// After an offline decision the worker asks the shared store again: its
/// minute's prune during the outage fails on PostgreSQL (and says so),
/// rather than pruning the copy and reporting the store up. One worker,
/// so the prune runs where the offline decision did, and no refresh tick
/// in between. Waits for the prune
/// (every 60 s). Fails with the flag left set after the decision (no
/// `event=prune error=` line: the prune ran on the copy).
#[test]
#[ignore = "slow: waits up to 75 s for veild's minute prune; scripts/test.sh root and CI run it"]
fn the_minutes_prune_during_an_outage_asks_the_shared_store_not_the_copy() {
    let mut cluster = Cluster::start();
    let url = cluster.database("outage_prune");
    let dir = tempfile::tempdir().unwrap();
    let a = Veild::launch_shared(local_host(
        &url,
        dir.path(),
        3600,
        "[limits]\nworkers = 1\n",
    ));
    // No tick after the one at start (a tick asks the shared store too):
    // grace reaches the copy through her online login.
    a.enrol("grace", true);
    assert_eq!(a.ask("grace", PASSWORD, &code_now()), ALLOW);
    wait_cached(dir.path(), "grace", true);
    cluster.stop();
    assert_eq!(a.ask("grace", PASSWORD, &code_at(1)), ALLOW);
    assert!(attempt(&a, "grace", 2).contains("offline=1"));
    let line = a
        .wait_for_line(&["event=prune", "error="], Duration::from_secs(75))
        .unwrap_or_else(|| panic!("no failed prune:\n{}", a.stderr()));
    assert!(line.contains("PostgreSQL"), "{line}");
}
