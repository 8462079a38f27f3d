//! veild's Prometheus metrics through a real veild: logins and failures
//! counted under their labels, the file written atomically with mode 0640
//! and the configured group, accepted by Prometheus' own `promtool check
//! metrics`, and printed by `veilctl metrics`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use veil_proto::{ALLOW, DENY};
use veil_tests::Veild;
use veil_tests::wire::*;

/// `promtool check metrics` on `text`; panics (the test fails) when
/// promtool is missing: Debian's `prometheus` package, in scripts/deps.sh.
fn promtool_check(text: &str) {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/deps.sh test) must be installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the file:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} not in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn logins_and_failures_are_counted_in_a_file_promtool_accepts() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("veil.prom");
    let gid = nix::unistd::getgid();
    let group = nix::unistd::Group::from_gid(gid).unwrap().unwrap().name;
    let mut d = Veild::from_toml(&format!(
        "[lockout]\ndeny = 2\n[metrics]\nfile = {:?}\ninterval_s = 3600\ngroup = {group:?}\n",
        file.to_str().unwrap()
    ));
    d.enrol("alice", true);
    let host = "198.51.100.9";
    assert_eq!(d.ask_from("alice", PASSWORD, &code_now(), host), ALLOW);
    assert_eq!(d.ask_from("alice", "wrong", &wrong_code(), host), DENY);
    // The second failure of the pair locks its key.
    assert_eq!(d.ask_from("alice", "wrong", &wrong_code(), host), DENY);
    assert_eq!(d.ask_from("nobody", "x", "000000", "198.51.100.10"), DENY);
    // A recovery code, from a host whose pair is not locked.
    let codes = String::from_utf8(d.veilctl(&["recovery", "new", "alice"], "").stdout).unwrap();
    let code = codes
        .split_whitespace()
        .find(|w| w.len() == 12 && w.as_bytes()[4] == b'-')
        .unwrap_or_else(|| panic!("no code in {codes}"));
    assert_eq!(d.ask_from("alice", PASSWORD, code, "198.51.100.11"), ALLOW);
    // The file is written at start and every hour here: SIGTERM writes the
    // final counts, so nothing waits on a clock.
    d.stop();
    let text = std::fs::read_to_string(&file).unwrap();
    promtool_check(&text);
    let attempts = "veil_attempts_total";
    assert_eq!(
        value(
            &text,
            &format!("{attempts}{{outcome=\"allow\",reason=\"success\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            &format!("{attempts}{{outcome=\"deny\",reason=\"wrong-password\"}}")
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            &format!("{attempts}{{outcome=\"deny\",reason=\"unknown-user\"}}")
        ),
        1.0
    );
    assert_eq!(value(&text, "veil_locks_total{kind=\"user+source\"}"), 1.0);
    assert_eq!(
        value(
            &text,
            &format!("{attempts}{{outcome=\"allow\",reason=\"recovery-code\"}}")
        ),
        1.0
    );
    assert_eq!(value(&text, "veil_recovery_codes_used_total"), 1.0);
    assert_eq!(
        value(&text, "veil_verification_duration_seconds_count"),
        5.0
    );
    // Every login read the store, and it answered.
    assert_eq!(value(&text, "veil_store_duration_seconds_count"), 5.0);
    assert!(value(&text, "veil_store_duration_seconds_sum") > 0.0);
    // And every login verified a password (argon2id: milliseconds).
    assert_eq!(value(&text, "veil_check_duration_seconds_count"), 5.0);
    assert!(value(&text, "veil_check_duration_seconds_sum") > 0.001);
    assert_eq!(value(&text, "veil_store_up"), 1.0);
    assert_eq!(value(&text, "veil_pending_enrolments"), 0.0);
    assert_eq!(
        value(&text, "veil_alerts_dropped_total{reason=\"rate-limit\"}"),
        0.0
    );
    // Counted at start (an empty ledger) and at the minute's prune.
    assert_eq!(value(&text, "veil_ledger_rows"), 0.0);
    // No user, host or address in any series.
    for secret in ["alice", "nobody", "198.51.100"] {
        assert!(!text.contains(secret), "{secret} in\n{text}");
    }
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640);
    assert_eq!(meta.gid(), gid.as_raw());
    // Renamed into place: no temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [Path::new("veil.prom").as_os_str()]);

    let (code, stdout, stderr) = d.ctl(&["metrics"], "");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, text);
}

