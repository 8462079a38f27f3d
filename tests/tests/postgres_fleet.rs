//! Two veild "hosts" (their own configs, sockets and dummy records) on one
//! real PostgreSQL: one ledger, one TOTP step, one set of users; and an
//! outage that denies quickly and heals without a restart.

use std::time::{Duration, Instant};

use veil_proto::{ALLOW, DENY};
use veil_tests::Veild;
use veil_tests::postgres::{Cluster, host_config};
use veil_tests::wire::*;

const BUSY: &str = "[lockout]\ndeny = 5\n[limits]\nqueue = 256\nmax_connections_per_user = 128\n";

fn evaluated(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("reason=wrong-password"))
        .count()
}

#[test]
fn two_hosts_share_one_ledger_one_code_and_their_users() {
    let cluster = Cluster::start();
    let url = cluster.database("fleet");
    let a = Veild::launch_shared(host_config(&url, BUSY));
    let b = Veild::launch_shared(host_config(&url, BUSY));
    a.enrol("alice", true);

    // 60 concurrent wrong guesses for one user and source, half per host.
    let replies: Vec<Vec<u8>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..60)
            .map(|i| {
                let host = if i % 2 == 0 { &a } else { &b };
                s.spawn(move || {
                    host.ask_from("alice", &format!("guess-{i}"), "000000", "198.51.100.7")
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(replies.iter().all(|r| r == &DENY));
    let (log_a, log_b) = (a.log_with(30), b.log_with(30));
    let (ev_a, ev_b) = (evaluated(&log_a), evaluated(&log_b));
    eprintln!("evaluated: {ev_a} through a, {ev_b} through b (deny = 5, 60 guesses)");
    assert!(ev_a + ev_b <= 5, "{ev_a} + {ev_b} evaluated");
    assert!(ev_a + ev_b >= 1, "some guess was evaluated");
    let locked = |log: &str| {
        log.lines()
            .filter(|l| l.contains("reason=locked key=user+source:alice@198.51.100.7"))
            .count()
    };
    assert_eq!(locked(&log_a) + locked(&log_b) + ev_a + ev_b, 60);

    // The lock is the fleet's: unlocked through b's veilctl, a sees it.
    b.unlock("alice");
    let code = code_now();
    assert_eq!(a.ask_from("alice", PASSWORD, &code, "198.51.100.7"), ALLOW);
    assert_eq!(b.ask_from("alice", PASSWORD, &code, "198.51.100.7"), DENY);
    assert!(
        b.wait_for_line(
            &["reason=replayed-code", "user=alice"],
            Duration::from_secs(5)
        )
        .is_some(),
        "{}",
        b.stderr()
    );

    // A user enrolled through one host logs in through the other.
    b.enrol("bob", true);
    assert_eq!(
        a.ask_from("bob", PASSWORD, &code_now(), "198.51.100.8"),
        ALLOW
    );
    assert!(
        a.ctl(&["user", "list"], "").1.contains("bob"),
        "veilctl on either host lists the fleet's users"
    );
}

#[test]
fn an_outage_denies_within_the_timeout_and_heals_without_a_restart() {
    let mut cluster = Cluster::start();
    let url = cluster.database("outage");
    let d = Veild::launch_shared(host_config(&url, "[totp]\npolicy = \"if-enrolled\"\n"));
    d.enrol("carol", false);
    assert_eq!(d.ask("carol", PASSWORD, ""), ALLOW);

    cluster.stop();
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(d.ask("carol", PASSWORD, ""), DENY);
        slowest = slowest.max(started.elapsed());
    }
    eprintln!("slowest DENY during the outage: {slowest:?}");
    assert!(slowest < Duration::from_secs(5), "PAM's default timeout");
    let line = d
        .wait_for_line(
            &["reason=store-error", "PostgreSQL"],
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("no store-error line:\n{}", d.stderr()));
    assert!(line.contains("user=carol"), "{line}");

    cluster.start_again();
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.ask("carol", PASSWORD, "") != ALLOW {
        assert!(Instant::now() < deadline, "no recovery:\n{}", d.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(d.pid().is_some(), "the same veild process");

    // A veild that starts while the server is down starts, denies, says
    // why, and logs in once the server is back.
    cluster.stop();
    let late = Veild::launch_shared(host_config(&url, "[totp]\npolicy = \"if-enrolled\"\n"));
    assert!(
        late.wait_for_line(&["event=store", "PostgreSQL"], Duration::from_secs(5))
            .is_some(),
        "{}",
        late.stderr()
    );
    assert_eq!(late.ask("carol", PASSWORD, ""), DENY);
    cluster.start_again();
    let deadline = Instant::now() + Duration::from_secs(20);
    while late.ask("carol", PASSWORD, "") != ALLOW {
        assert!(Instant::now() < deadline, "no recovery:\n{}", late.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn store_copy_makes_a_hosts_enrolments_the_fleets_and_refuses_a_differing_user() {
    let cluster = Cluster::start();
    let url = cluster.database("copied");
    let first = Veild::from_toml("[lockout]\ndeny = 5\n");
    first.enrol("dave", true);
    assert_eq!(
        first.ask_from("dave", "wrong", "000000", "203.0.113.9"),
        DENY
    );
    let out = first.veilctl(&["store", "copy", "--to", &url], "");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 users added"), "{said}");

    let fleet = Veild::launch_shared(host_config(&url, "[lockout]\ndeny = 5\n"));
    let (_, status, _) = fleet.ctl(&["status", "dave"], "");
    assert!(
        status.contains("203.0.113.9"),
        "the ledger came along: {status}"
    );
    assert_eq!(fleet.ask("dave", PASSWORD, &code_now()), ALLOW);

    let again = first.veilctl(&["store", "copy", "--to", &url], "");
    assert!(String::from_utf8_lossy(&again.stdout).contains("1 already there"));
    first.veilctl(
        &["user", "passwd", "dave", "--password-stdin"],
        "another-pass\n",
    );
    let (code, _, err) = first.ctl(&["store", "copy", "--to", &url], "");
    assert_ne!(code, 0);
    assert!(
        err.contains("dave") && err.contains("nothing was copied"),
        "{err}"
    );
    assert_eq!(fleet.ask("dave", PASSWORD, &code_at(1)), ALLOW, "unchanged");
}

/// The fleet shares one dummy row: a host whose [argon2] parameters differ
/// from the one that wrote it says so at start; one with the same does not.
#[test]
fn a_host_with_other_argon2_parameters_is_warned_about_the_shared_dummy() {
    let cluster = Cluster::start();
    let url = cluster.database("dummies");
    let a = Veild::launch_shared(host_config(&url, ""));
    a.ask("ghost", "guess", "000000");
    // The stored parameters, as the audit line escapes them (`=` is \x3d).
    let warning = ["event=config", "dummy_params=$argon2id$", "m\\x3d256,"];
    let same = Veild::launch_shared(host_config(&url, ""));
    same.ask("ghost", "guess", "000000");
    let other = Veild::launch_shared(host_config(&url, "[argon2]\nm_cost_kib = 512\n"));
    assert!(
        other
            .wait_for_line(&warning, Duration::from_secs(5))
            .is_some(),
        "{}",
        other.stderr()
    );
    assert!(
        !same.stderr().contains("dummy_params="),
        "{}",
        same.stderr()
    );
}

/// verify-full trusts `ca_file` alone: a CA that OpenSSL's default store
/// would load (here through `SSL_CERT_FILE`, as a system CA would be) does
/// not vouch for the server. veilctl connects as veild does.
#[test]
fn verify_full_trusts_the_ca_file_and_not_the_default_store() {
    let mut cluster = Cluster::start();
    let (port, ca) = cluster.serve_tls();
    let other = cluster.dir().join("unrelated-ca.pem");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(cluster.dir().join("unrelated-ca.key"))
        .arg("-out")
        .arg(&other)
        .args(["-days", "2", "-subj", "/CN=unrelated CA"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let url = format!("postgresql://veil@localhost:{port}/veil");
    let dir = tempfile::tempdir().unwrap();
    let veilctl = |ca_file: &std::path::Path, args: &[&str]| {
        let config = host_config(
            &url,
            &format!("[postgres]\nca_file = \"{}\"\n", ca_file.display()),
        );
        let path = dir.path().join("veild.toml");
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        std::process::Command::new(veil_tests::paths::veilctl())
            .arg("--config")
            .arg(&path)
            .args(args)
            .env("SSL_CERT_FILE", &ca)
            .output()
            .unwrap()
    };
    let ok = veilctl(&ca, &["store", "init"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = veilctl(&other, &["user", "list"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "trusted through SSL_CERT_FILE");
    assert!(stderr.contains("certificate"), "{stderr}");
}

/// libfaketime, which runs veild with its clock a day fast (the monotonic
/// clock left alone, so its deadlines are real).
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Fails on the old main: each host wrote fleet state by its own clock, so
/// a host a day fast wrote a lock that a host with the right clock saw with
/// about 87 300 s left, and it refused the user's current code (a day off).
/// Now every host writes in the database server's time.
#[test]
fn a_host_a_day_fast_writes_fleet_state_in_the_servers_time() {
    assert!(
        std::path::Path::new(FAKETIME_LIB).exists(),
        "{FAKETIME_LIB} is missing (package libfaketime, in scripts/deps.sh test)"
    );
    let cluster = Cluster::start();
    let url = cluster.database("clocks");
    let right = Veild::launch_shared(host_config(&url, BUSY));
    let fast = Veild::launch_shared_with_env(
        host_config(&url, BUSY),
        &[
            ("LD_PRELOAD", FAKETIME_LIB),
            ("FAKETIME", "+1d"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    assert!(
        fast.wait_for_line(
            &["event=clock-skew", "offset_s=-86"],
            Duration::from_secs(5)
        )
        .is_some(),
        "the fast host warns at start: {}",
        fast.stderr()
    );
    right.enrol("alice", true);
    for i in 0..6 {
        assert_eq!(
            fast.ask_from("alice", &format!("guess-{i}"), "000000", "198.51.100.7"),
            DENY
        );
    }
    let mut db = postgres::Client::connect(&cluster.url("clocks"), postgres::NoTls).unwrap();
    let left: i64 = db
        .query_one(
            "SELECT max(locked_until) - extract(epoch FROM now())::int8 FROM ledger
             WHERE username = 'alice'",
            &[],
        )
        .unwrap()
        .get(0);
    // 900 at most, give or take the second both clocks are rounded to
    // (veild keeps whole seconds, `::int8` rounds the server's): a
    // day-fast host would leave 87 300.
    assert!(
        (800..=901).contains(&left),
        "the lock has {left} s left by the server's clock (unlock_time 900)"
    );
    // The user's current code is accepted on the fast host, and its step is
    // the fleet's: the same code is a replay on the other host.
    right.unlock("alice");
    let code = code_now();
    assert_eq!(
        fast.ask_from("alice", PASSWORD, &code, "198.51.100.8"),
        ALLOW
    );
    assert_eq!(
        right.ask_from("alice", PASSWORD, &code, "198.51.100.8"),
        DENY
    );
    assert!(
        right
            .wait_for_line(
                &["reason=replayed-code", "user=alice"],
                Duration::from_secs(5)
            )
            .is_some(),
        "{}",
        right.stderr()
    );
}
