//! A real sshd login's latency (real ssh client, keyboard-interactive,
//! password and TOTP code through pam_veil.so and veild), idle and under
//! issue 18's local flood: 1 100 concurrent requests from one local user
//! through a root front end (root peers carrying her real uid, protocol
//! 3), plus rounds of connections from 1 000 of her subordinate uids.
//! Each login is a user of its own, so that no login waits for a fresh
//! TOTP step (veild refuses a code's step twice per user).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use veil_proto::{Reply, Request};
use veil_tests::accounts::{Accounts, run};
use veil_tests::pam::socket_args;
use veil_tests::paths;
use veil_tests::sshd::Sshd;
use veil_tests::stats::{median, quantile};
use veil_tests::totp::{DEMO_SECRET, code_now};

use crate::{Daemon, PASSWORD, ms, verdict};

const MALLORY: &str = "vb18mal";
const FLOOD: usize = 1100;
const SUBUIDS: u32 = 1000;

/// The first subordinate uid and the count `/etc/subuid` gives `name`.
fn subuid_range(name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/subuid").ok()?;
    text.lines().find_map(|l| {
        let mut p = l.split(':');
        (p.next()? == name).then(|| Some((p.next()?.parse().ok()?, p.next()?.parse().ok()?)))?
    })
}

/// One phase's logins: (succeeded, total ms, first prompt ms).
type Logins = Vec<(bool, f64, Option<f64>)>;

fn logins(sshd: &Sshd, users: &[String]) -> Logins {
    users
        .iter()
        .map(|u| {
            let l = sshd.login_timed(u, PASSWORD, &code_now(DEMO_SECRET));
            let ok = l.status == 0 && l.output.contains(&format!("({u})"));
            if !ok {
                eprintln!(
                    "veil-bench: ssh login as {u} failed ({}): {}",
                    l.status, l.output
                );
            }
            (ok, ms(l.total), l.first_prompt.map(ms))
        })
        .collect()
}

/// A table row; returns the p99 of the successful logins' total time.
fn row(phase: &str, runs: &Logins, extra: &str, say: &mut dyn FnMut(String)) -> f64 {
    let total: Vec<f64> = runs.iter().filter(|r| r.0).map(|r| r.1).collect();
    let prompt: Vec<f64> = runs.iter().filter(|r| r.0).filter_map(|r| r.2).collect();
    say(format!(
        "| {phase} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {extra} |",
        runs.len(),
        total.len(),
        median(&total),
        quantile(&total, 0.99),
        median(&prompt),
        quantile(&prompt, 0.99),
    ));
    quantile(&total, 0.99)
}

