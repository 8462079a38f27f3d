//! A real sshd on a loopback port with a PAM service of its own (sshd's
//! PAM service is its program name, so the binary is copied under a fresh
//! one), and a real ssh client driven by expect. Root only. Everything is
//! removed when the guard drops, pass or fail.
//!
//! Two shapes: keyboard-interactive alone ([`Sshd::start`], password and
//! code through veil), and publickey then keyboard-interactive
//! ([`Sshd::start_after_publickey`], a client key made here and accepted
//! for every user: veil asks the code only).
#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::accounts::run;

/// sshd in the foreground, killed (and its PAM file removed) on drop.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    dir: TempDir,
    pam_file: PathBuf,
    pub port: u16,
}

/// One timed login (see [`Sshd::login_timed`]).
#[derive(Debug, Clone)]
pub struct Login {
    /// expect's exit status: ssh's, or 91 (asked again), 90 (timed out).
    pub status: i32,
    /// What the client printed (the prompts and `id`'s output).
    pub output: String,
    /// From the start of ssh to the `Password:` prompt, as expect saw it.
    pub first_prompt: Option<Duration>,
    /// From the start of expect to its exit.
    pub total: Duration,
}

/// The expect script for a password-and-code login. It prints the
/// milliseconds from spawning ssh to the first prompt on a line of its own.
const PASSWORD_AND_CODE: &str = r#"set timeout 60
lassign $argv port user
log_user 1
set t0 [clock milliseconds]
spawn -noecho ssh -F /dev/null -p $port -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o PubkeyAuthentication=no \
    -o PreferredAuthentications=keyboard-interactive -o NumberOfPasswordPrompts=1 \
    $user@127.0.0.1 id
expect {
    -re {Password: $} {
        send_user "\nveil-sshd-first-prompt-ms=[expr {[clock milliseconds] - $t0}]\n"
        send -- "$env(SSHD_PASSWORD)\r"
    }
    timeout { exit 90 }
    eof { lassign [wait] pid spawn_id os_error status; exit $status }
}
expect {
    -re {Verification code: $} { send -- "$env(SSHD_CODE)\r" }
    timeout { exit 90 }
    eof { lassign [wait] pid spawn_id os_error status; exit $status }
}
expect {
    -re {(Password|Verification code): $} { exit 91 }
    timeout { exit 90 }
    eof
}
lassign [wait] pid spawn_id os_error status
exit $status
"#;

/// A password-and-code login that runs `$env(SSHD_COMMAND)` remotely
/// (with a terminal, as a person's shell has one).
const PASSWORD_AND_CODE_RUN: &str = r#"set timeout 60
lassign $argv port user
log_user 1
spawn -noecho ssh -tt -F /dev/null -p $port -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o PubkeyAuthentication=no \
    -o PreferredAuthentications=keyboard-interactive -o NumberOfPasswordPrompts=1 \
    $user@127.0.0.1 $env(SSHD_COMMAND)
expect {
    -re {Password: $} { send -- "$env(SSHD_PASSWORD)\r" }
    timeout { exit 90 }
    eof { lassign [wait] pid spawn_id os_error status; exit $status }
}
expect {
    -re {Verification code: $} { send -- "$env(SSHD_CODE)\r" }
    timeout { exit 90 }
    eof { lassign [wait] pid spawn_id os_error status; exit $status }
}
expect {
    -re {(Password|Verification code): $} { exit 91 }
    timeout { exit 90 }
    eof
}
lassign [wait] pid spawn_id os_error status
exit $status
"#;

/// The expect script for a code-only login, with the client key or none:
/// a password prompt is exit 91, a second code prompt 92.
const CODE_ONLY: &str = r#"set timeout 30
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
    -re {Verification code: $} { send -- "$env(SSHD_CODE)\r" }
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
"#;

/// The expect script for the `password` method: the client's own prompt,
/// answered once; a second prompt is exit 91.
const PASSWORD_METHOD: &str = r#"set timeout 60
lassign $argv port user
log_user 1
spawn -noecho ssh -F /dev/null -p $port -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o PubkeyAuthentication=no \
    -o PreferredAuthentications=password -o NumberOfPasswordPrompts=1 \
    $user@127.0.0.1 id
expect {
    -re {password: $} { send -- "$env(SSHD_ANSWER)\r" }
    timeout { exit 90 }
    eof { lassign [wait] pid spawn_id os_error status; exit $status }
}
expect {
    -re {password: $} { exit 91 }
    timeout { exit 90 }
    eof
}
lassign [wait] pid spawn_id os_error status
exit $status
"#;

fn keygen(path: &Path) {
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
    );
}

impl Sshd {
    /// sshd on 127.0.0.1 allowing keyboard-interactive only, whose PAM
    /// auth stack is `auth_lines`.
    pub fn start(tag: &str, auth_lines: &str) -> Sshd {
        Sshd::launch(
            tag,
            auth_lines,
            "KbdInteractiveAuthentication yes\nPasswordAuthentication no\n\
             PubkeyAuthentication no\nAuthenticationMethods keyboard-interactive\n\
             MaxAuthTries 2\nMaxStartups 100\n",
        )
    }

