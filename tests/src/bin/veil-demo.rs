//! veil-demo: real PAM conversations through libpam and pam_veil.so against
//! a throwaway veild, printed as one table. Every failure row should read
//! the same: PAM_AUTH_ERR, the same two prompts, the same reply bytes, the
//! same time. Only veild's audit log (last column) knows why.
//!
//! As root it also runs a second veild with `[password] source = "system"`:
//! a system account made for the run (`useradd` + `chpasswd`, deleted on
//! every way out) logs in with its /etc/shadow password and a code, and
//! fails with a wrong password, in the same table.
//!
//! Build first: `cargo build -p pam-veil -p veil-daemon -p veil-tests`, then
//! run `target/debug/veil-demo` as root (veild answers a non-root caller
//! only about its own account).
//!
//! The reply bytes are recorded by a relay socket between the module and
//! veild (`veil_tests::recorder`): they are the bytes veild really sent in
//! that very conversation.

#![forbid(unsafe_code)]

use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use veil_proto::{ALLOW, DENY};
use veil_tests::pam::{self, socket_args};
use veil_tests::recorder::Recorder;
use veil_tests::totp::{DEMO_SECRET, code_now, wrong_code};
use veil_tests::{Attempt, DaemonConfig, PamRun, PamStack, Veild, paths};

const FAILURE_DELAY_MS: u64 = 500;
const DENY_LIMIT: u32 = 3;
const RHOST: &str = "203.0.113.10";

struct Row {
    case: String,
    run: PamRun,
    reply: Vec<u8>,
    reason: String,
}

