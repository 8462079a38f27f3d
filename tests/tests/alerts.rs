//! `[alerts]` through a real veild: the command runs with the event in
//! its environment (and nothing of veild's own, never a password), a hung
//! command changes no login's answer and is killed with its process group
//! at `timeout_s`, a failing command is logged once and counted, a second
//! event of a kind within `interval_s` is dropped and counted, and a
//! refused start runs it too. Alerts are rate-limited per kind, so each
//! test triggers one event of a kind unless it tests the limit.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use veil_proto::{ALLOW, DENY};
use veil_tests::Veild;
use veil_tests::wire::*;

/// Writes an executable shell script; its first argument is `out`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Records each event's environment as `out/EVENT.env` (renamed into
/// place, so a reader never sees half of it).
const RECORD_ENV: &str =
    "env > \"$1/$VEIL_EVENT.tmp\" && mv \"$1/$VEIL_EVENT.tmp\" \"$1/$VEIL_EVENT.env\"\n";

fn alerts_toml(command: &Path, out: &Path, extra: &str) -> String {
    format!(
        "[alerts]\ncommand = {:?}\nargs = [{:?}]\n{extra}",
        command.to_str().unwrap(),
        out.to_str().unwrap()
    )
}

/// Waits up to 30 s for `path` (an alert runs on its own thread).
fn wait_for_file(path: &Path, d: &Veild) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared:\n{}",
            path.display(),
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::read_to_string(path).unwrap()
}

