//! Denial timing over a real sshd, name by name (issue 21): each name timed
//! while it is a real account and while it is unknown, against the same
//! sshd. sshd's password method ends a failed login at a keyed per-name
//! time (ssh_timing.rs), the key being the name and a secret sshd derives
//! from its host key: pooling different names for each kind compares two
//! sets of per-name constants, so here each name is compared with itself.
//! Half of the names go real, unknown, unknown, real over four blocks, the
//! other half the other way round (a drift of the machine cancels); within
//! a block the names and both modes are interleaved at random. Both sshds
//! (the password method with `one_prompt`, and keyboard-interactive) run
//! throughout, at veild's default failure delay.

use std::time::Instant;

use veil_tests::accounts::{Accounts, exists, run};
use veil_tests::sshd::Sshd;
use veil_tests::stats::{ks_two_sample, median};

use crate::Daemon;
use crate::ssh_timing::{TIMED, assert_veil_answers, attempt, openssh_line, pam_line, shuffle};

/// (title, sshd's method, the answers typed).
const MODES: [(&str, &str, &str); 2] = [
    (
        "password method, `one_prompt`",
        "password",
        "wrong-pass000000",
    ),
    (
        "keyboard-interactive, two prompts",
        "keyboard-interactive",
        "wrong-pass\t000000",
    ),
];

const BLOCKS: usize = 4;

/// Whether name `i` of `k` is real in `block`: the first half real,
/// unknown, unknown, real; the second half the other way round.
fn real_in(i: usize, k: usize, block: usize) -> bool {
    (i < k / 2) == (block == 0 || block == BLOCKS - 1)
}

struct Sample {
    mode: usize,
    name: usize,
    real: bool,
    first: f64,
    result: f64,
}

/// The names, their accounts and enrolments, switched between states.
struct Names<'a> {
    d: &'a Daemon,
    names: Vec<String>,
    real: Vec<bool>,
    made: Accounts,
}

impl Names<'_> {
    fn set(&mut self, i: usize, real: bool) {
        if self.real[i] == real {
            return;
        }
        let name = &self.names[i];
        if real {
            self.made.add(name);
            run("usermod", &["-p", "*", "-s", "/bin/sh", name], "");
            self.d.enrol(name);
        } else {
            self.made.remove(name);
            self.d.veilctl(&["user", "del", name], "");
            assert!(!exists(name), "{name} still exists");
        }
        self.real[i] = real;
    }
}

/// Logins per name and mode in `block`: a state's two blocks (0 and 3,
/// 1 and 2) share its `m` between them.
fn in_block(m: usize, block: usize) -> usize {
    if block % 2 == 0 { m.div_ceil(2) } else { m / 2 }
}

/// The per-name benchmark: `k` names, `m` failed logins per name, state
/// and mode. False when a login failed to run (the report says how many).
pub fn ssh_per_name_report(k: usize, m: usize, say: &mut dyn FnMut(String)) -> bool {
    assert!(
        k >= 2 && k % 2 == 0,
        "--names {k}: an even number, at least 2"
    );
    assert!(
        m >= 2,
        "--per-state {m}: at least 2 (one in each of a state's two blocks)"
    );
    // No lock in the run: each name fails 2 modes × 2 states × m times.
    assert!(4 * m < 95, "--per-state {m}: so many would lock a name");
    let started = Instant::now();
    eprintln!(
        "veil-bench: ssh denial timing per name, {k} names, {m} attempts per name, state and mode ({} logins, about {} min)",
        4 * k * m,
        4 * k * m * 3 / 60 + 1
    );
    let d = Daemon::start(
        "failure_delay_ms = 2000\n[lockout]\ndeny = 100\nuser_deny = 1000000\nsource_deny = 1000000\n",
    );
    let mut names = Names {
        d: &d,
        names: (0..k).map(|i| format!("vb21n{i:02}")).collect(),
        real: vec![false; k],
        made: Accounts::new(),
    };
    let socket = d.socket();
    let line = |arg: &str| pam_line(&socket, arg);
    // One sshd per mode for the whole run: the same host key, so the same
    // per-name delays, for both states of a name.
    let sshds = [
        Sshd::start_password("vb21m", &line("one_prompt")),
        Sshd::start("vb21n", &line("")),
    ];
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("timed.exp");
    std::fs::write(&script, TIMED).unwrap();
    let mut samples = Vec::new();
    let mut failed = 0;
    for block in 0..BLOCKS {
        for i in 0..k {
            names.set(i, real_in(i, k, block));
        }
        if block == 0 {
            // A run that timed another PAM stack would be worthless.
            assert_veil_answers(&sshds[0], &names.names[0]);
            // Warm-up, not counted: sshd's first connections load libraries.
            for (mode, (_, method, answers)) in MODES.iter().enumerate() {
                attempt(&script, sshds[mode].port, "vb21warm", method, answers);
            }
        }
        let mut order: Vec<(usize, usize)> = (0..MODES.len())
            .flat_map(|mode| {
                (0..k).flat_map(move |i| std::iter::repeat_n((mode, i), in_block(m, block)))
            })
            .collect();
        shuffle(&mut order, 0x2021_0021 + block as u64);
        for (mode, i) in order {
            let (_, method, answers) = MODES[mode];
            if let Some((first, result)) =
                attempt(&script, sshds[mode].port, &names.names[i], method, answers)
            {
                samples.push(Sample {
                    mode,
                    name: i,
                    real: names.real[i],
                    first,
                    result,
                });
            } else {
                failed += 1;
            }
        }
    }
    drop(sshds);
    say(format!(
        "## Denial timing over a real sshd, name by name (issue 21; {k} names, each real and unknown in turn against the same sshd, {m} failed logins per name, state and mode; failure_delay_ms = 2000, the default; the client waits 50 ms before each answer)\n"
    ));
    say(openssh_line());
    say(format!(
        "Names {} real, unknown, unknown, real over four blocks; {} the other way round; within a block names and modes interleaved at random. {} logins in {:.0} s; {failed} failed to run (expect's exit other than a denial).\n",
        span(&names.names[..k / 2]),
        span(&names.names[k / 2..]),
        samples.len(),
        started.elapsed().as_secs_f64()
    ));
    for (mode, (title, _, _)) in MODES.iter().enumerate() {
        let runs: Vec<&Sample> = samples.iter().filter(|s| s.mode == mode).collect();
        report(title, &names.names, &runs, mode == 0, say);
    }
    failed == 0
}