    /// sshd on 127.0.0.1 requiring publickey, then keyboard-interactive
    /// (`auth_lines`); the key is [`Sshd::client_key`], accepted for every
    /// user.
    pub fn start_after_publickey(tag: &str, auth_lines: &str) -> Sshd {
        Sshd::launch(
            tag,
            auth_lines,
            "KbdInteractiveAuthentication yes\nPasswordAuthentication no\n\
             PubkeyAuthentication yes\nAuthenticationMethods publickey,keyboard-interactive\n\
             AuthorizedKeysFile %D/authorized_keys\nMaxAuthTries 4\n",
        )
    }

    /// sshd on 127.0.0.1 allowing the `password` method only (Debian's
    /// default: `KbdInteractiveAuthentication no`, `PasswordAuthentication
    /// yes`): sshd answers every echo-off PAM prompt with what the client
    /// sent, so `auth_lines` must ask one (`one_prompt`).
    pub fn start_password(tag: &str, auth_lines: &str) -> Sshd {
        Sshd::launch(
            tag,
            auth_lines,
            "KbdInteractiveAuthentication no\nPasswordAuthentication yes\n\
             PubkeyAuthentication no\nAuthenticationMethods password\n\
             MaxAuthTries 2\nMaxStartups 100\n",
        )
    }

    /// [`Sshd::start`] (keyboard-interactive alone) whose PAM session
    /// stack is `session_lines` instead of `session required pam_permit.so`.
    pub fn start_with_session(tag: &str, auth_lines: &str, session_lines: &str) -> Sshd {
        Sshd::launch_with(
            tag,
            auth_lines,
            session_lines,
            "KbdInteractiveAuthentication yes\nPasswordAuthentication no\n\
             PubkeyAuthentication no\nAuthenticationMethods keyboard-interactive\n\
             MaxAuthTries 2\nMaxStartups 100\n",
        )
    }

    fn launch(tag: &str, auth_lines: &str, methods: &str) -> Sshd {
        Sshd::launch_with(tag, auth_lines, "session required pam_permit.so", methods)
    }

