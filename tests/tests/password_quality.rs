//! New veil passwords are checked as Debian's `passwd` checks them with
//! pam_pwquality (the real libpwquality and cracklib of this host), plus a
//! local list of breached passwords, through the real veilctl and veild:
//! `veilctl user add | passwd` refuse with the reason (`--allow-weak`
//! warns and goes on unless pwquality.conf says `enforce_for_root`), and a
//! user's own `veilctl passwd` is refused by veild with the reason, which
//! only someone who proved the current password gets.
//!
//! Each test fails on the old main: every new password was taken.

#![forbid(unsafe_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use veil_daemon::common::quality::breached::sha1_hex;
use veil_proto::{ALLOW, DENY};
use veil_tests::Veild;
use veil_tests::accounts::Accounts;
use veil_tests::paths;
use veil_tests::root::require_root;
use veil_tests::wire::PASSWORD;

const BREACHED: &str = "Summer-Holiday-2019!";
const GOOD: &str = "a new one, 4 the walrus";

/// A pwquality.conf of the test's own (`text`) and a sorted breached
/// list holding [`BREACHED`]; the `[password]` TOML naming both.
fn quality_files(dir: &Path, text: &str) -> String {
    let conf = dir.join("pwquality.conf");
    std::fs::write(&conf, text).unwrap();
    let mut lines = vec![format!("{}:12", sha1_hex(BREACHED.as_bytes()))];
    lines.extend((0..100).map(|i| format!("{}:1", sha1_hex(format!("other {i}").as_bytes()))));
    lines.sort();
    let list: PathBuf = dir.join("breached.txt");
    std::fs::write(&list, lines.join("\n") + "\n").unwrap();
    format!(
        "[password]\nquality_config = \"{}\"\nbreached_list = \"{}\"\n",
        conf.display(),
        list.display()
    )
}

#[test]
fn veilctl_user_add_refuses_a_breached_password_and_user_passwd_a_short_one() {
    let files = tempfile::tempdir().unwrap();
    let toml = quality_files(files.path(), "");
    let d = Veild::from_toml(&format!("[totp]\npolicy = \"if-enrolled\"\n{toml}"));

    let (rc, _, err) = d.ctl(
        &["user", "add", "alice", "--password-stdin"],
        &format!("{BREACHED}\n"),
    );
    assert_eq!(rc, 1, "{err}");
    assert!(
        err.contains(
            "BAD PASSWORD: The password is in the list of breached passwords; nothing changed"
        ),
        "{err}"
    );
    assert!(!err.contains(BREACHED), "{err}");
    let (_, users, _) = d.ctl(&["user", "list", "--json"], "");
    assert_eq!(users.trim(), "[]", "nobody added");

    let (rc, _, err) = d.ctl(
        &["user", "add", "alice", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(rc, 0, "{err}");
    let (rc, _, err) = d.ctl(&["user", "passwd", "alice", "--password-stdin"], "Xy7!\n");
    assert_eq!(rc, 1, "{err}");
    assert!(
        err.contains("BAD PASSWORD: The password is shorter than 8 characters"),
        "{err}"
    );
    assert_eq!(
        d.ask("alice", PASSWORD, ""),
        ALLOW,
        "the old one still works"
    );
    assert_eq!(d.ask("alice", "Xy7!", ""), DENY);

    // The admin may override, as root may with passwd: warned, and set.
    let (rc, _, err) = d.ctl(
        &[
            "user",
            "passwd",
            "alice",
            "--password-stdin",
            "--allow-weak",
        ],
        "Xy7!\n",
    );
    assert_eq!(rc, 0, "{err}");
    assert!(
        err.contains("warning: BAD PASSWORD: The password is shorter"),
        "{err}"
    );
    assert_eq!(d.ask("alice", "Xy7!", ""), ALLOW);
}

#[test]
fn enforce_for_root_takes_the_override_away() {
    let files = tempfile::tempdir().unwrap();
    let toml = quality_files(files.path(), "enforce_for_root\n");
    let d = Veild::from_toml(&toml);
    let (rc, _, err) = d.ctl(
        &["user", "add", "bob", "--password-stdin", "--allow-weak"],
        &format!("{BREACHED}\n"),
    );
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("enforce_for_root"), "{err}");
    let (_, users, _) = d.ctl(&["user", "list", "--json"], "");
    assert_eq!(users.trim(), "[]", "nobody added");
}

/// Runs veilctl as `uid:gid` with `stdin`: (exit status, stderr).
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
fn a_user_s_own_weak_password_is_refused_by_veild_with_the_reason() {
    require_root();
    let mut made = Accounts::new();
    let name = "v21pqual";
    made.add_with_password(name, "the system one, not veil's");
    let entry = nix::unistd::User::from_name(name)
        .unwrap()
        .expect("useradd made it");
    let (uid, gid) = (entry.uid.as_raw(), entry.gid.as_raw());
    let files = tempfile::tempdir().unwrap();
    let toml = quality_files(files.path(), "");
    let d = Veild::from_toml(&format!("[totp]\npolicy = \"if-enrolled\"\n{toml}"));
    d.add_user(name, PASSWORD);

    // A wrong current password: the one failure, never the reason.
    let (rc, err) = passwd_as(&d, uid, gid, "not mine\n\nXy7!\n");
    assert_eq!(rc, 1, "{err}");
    assert!(
        err.contains("refused: the password or the code is wrong"),
        "{err}"
    );
    assert!(!err.contains("BAD PASSWORD"), "{err}");

    let (rc, err) = passwd_as(&d, uid, gid, &format!("{PASSWORD}\n\nXy7!\n"));
    assert_eq!(rc, 1, "{err}");
    assert!(
        err.contains("BAD PASSWORD: The password is shorter than 8 characters; nothing changed"),
        "{err}"
    );
    let (rc, err) = passwd_as(&d, uid, gid, &format!("{PASSWORD}\n\n{BREACHED}\n"));
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("in the list of breached passwords"), "{err}");
    assert_eq!(d.ask(name, PASSWORD, ""), ALLOW, "the old one still works");
    assert_eq!(d.ask(name, "Xy7!", ""), DENY);
    assert_eq!(d.ask(name, BREACHED, ""), DENY);
    let log = d.stderr();
    assert!(log.contains("reason=weak-password"), "{log}");
    assert!(!log.contains("Xy7!") && !log.contains(BREACHED), "{log}");

    let (rc, err) = passwd_as(&d, uid, gid, &format!("{PASSWORD}\n\n{GOOD}\n"));
    assert_eq!(rc, 0, "{err}");
    assert_eq!(d.ask(name, GOOD, ""), ALLOW);
}
