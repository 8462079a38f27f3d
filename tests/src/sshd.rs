//! A real sshd on a loopback port with a PAM service of its own (sshd's
//! PAM service is its program name, so the binary is copied under a fresh
//! one), and a real ssh client driven by expect. Root only. Everything is
//! removed when the guard drops, pass or fail.
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

impl Sshd {
    /// sshd on 127.0.0.1 allowing keyboard-interactive only, whose PAM
    /// auth stack is `auth_lines`.
    pub fn start(tag: &str, auth_lines: &str) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{tag}-sshd-"))
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path();
        run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                d.join("host").to_str().unwrap(),
            ],
            "",
        );
        let service = format!("{tag}-sshd-{}", std::process::id());
        let pam_file = Path::new("/etc/pam.d").join(&service);
        std::fs::write(
            &pam_file,
            format!(
                "{auth_lines}\naccount required pam_permit.so\n\
                 session required pam_permit.so\npassword required pam_deny.so\n"
            ),
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {dir}/host\nPidFile {dir}/sshd.pid\n\
                 UsePAM yes\nKbdInteractiveAuthentication yes\nPubkeyAuthentication no\n\
                 AuthenticationMethods keyboard-interactive\nPasswordAuthentication no\n\
                 StrictModes no\nPermitRootLogin no\nMaxAuthTries 2\nMaxStartups 100\n\
                 PrintMotd no\nBanner none\nUseDNS no\n",
                dir = d.display()
            ),
        )
        .unwrap();
        let program = d.join(&service);
        std::fs::copy("/usr/sbin/sshd", &program).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Command::new(&program)
            .arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd (scripts/deps.sh test installs openssh-server)");
        let sshd = Sshd {
            child,
            dir,
            pam_file,
            port,
        };
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

    /// One keyboard-interactive login as `user` answering `Password:` and
    /// `Verification code:`, running `id`: (exit status, output, time
    /// from start to exit). 91: asked again; 90: timed out.
    pub fn login(&self, user: &str, password: &str, code: &str) -> (i32, String, Duration) {
        let script = self.dir.path().join("login.exp");
        std::fs::write(
            &script,
            r#"set timeout 60
lassign $argv port user
log_user 1
spawn -noecho ssh -F /dev/null -p $port -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o PubkeyAuthentication=no \
    -o PreferredAuthentications=keyboard-interactive -o NumberOfPasswordPrompts=1 \
    $user@127.0.0.1 id
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
"#,
        )
        .unwrap();
        let started = Instant::now();
        let out = Command::new("expect")
            .arg("-f")
            .arg(&script)
            .args([&self.port.to_string(), user])
            .env("SSHD_PASSWORD", password)
            .env("SSHD_CODE", code)
            .output()
            .expect("run expect (scripts/deps.sh test installs it)");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).replace('\r', ""),
            started.elapsed(),
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pam_file);
    }
}