fn main() -> ExitCode {
    match demo() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("veil-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<bool, String> {
    for name in [paths::MODULE_FILE, "veild", "veilctl"] {
        let path = paths::bin_dir().join(name);
        if !path.exists() {
            return Err(format!(
                "{} is missing: run `cargo build -p pam-veil -p veil-daemon` first",
                path.display()
            ));
        }
    }
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
        != 0
    {
        eprintln!(
            "veil-demo: not root: veild will refuse to answer about other accounts, so every row will fail"
        );
    }

    let config = DaemonConfig {
        failure_delay_ms: FAILURE_DELAY_MS,
        deny: DENY_LIMIT,
        argon2_m_cost_kib: 19456,
        argon2_t_cost: 2,
        ..DaemonConfig::default()
    };
    // Dropped (veild killed, temp dirs removed) on every way out, panics included.
    let veild = Veild::start(config);
    let relay_dir = tempfile::Builder::new()
        .prefix("veil-demo-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let recorder = Recorder::start(&relay_dir.path().join("relay.sock"), &veild.socket())
        .map_err(|e| e.to_string())?;
    let stack = PamStack::veil(&socket_args(recorder.path(), "5"));

    let password = "correct horse battery staple";
    for user in ["alice", "bob", "carol", "dave"] {
        veild.add_user(user, password);
        veild.enroll_totp(user, DEMO_SECRET);
    }

    println!(
        "veil demo: a throwaway veild (temp socket, temp SQLite) and real libpam conversations"
    );
    println!(
        "  veild: failure_delay_ms={FAILURE_DELAY_MS}, lockout deny={DENY_LIMIT} per (user, source), TOTP required, argon2id m=19456 KiB t=2"
    );
    println!("  PAM:   {}", stack.text().trim());
    println!(
        "  users alice, bob, carol, dave share one password and one TOTP secret; every attempt from rhost {RHOST}"
    );
    println!("  reply bytes: recorded on a relay socket between pam_veil.so and veild");
    println!();

    let mut rows = Vec::new();
    let mut attempt = |case: &str, user: &str, answers: [&str; 2]| -> Result<(), String> {
        rows.push(attempt_on(&veild, &recorder, &stack, case, user, answers));
        Ok(())
    };
    let alice_code = code_now(DEMO_SECRET);
    attempt("right password and code", "alice", [password, &alice_code])?;
    attempt("wrong password", "bob", ["hunter2", &code_now(DEMO_SECRET)])?;
    attempt(
        "unknown user",
        "mallory",
        [password, &code_now(DEMO_SECRET)],
    )?;
    attempt("wrong code", "carol", [password, &wrong_code(DEMO_SECRET)])?;
    attempt(
        "replayed code (alice's, again)",
        "alice",
        [password, &alice_code],
    )?;
    // Recovery codes stand in for a lost phone, once each; a recovery code
    // for a name that does not exist is denied like everything else.
    let made = veild.veilctl(&["recovery", "new", "bob"], "");
    let codes: Vec<String> = String::from_utf8_lossy(&made.stdout)
        .lines()
        .filter(|l| l.starts_with("    "))
        .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let [first, second, ..] = codes.as_slice() else {
        return Err(format!(
            "veilctl recovery new printed {} codes",
            codes.len()
        ));
    };
    attempt(
        "recovery code in place of the code",
        "bob",
        [password, first],
    )?;
    attempt("the same recovery code again", "bob", [password, first])?;
    attempt(
        "unknown user, a recovery code",
        "mallory",
        [password, second],
    )?;
    for i in 1..=DENY_LIMIT {
        attempt(
            &format!("wrong password {i}/{DENY_LIMIT}"),
            "dave",
            ["guess", &code_now(DEMO_SECRET)],
        )?;
    }
    attempt(
        "locked: another guess",
        "dave",
        ["guess", &code_now(DEMO_SECRET)],
    )?;
    attempt(
        "locked: right password and code",
        "dave",
        [password, &code_now(DEMO_SECRET)],
    )?;

    // The same conversations against a second veild with `source =
    // "system"`: a system account made for the run logs in with its
    // /etc/shadow password. Root only (useradd, and veild reads shadow).
    let mut successes = 2;
    if nix::unistd::geteuid().is_root() {
        let account = SystemAccount::add(SYSTEM_USER, SYSTEM_PASSWORD)?;
        let system = Veild::from_toml(&format!(
            "failure_delay_ms = {FAILURE_DELAY_MS}\n[lockout]\ndeny = {DENY_LIMIT}\n[password]\nsource = \"system\"\n"
        ));
        system.enroll_totp(account.0, DEMO_SECRET);
        let recorder = Recorder::start(&relay_dir.path().join("system.sock"), &system.socket())
            .map_err(|e| e.to_string())?;
        let stack = PamStack::veil(&socket_args(recorder.path(), "5"));
        rows.push(attempt_on(
            &system,
            &recorder,
            &stack,
            "source=system: system password and code",
            SYSTEM_USER,
            [SYSTEM_PASSWORD, &code_now(DEMO_SECRET)],
        ));
        rows.push(attempt_on(
            &system,
            &recorder,
            &stack,
            "source=system: wrong password",
            SYSTEM_USER,
            ["hunter2", &code_now(DEMO_SECRET)],
        ));
        successes = 3;
        println!(
            "  rows marked source=system: a second veild with [password] source = \"system\"; {SYSTEM_USER} is a system account made for this run (useradd + chpasswd, removed at the end) with the same TOTP secret"
        );
        println!();
    } else {
        println!("  (not root: the source=system rows, which add a system account, are left out)");
        println!();
    }

    print_table(&rows);
    Ok(verdict(&rows, successes))
}

const SYSTEM_USER: &str = "veil-demo-sys";
const SYSTEM_PASSWORD: &str = "the system password, from chpasswd";

/// A system account for the run; removed when dropped, on every way out.
struct SystemAccount(&'static str);

impl SystemAccount {
    fn add(name: &'static str, password: &str) -> Result<SystemAccount, String> {
        use std::process::{Command, Stdio};
        let exists = Command::new("getent")
            .args(["passwd", name])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if exists {
            return Err(format!(
                "an account {name} exists already (left by an interrupted demo?): remove it with `userdel {name}`"
            ));
        }
        let status = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin", name])
            .status()
            .map_err(|e| format!("useradd: {e}"))?;
        if !status.success() {
            return Err(format!("useradd {name}: {status}"));
        }
        let account = SystemAccount(name);
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("chpasswd: {e}"))?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().ok_or("chpasswd: no stdin")?;
            writeln!(stdin, "{name}:{password}").map_err(|e| format!("chpasswd: {e}"))?;
        }
        let status = child.wait().map_err(|e| format!("chpasswd: {e}"))?;
        if !status.success() {
            return Err(format!("chpasswd {name}: {status}"));
        }
        Ok(account)
    }
}

impl Drop for SystemAccount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(self.0).status();
    }
}

