//! Denial timing per failure class: the classes, their users, the
//! interleaved run and its table (median, quantiles, KS against the
//! unknown user), and the recovery-code report.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use veil_tests::stats::{ks_two_sample, median, quantile};

use veil_tests::Attempt;
use veil_tests::pam::authenticate;
use veil_tests::totp::{DEMO_SECRET, code_now, wrong_code};

use crate::svg::{Figures, Line, cdf_svg};
use crate::{Daemon, PAM_OK, PASSWORD, ms, say_some};

/// A small deterministic generator for the interleaving order.
pub(crate) struct Lcg(pub(crate) u64);
impl Lcg {
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Class {
    Unknown,
    WrongPassword,
    WrongCode,
    Locked,
    /// An unknown name with a code shaped like a recovery code.
    RecoveryUnknown,
    /// A real user without recovery codes, right password, a recovery-shaped code.
    RecoveryNoCodes,
    /// A real user with codes, right password, a wrong recovery code.
    RecoveryWrong,
}

pub(crate) const CLASSES: [Class; 7] = [
    Class::Unknown,
    Class::WrongPassword,
    Class::WrongCode,
    Class::Locked,
    Class::RecoveryUnknown,
    Class::RecoveryNoCodes,
    Class::RecoveryWrong,
];

/// A code of the recovery form (`xxxx-xxxx-xx`) that no set holds.
pub(crate) fn recovery_shaped(i: usize) -> String {
    format!("k{:03}-q9xd-4f", i % 1000)
}

impl Class {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Class::Unknown => "unknown user",
            Class::WrongPassword => "wrong password",
            Class::WrongCode => "wrong code",
            Class::Locked => "locked (right password and code)",
            Class::RecoveryUnknown => "unknown user, recovery-shaped code",
            Class::RecoveryNoCodes => "user without recovery codes, recovery-shaped code",
            Class::RecoveryWrong => "user with recovery codes, wrong recovery code",
        }
    }
}