    fn launch_with(tag: &str, auth_lines: &str, session_lines: &str, methods: &str) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{tag}-sshd-"))
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path();
        keygen(&d.join("host"));
        keygen(&d.join("client"));
        let public = d.join("authorized_keys");
        std::fs::copy(d.join("client.pub"), &public).unwrap();
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
        let service = format!("{tag}-sshd-{}", std::process::id());
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {dir}/host\nPidFile {dir}/sshd.pid\n\
                 UsePAM yes\n{methods}StrictModes no\nPermitRootLogin no\n\
                 PrintMotd no\nBanner none\nUseDNS no\n{newer}",
                dir = d.display(),
                methods = methods.replace("%D", &d.display().to_string()),
                newer = newer_options(&service),
            ),
        )
        .unwrap();
        let program = d.join(&service);
        std::fs::copy("/usr/sbin/sshd", &program).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let spawn = || {
            Command::new(&program)
                .arg("-D")
                .arg("-f")
                .arg(d.join("sshd_config"))
                .arg("-E")
                .arg(d.join("sshd.log"))
                .stdin(Stdio::null())
                .spawn()
        };
        // The copy was just written: a child another test thread forked
        // meanwhile may still hold it open for writing until it execs, and
        // exec then fails with ETXTBSY (seen once: the test failed and,
        // the PAM file written before, left /etc/pam.d/v21-sshd-PID behind,
        // which made the package test's purge refuse). Try again briefly.
        let mut child = spawn();
        for _ in 0..40 {
            match &child {
                Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(25));
                    child = spawn();
                }
                _ => break,
            }
        }
        let child = child.expect("start sshd (scripts/deps.sh test installs openssh-server)");
        // Written once sshd runs, so that nothing above can leave it behind
        // (sshd reads it at the first login); Drop removes it.
        let pam_file = Path::new("/etc/pam.d").join(&service);
        let written = std::fs::write(
            &pam_file,
            format!(
                "{auth_lines}\naccount required pam_permit.so\n\
                 {session_lines}\npassword required pam_deny.so\n"
            ),
        );
        let sshd = Sshd {
            child,
            dir,
            pam_file,
            port,
        };
        written.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The private key [`Sshd::start_after_publickey`] accepts.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// One keyboard-interactive login as `user` answering `Password:` and
    /// `Verification code:`, running `id`: (exit status, output, time
    /// from start to exit). 91: asked again; 90: timed out.
    pub fn login(&self, user: &str, password: &str, code: &str) -> (i32, String, Duration) {
        let l = self.login_timed(user, password, code);
        (l.status, l.output, l.total)
    }

    /// [`Sshd::login`], with the time to the first prompt.
    pub fn login_timed(&self, user: &str, password: &str, code: &str) -> Login {
        let script = self.script("login.exp", PASSWORD_AND_CODE);
        let started = Instant::now();
        let out = Command::new("expect")
            .arg("-f")
            .arg(&script)
            .args([&self.port.to_string(), user])
            .env("SSHD_PASSWORD", password)
            .env("SSHD_CODE", code)
            .output()
            .expect("run expect (scripts/deps.sh test installs it)");
        let total = started.elapsed();
        let output = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        let first_prompt = output
            .lines()
            .find_map(|l| l.strip_prefix("veil-sshd-first-prompt-ms="))
            .and_then(|ms| ms.trim().parse().ok())
            .map(Duration::from_millis);
        Login {
            status: out.status.code().unwrap_or(-1),
            output,
            first_prompt,
            total,
        }
    }

    /// One keyboard-interactive login answering `Password:` and
    /// `Verification code:` that runs `command` (one shell word list, in
    /// a terminal): (exit status, output). 91: asked again; 90: timed out.
    pub fn login_running(
        &self,
        user: &str,
        password: &str,
        code: &str,
        command: &str,
    ) -> (i32, String) {
        let script = self.script("login-run.exp", PASSWORD_AND_CODE_RUN);
        let out = Command::new("expect")
            .arg("-f")
            .arg(&script)
            .args([&self.port.to_string(), user])
            .env("SSHD_PASSWORD", password)
            .env("SSHD_CODE", code)
            .env("SSHD_COMMAND", command)
            .output()
            .expect("run expect (scripts/deps.sh test installs it)");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).replace('\r', ""),
        )
    }

    /// One login answering only `Verification code:`, with the client key
    /// (`with_key`) or none: (exit status, output). 91: asked for a
    /// password; 92: asked for a code again; 90: timed out.
    pub fn login_code_only(&self, user: &str, with_key: bool, code: &str) -> (i32, String) {
        let script = self.script("code-only.exp", CODE_ONLY);
        let key = if with_key {
            self.client_key().display().to_string()
        } else {
            "none".to_owned()
        };
        let out = Command::new("expect")
            .arg("-f")
            .arg(&script)
            .args([&self.port.to_string(), user, &key])
            .env("SSHD_CODE", code)
            .output()
            .expect("run expect (scripts/deps.sh test installs it)");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).replace('\r', ""),
        )
    }

    /// One login over the `password` method as `user`, typing `answer`
    /// at the client's own `user@host's password: ` prompt and running
    /// `id`: (exit status, output). 91: asked again; 90: timed out.
    pub fn login_password(&self, user: &str, answer: &str) -> (i32, String) {
        let script = self.script("password.exp", PASSWORD_METHOD);
        let out = Command::new("expect")
            .arg("-f")
            .arg(&script)
            .args([&self.port.to_string(), user])
            .env("SSHD_ANSWER", answer)
            .output()
            .expect("run expect (scripts/deps.sh test installs it)");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).replace('\r', ""),
        )
    }

    fn script(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// sshd_config lines for options newer than Debian 12's OpenSSH 9.2 (which
/// refuses options it does not know), where this sshd knows them: 9.8+
/// (Debian 13) refuses a source for a while after a few failed logins,
/// and every failure here comes from 127.0.0.1, so `PerSourcePenalties
/// no`; 10.0's PAM service is `sshd` whatever the program's name (the
/// login runs in sshd-session), so `PAMServiceName` names ours. Without
/// these lines one_prompt_sshd.rs fails in a Debian 13 root ("a failure is
/// charged": its logins went to Debian's own `sshd` stack, never to veil).
fn newer_options(service: &str) -> String {
    static KNOWN: std::sync::OnceLock<(bool, bool)> = std::sync::OnceLock::new();
    let knows = |option: &str| {
        Command::new("/usr/sbin/sshd")
            .args(["-G", "-f", "/dev/null", "-o", option])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let (penalties, pam_service) = *KNOWN.get_or_init(|| {
        (
            knows("PerSourcePenalties=no"),
            knows("PAMServiceName=veil-probe"),
        )
    });
    let mut lines = String::new();
    if penalties {
        lines.push_str("PerSourcePenalties no\n");
    }
    if pam_service {
        lines.push_str(&format!("PAMServiceName {service}\n"));
    }
    lines
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pam_file);
    }
}

/// Debian's stock sshd_config (as shipped on Debian 12), for `sshd -T`.
const DEBIAN_SSHD_CONFIG: &str = include_str!("../../packaging/testdata/sshd_config-debian");

/// A temp sshd_config in `dir`: Debian's default with its Include pointed
/// at an empty drop-in dir there (this host's drop-ins stay out), `extra`
/// first (sshd takes the first value) and `matches` (Match blocks) at the
/// end.
pub fn debian_sshd_config(dir: &Path, extra: &str, matches: &str) -> PathBuf {
    let drop_ins = dir.join("sshd_config.d");
    std::fs::create_dir_all(&drop_ins).unwrap();
    let text = DEBIAN_SSHD_CONFIG.replace(
        "Include /etc/ssh/sshd_config.d/*.conf",
        &format!("{extra}Include {}/*.conf", drop_ins.display()),
    );
    assert_ne!(text, DEBIAN_SSHD_CONFIG, "Debian's sshd_config changed");
    let path = dir.join("sshd_config");
    std::fs::write(&path, format!("{text}{matches}")).unwrap();
    path
}
