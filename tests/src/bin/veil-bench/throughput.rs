//! Saturated throughput: K clients each loop `pam_authenticate` with
//! denials at `failure_delay_ms = 0` (the same argon2 work as a success),
//! against the limit cores ÷ the argon2 floor's median.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use veil_tests::Attempt;
use veil_tests::pam::authenticate;

use crate::svg::{Figures, throughput_svg};
use crate::{Daemon, PAM_OK, say_some, verdict};

/// The client counts: one, one per core, four per core, and 64.
fn client_counts(cores: usize) -> [usize; 4] {
    [1, cores, 4 * cores, 64]
}

/// veild for the run: nothing locks, and the queue, the connections and
/// the per-requester share (the bench's clients are all one requester,
/// root) hold the most clients, so every attempt is evaluated; under the
/// default share of 16, attempts over it are denied without argon2 and
/// the rate means nothing.
fn config(cores: usize) -> String {
    let most = client_counts(cores).into_iter().max().unwrap_or(64);
    format!(
        "failure_delay_ms = 0\n[lockout]\ndeny = 100\nuser_deny = 1000000\nsource_deny = 1000000\n[limits]\nqueue = {}\nmax_connections = {}\nmax_connections_per_user = {most}\n",
        most.max(256),
        most.max(1024)
    )
}

/// Section 3 of the full run; restarts `d` with [`config`].
pub(crate) fn throughput_report(
    d: &mut Daemon,
    cores: usize,
    argon_median: f64,
    quick: bool,
    figures: &Figures,
    say: &mut dyn FnMut(String),
) {
    d.restart(&config(cores));
    let limit = cores as f64 * 1000.0 / argon_median;
    let secs = if quick { 3.0 } else { 8.0 };
    say("## 3. Saturated throughput\n".into());
    say(format!(
        "Limit = cores / argon2 median = {cores} / {argon_median:.2} ms = {limit:.1} req/s. Each client loops pam_authenticate for {secs} s (unknown names, `failure_delay_ms = 0`, the per-requester share as wide as the most clients).\n"
    ));
    say("| clients K | req/s | % of limit | target (K = cores) ≥ 90 % |\n|---|---|---|---|".into());
    let stack = d.stack();
    let mut rates = Vec::new();
    for k in client_counts(cores) {
        let stop = AtomicBool::new(false);
        let done = AtomicUsize::new(0);
        let started = Instant::now();
        std::thread::scope(|s| {
            for c in 0..k {
                let (stop, done, stack) = (&stop, &done, &stack);
                s.spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let run = authenticate(
                            stack,
                            &Attempt::new(&format!("tp{k}-{c}-{i}"), &["x", "000000"]),
                        );
                        assert_ne!(run.code, PAM_OK);
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                });
            }
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.store(true, Ordering::Relaxed);
        });
        let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        let pct = 100.0 * rate / limit;
        let target = if k == cores { verdict(pct >= 90.0) } else { "" };
        say(format!("| {k} | {rate:.1} | {pct:.0} % | {target} |"));
        rates.push((k, rate));
    }
    say(String::new());
    say_some(
        say,
        figures.save("throughput.svg", || {
            throughput_svg(
                &format!("Saturated throughput, {cores} cores (unknown names, delay 0)"),
                &rates,
                limit,
            )
        }),
    );
}

#[cfg(test)]
mod tests {
    use veil_daemon::common::config::Config;
    use veil_tests::daemon::with_toml;

    use super::{client_counts, config};

    /// Fails on the old main, where the run kept the default share of 16:
    /// at K = 64 the 2026-12-06 quick run reported 14 489.7 req/s, 17 204 %
    /// of the argon2 limit, because over-share attempts were denied without
    /// being evaluated.
    #[test]
    fn the_throughput_run_lets_every_client_be_evaluated() {
        for cores in [1, 2, 8, 64, 300] {
            let c = with_toml(Config::default(), &config(cores));
            let most = client_counts(cores).into_iter().max().unwrap_or(0);
            assert!(
                c.limits.max_connections_per_user >= most,
                "{cores} cores: share {} < {most} clients",
                c.limits.max_connections_per_user
            );
            assert!(c.limits.max_connections >= most);
            assert!(c.limits.queue >= most);
            assert_eq!(c.failure_delay_ms, 0);
        }
    }
}