/// Runs N attempts of each class in random interleaved order with
/// `concurrency` clients; returns the latencies (ms) per class.
pub(crate) fn denial_timing(
    d: &mut Daemon,
    delay_ms: u64,
    n: usize,
    concurrency: usize,
    real_users: &[String],
    plain_users: &[String],
) -> Vec<Vec<f64>> {
    d.clear_ledger_except("locked-user");
    d.restart(&format!(
        "failure_delay_ms = {delay_ms}\n[limits]\nqueue = 256\n"
    ));
    let stack = d.stack();
    // deny = 5 failures lock locked-user (already locked on a second run).
    for _ in 0..5 {
        authenticate(&stack, &Attempt::new("locked-user", &["wrong", "000000"]));
    }
    let mut plan: Vec<Class> = CLASSES
        .iter()
        .flat_map(|c| std::iter::repeat_n(*c, n))
        .collect();
    let mut rng = Lcg(0x5eed + delay_ms);
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.below(i + 1));
    }
    // Each real user takes at most 4 wrong answers (deny = 5), so only
    // locked-user is ever locked.
    let mut real = 0usize;
    let mut plain = 0usize;
    let attempts: Vec<(Class, Attempt)> = plan
        .iter()
        .enumerate()
        .map(|(i, class)| {
            let attempt = match class {
                Class::Unknown => {
                    Attempt::new(&format!("nx{i:05}"), &[PASSWORD, &code_now(DEMO_SECRET)])
                }
                Class::WrongPassword | Class::WrongCode => {
                    let user = &real_users[real / 4];
                    real += 1;
                    if *class == Class::WrongPassword {
                        Attempt::new(user, &["not-the-password", &code_now(DEMO_SECRET)])
                    } else {
                        Attempt::new(user, &[PASSWORD, &wrong_code(DEMO_SECRET)])
                    }
                }
                Class::Locked => Attempt::new("locked-user", &[PASSWORD, &code_now(DEMO_SECRET)]),
                Class::RecoveryUnknown => {
                    Attempt::new(&format!("nx{i:05}"), &[PASSWORD, &recovery_shaped(i)])
                }
                Class::RecoveryNoCodes => {
                    let user = &plain_users[plain / 4];
                    plain += 1;
                    Attempt::new(user, &[PASSWORD, &recovery_shaped(i)])
                }
                Class::RecoveryWrong => {
                    let user = &real_users[real / 4];
                    real += 1;
                    Attempt::new(user, &[PASSWORD, &recovery_shaped(i)])
                }
            };
            (*class, attempt)
        })
        .collect();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(vec![Vec::new(); CLASSES.len()]);
    std::thread::scope(|s| {
        for _ in 0..concurrency {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((class, attempt)) = attempts.get(i) else {
                        break;
                    };
                    let run = authenticate(&stack, attempt);
                    assert_ne!(run.code, PAM_OK, "a denial class succeeded: {class:?}");
                    let idx = CLASSES.iter().position(|c| c == class).unwrap_or(0);
                    if let Ok(mut r) = results.lock() {
                        r[idx].push(ms(run.elapsed));
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}

/// The users the timing classes draw on: `real` (TOTP and recovery
/// codes; wrong password, wrong code, wrong recovery code) and `plain`
/// (TOTP, no recovery codes). Each takes at most 4 wrong answers (deny = 5).
pub(crate) fn timing_users(n: usize) -> (Vec<String>, Vec<String>) {
    let real: Vec<String> = (0..(3 * n).div_ceil(4) + 1)
        .map(|i| format!("real{i:04}"))
        .collect();
    let plain: Vec<String> = (0..n.div_ceil(4) + 1)
        .map(|i| format!("plain{i:04}"))
        .collect();
    (real, plain)
}

pub(crate) fn enrol_timing_users(d: &Daemon, real: &[String], plain: &[String]) {
    for u in real
        .iter()
        .chain(plain)
        .chain(std::iter::once(&"locked-user".to_owned()))
    {
        d.enrol(u);
    }
    for u in real {
        d.veilctl(&["recovery", "new", u], "");
    }
}

/// One row per class: median, p10, p90, p99, KS against the unknown user.
pub(crate) fn denial_table(lat: &[Vec<f64>], say: &mut dyn FnMut(String)) {
    say("| class | n | median | p10 | p90 | p99 | KS D vs unknown | KS p vs unknown | Δ median vs unknown |\n|---|---|---|---|---|---|---|---|---|".into());
    let unknown = &lat[0];
    for (i, (class, l)) in CLASSES.iter().zip(lat).enumerate() {
        let (dstat, p) = if i == 0 {
            (0.0, 1.0)
        } else {
            ks_two_sample(unknown, l)
        };
        say(format!(
            "| {} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.3} | {:.3} | {:+.3} ms |",
            class.name(),
            l.len(),
            median(l),
            quantile(l, 0.1),
            quantile(l, 0.9),
            quantile(l, 0.99),
            dstat,
            p,
            median(l) - median(unknown)
        ));
    }
}

/// The denial times of [`denial_timing`] as empirical CDFs, one line per
/// class: classes that cannot be told apart draw on top of each other.
pub(crate) fn denial_cdf(title: &str, lat: &[Vec<f64>]) -> Result<String, String> {
    let lines: Vec<Line> = CLASSES
        .iter()
        .zip(lat)
        .enumerate()
        .map(|(i, (class, l))| {
            let line = Line::new(format!("{} (n = {})", class.name(), l.len()), l, i);
            if i == 0 { line } else { line.dashed() }
        })
        .collect();
    cdf_svg(title, &lines, &[])
}

/// `--recovery`: the denial table at delay 0 alone, the recovery-code
/// classes next to the others, on veild's default argon2 parameters.
pub(crate) fn recovery_report(n: usize, figures: &Figures, say: &mut dyn FnMut(String)) {
    let mut d = Daemon::start("[lockout]\ndeny = 5\n[limits]\nqueue = 256\n");
    let (real, plain) = timing_users(n);
    eprintln!(
        "veil-bench: enrolling {} users (argon2 at full cost, so this takes a while)",
        real.len() + plain.len() + 1
    );
    enrol_timing_users(&d, &real, &plain);
    let lat = denial_timing(&mut d, 0, n, 1, &real, &plain);
    say(format!(
        "## Denial timing with the recovery-code classes, failure_delay_ms = 0 ({} attempts interleaved at random, 1 client)\n",
        lat.iter().map(Vec::len).sum::<usize>()
    ));
    denial_table(&lat, say);
    say(String::new());
    say_some(
        say,
        figures.save("denial-cdf-recovery.svg", || {
            denial_cdf(
                "Denial time per class with the recovery-code classes, failure_delay_ms = 0",
                &lat,
            )
        }),
    );
    // The check itself, as veild runs it on every request: one HMAC-SHA256
    // and ten constant-time compares.
    let set = veil_daemon::common::recovery::dummy().expect("randomness");
    let check_us: Vec<f64> = (0..10_000)
        .map(|i| {
            let typed = recovery_shaped(i);
            let t = Instant::now();
            std::hint::black_box(veil_daemon::common::recovery::check(&set, typed.as_bytes()));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    say(format!(
        "The recovery-code check alone (10 000 calls, in the bench process): median {:.2} µs, p99 {:.2} µs.\n",
        median(&check_us),
        quantile(&check_us, 0.99)
    ));
}
