//! The bench's measurements of the invariant at the real edges: paired
//! two-class denial timing at delay 0, and a remote login's latency under
//! a local flood with and without the per-requester share.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use veil_tests::Attempt;
use veil_tests::pam::{PamStack, authenticate};
use veil_tests::stats::{ks_two_sample, median, quantile};
use veil_tests::totp::{DEMO_SECRET, code_now};

use crate::svg::{Figures, Line, cdf_svg};
use crate::timing::Lcg;
use crate::{Daemon, PAM_OK, PASSWORD, ms, say_some, verdict};

/// Two classes of denial, `n` each, interleaved at random, one client,
/// through libpam; returns each class's latencies (ms).
fn paired(
    stack: &PamStack,
    n: usize,
    seed: u64,
    a: impl Fn(usize) -> Attempt,
    b: impl Fn(usize) -> Attempt,
) -> (Vec<f64>, Vec<f64>) {
    let mut plan: Vec<bool> = std::iter::repeat_n(true, n)
        .chain(std::iter::repeat_n(false, n))
        .collect();
    let mut rng = Lcg(seed);
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.below(i + 1));
    }
    let (mut la, mut lb) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut ia, mut ib) = (0, 0);
    for first in plan {
        let attempt = if first { a(ia) } else { b(ib) };
        let run = authenticate(stack, &attempt);
        assert_ne!(run.code, PAM_OK, "a denial class succeeded");
        if first {
            ia += 1;
            la.push(ms(run.elapsed));
        } else {
            ib += 1;
            lb.push(ms(run.elapsed));
        }
    }
    (la, lb)
}

/// One row of a paired report: medians, Δ in µs and the KS test.
fn pair_row(run: usize, a: &[f64], b: &[f64]) -> (String, bool) {
    let (dstat, p) = ks_two_sample(a, b);
    let delta_us = (median(a) - median(b)) * 1000.0;
    let met = delta_us.abs() < 20.0 && p > 0.01;
    (
        format!(
            "| {run} | {} | {:.3} ms | {:.3} ms | {delta_us:+.1} µs | {dstat:.4} | {p:.3} | {} |",
            a.len(),
            median(a),
            median(b),
            verdict(met)
        ),
        met,
    )
}

/// One pair's runs as empirical CDFs: a colour per run, the first class
/// solid and the second dashed, so a pair that cannot be told apart draws
/// one line per run.
fn pairs_cdf(
    title: &str,
    names: [&str; 2],
    runs: &[(Vec<f64>, Vec<f64>)],
) -> Result<String, String> {
    let lines: Vec<Line> = runs
        .iter()
        .enumerate()
        .flat_map(|(i, (a, b))| {
            [
                Line::new(format!("run {}: {}", i + 1, names[0]), a, i),
                Line::new(format!("run {}: {}", i + 1, names[1]), b, i).dashed(),
            ]
        })
        .collect();
    cdf_svg(title, &lines, &[])
}

/// Paired timing at delay 0: wrong password for a real account against an
/// unknown name, then a locked key against a fresh one; three runs each.
pub fn pairs_report(n: usize, figures: &Figures, say: &mut dyn FnMut(String)) {
    const PEOPLE: usize = 200;
    say(format!(
        "## Paired denial timing at failure_delay_ms = 0 ({n} attempts per class, 2 classes interleaved at random, 1 client, through libpam; argon2id m=4096 KiB t=1)\n"
    ));
    // Nothing locks in the first pair (each name is asked about 50 times a
    // run, deny = 100 per 60 s): both classes write the same kinds of
    // existing ledger rows, so the user lookup is all that differs.
    // argon2 at 4 MiB, one pass (about 3 ms): the classes' own difference
    // is what is measured, and less noise makes it easier to see.
    const ARGON: &str = "[argon2]\nm_cost_kib = 4096\nt_cost = 1\np_cost = 1\n";
    let mut d = Daemon::start(&format!(
        "failure_delay_ms = 0\n[lockout]\ndeny = 100\nfail_interval_s = 60\nuser_deny = 100000000\nsource_deny = 100000000\n[limits]\nqueue = 256\n{ARGON}"
    ));
    eprintln!("veil-bench: enrolling {PEOPLE} users for the paired runs");
    for i in 0..PEOPLE {
        d.enrol(&format!("real{i:03}"));
    }
    let stack = d.stack();
    let attempt = |user: String| {
        Attempt::new(&user, &["not-the-password", &code_now(DEMO_SECRET)]).from_host("192.0.2.1")
    };
    say("### Wrong password for a real account vs an unknown name\n".into());
    say(format!(
        "{PEOPLE} real accounts and {PEOPLE} unknown names, each asked in turn from one remote source; nothing locks (deny = 100 per 60 s, wide limits raised), so both classes update the same kinds of ledger rows.\n"
    ));
    say("| run | n | median real | median unknown | Δ median | KS D | KS p | target |Δ| < 20 µs, p > 0.01 |\n|---|---|---|---|---|---|---|---|".into());
    let mut runs = Vec::new();
    for run in 1..=3 {
        eprintln!("veil-bench: paired run {run}/3: real vs unknown");
        let (real, unknown) = paired(
            &stack,
            n,
            0x9a1 + run as u64,
            |i| attempt(format!("real{:03}", i % PEOPLE)),
            |i| attempt(format!("ghost{:03}", i % PEOPLE)),
        );
        say(pair_row(run, &real, &unknown).0);
        runs.push((real, unknown));
    }
    say(String::new());
    say_some(
        say,
        figures.save("pairs-real-vs-unknown.svg", || {
            pairs_cdf(
                &format!(
                    "Wrong password: real account vs unknown name, delay 0, n = {n} per class"
                ),
                ["real account", "unknown name"],
                &runs,
            )
        }),
    );
    // The second pair: deny = 5, so a locked key refuses, and a fresh
    // name each time is evaluated (its first attempt).
    d.restart(&format!(
        "failure_delay_ms = 0\n[lockout]\ndeny = 5\nunlock_time_s = 100000000\nunlock_time_max_s = 100000000\nuser_deny = 100000000\nsource_deny = 100000000\n[limits]\nqueue = 256\n{ARGON}"
    ));
    let stack = d.stack();
    for who in ["real000", "ghost-locked"] {
        for _ in 0..5 {
            authenticate(&stack, &attempt(who.to_owned()));
        }
    }
    say("### A locked key vs a fresh one\n".into());
    say("Locked: a real account and an unknown name, each locked (deny = 5), asked in turn. Fresh: a new unknown name each time (no ledger row yet). Same source, same wrong password.\n".into());
    say("| run | n | median locked | median fresh | Δ median | KS D | KS p | target |Δ| < 20 µs, p > 0.01 |\n|---|---|---|---|---|---|---|---|".into());
    let mut runs = Vec::new();
    for run in 1..=3 {
        eprintln!("veil-bench: paired run {run}/3: locked vs fresh");
        let (locked, fresh) = paired(
            &stack,
            n,
            0x10c + run as u64,
            |i| {
                attempt(if i % 2 == 0 {
                    "real000".into()
                } else {
                    "ghost-locked".into()
                })
            },
            |i| attempt(format!("fresh{run}-{i:06}")),
        );
        say(pair_row(run, &locked, &fresh).0);
        runs.push((locked, fresh));
    }
    say(String::new());
    say_some(
        say,
        figures.save("pairs-locked-vs-fresh.svg", || {
            pairs_cdf(
                &format!("A locked key vs a fresh one, delay 0, n = {n} per class"),
                ["locked", "fresh"],
                &runs,
            )
        }),
    );
}

