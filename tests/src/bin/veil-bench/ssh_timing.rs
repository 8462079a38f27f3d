//! Denial timing over a real sshd (issue 21): several real and several
//! unknown names, the client (OpenSSH through expect) pausing 50 ms before
//! each answer as a person would (OpenSSH up to 10.3 sleeps a keyed
//! per-name delay after sending the first prompt, so a client that
//! answered at once would measure that delay, not veil). Measured: from
//! sending the last answer to `Permission denied`, and, as its own
//! figure, from spawning ssh to the first prompt (sshd's own work before
//! PAM, which no PAM module can hide). Keyboard-interactive with the two
//! prompts, and sshd's `password` method with `one_prompt`.

use std::path::Path;
use std::process::Command;

use veil_tests::accounts::{Accounts, run};
use veil_tests::sshd::Sshd;
use veil_tests::stats::{ks_two_sample, median, quantile};
use veil_tests::totp::{DEMO_SECRET, code_now};

use crate::{Daemon, PASSWORD};

/// Names per kind. sshd's password method, when the PAM call outlasts its
/// keyed per-name delay (5 to 9.2 ms), doubles that delay until it is
/// longer (auth2.c, `ensure_minimum_time_since`), so at a 2 s failure
/// delay each name has its own fixed denial time between 2 and 4 s, real
/// or not: comparing kinds needs many names of each.
const NAMES: usize = 16;

fn names(kind: usize) -> Vec<String> {
    let prefix = if kind == 0 { "vb21r" } else { "vb21u" };
    (0..NAMES).map(|i| format!("{prefix}{i:02}")).collect()
}

/// One timed login: the name, the first prompt (ms), last answer to result (ms).
type Sample = (String, f64, f64);

/// Prints `first=US` at the first prompt and `result=US` from sending the
/// last answer to the result; the answers come tab-separated in VB_ANSWERS.
pub(crate) const TIMED: &str = r#"set timeout 60
lassign $argv port user method
log_user 0
set t0 [clock microseconds]
spawn -noecho ssh -F /dev/null -p $port -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o PubkeyAuthentication=no \
    -o PreferredAuthentications=$method -o NumberOfPasswordPrompts=1 \
    $user@127.0.0.1 true
set first 1
foreach answer [split $env(VB_ANSWERS) "\t"] {
    expect {
        -re {(assword|code): $} {}
        timeout { exit 90 }
        eof { exit 93 }
    }
    if {$first} { puts "first=[expr {[clock microseconds] - $t0}]"; set first 0 }
    after 50
    set t1 [clock microseconds]
    send -- "$answer\r"
}
expect {
    -re {Permission denied} { set t2 [clock microseconds] }
    -re {(assword|code): $} { exit 91 }
    timeout { exit 90 }
    eof { set t2 [clock microseconds] }
}
puts "result=[expr {$t2 - $t1}]"
catch {close}
catch {wait}
exit 0
"#;

/// One timed failed login: (first prompt ms, last answer to result ms).
pub(crate) fn attempt(
    script: &Path,
    port: u16,
    user: &str,
    method: &str,
    answers: &str,
) -> Option<(f64, f64)> {
    let out = Command::new("expect")
        .arg("-f")
        .arg(script)
        .args([&port.to_string(), user, method])
        .env("VB_ANSWERS", answers)
        .output()
        .expect("expect (scripts/deps.sh test installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|us| us / 1000.0)
    };
    match (out.status.code(), field("first="), field("result=")) {
        (Some(0), Some(first), Some(result)) => Some((first, result)),
        _ => {
            eprintln!(
                "veil-bench: ssh as {user} ({method}) gave {:?}: {text}",
                out.status
            );
            None
        }
    }
}

