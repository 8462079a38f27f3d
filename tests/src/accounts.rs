//! Real system accounts for root-only tests and the bench: made with the
//! system's own tools (`useradd`, `chpasswd`, `passwd`, ...), refused if
//! the name is taken, and removed when the guard drops, pass or fail.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs a system tool with `stdin`; panics with its stderr if it fails.
pub fn run(program: &str, args: &[&str], stdin: &str) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/deps.sh test installs it)"));
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether NSS knows an account `name`.
pub fn exists(name: &str) -> bool {
    Command::new("getent")
        .args(["passwd", name])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The hash field of `name`'s line in /etc/shadow (empty if none).
pub fn shadow_hash(name: &str) -> String {
    let text = std::fs::read_to_string("/etc/shadow").expect("root reads /etc/shadow");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_default()
        .to_owned()
}

/// The accounts a test made; `userdel` (and their homes with
/// `remove_homes`) when dropped.
#[derive(Debug, Default)]
pub struct Accounts {
    names: Vec<String>,
    remove_homes: bool,
}

impl Accounts {
    /// A guard whose accounts keep no home (`useradd --no-create-home`).
    pub fn new() -> Accounts {
        Accounts::default()
    }

    /// A guard whose accounts get a home, removed with them.
    pub fn with_homes() -> Accounts {
        Accounts {
            names: Vec::new(),
            remove_homes: true,
        }
    }

    /// `useradd NAME` (shell nologin); panics if the name is taken, so a
    /// test never touches an account it did not make.
    pub fn add(&mut self, name: &str) {
        assert!(
            !exists(name),
            "an account {name} exists on this host: not touching it"
        );
        let home = if self.remove_homes {
            "--create-home"
        } else {
            "--no-create-home"
        };
        run("useradd", &[home, "--shell", "/usr/sbin/nologin", name], "");
        self.names.push(name.to_owned());
    }

    /// `useradd`, then `chpasswd` (through pam_unix's password line).
    pub fn add_with_password(&mut self, name: &str, password: &str) {
        self.add(name);
        run("chpasswd", &[], &format!("{name}:{password}\n"));
    }

    /// `userdel NAME` now (the bench turns a real name into an unknown
    /// one); panics if it stays.
    pub fn remove(&mut self, name: &str) {
        assert!(
            userdel(name, self.remove_homes),
            "could not remove test account {name}"
        );
        self.names.retain(|n| n != name);
    }
}

/// `userdel`, waiting a while for the user's processes to end, then forced.
fn userdel(name: &str, remove_homes: bool) -> bool {
    // userdel refuses while a process of the user still runs (an sshd
    // session child that has not exited yet): a CI run found `v21real`
    // left behind, and the next run's `add` refused it. Wait for it a
    // while, then force.
    let userdel = |force: bool| {
        let mut userdel = Command::new("userdel");
        if remove_homes {
            userdel.arg("--remove");
        }
        if force {
            userdel.arg("--force");
        }
        // 6: no such user (a test removed it already).
        userdel
            .arg(name)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| matches!(s.code(), Some(0 | 6)))
    };
    for _ in 0..50 {
        if userdel(false) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    userdel(true)
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for name in &self.names {
            if !userdel(name, self.remove_homes) {
                eprintln!("accounts: could not remove test account {name}");
            }
        }
    }
}