/// A remote login's latency, idle and while several hundred local clients
/// flood veild through a root front end (as `sudo -S` by one user would),
/// with the per-requester share and, for comparison, without it.
pub fn flood_report(quick: bool, say: &mut dyn FnMut(String)) {
    let flooders = 300;
    let logins = if quick { 30 } else { 200 };
    say("## Fair share under a local flood\n".into());
    say(format!(
        "A remote login (PAM_RHOST set, the right password; policy if-enrolled, no code) while {flooders} local clients, one requester through a root front end (the bench runs as root, real uid 0, so they are one root service's requests; a user's `sudo -S` is one requester by its real uid the same way), send wrong passwords without pause. Default delay (2 s) and queue (64); the share is `max_connections_per_user`.\n"
    ));
    say("| share per requester | remote logins | succeeded | median | p99 | flood attempts answered |\n|---|---|---|---|---|---|".into());
    for (label, share) in [("16 (default)", 16), ("none (1024)", 1024)] {
        let d = Daemon::start(&format!(
            "failure_delay_ms = 2000\n[totp]\npolicy = \"if-enrolled\"\n[limits]\nqueue = 64\nmax_connections_per_user = {share}\n"
        ));
        d.veilctl(
            &["user", "add", "alice", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
        let stack = d.stack();
        let login = || {
            let run = authenticate(
                &stack,
                &Attempt::new("alice", &[PASSWORD, ""]).from_host("192.0.2.50"),
            );
            (run.code == PAM_OK, ms(run.elapsed))
        };
        if share == 16 {
            let idle: Vec<(bool, f64)> = (0..logins).map(|_| login()).collect();
            let ok: Vec<f64> = idle.iter().filter(|r| r.0).map(|r| r.1).collect();
            say(format!(
                "| idle | {} | {} | {:.2} ms | {:.2} ms | - |",
                idle.len(),
                ok.len(),
                median(&ok),
                quantile(&ok, 0.99)
            ));
        }
        let stop = AtomicBool::new(false);
        let flooded = AtomicUsize::new(0);
        let under: Vec<(bool, f64)> = std::thread::scope(|s| {
            for i in 0..flooders {
                let (stack, stop, flooded) = (&stack, &stop, &flooded);
                s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let attempt =
                            Attempt::new("mallory", &[&format!("guess {i}"), ""]).by("mallory");
                        authenticate(stack, &attempt);
                        flooded.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            let started = Instant::now();
            while flooded.load(Ordering::Relaxed) < flooders
                && started.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            // Without the share a login can be denied as overload, which
            // takes the 2 s delay: fewer of them, to keep the run short.
            let tries = if share == 16 { logins } else { logins / 10 };
            let under = (0..tries).map(|_| login()).collect();
            stop.store(true, Ordering::Relaxed);
            under
        });
        let ok: Vec<f64> = under.iter().filter(|r| r.0).map(|r| r.1).collect();
        let (med, p99) = if ok.is_empty() {
            ("-".to_owned(), "-".to_owned())
        } else {
            (
                format!("{:.2} ms", median(&ok)),
                format!("{:.2} ms", quantile(&ok, 0.99)),
            )
        };
        say(format!(
            "| {label}, under the flood | {} | {} | {med} | {p99} | {} |",
            under.len(),
            ok.len(),
            flooded.load(Ordering::Relaxed)
        ));
    }
    say(String::new());
}
