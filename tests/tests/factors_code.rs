//! `factors=code`: the module asks only `Verification code:` and veild
//! checks the code and the ledger, not the password, for services where
//! an earlier method proved the account. Through a real sshd
//! (`AuthenticationMethods publickey,keyboard-interactive`, its own PAM
//! service) with a real ssh client and key: the key and the right code
//! log in, the key and a wrong code are denied, and without the key sshd
//! never gets to veil.
//! A non-root peer sending code-only requests to the socket itself gets
//! the denial (it would be a password-free oracle for codes).
//!
//! Root only: it adds an account, a PAM service file and runs sshd; and it
//! switches uid. Ignored in a plain `cargo test`; `scripts/test.sh` runs
//! it as root. Everything it made is removed when it ends, pass or fail.

#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use veil_proto::{Reply, Request, Verdict, ask};
use veil_tests::accounts::{Accounts, run};
use veil_tests::root::require_root;
use veil_tests::wire::{PASSWORD, code_now, wrong_code};
use veil_tests::{Veild, paths};

const NAME: &str = "v14bkey";

/// `/etc/pam.d/SERVICE`, removed on drop.
struct PamService(PathBuf);

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// sshd in the foreground, killed on drop.
struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One ssh login with `key` (or none) answering only `Verification code:`;
/// a password prompt is exit 91. Returns (exit status, output).
fn ssh_login(dir: &Path, port: u16, key: Option<&Path>, code: &str) -> (i32, String) {
    let script = dir.join("login.exp");
    std::fs::write(
        &script,
        r#"set timeout 30
lassign $argv port user key
log_user 1
if {$key eq "none"} {
    set auth [list -o PreferredAuthentications=keyboard-interactive -o PubkeyAuthentication=no -o IdentityFile=/dev/null]
} else {
    set auth [list -o PreferredAuthentications=publickey,keyboard-interactive -o IdentityFile=$key]
}
spawn -noecho ssh -F /dev/null -p $port -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes \
    -o NumberOfPasswordPrompts=1 {*}$auth $user@127.0.0.1 id
expect {
    -re {Password: $} { exit 91 }
    -re {Verification code: $} { send -- "$env(V14B_CODE)\r" }
    timeout { exit 90 }
    eof { lassign [wait] pid spawn_id os_error status; exit $status }
}
expect {
    -re {Verification code: $} { exit 92 }
    timeout { exit 90 }
    eof
}
lassign [wait] pid spawn_id os_error status
exit $status
"#,
    )
    .unwrap();
    let key = key.map_or("none".to_owned(), |k| k.display().to_string());
    let out = Command::new("expect")
        .arg("-f")
        .arg(&script)
        .args([&port.to_string(), NAME, &key])
        .env("V14B_CODE", code)
        .output()
        .expect("run expect (scripts/deps.sh test installs it)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace('\r', ""),
    )
}