/// `n` failed logins per kind, names of a kind taken in turn and the two
/// kinds interleaved at random (a fixed seed); one table per call.
fn run_mode(sshd: &Sshd, dir: &Path, method: &str, answers: &str, n: usize) -> [Vec<Sample>; 2] {
    let script = dir.join("timed.exp");
    std::fs::write(&script, TIMED).unwrap();
    // Warm-up: sshd's first connections load libraries.
    let all = [names(0), names(1)];
    for kind in &all {
        attempt(&script, sshd.port, &kind[0], method, answers);
    }
    let mut order: Vec<usize> = (0..2 * n).map(|i| i % 2).collect();
    shuffle(&mut order, 0x2021_0021);
    let mut out = [Vec::new(), Vec::new()];
    let mut next = [0usize; 2];
    for kind in order {
        let user = &all[kind][next[kind] % NAMES];
        next[kind] += 1;
        if let Some((first, result)) = attempt(&script, sshd.port, user, method, answers) {
            out[kind].push((user.clone(), first, result));
        }
    }
    out
}

/// Panics unless `user` (real, enrolled) logs in over `sshd`'s password
/// method with `one_prompt`: what answers there is veil, not another PAM
/// stack. OpenSSH 10.0 ignores the program's name for its PAM service, and
/// before the test sshd set `PAMServiceName` the password method went to
/// Debian's own `sshd` stack (pam_unix) and was timed all the same.
pub(crate) fn assert_veil_answers(sshd: &Sshd, user: &str) {
    let (status, output) =
        sshd.login_password(user, &format!("{PASSWORD}{}", code_now(DEMO_SECRET)));
    assert_eq!(
        status,
        0,
        "the right password and code did not log {user} in over the password method: not veil's stack? {output}\n{}",
        sshd.log()
    );
}

/// Shuffles `v` in place (Fisher–Yates, xorshift from a fixed `seed`, so a
/// run's order is reproducible).
pub(crate) fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// The system and its OpenSSH, for a report's header: os-release's name,
/// the server's version (`sshd -V`, which OpenSSH before 9.x answers with
/// its version inside a usage message) and package, and `ssh -V`.
/// The PAM line of the bench's sshd: pam_veil.so of the target dir, asking
/// the veild at `socket` (30 s timeout), with the module argument `arg`.
pub(crate) fn pam_line(socket: &Path, arg: &str) -> String {
    format!(
        "auth required {} {} {arg}",
        veil_tests::paths::module().display(),
        veil_tests::pam::socket_args(socket, "30")
    )
}

pub(crate) fn openssh_line() -> String {
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "unknown system".into());
    let version_of = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .ok()
            .and_then(|o| {
                let text = String::from_utf8_lossy(&o.stderr).into_owned()
                    + &String::from_utf8_lossy(&o.stdout);
                text.lines()
                    .find(|l| l.starts_with("OpenSSH_"))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| format!("no version from {program} {arg}"))
    };
    let package = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "openssh-server"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|| "not from dpkg".into());
    format!(
        "System: {os}; sshd: {} (openssh-server {package}); client: {}.\n",
        version_of("/usr/sbin/sshd", "-V"),
        version_of("ssh", "-V")
    )
}

/// Over the names: the lowest and highest per-name median of last answer
/// → result, and the median of each name's own range (max − min): a name
/// whose times sit together while names differ is sshd's per-name delay.
fn per_name(runs: &[Sample]) -> (f64, f64, f64) {
    let mut seen: Vec<&str> = runs.iter().map(|r| r.0.as_str()).collect();
    seen.sort_unstable();
    seen.dedup();
    let (mut medians, mut ranges) = (Vec::new(), Vec::new());
    for name in seen {
        let times: Vec<f64> = runs.iter().filter(|r| r.0 == name).map(|r| r.2).collect();
        medians.push(median(&times));
        let hi = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lo = times.iter().copied().fold(f64::INFINITY, f64::min);
        ranges.push(hi - lo);
    }
    let lo = medians.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = medians.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi, median(&ranges))
}