#[test]
fn a_missing_metrics_group_stops_veild_before_it_serves() {
    let d = Veild::from_toml("");
    let mut config = d.config();
    config.metrics.file = Some(d.dir().join("veil.prom"));
    config.metrics.interval_s = 15;
    config.metrics.group = Some("no-such-group-veil".into());
    d.write_config(config);
    let out = Command::new(veil_tests::paths::veild())
        .arg("--check-config")
        .arg("--config")
        .arg(d.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-group-veil"), "{err}");
}

#[test]
fn veilctl_metrics_says_when_metrics_are_off() {
    let d = Veild::from_toml("");
    let (code, _, stderr) = d.ctl(&["metrics"], "");
    assert_eq!(code, 1);
    assert!(stderr.contains("metrics are off"), "{stderr}");
}

#[test]
fn a_connection_over_max_connections_is_counted_as_an_overload_denial() {
    use std::io::Read as _;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("veil.prom");
    let mut d = Veild::from_toml(&format!(
        "[limits]\nmax_connections = 1\nmax_connections_per_user = 1\nrequest_timeout_ms = 60000\n[metrics]\nfile = {:?}\n",
        file.to_str().unwrap()
    ));
    // The one active slot: connected, its request never sent.
    let holder = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    let mut second = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    let mut reply = Vec::new();
    second.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, DENY);
    drop(holder);
    d.stop();
    let text = std::fs::read_to_string(&file).unwrap();
    promtool_check(&text);
    assert_eq!(
        value(
            &text,
            "veil_overload_denials_total{limit=\"max_connections\"}"
        ),
        1.0
    );
}

#[test]
fn a_metrics_file_that_cannot_be_written_is_logged_and_logins_go_on() {
    let gone = tempfile::tempdir().unwrap();
    let file = gone.path().join("no-such-dir").join("veil.prom");
    let d = Veild::from_toml(&format!("[metrics]\nfile = {:?}\n", file.to_str().unwrap()));
    d.wait_for_line(
        &["event=metrics", "error=", "No\\x20such\\x20file"],
        std::time::Duration::from_secs(30),
    )
    .unwrap_or_else(|| panic!("no metrics error line:\n{}", d.stderr()));
    d.enrol("alice", true);
    assert_eq!(d.ask("alice", PASSWORD, &code_now()), ALLOW);
}