#[test]
#[ignore = "needs root (adds an account, a PAM service, runs sshd): scripts/test.sh runs it as root"]
fn through_sshd_a_key_and_the_right_code_log_in_and_a_wrong_code_is_denied() {
    require_root();
    let veild = Veild::from_toml("[totp]\npolicy = \"required\"\n");
    let mut made = Accounts::new();
    made.add(NAME);
    // Not locked ('!') for sshd, and no system password.
    run("usermod", &["-p", "*", "-s", "/bin/sh", NAME], "");
    veild.enrol(NAME, true);

    let dir = tempfile::Builder::new()
        .prefix("v14b-sshd-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = dir.path();
    let keygen = |path: &Path| {
        run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                path.to_str().unwrap(),
            ],
            "",
        )
    };
    keygen(&d.join("host"));
    keygen(&d.join("client"));
    let public = std::fs::read_to_string(d.join("client.pub")).unwrap();
    std::fs::write(d.join(format!("{NAME}.keys")), public).unwrap();
    std::fs::set_permissions(
        d.join(format!("{NAME}.keys")),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    // sshd's PAM service is its program name.
    let service = format!("v14b-sshd-{}", std::process::id());
    let pam_file = PamService(Path::new("/etc/pam.d").join(&service));
    std::fs::write(
        &pam_file.0,
        format!(
            "auth required {} socket={} timeout=10 factors=code\n\
             account required pam_permit.so\n\
             session required pam_permit.so\n\
             password required pam_deny.so\n",
            paths::module().display(),
            veild.socket().display()
        ),
    )
    .unwrap();
    let port = free_port();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {dir}/host\nPidFile {dir}/sshd.pid\n\
             UsePAM yes\nKbdInteractiveAuthentication yes\nPubkeyAuthentication yes\n\
             AuthenticationMethods publickey,keyboard-interactive\nPasswordAuthentication no\n\
             AuthorizedKeysFile {dir}/%u.keys\nStrictModes no\nPermitRootLogin no\n\
             MaxAuthTries 4\nPrintMotd no\nBanner none\n",
            dir = d.display()
        ),
    )
    .unwrap();
    let program = d.join(&service);
    std::fs::copy("/usr/sbin/sshd", &program).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let sshd = Sshd(
        Command::new(&program)
            .arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd (scripts/deps.sh test installs openssh-server)"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not listen: {}",
            std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let key = d.join("client");
    let sshd_log = || std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();

    let (rc, out) = ssh_login(d, port, Some(&key), &code_now());
    assert_eq!(
        rc,
        0,
        "key + right code:\n{out}\n{}\n{}",
        sshd_log(),
        veild.stderr()
    );
    assert!(out.contains(&format!("({NAME})")), "{out}");

    let (rc, out) = ssh_login(d, port, Some(&key), &wrong_code());
    assert_eq!(rc, 255, "key + wrong code:\n{out}\n{}", sshd_log());

    // Without the key sshd asks nothing of veil: publickey comes first.
    let (rc, out) = ssh_login(d, port, None, &code_now());
    assert_eq!(rc, 255, "no key:\n{out}\n{}", sshd_log());
    assert!(!out.contains("Verification code"), "{out}");

    let log = veild.log_with(2);
    let attempts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("event=attempt"))
        .collect();
    assert_eq!(attempts.len(), 2, "{log}");
    assert!(attempts.iter().all(|l| l.contains("factors=code")), "{log}");
    assert!(attempts[0].contains("outcome=allow"), "{log}");
    assert!(attempts[1].contains("reason=wrong-code"), "{log}");
    drop(sshd);
}

#[test]
#[ignore = "needs root (switches uid): scripts/test.sh runs it as root"]
fn a_non_root_peer_cannot_ask_code_only_even_about_its_own_account() {
    require_root();
    let veild = Veild::from_toml("");
    veild.enrol("nobody", true);
    let socket = veild.socket();
    let ask_as_nobody = |code_only: &str| {
        veil_tests::root::rerun_as(
            65534,
            65534,
            "code_only_peer",
            &[
                ("V14B_SOCKET", socket.as_os_str()),
                ("V14B_CODE_ONLY", code_only.as_ref()),
            ],
        )
    };
    assert!(ask_as_nobody("1").contains("VERDICT=Deny"));
    let log = veild.log_with(1);
    assert!(
        log.contains("user=nobody") && log.contains("reason=peer-not-permitted"),
        "{log}"
    );
    // The same peer with both factors (its own screen locker) is let in:
    // the refusal is for code-only alone (the denial used no code step).
    assert!(ask_as_nobody("0").contains("VERDICT=Allow"));
}

/// Runs only as the child of the test above (uid nobody).
#[test]
#[ignore = "a helper: run as uid nobody by a_non_root_peer_cannot_ask_code_only_even_about_its_own_account"]
fn code_only_peer() {
    let (Ok(socket), Ok(code_only)) = (
        std::env::var("V14B_SOCKET"),
        std::env::var("V14B_CODE_ONLY"),
    ) else {
        return;
    };
    let mut req = if code_only == "1" {
        Request::new("nobody", Reply::missing(), Reply::from(code_now().as_str()))
    } else {
        Request::new(
            "nobody",
            Reply::from(PASSWORD),
            Reply::from(code_now().as_str()),
        )
    };
    req.code_only = code_only == "1";
    let verdict: Verdict = ask(Path::new(&socket), &req, Duration::from_secs(10), Some(0)).unwrap();
    println!("VERDICT={verdict:?}");
}