/// Rounds of `subuid-peers`: each connects once from each of `count`
/// subordinate uids, holds what veild kept open for a moment, and closes.
/// Returns the rounds run and the last round's `open N closed M`.
fn subuid_rounds(socket: &Path, first: u32, count: u32, stop: &AtomicBool) -> (usize, String) {
    let (mut rounds, mut last) = (0, String::new());
    while !stop.load(Ordering::Relaxed) {
        let mut peers = Command::new(paths::subuid_peers())
            .args([
                socket.to_str().unwrap_or_default(),
                &first.to_string(),
                &count.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("subuid-peers (built with veil-bench)");
        let mut line = String::new();
        if let Some(out) = peers.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        drop(peers.stdin.take());
        let _ = peers.wait();
        rounds += 1;
        last = line.trim().to_owned();
    }
    (rounds, last)
}

/// 100 ssh logins idle (10 with `--quick`), then as many under the flood,
/// each as a user of its own; prints the table and what veild logged.
pub fn ssh_flood_report(quick: bool, say: &mut dyn FnMut(String)) {
    let n = if quick { 10 } else { 100 };
    eprintln!(
        "veil-bench: ssh logins idle and under the local flood ({n} each; making {} accounts)",
        2 * n + 2
    );
    let d = Daemon::start("");
    let mut made = Accounts::new();
    made.add(MALLORY);
    let (first, _) = subuid_range(MALLORY)
        .filter(|r| r.1 >= SUBUIDS)
        .unwrap_or_else(|| panic!("useradd gave {MALLORY} no range of {SUBUIDS} in /etc/subuid"));
    let users: Vec<String> = (0..=2 * n).map(|i| format!("vb18s{i:03}")).collect();
    for u in &users {
        made.add(u);
        // A shell and no system password: sshd lets veil decide.
        run("usermod", &["-p", "*", "-s", "/bin/sh", u], "");
        d.enrol(u);
    }
    let socket: PathBuf = d.socket();
    let sshd = Sshd::start(
        "vb18",
        &format!(
            "auth required {} {}",
            paths::module().display(),
            socket_args(&socket, "30")
        ),
    );
    // The first login after sshd starts is not counted (cold caches).
    let warm = logins(&sshd, &users[..1]);
    assert!(warm[0].0, "ssh login failed: {}", sshd.log());
    let idle = logins(&sshd, &users[1..=n]);

    let uid = nix::unistd::User::from_name(MALLORY)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
        .expect("the account just made");
    let stop = AtomicBool::new(false);
    let answered = AtomicUsize::new(0);
    let subuid = Mutex::new((0, String::new()));
    let started = Instant::now();
    let flooded = std::thread::scope(|s| {
        let (stop, answered, socket) = (&stop, &answered, &socket);
        let subuid_ref = &subuid;
        s.spawn(move || {
            let r = subuid_rounds(socket, first, SUBUIDS, stop);
            if let Ok(mut g) = subuid_ref.lock() {
                *g = r;
            }
        });
        for i in 0..FLOOD {
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn_scoped(s, move || {
                    // As sudo -S run by mallory sends it: root peer, her ruid.
                    let mut req = Request::new(
                        MALLORY,
                        Reply::from(format!("guess {i}").as_str()),
                        Reply::from(""),
                    );
                    req.service = "sudo".into();
                    req.ruser = MALLORY.into();
                    req.ruid = uid;
                    while !stop.load(Ordering::Relaxed) {
                        let _ = veil_proto::ask(socket, &req, Duration::from_secs(30), Some(0));
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .expect("a flood thread");
        }
        // Every flood client has had an answer once: the flood is in full swing.
        while answered.load(Ordering::Relaxed) < FLOOD
            && started.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let before = answered.load(Ordering::Relaxed);
        let t = Instant::now();
        let runs = logins(&sshd, &users[n + 1..]);
        let rate = (answered.load(Ordering::Relaxed) - before) as f64 / t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        (runs, rate)
    });
    let (under, rate) = flooded;
    let (rounds, last) = subuid.into_inner().unwrap_or_default();
    let log = d.0.stderr();
    // Every overload line by its limit, and whether it refused a root
    // front end's request (it names the requester) or a connection at
    // accept (a non-root peer: the subordinate uids).
    let mut limits = std::collections::BTreeMap::<String, usize>::new();
    for line in log.lines().filter(|l| l.contains("event=overload")) {
        let words = || line.split_whitespace();
        let limit = words()
            .find_map(|w| w.strip_prefix("limit="))
            .unwrap_or("?");
        let whose = match words().find_map(|w| w.strip_prefix("requester=")) {
            Some(r) => format!("requests of {r}"),
            None => "connections at accept".to_owned(),
        };
        *limits
            .entry(format!("`limit={limit}`, {whose}"))
            .or_default() += 1;
    }
    let attempts = log.lines().filter(|l| l.contains("event=attempt")).count();

    say("## A real sshd login, idle and under the local flood\n".into());
    say(format!(
        "A real sshd (keyboard-interactive only, its own PAM service: `auth required pam_veil.so`) and a real ssh client driven by expect, from 127.0.0.1: `Password:` then `Verification code:` (TOTP policy `required`, veild's default), then `id`. Each login is a different user (enrolled with password and TOTP), so no login waits for a fresh 30 s step: veild takes each step's code once per user. veild at its production defaults (failure delay 2 s, queue 64, 1 024 connections, 16 per requester, argon2id 19 MiB t=2, one worker per core). Total = from starting the client to its exit (key exchange, both prompts, veild's argon2 check, the session running `id`); first prompt = from starting ssh to `Password:`. p99 is by nearest rank: of {n} logins, the {}.\n",
        match n - (0.99 * n as f64).ceil() as usize {
            0 => "slowest",
            1 => "second slowest",
            _ => "one at 99 %",
        }
    ));
    say(format!(
        "The flood: {FLOOD} threads, each a root peer sending mallory's request with her real uid (`ruid`, protocol 3) as `sudo -S` run by her would, a wrong password each time, without pause; and rounds of `subuid-peers`, which connects once from each of {SUBUIDS} of her subordinate uids (`/etc/subuid`), holds what veild keeps open for half a second, and closes ({rounds} rounds over the flood; the last printed `{last}`). mallory is `uid:{uid}`. The logins start once every flood thread has had an answer.\n"
    ));
    say("| phase | logins | succeeded | median | p99 | first prompt, median | first prompt, p99 | flood |\n|---|---|---|---|---|---|---|---|".into());
    let idle_p99 = row("idle", &idle, "-", say);
    let flood_p99 = row(
        "under the flood",
        &under,
        &format!("{rate:.0} requests answered a second"),
        say,
    );
    say(format!(
        "\nTarget: p99 under the flood within 2x idle: {flood_p99:.0} ms against {:.0} ms: {}. All logins succeeded: {}.\n",
        2.0 * idle_p99,
        verdict(flood_p99 <= 2.0 * idle_p99),
        verdict(idle.iter().chain(&under).all(|r| r.0))
    ));
    let limits: Vec<String> = limits
        .iter()
        .map(|(what, n)| format!("{what}: {n}"))
        .collect();
    say(format!(
        "veild's overload lines over the run: {}; attempts evaluated (the logins and the flood's requests within its share) {attempts}.\n",
        if limits.is_empty() {
            "none".to_owned()
        } else {
            limits.join(", ")
        },
    ));
    drop(sshd);
}