/// "a–z" for a run of names, "a" for one.
fn span(names: &[String]) -> String {
    match names {
        [one] => one.clone(),
        [first, .., last] => format!("{first}–{last}"),
        [] => String::new(),
    }
}

/// The values of `f` over the samples of `name` (any if None) in state `real`
/// (both if None).
fn pick(runs: &[&Sample], name: usize, real: Option<bool>, f: fn(&Sample) -> f64) -> Vec<f64> {
    runs.iter()
        .filter(|s| s.name == name && real.is_none_or(|r| s.real == r))
        .map(|s| f(s))
        .collect()
}

/// Each time minus its name's median over both states, split by state:
/// what is left once sshd's per-name constant is taken out.
fn residuals(runs: &[&Sample], k: usize, f: fn(&Sample) -> f64) -> [Vec<f64>; 2] {
    let mut out = [Vec::new(), Vec::new()];
    for name in 0..k {
        let centre = median(&pick(runs, name, None, f));
        for real in [true, false] {
            out[usize::from(!real)]
                .extend(pick(runs, name, Some(real), f).iter().map(|t| t - centre));
        }
    }
    out
}

fn report(
    title: &str,
    names: &[String],
    runs: &[&Sample],
    closing: bool,
    say: &mut dyn FnMut(String),
) {
    let result: fn(&Sample) -> f64 = |s| s.result;
    let first: fn(&Sample) -> f64 = |s| s.first;
    let k = names.len();
    say(format!("### {title}, failure_delay_ms = 2000\n"));
    say("| name | states | n real / unknown | real: median | unknown: median | real − unknown | KS D | KS p | first prompt, real − unknown |".into());
    say("|---|---|---|---|---|---|---|---|---|".into());
    let mut deltas = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (r, u) = (
            pick(runs, i, Some(true), result),
            pick(runs, i, Some(false), result),
        );
        let (fr, fu) = (
            pick(runs, i, Some(true), first),
            pick(runs, i, Some(false), first),
        );
        let (ks_d, ks_p) = ks_two_sample(&r, &u);
        let delta = median(&r) - median(&u);
        deltas.push(delta);
        say(format!(
            "| {name} | {} | {} / {} | {:.2} ms | {:.2} ms | {delta:+.2} ms | {ks_d:.3} | {ks_p:.3} | {:+.2} ms |",
            if real_in(i, k, 0) {
                "R U U R"
            } else {
                "U R R U"
            },
            r.len(),
            u.len(),
            median(&r),
            median(&u),
            median(&fr) - median(&fu)
        ));
    }
    let all = |real: bool, f: fn(&Sample) -> f64| -> Vec<f64> {
        runs.iter()
            .filter(|s| s.real == real)
            .map(|s| f(s))
            .collect()
    };
    let (real_all, unknown_all) = (all(true, result), all(false, result));
    let (raw_d, raw_p) = ks_two_sample(&real_all, &unknown_all);
    let [res_r, res_u] = residuals(runs, k, result);
    let (res_d, res_p) = ks_two_sample(&res_r, &res_u);
    let [fres_r, fres_u] = residuals(runs, k, first);
    let (fres_d, fres_p) = ks_two_sample(&fres_r, &fres_u);
    say(format!(
        "\nPooled ({} real, {} unknown; every name in both): median real {:.2} ms, unknown {:.2} ms, KS D = {raw_d:.3}, p = {raw_p:.3}. \
         Per-name residuals (each time minus its name's median): median real {:+.2} ms, unknown {:+.2} ms, KS D = {res_d:.3}, p = {res_p:.3}; \
         median over names of real − unknown {:+.2} ms. First prompt, residuals: KS D = {fres_d:.3}, p = {fres_p:.3}.\n",
        real_all.len(),
        unknown_all.len(),
        median(&real_all),
        median(&unknown_all),
        median(&res_r),
        median(&res_u),
        median(&deltas)
    ));
    if closing {
        say(format!(
            "One prompt over sshd at the default delay, the same {k} names real and unknown: real {:.2} ms, unknown {:.2} ms (medians), KS on per-name residuals p = {res_p:.3} (pooled times p = {raw_p:.3}).\n",
            median(&real_all),
            median(&unknown_all)
        ));
    }
}