/// Ends a user's (user, source) lock in the SQLite file as if its time had
/// passed; the key keeps its lock history (`locks`, remembered for a day).
fn end_lock(d: &Veild, user: &str) {
    let conn = rusqlite::Connection::open(d.database()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let n = conn
        .execute(
            "UPDATE ledger SET locked_until = 1 WHERE kind = 'user+source' AND user = ?1",
            [user],
        )
        .unwrap();
    assert_eq!(n, 1, "{user}'s (user, source) row");
}

/// Fails on the old main: it had neither `veil_lock_escalations_total`
/// nor `veil_locks_in_force` (the series are missing), and the `lock`
/// line had no `locks=`. The gauge is read from the ledger (1), not worked
/// out from the locks made (3).
#[test]
fn locks_in_force_are_read_from_the_ledger_and_a_relock_counts_as_an_escalation() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("veil.prom");
    let mut d = Veild::from_toml(&format!(
        "[lockout]\ndeny = 2\nuser_deny = 100\nsource_deny = 100\n\
         [metrics]\nfile = {:?}\ninterval_s = 3600\n",
        file.to_str().unwrap()
    ));
    d.enrol("alice", true);
    d.enrol("bob", true);
    let host = "198.51.100.20";
    for user in ["alice", "bob"] {
        for _ in 0..2 {
            assert_eq!(d.ask_from(user, "wrong", &wrong_code(), host), DENY);
        }
    }
    // alice's lock ends; two more failures lock her key a second time.
    end_lock(&d, "alice");
    for _ in 0..2 {
        assert_eq!(d.ask_from("alice", "wrong", &wrong_code(), host), DENY);
    }
    // bob's ends too: made, no longer in force.
    end_lock(&d, "bob");
    // The final write (at SIGTERM) counts the ledger as it is now.
    d.stop();
    let text = std::fs::read_to_string(&file).unwrap();
    promtool_check(&text);
    let us = "{kind=\"user+source\"}";
    assert_eq!(value(&text, &format!("veil_locks_total{us}")), 3.0);
    assert_eq!(
        value(&text, &format!("veil_lock_escalations_total{us}")),
        1.0
    );
    assert_eq!(value(&text, &format!("veil_locks_in_force{us}")), 1.0);
    for kind in ["user+remote", "source", "user", "peer", "overflow"] {
        let k = format!("{{kind=\"{kind}\"}}");
        assert_eq!(value(&text, &format!("veil_locks_in_force{k}")), 0.0);
        assert_eq!(
            value(&text, &format!("veil_lock_escalations_total{k}")),
            0.0
        );
    }
    let log = d.stderr();
    let locks: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("event=lock ") && l.contains("user=alice"))
        .collect();
    assert_eq!(locks.len(), 2, "{log}");
    assert!(locks[0].ends_with("locks=1"), "{}", locks[0]);
    assert!(locks[1].ends_with("locks=2"), "{}", locks[1]);
    let (code, stdout, stderr) = d.ctl(&["metrics"], "");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, text);
}

/// Fails on the old main (no `veil_locks_in_force`). On PostgreSQL the
/// gauge is the fleet's: host b counts the lock host a made (b made none),
/// and b reads it on the least-privileged login role.
#[test]
fn on_postgresql_every_host_sees_the_fleets_locks_in_force() {
    use veil_tests::postgres::{Cluster, host_config};
    let cluster = Cluster::start();
    let owner = cluster.database("metrics");
    let out = tempfile::tempdir().unwrap();
    let settings = |name: &str| {
        let file = out.path().join(name);
        format!(
            "[lockout]\ndeny = 2\n[metrics]\nfile = {:?}\ninterval_s = 3600\n",
            file.to_str().unwrap()
        )
    };
    let mut a = Veild::launch_shared(host_config(&owner, &settings("a.prom")));
    a.enrol("alice", true);
    cluster.sql("postgres", "CREATE ROLE host1 LOGIN");
    cluster.sql("postgres", "GRANT veil_login TO host1");
    let login_role = owner.replacen("veil@", "host1@", 1);
    let mut b = Veild::launch_shared(host_config(&login_role, &settings("b.prom")));
    for _ in 0..2 {
        assert_eq!(
            a.ask_from("alice", "wrong", &wrong_code(), "198.51.100.30"),
            DENY
        );
    }
    b.stop();
    a.stop();
    let us = "{kind=\"user+source\"}";
    for (name, made) in [("a.prom", 1.0), ("b.prom", 0.0)] {
        let text = std::fs::read_to_string(out.path().join(name)).unwrap();
        promtool_check(&text);
        assert!(text.contains("across the fleet"), "{text}");
        assert_eq!(
            value(&text, &format!("veil_locks_total{us}")),
            made,
            "{name}"
        );
        assert_eq!(
            value(&text, &format!("veil_locks_in_force{us}")),
            1.0,
            "{name}"
        );
        assert_eq!(value(&text, "veil_locks_in_force{kind=\"source\"}"), 0.0);
    }
}
