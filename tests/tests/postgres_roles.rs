//! Least privilege with a real veild and veilctl on one real PostgreSQL:
//! a host whose role is a member of `veil_login` logs users in (success,
//! failure, lock, a replayed code refused) and its veilctl cannot change
//! users, saying to use the admin URL, with which the same command works.
//! Fails on the old main: there is no `veil_login` role to grant (and the
//! one role could change every user from any host).

use std::time::Duration;

use veil_proto::{ALLOW, DENY};
use veil_tests::Veild;
use veil_tests::postgres::{Cluster, host_config};
use veil_tests::wire::*;

fn wait(d: &Veild, parts: &[&str]) -> String {
    d.wait_for_line(parts, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no line with {parts:?}:\n{}", d.stderr()))
}

#[test]
fn a_host_on_the_login_role_logs_users_in_and_its_veilctl_needs_the_admin_url() {
    let cluster = Cluster::start();
    let owner = cluster.database("least");
    // The host's role exists before the schema: veild starts, and says
    // that it may not make the schema and who may.
    cluster.sql("postgres", "CREATE ROLE host1 LOGIN");
    let url = owner.replacen("veil@", "host1@", 1);
    let d = Veild::launch_shared(host_config(&url, "[lockout]\ndeny = 3\n"));
    // (The audit log cuts a value at its cap: the hint is at veilctl's.)
    let line = wait(&d, &["event=store", "PostgreSQL"]).replace("\\x20", " ");
    assert!(line.contains("role host1 may not migrate"), "{line}");
    let admin = [("VEIL_ADMIN_URL", owner.as_str())];
    let (code, out, err) = d.ctl_env(&["store", "init"], "", &admin);
    assert_eq!(code, 0, "{out}{err}");
    let version = veil_daemon::common::store::PgStore::SCHEMA_VERSION;
    assert!(out.contains(&format!("schema version {version}")), "{out}");
    cluster.sql("postgres", "GRANT veil_login TO host1");

    // The host's own veilctl may not add a user: a clear refusal.
    let add = ["user", "add", "alice", "--password-stdin"];
    let password = format!("{PASSWORD}\n");
    let (code, _, err) = d.ctl(&add, &password);
    eprintln!("veilctl user add on the host: {err}");
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("permission denied: this host's role (host1) is veil_login")
            && err.contains("VEIL_ADMIN_URL="),
        "{err}"
    );
    // The admin's URL (the owner's role here) may.
    let (code, _, err) = d.ctl_env(&add, &password, &admin);
    assert_eq!(code, 0, "{err}");
    let enrol = [
        "totp",
        "enroll",
        "alice",
        "--secret-stdin",
        "--no-confirm",
        "--no-qr",
    ];
    let (code, _, err) = d.ctl_env(&enrol, &format!("{SECRET_B32}\n"), &admin);
    assert_eq!(code, 0, "{err}");

    // Reading users (what `veilctl enable` checks) works on the host.
    let (code, out, err) = d.ctl(&["user", "list"], "");
    assert!(code == 0 && out.contains("alice"), "{out}{err}");

    // The login path, on the login role.
    let code = code_now();
    assert_eq!(d.ask_from("alice", PASSWORD, &code, "198.51.100.7"), ALLOW);
    assert_eq!(d.ask_from("alice", PASSWORD, &code, "198.51.100.7"), DENY);
    wait(&d, &["reason=replayed-code", "user=alice"]);
    for _ in 0..3 {
        assert_eq!(d.ask_from("alice", "wrong", "000000", "198.51.100.7"), DENY);
    }
    wait(&d, &["reason=wrong-password", "user=alice"]);
    assert_eq!(
        d.ask_from("alice", PASSWORD, &code_at(1), "198.51.100.7"),
        DENY
    );
    wait(&d, &["reason=locked", "user=alice"]);
    assert!(
        !d.stderr().contains("reason=store-error"),
        "every login was decided:\n{}",
        d.stderr()
    );
}
