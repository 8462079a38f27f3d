//! Self-service on a fleet host whose role is a member of `veil_login`: a
//! user's own `veilctl passwd` (a real account, under its own uid, through
//! a real veild on a real PostgreSQL) fails while the host lacks
//! `veil_self_service` (the login role cannot write a hash) and works once
//! it is granted, through `veil_self_passwd`. Fails on the old main: there
//! is no `veil_login` role to grant (and the one role wrote every hash).
//!
//! Root only (adds an account, switches uid): ignored in a plain `cargo
//! test`, run by `scripts/test.sh` as root.

#![forbid(unsafe_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use veil_proto::{ALLOW, DENY};
use veil_tests::Veild;
use veil_tests::accounts::Accounts;
use veil_tests::paths;
use veil_tests::postgres::{Cluster, host_config};
use veil_tests::root::require_root;
use veil_tests::wire::PASSWORD;

/// `veilctl passwd --password-stdin` as the account `uid`: (status, stderr).
fn passwd_as(d: &Veild, uid: u32, gid: u32, stdin: &str) -> (i32, String) {
    let mut child = Command::new(paths::veilctl())
        .arg("--config")
        .arg(d.config_path())
        .args(["passwd", "--password-stdin"])
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("veilctl");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
#[ignore = "needs root (adds an account, switches uid): scripts/test.sh runs it as root"]
fn self_service_on_a_login_role_needs_the_veil_self_service_grant() {
    require_root();
    let mut made = Accounts::new();
    const NAME: &str = "v20ivy";
    made.add_with_password(NAME, "the system one, not veil's");
    let entry = nix::unistd::User::from_name(NAME).unwrap().unwrap();
    let (uid, gid) = (entry.uid.as_raw(), entry.gid.as_raw());

    let cluster = Cluster::start();
    let owner = cluster.database("selfs");
    cluster.sql("postgres", "CREATE ROLE host2 LOGIN");
    let url = owner.replacen("veil@", "host2@", 1);
    let d = Veild::launch_shared(host_config(&url, "[totp]\npolicy = \"if-enrolled\"\n"));
    let admin = [("VEIL_ADMIN_URL", owner.as_str())];
    let (code, out, err) = d.ctl_env(&["store", "init"], "", &admin);
    assert_eq!(code, 0, "{out}{err}");
    cluster.sql("postgres", "GRANT veil_login TO host2");
    let add = ["user", "add", NAME, "--password-stdin"];
    let (code, _, err) = d.ctl_env(&add, &format!("{PASSWORD}\n"), &admin);
    assert_eq!(code, 0, "{err}");
    assert_eq!(d.ask(NAME, PASSWORD, ""), ALLOW);

    const NEW: &str = "a new one, 4 ivy";
    let change = format!("{PASSWORD}\n\n{NEW}\n");
    let (code, err) = passwd_as(&d, uid, gid, &change);
    assert_ne!(code, 0, "no grant, no change: {err}");
    assert!(
        d.wait_for_line(&["reason=store-error", NAME], Duration::from_secs(5))
            .is_some(),
        "{}",
        d.stderr()
    );
    assert_eq!(d.ask(NAME, PASSWORD, ""), ALLOW, "unchanged");

    cluster.sql("postgres", "GRANT veil_self_service TO host2");
    let (code, err) = passwd_as(&d, uid, gid, &change);
    assert_eq!(code, 0, "{err}");
    assert_eq!(d.ask(NAME, PASSWORD, ""), DENY, "the old one is gone");
    assert_eq!(d.ask(NAME, NEW, ""), ALLOW);
}
