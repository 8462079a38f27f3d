//! `one_prompt` behind a real sshd's `password` method (Debian's default,
//! `KbdInteractiveAuthentication no`, `PasswordAuthentication yes`),
//! driven by the OpenSSH client through expect: the password followed by
//! the code at the client's own prompt logs in; a wrong code for a real
//! account and the right-looking answer for an unknown one (sshd hands
//! PAM its own junk for it) end alike: the same client exit and output,
//! the same ledger charge, and one request each that veild split.
//! Fails on the old main, which had no `one_prompt` (the module refused
//! the argument and denied every login).
//!
//! Root only: it adds an account, a PAM service file and runs sshd.
//! Ignored in a plain `cargo test`; `scripts/test.sh` runs it as root.
//! Everything it made is removed when it ends, pass or fail.

#![forbid(unsafe_code)]

use veil_tests::accounts::{Accounts, run};
use veil_tests::root::require_root;
use veil_tests::sshd::Sshd;
use veil_tests::wire::{PASSWORD, code_now, wrong_code};
use veil_tests::{Veild, paths};

const REAL: &str = "v21real";
const UNKNOWN: &str = "v21ghost";

/// The account's ledger counters with its own name taken out, sorted.
fn charges(veild: &Veild, user: &str) -> Vec<String> {
    let (rc, out, err) = veild.ctl(&["status", user, "--json"], "");
    assert_eq!(rc, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut charged: Vec<String> = status["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.to_string().replace(user, "USER"))
        .collect();
    charged.sort();
    charged
}

#[test]
#[ignore = "needs root (adds an account, a PAM service, runs sshd): scripts/test.sh runs it as root"]
fn over_sshds_password_method_a_real_and_an_unknown_account_fail_alike() {
    require_root();
    assert!(
        !veil_tests::accounts::exists(UNKNOWN),
        "{UNKNOWN} must not exist"
    );
    let veild = Veild::from_toml("[lockout]\ndeny = 5\n[totp]\npolicy = \"required\"\n");
    let mut made = Accounts::new();
    made.add(REAL);
    // Not locked ('!') for sshd, and no system password.
    run("usermod", &["-p", "*", "-s", "/bin/sh", REAL], "");
    veild.enrol(REAL, true);
    let sshd = Sshd::start_password(
        "v21",
        &format!(
            "auth required {} socket={} timeout=10 one_prompt",
            paths::module().display(),
            veild.socket().display()
        ),
    );

    let (rc_real, out_real) = sshd.login_password(REAL, &format!("{PASSWORD}{}", wrong_code()));
    let (rc_unknown, out_unknown) =
        sshd.login_password(UNKNOWN, &format!("{PASSWORD}{}", code_now()));
    assert_eq!(rc_real, 255, "wrong code:\n{out_real}\n{}", sshd.log());
    assert_eq!(rc_unknown, rc_real, "unknown:\n{out_unknown}");
    assert_eq!(
        out_unknown.replace(UNKNOWN, "USER"),
        out_real.replace(REAL, "USER")
    );

    // Before any success (a success changes how the account's later
    // failures are charged, whoever logs in).
    let (real, unknown) = (charges(&veild, REAL), charges(&veild, UNKNOWN));
    assert!(!real.is_empty(), "a failure is charged");
    assert_eq!(real, unknown);

    let (rc, out) = sshd.login_password(REAL, &format!("{PASSWORD}{}", code_now()));
    assert_eq!(
        rc,
        0,
        "right answer:\n{out}\n{}\n{}",
        sshd.log(),
        veild.stderr()
    );
    assert!(out.contains(&format!("({REAL})")), "{out}");

    let log = veild.log_with(3);
    let attempts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("event=attempt"))
        .collect();
    assert_eq!(attempts.len(), 3, "{log}");
    assert!(attempts.iter().all(|l| l.contains("prompts=one")), "{log}");
    assert!(attempts[0].contains("reason=wrong-code"), "{log}");
    assert!(
        attempts[1].contains(&format!("user={UNKNOWN} "))
            && attempts[1].contains("reason=unknown-user"),
        "{log}"
    );
    assert!(attempts[2].contains("outcome=allow"), "{log}");
    drop(sshd);
}

/// paramiko's password method (`SSHClient.connect(password=...)`), the
/// way Ansible and other Python tools log in: the password followed by
/// the code logs in, and a real account's wrong code and an unknown
/// account end in the same exception with the same text.
const PARAMIKO: &str = r#"
import sys, paramiko
port, user, answer = int(sys.argv[1]), sys.argv[2], sys.argv[3]
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
try:
    client.connect("127.0.0.1", port=port, username=user, password=answer,
                   look_for_keys=False, allow_agent=False, timeout=30)
except paramiko.SSHException as e:
    print("denied", type(e).__name__, str(e).replace(user, "USER"))
    sys.exit(0)
_, out, _ = client.exec_command("id -un")
print("in", out.read().decode().strip())
"#;

fn paramiko(port: u16, user: &str, answer: &str) -> String {
    // Debian's python3-paramiko is for the system interpreter.
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", PARAMIKO, &port.to_string(), user, answer])
        .output()
        .expect("/usr/bin/python3 (scripts/deps.sh test installs python3-paramiko)");
    assert!(
        out.status.success(),
        "paramiko: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Fails on the old main like the test above (no `one_prompt`).
#[test]
#[ignore = "needs root (adds an account, a PAM service, runs sshd): scripts/test.sh runs it as root"]
fn paramikos_password_method_logs_in_and_fails_alike_for_real_and_unknown_names() {
    require_root();
    let name = "v21para";
    let veild = Veild::from_toml("[lockout]\ndeny = 5\n[totp]\npolicy = \"required\"\n");
    let mut made = Accounts::new();
    made.add(name);
    run("usermod", &["-p", "*", "-s", "/bin/sh", name], "");
    veild.enrol(name, true);
    let sshd = Sshd::start_password(
        "v21m",
        &format!(
            "auth required {} socket={} timeout=10 one_prompt",
            paths::module().display(),
            veild.socket().display()
        ),
    );
    let real = paramiko(sshd.port, name, &format!("{PASSWORD}{}", wrong_code()));
    let unknown = paramiko(sshd.port, UNKNOWN, &format!("{PASSWORD}{}", code_now()));
    assert!(real.starts_with("denied AuthenticationException"), "{real}");
    assert_eq!(real, unknown);
    let ok = paramiko(sshd.port, name, &format!("{PASSWORD}{}", code_now()));
    assert_eq!(
        ok,
        format!("in {name}"),
        "{}\n{}",
        sshd.log(),
        veild.stderr()
    );
    let log = veild.log_with(3);
    assert!(
        log.contains(&format!("user={UNKNOWN} ")) && log.contains("reason=unknown-user"),
        "{log}"
    );
    assert!(log.contains("reason=wrong-code"), "{log}");
    drop(sshd);
}