fn env_of(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Gone: no such process, or a zombie waiting for init.
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[test]
fn a_wide_lock_and_a_store_outage_run_the_command_with_the_event_in_its_environment() {
    let out = tempfile::tempdir().unwrap();
    let command = script(out.path(), "record.sh", RECORD_ENV);
    let mut d = Veild::from_toml(&format!(
        "[lockout]\nsource_deny = 2\n{}",
        alerts_toml(&command, out.path(), "")
    ));
    // veild's own environment must not reach the command.
    d.env
        .push(("VEIL_TEST_OWN_VAR".into(), "not-for-the-command".into()));
    d.restart(d.config());
    d.enrol("alice", true);
    let host = "198.51.100.7";
    let typo = "Hunter2-not-the-password";
    assert_eq!(d.ask_from("alice", typo, &wrong_code(), host), DENY);
    // The second failure from the host locks its source-wide key.
    assert_eq!(d.ask_from("alice", typo, &wrong_code(), host), DENY);
    let text = wait_for_file(&out.path().join("lock.env"), &d);
    let env = env_of(&text);
    assert_eq!(env["VEIL_EVENT"], "lock", "{text}");
    assert_eq!(env["VEIL_KEY_KIND"], "source", "{text}");
    assert_eq!(env["VEIL_KEY"], format!("source:{host}"), "{text}");
    assert_eq!(env["VEIL_USER"], "alice", "{text}");
    assert_eq!(env["VEIL_SERVICE"], "veil-test", "{text}");
    assert!(env["VEIL_REASON"].contains("locked"), "{text}");
    assert!(env.contains_key("VEIL_TIME") && env.contains_key("VEIL_HOST"));
    assert!(env["PATH"].contains("/usr/bin"), "{text}");
    assert!(!text.contains(typo) && !text.contains(PASSWORD), "{text}");
    assert!(!text.contains("VEIL_TEST_OWN_VAR"), "{text}");

    // A recovery code used: who, where, how many are left; never the code.
    let codes = String::from_utf8(d.veilctl(&["recovery", "new", "alice"], "").stdout).unwrap();
    let code = codes
        .split_whitespace()
        .find(|w| w.len() == 12 && w.as_bytes()[4] == b'-')
        .unwrap_or_else(|| panic!("no code in {codes}"));
    assert_eq!(d.ask_from("alice", PASSWORD, code, "198.51.100.60"), ALLOW);
    let text = wait_for_file(&out.path().join("recovery-code-used.env"), &d);
    let env = env_of(&text);
    assert_eq!(env["VEIL_EVENT"], "recovery-code-used", "{text}");
    assert_eq!(env["VEIL_USER"], "alice", "{text}");
    assert_eq!(env["VEIL_CODES_LEFT"], "9", "{text}");
    assert!(env["VEIL_SOURCE"].contains("198.51.100.60"), "{text}");
    assert!(!text.contains(code) && !text.contains(PASSWORD), "{text}");

    // The store goes away: the first login denied for it starts an outage.
    let db = d.database();
    let backup = d.dir().join("backup.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("VACUUM INTO ?1", [backup.to_str().unwrap()])
        .unwrap();
    std::fs::remove_file(&db).unwrap();
    assert_eq!(d.ask("alice", PASSWORD, &code_now()), DENY);
    let text = wait_for_file(&out.path().join("store-outage.env"), &d);
    let env = env_of(&text);
    assert_eq!(env["VEIL_EVENT"], "store-outage", "{text}");
    assert!(env["VEIL_ERROR"].contains("not\\x20exist"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!out.path().join("store-recovered.env").exists());

    // Restored: the next login that reads it ends the outage.
    for stale in ["veil.db-wal", "veil.db-shm"] {
        let _ = std::fs::remove_file(d.dir().join(stale));
    }
    std::fs::copy(&backup, &db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        d.ask("alice", PASSWORD, &code_now()),
        ALLOW,
        "{}",
        d.stderr()
    );
    let text = wait_for_file(&out.path().join("store-recovered.env"), &d);
    assert_eq!(env_of(&text)["VEIL_EVENT"], "store-recovered", "{text}");
}

#[test]
fn a_hung_command_changes_no_answer_and_is_killed_with_its_group_at_the_timeout() {
    let out = tempfile::tempdir().unwrap();
    // The shell and its child: the kill must reach both.
    let command = script(
        out.path(),
        "hang.sh",
        "echo $$ > \"$1/sh.tmp\" && mv \"$1/sh.tmp\" \"$1/sh.pid\"\n\
         sleep 1000 &\n\
         echo $! > \"$1/sleep.tmp\" && mv \"$1/sleep.tmp\" \"$1/sleep.pid\"\n\
         wait\n",
    );
    let d = Veild::from_toml(&format!(
        "[lockout]\nsource_deny = 2\n[totp]\npolicy = \"if-enrolled\"\n{}",
        alerts_toml(&command, out.path(), "timeout_s = 10\n")
    ));
    d.enrol("alice", false);
    assert_eq!(d.ask_from("alice", "wrong", "", "198.51.100.7"), DENY);
    assert_eq!(d.ask_from("alice", "wrong", "", "198.51.100.7"), DENY);
    let shell = wait_for_file(&out.path().join("sh.pid"), &d);
    let sleep = wait_for_file(&out.path().join("sleep.pid"), &d);
    // The command hangs: every login still gets its own answer.
    for i in 0..20 {
        if i % 2 == 0 {
            assert_eq!(d.ask_from("alice", PASSWORD, "", "198.51.100.50"), ALLOW);
        } else {
            let host = format!("203.0.113.{i}");
            assert_eq!(d.ask_from("nobody", "x", "", &host), DENY);
        }
    }
    let line = d
        .wait_for_line(
            &["event=alert", "alert=lock", "outcome=failed", "timeout_s"],
            Duration::from_secs(60),
        )
        .unwrap_or_else(|| panic!("no timeout line:\n{}", d.stderr()));
    eprintln!("{line}");
    assert!(gone(&shell), "the command's shell {shell} still runs");
    assert!(gone(&sleep), "its child {sleep} still runs");
    assert_eq!(d.ask_from("alice", PASSWORD, "", "198.51.100.50"), ALLOW);
}

#[test]
fn a_failing_command_is_logged_once_and_a_repeated_kind_is_dropped_and_counted() {
    let out = tempfile::tempdir().unwrap();
    let command = script(out.path(), "fail.sh", "exit 1\n");
    let metrics = out.path().join("veil.prom");
    let mut d = Veild::from_toml(&format!(
        "[lockout]\nsource_deny = 2\n[metrics]\nfile = {:?}\ninterval_s = 3600\n{}",
        metrics.to_str().unwrap(),
        alerts_toml(
            &command,
            out.path(),
            "storm_locks = 1\nstorm_window_s = 3600\ninterval_s = 3600\n"
        )
    ));
    // Two sources locked: the first lock runs (and fails); the second is
    // a lock within interval_s (dropped), and a storm (runs, fails).
    for host in ["198.51.100.7", "198.51.100.8"] {
        for _ in 0..2 {
            assert_eq!(d.ask_from("nobody", "x", "000000", host), DENY);
        }
    }
    // Stopping runs what is queued, then writes the final metrics.
    d.stop();
    let log = d.stderr();
    let failed: Vec<_> = log
        .lines()
        .filter(|l| l.contains("event=alert") && l.contains("outcome=failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{log}");
    assert!(
        failed[0].contains("alert=lock") && failed[0].contains("exit\\x20status:\\x201"),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("event=alert")
            && l.contains("alert=lock")
            && l.contains("outcome=dropped")
            && l.contains("why=rate-limit")),
        "{log}"
    );
    let text = std::fs::read_to_string(&metrics).unwrap();
    for line in [
        "veil_alert_failures_total 2",
        "veil_alerts_total{event=\"lock\"} 1",
        "veil_alerts_total{event=\"lock-storm\"} 1",
        "veil_alerts_dropped_total{reason=\"rate-limit\"} 1",
        "veil_alerts_dropped_total{reason=\"queue-full\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

#[test]
fn a_refused_start_runs_the_command() {
    let out = tempfile::tempdir().unwrap();
    let command = script(out.path(), "record.sh", RECORD_ENV);
    let mut d = Veild::from_toml("");
    d.stop();
    let mut config = d.config();
    config.alerts.command = Some(command);
    config.alerts.args = vec![out.path().to_str().unwrap().to_owned()];
    // Parsed, but refused: the group does not exist.
    config.metrics.file = Some(d.dir().join("veil.prom"));
    config.metrics.interval_s = 15;
    config.metrics.group = Some("no-such-group-veil".into());
    d.write_config(config);
    let run = Command::new(veil_tests::paths::veild())
        .arg("--config")
        .arg(d.config_path())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(78));
    let text = std::fs::read_to_string(out.path().join("start-refused.env"))
        .unwrap_or_else(|e| panic!("no start-refused event ({e}): {run:?}"));
    let env = env_of(&text);
    assert_eq!(env["VEIL_EVENT"], "start-refused", "{text}");
    assert!(env["VEIL_REASON"].contains("no-such-group-veil"), "{text}");
}
