//! The fresh-code window end to end: a real sshd (keyboard-interactive,
//! pam_veil for auth; `session required pam_loginuid.so` then
//! `session optional pam_veil.so`), the OpenSSH client through expect,
//! and a real `sudo -S` run inside that ssh session (PAM service `sudo`,
//! pam_veil its auth stack, `[service.sudo] fresh_code_window_s`). sudo
//! is given the password and an empty code: it passes inside the window
//! and, with the window's key absent, does not. Fails on the old main:
//! no session hooks, no window (the empty code was a wrong code).
//!
//! Root only: it adds an account, replaces /etc/pam.d/sudo and adds a
//! sudoers drop-in (both put back when it ends, pass or fail), runs sshd.
//! Ignored in a plain `cargo test`; `scripts/test.sh` runs it as root.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use veil_tests::accounts::{Accounts, run};
use veil_tests::root::require_root;
use veil_tests::sshd::Sshd;
use veil_tests::totp::{DEMO_SECRET, code_now};
use veil_tests::{Veild, paths};

const USER: &str = "v21sudo";
const PASSWORD: &str = "fresh-pass-2";

/// A file replaced (or made) for the test, the original put back on drop.
struct Replaced {
    path: PathBuf,
    original: Option<Vec<u8>>,
}

impl Replaced {
    fn with(path: &str, text: &str, mode: u32) -> Replaced {
        use std::os::unix::fs::PermissionsExt;
        let path = Path::new(path).to_owned();
        let original = std::fs::read(&path).ok();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        Replaced { path, original }
    }
}

impl Drop for Replaced {
    fn drop(&mut self) {
        match &self.original {
            Some(bytes) => {
                let _ = std::fs::write(&self.path, bytes);
            }
            None => {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Logs in over ssh with password and code and runs sudo -S in that
/// session with the password and an empty code; sudo's verdict as the
/// remote command prints it, and the client's output.
fn ssh_then_sudo(veild: &Veild) -> (String, String) {
    let args = format!("socket={} timeout=10", veild.socket().display());
    let module = paths::module();
    let _sudo_pam = Replaced::with(
        "/etc/pam.d/sudo",
        &format!(
            "auth required {} {args}\naccount required pam_permit.so\n\
             session required pam_permit.so\n",
            module.display()
        ),
        0o644,
    );
    let _sudoers = Replaced::with(
        "/etc/sudoers.d/v21-fresh-code",
        &format!("{USER} ALL=(root) ALL\n"),
        0o440,
    );
    let sshd = Sshd::start_with_session(
        "v21f",
        &format!("auth required {} {args}", module.display()),
        &format!(
            "session required pam_loginuid.so\nsession optional {} {args}",
            module.display()
        ),
    );
    // sudo -S reads one line per prompt: the password, then an empty code.
    let command = format!(
        "printf '%s\\n\\n' {PASSWORD} | sudo -S -k -p '' true && echo SUDO=OK || echo SUDO=DENIED; \
         cat /proc/self/sessionid; echo"
    );
    let (status, output) = sshd.login_running(USER, PASSWORD, &code_now(DEMO_SECRET), &command);
    assert_eq!(status, 0, "{output}\n{}", sshd.log());
    let verdict = if output.contains("SUDO=OK") {
        "ok"
    } else if output.contains("SUDO=DENIED") {
        "denied"
    } else {
        panic!("sudo did not run: {output}\n{}", sshd.log())
    };
    (verdict.to_owned(), output)
}

fn account() -> Accounts {
    let mut made = Accounts::new();
    made.add(USER);
    run("usermod", &["-p", "*", "-s", "/bin/sh", USER], "");
    made
}

/// One test, two veilds in turn: both runs replace the one
/// /etc/pam.d/sudo and use one account, so they must not overlap.
#[test]
#[ignore = "needs root (an account, /etc/pam.d/sudo, sudoers, sshd): scripts/test.sh runs it as root"]
fn sudo_in_an_ssh_session_takes_the_password_alone_within_the_window_only() {
    require_root();
    let _made = account();

    // With [service.sudo] fresh_code_window_s: the password alone passes.
    let veild =
        Veild::from_toml("[lockout]\ndeny = 5\n[service.sudo]\nfresh_code_window_s = 600\n");
    veild.add_user(USER, PASSWORD);
    veild.enroll_totp(USER, DEMO_SECRET);
    let (verdict, output) = ssh_then_sudo(&veild);
    let log = veild.log_with(2);
    assert_eq!(verdict, "ok", "{output}\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("event=session") && l.contains("outcome=bound")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("service=sudo") && l.contains("reason=fresh-code-window")),
        "{log}"
    );
    drop(veild);

    // Without a window: the same login and sudo need the code.
    let veild = Veild::from_toml("[lockout]\ndeny = 5\n");
    veild.add_user(USER, PASSWORD);
    veild.enroll_totp(USER, DEMO_SECRET);
    let (verdict, output) = ssh_then_sudo(&veild);
    let log = veild.log_with(2);
    assert_eq!(verdict, "denied", "{output}\n{log}");
    // The session phase reached veild, which bound nothing.
    assert!(
        log.lines()
            .any(|l| l.contains("event=session") && l.contains("outcome=no-window-configured")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("service=sudo") && l.contains("reason=wrong-code")),
        "{log}"
    );
}