/// One conversation through `stack` (whose relay `recorder` leads to
/// `veild`): its PAM result, the bytes veild sent, the audit reason.
fn attempt_on(
    veild: &Veild,
    recorder: &Recorder,
    stack: &PamStack,
    case: &str,
    user: &str,
    answers: [&str; 2],
) -> Row {
    let before = audit_lines(veild).len();
    let run = pam::authenticate(stack, &Attempt::new(user, &answers).from_host(RHOST));
    let reply = recorder.take().concat();
    let reason = new_audit_reason(veild, before);
    Row {
        case: case.to_owned(),
        run,
        reply,
        reason,
    }
}

fn audit_lines(veild: &Veild) -> Vec<String> {
    veild
        .stderr()
        .lines()
        .filter(|l| l.contains("event=attempt"))
        .map(str::to_owned)
        .collect()
}

/// The `reason=` of the first audit line after `before` lines (veild writes
/// them from its own thread, so wait a moment for it).
fn new_audit_reason(veild: &Veild, before: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let lines = audit_lines(veild);
        if let Some(line) = lines.get(before) {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key))
                    .unwrap_or("?")
                    .to_owned()
            };
            return field("reason=");
        }
        if Instant::now() >= deadline {
            return "(no audit line)".into();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(none)".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn prompts(run: &PamRun) -> String {
    run.transcript
        .iter()
        .map(|e| e.text.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join(" / ")
        + if run
            .transcript
            .iter()
            .all(|e| e.style == pam::Style::EchoOff)
        {
            " (echo off)"
        } else {
            " (MIXED ECHO)"
        }
}

fn print_table(rows: &[Row]) {
    let header = [
        "#",
        "case",
        "PAM result",
        "prompts seen",
        "veild reply bytes (hex)",
        "ms",
        "audit reason (syslog only)",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            [
                (i + 1).to_string(),
                r.case.clone(),
                r.run.code_name().to_owned(),
                prompts(&r.run),
                hex(&r.reply),
                r.run.elapsed.as_millis().to_string(),
                r.reason.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 || i == 5 {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        println!("{}", parts.join(" | ").trim_end());
    };
    line(&header.map(str::to_owned));
    println!("{}", widths.map(|w| "-".repeat(w)).join("-|-"));
    for row in &cells {
        line(row);
    }
    println!();
    println!(
        "  {} = {} (ALLOW)",
        hex(&ALLOW),
        String::from_utf8_lossy(&ALLOW[4..])
    );
    println!(
        "  {} = {} (DENY)",
        hex(&DENY),
        String::from_utf8_lossy(&DENY[4..])
    );
}

/// Checks what the table shows: one success, and every failure identical
/// in code, prompts and bytes. Prints the timing spread.
fn verdict(rows: &[Row], expected_successes: usize) -> bool {
    let (successes, failures): (Vec<&Row>, Vec<&Row>) =
        rows.iter().partition(|r| r.run.code == pam::PAM_SUCCESS);
    let mut ok =
        successes.len() == expected_successes && successes.iter().all(|s| s.reply == ALLOW);
    let first = failures[0];
    for f in &failures {
        ok &= f.run.code == pam::PAM_AUTH_ERR
            && f.reply == DENY
            && f.run.transcript == first.run.transcript;
    }
    ok &= successes
        .iter()
        .all(|s| s.run.transcript == first.run.transcript);
    let times: Vec<u128> = failures.iter().map(|f| f.run.elapsed.as_millis()).collect();
    let (min, max) = (
        times.iter().min().copied().unwrap_or(0),
        times.iter().max().copied().unwrap_or(0),
    );
    if ok {
        println!(
            "  all {} failures: PAM_AUTH_ERR, the same prompts as the successes, the same {} DENY bytes, {min}-{max} ms (failure_delay_ms={FAILURE_DELAY_MS})",
            failures.len(),
            DENY.len()
        );
    } else {
        println!("  MISMATCH: the failure rows above do not all match; see the table");
    }
    println!(
        "  cleaning up: veild stopped, temp socket, database and PAM config removed, the system account deleted"
    );
    ok
}