fn report(title: &str, runs: &[Vec<Sample>; 2], say: &mut dyn FnMut(String)) {
    let col = |k: usize, f: fn(&Sample) -> f64| runs[k].iter().map(f).collect::<Vec<f64>>();
    let (real_r, unknown_r) = (col(0, |t| t.2), col(1, |t| t.2));
    let (real_f, unknown_f) = (col(0, |t| t.1), col(1, |t| t.1));
    say(format!("### {title}\n"));
    say("| names | n | last answer → result: median | p99 | per-name medians | one name's range, median | first prompt: median | p99 |".into());
    say("|---|---|---|---|---|---|---|---|".into());
    for (kind, r, f, samples) in [
        ("real", &real_r, &real_f, &runs[0]),
        ("unknown", &unknown_r, &unknown_f, &runs[1]),
    ] {
        let (lo, hi, range) = per_name(samples);
        say(format!(
            "| {kind} ({NAMES}) | {} | {:.2} ms | {:.2} ms | {lo:.2}–{hi:.2} ms | {range:.2} ms | {:.2} ms | {:.2} ms |",
            r.len(),
            median(r),
            quantile(r, 0.99),
            median(f),
            quantile(f, 0.99)
        ));
    }
    let (d_r, p_r) = ks_two_sample(&real_r, &unknown_r);
    let (d_f, p_f) = ks_two_sample(&real_f, &unknown_f);
    say(format!(
        "\nKS real vs unknown: last answer → result D = {d_r:.3}, p = {p_r:.3}; first prompt D = {d_f:.3}, p = {p_f:.3}.\n"
    ));
}

/// The ssh timing report: keyboard-interactive and one-prompt at
/// `failure_delay_ms` 0, and one-prompt at the default 2000.
pub fn ssh_timing_report(n: usize, say: &mut dyn FnMut(String)) {
    eprintln!("veil-bench: ssh denial timing, {n} attempts per kind and mode");
    // No lock in the run: each name gets 4 n / NAMES failures from one
    // source (`deny` is at most 100), the wide keys far more.
    assert!(
        4 * n / NAMES < 95,
        "--n {n}: so many per kind would lock a name"
    );
    let lockout = "[lockout]\ndeny = 100\nuser_deny = 1000000\nsource_deny = 1000000\n";
    let mut d = Daemon::start(&format!("failure_delay_ms = 0\n{lockout}"));
    let mut made = Accounts::new();
    for user in names(0) {
        made.add(&user);
        run("usermod", &["-p", "*", "-s", "/bin/sh", &user], "");
        d.enrol(&user);
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = d.socket();
    let line = |arg: &str| pam_line(&socket, arg);
    say(format!(
        "## Denial timing over a real sshd (issue 21; {n} failed logins per kind, {NAMES} real and {NAMES} unknown names taken in turn, kinds interleaved at random; the client waits 50 ms before each answer)\n"
    ));
    say(openssh_line());
    let kbd = Sshd::start("vb21k", &line(""));
    let runs = run_mode(
        &kbd,
        dir.path(),
        "keyboard-interactive",
        "wrong-pass\t000000",
        n,
    );
    report(
        "keyboard-interactive, two prompts, failure_delay_ms = 0",
        &runs,
        say,
    );
    drop(kbd);
    let one = Sshd::start_password("vb21p", &line("one_prompt"));
    // First: a run that timed another PAM stack would be worthless.
    assert_veil_answers(&one, &names(0)[0]);
    let runs = run_mode(&one, dir.path(), "password", "wrong-pass000000", n);
    report(
        "password method, one_prompt, failure_delay_ms = 0",
        &runs,
        say,
    );
    drop(one);
    d.restart(&format!("failure_delay_ms = 2000\n{lockout}"));
    let kbd = Sshd::start("vb21l", &line(""));
    let runs = run_mode(
        &kbd,
        dir.path(),
        "keyboard-interactive",
        "wrong-pass\t000000",
        n,
    );
    report(
        "keyboard-interactive, two prompts, failure_delay_ms = 2000 (the default)",
        &runs,
        say,
    );
    drop(kbd);
    let one = Sshd::start_password("vb21q", &line("one_prompt"));
    // First: a run that timed another PAM stack would be worthless.
    assert_veil_answers(&one, &names(0)[1]);
    let runs = run_mode(&one, dir.path(), "password", "wrong-pass000000", n);
    report(
        "password method, one_prompt, failure_delay_ms = 2000 (the default)",
        &runs,
        say,
    );
    drop(one);
}
