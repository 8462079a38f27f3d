//! `--postgres`, part 2: a success's latency through each store's veild
//! (and another build's with `--baseline-veild`), paired per round with
//! the argon2 floor and with each other, in two phases: a pair's repeated
//! login, then a pair's first login (a new source each round); with
//! veild's own decision, store and check times from its metrics file.
//! The helpers `postgres.rs` shares live here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use veil_daemon::common::config::{Argon2, Config};
use veil_daemon::common::password::Hasher;
use veil_tests::Veild;
use veil_tests::daemon::with_toml;
use veil_tests::postgres::Cluster;
use veil_tests::stats::{median, quantile};

use crate::postgres::PASSWORD;

/// The source of round `r`'s login.
type SourceOf = fn(usize) -> String;

/// The phases: what they measure, and where each round logs in from. A
/// new source is a new pair: no known-good memory, no known hash.
const PHASES: [(&str, SourceOf); 2] = [
    ("a pair's repeated login (one user and source each)", |_| {
        "198.51.100.30".into()
    }),
    ("a pair's first login (a new source each round)", |r| {
        format!("198.{}.{}.1", 18 + r / 256, r % 256)
    }),
];

/// Each store's success latency, in both phases.
pub fn success_latency(
    backends: &[(&str, PathBuf)],
    dir: &Path,
    cluster: &Cluster,
    n: usize,
    baseline: Option<&Path>,
    delay: Option<Duration>,
    say: &mut impl FnMut(String),
) {
    // Each round takes one argon2 floor sample (with reused memory, as
    // veild's workers verify) and one success through each store, in an
    // order that alternates, so all three see the same machine at the
    // same moment.
    let argon = Argon2::default();
    let hasher = Hasher::new(&argon).expect("argon2");
    let phc = hasher.hash(PASSWORD.as_bytes()).expect("hash");
    let mut memory = veil_daemon::common::password::Memory::default();
    // The default failure delay, as veild runs: a success is never held,
    // and a known pair's password is verified during its reservation
    // (`verify/known.rs`; off at delay 0).
    let extra =
        "[totp]\npolicy = \"if-enrolled\"\n[limits]\nqueue = 256\nmax_connections_per_user = 256\n";
    // The contenders: each store through this tree's veild, and with
    // --baseline-veild another build's beside it on the same PostgreSQL
    // database (same user, same rows), paired with the tree's per round.
    // With --pg-delay-us, through a proxy that delays each way.
    let proxy = delay.map(|d| {
        let proxy = crate::delay_proxy::DelayProxy::start(
            cluster.dir().join(".s.PGSQL.5432"),
            d,
        );
        let url = proxy.url(&backends[1].1.to_string_lossy(), cluster.dir());
        let rtt = |url: &str| {
            let mut c = ::postgres::Client::connect(url, ::postgres::NoTls).expect("connect");
            let mut t: Vec<f64> = (0..200)
                .map(|_| {
                    let s = Instant::now();
                    c.simple_query("SELECT 1").expect("SELECT 1");
                    ms(s.elapsed())
                })
                .collect();
            t.sort_by(f64::total_cmp);
            median(&t)
        };
        say(format!(
            "PostgreSQL reached through a proxy that holds each chunk {} µs each way: `SELECT 1` takes {:.3} ms through it, {:.3} ms direct (medians of 200).\n",
            d.as_micros(),
            rtt(&url),
            rtt(&backends[1].1.to_string_lossy())
        ));
        (proxy, PathBuf::from(url))
    });
    let pg_database = proxy
        .as_ref()
        .map_or(backends[1].1.clone(), |(_, url)| url.clone());
    let mut contenders: Vec<(String, PathBuf, Option<PathBuf>)> = vec![
        ("SQLite".into(), backends[0].1.clone(), None),
        ("PostgreSQL".into(), pg_database.clone(), None),
    ];
    if let Some(dir) = baseline {
        contenders.push((
            format!("PostgreSQL, veild of {}", dir.display()),
            pg_database,
            Some(dir.to_owned()),
        ));
    }
    let metrics_files: Vec<PathBuf> = (0..contenders.len())
        .map(|b| dir.join(format!("metrics-{b}.prom")))
        .collect();
    let daemons: Vec<Veild> = contenders
        .iter()
        .zip(&metrics_files)
        .map(|((_, database, bin_dir), metrics)| {
            let mut config = backend_config(database, extra);
            config.metrics.file = Some(metrics.clone());
            config.metrics.interval_s = 1;
            Veild::launch_shared_from(config, &[], bin_dir.clone())
        })
        .collect();
    // A user each, so that no contender's success changes the state
    // another's next login reads; made by the tree's veilctl.
    let user = |k: usize| format!("okuser{k}");
    for k in 0..contenders.len() {
        daemons[k.min(backends.len() - 1)].add_user(&user(k), PASSWORD);
    }
    std::thread::sleep(Duration::from_millis(1500));
    for (phase, source) in PHASES {
        // What each veild counted before this phase's rounds.
        let before: Vec<InsideVeild> = metrics_files.iter().map(|f| InsideVeild::read(f)).collect();
        let mut floor = Vec::new();
        let mut e2e: Vec<Vec<f64>> = vec![Vec::new(); daemons.len()];
        for round in 0..n {
            let t = Instant::now();
            assert!(hasher.verify_with(&mut memory, &phc, PASSWORD.as_bytes()));
            floor.push(ms(t.elapsed()));
            for k in 0..daemons.len() {
                let b = (k + round) % daemons.len();
                let t = Instant::now();
                let v = ask(&daemons[b].socket(), &user(b), PASSWORD, &source(round));
                e2e[b].push(ms(t.elapsed()));
                assert_eq!(
                    v,
                    Some(veil_proto::Verdict::Allow),
                    "{} success",
                    contenders[b].0
                );
            }
        }
        std::thread::sleep(Duration::from_millis(1500));
        let inside: Vec<InsideVeild> = metrics_files
            .iter()
            .zip(&before)
            .map(|(f, b)| InsideVeild::read(f).since(b))
            .collect();
        say(format!(
            "### Success latency against the argon2 floor, {phase} (socket; floor and both stores sampled in each round, order alternating)\n"
        ));
        say(format!(
            "argon2id verify alone (reused memory, as in veild): median {:.2} ms, p99 {:.2} ms, {} samples.\n",
            median(&floor),
            quantile(&floor, 0.99),
            floor.len()
        ));
        say("| store | rounds | success median | p99 | success − floor (median of pairs) | success/floor (95 % bootstrap CI) |\n|---|---|---|---|---|---|".into());
        for (b, (name, _, _)) in contenders.iter().enumerate() {
            let pairs: Vec<(f64, f64)> =
                e2e[b].iter().copied().zip(floor.iter().copied()).collect();
            let diffs: Vec<f64> = pairs.iter().map(|p| p.0 - p.1).collect();
            let (r, lo, hi) = ratio_ci(&pairs);
            say(format!(
                "| {name} | {} | {:.2} ms | {:.2} ms | {:+.2} ms | {r:.3} ({lo:.3}–{hi:.3}) |",
                pairs.len(),
                median(&e2e[b]),
                quantile(&e2e[b], 0.99),
                median(&diffs),
            ));
        }
        say("\nWhere a success's time goes (means over the rounds; veild's own figures from its metrics file: a request's decision, the store calls and the checks within it):\n".into());
        say("| store | end to end | veild's decision | of which the store | of which the checks (argon2id, code) | outside the decision (socket, queue, reply) |\n|---|---|---|---|---|---|".into());
        for (b, (name, _, _)) in contenders.iter().enumerate() {
            let e2e_mean = e2e[b].iter().sum::<f64>() / e2e[b].len().max(1) as f64;
            let i = &inside[b];
            say(format!(
                "| {name} | {e2e_mean:.2} ms | {:.2} ms | {:.3} ms | {} | {:.2} ms |",
                i.decision_ms(),
                i.store_ms(),
                i.check_ms()
                    .map_or("(not measured by this veild)".into(), |c| format!(
                        "{c:.2} ms"
                    )),
                e2e_mean - i.decision_ms()
            ));
        }
        let pg_vs_sqlite: Vec<(f64, f64)> =
            e2e[1].iter().copied().zip(e2e[0].iter().copied()).collect();
        let diffs: Vec<f64> = pg_vs_sqlite.iter().map(|p| p.0 - p.1).collect();
        let (lo, hi) = bootstrap_median_ci(&diffs);
        say(format!(
            "\nPostgreSQL − SQLite, per round: median {:+.2} ms (95 % CI {lo:+.2} to {hi:+.2} ms); target: at most +1 ms.\n",
            median(&diffs)
        ));
        if let Some((name, _, _)) = contenders.get(2) {
            let diffs: Vec<f64> = e2e[1].iter().zip(&e2e[2]).map(|(t, b)| t - b).collect();
            let (lo, hi) = bootstrap_median_ci(&diffs);
            say(format!(
                "PostgreSQL through this tree's veild − {name}, per round: median {:+.2} ms (95 % CI {lo:+.2} to {hi:+.2} ms).\n",
                median(&diffs)
            ));
        }
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The median of the per-pair ratios and its 95 % bootstrap interval.
pub(crate) fn ratio_ci(pairs: &[(f64, f64)]) -> (f64, f64, f64) {
    let ratios: Vec<f64> = pairs.iter().map(|(e2e, floor)| e2e / floor).collect();
    let (lo, hi) = bootstrap_median_ci(&ratios);
    (median(&ratios), lo, hi)
}

/// A 95 % bootstrap interval of the median (2000 resamples).
pub(crate) fn bootstrap_median_ci(values: &[f64]) -> (f64, f64) {
    let ratios = values;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut medians: Vec<f64> = (0..2000)
        .map(|_| {
            let sample: Vec<f64> = (0..ratios.len())
                .map(|_| ratios[next() % ratios.len()])
                .collect();
            median(&sample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    (quantile(&medians, 0.025), quantile(&medians, 0.975))
}

pub(crate) fn backend_config(database: &Path, extra: &str) -> Config {
    Config {
        database: database.to_owned(),
        ..with_toml(Config::default(), extra)
    }
}

pub(crate) fn ask(
    socket: &Path,
    user: &str,
    password: &str,
    rhost: &str,
) -> Option<veil_proto::Verdict> {
    let mut request = veil_proto::Request::new(
        user,
        veil_proto::Reply::from(password),
        veil_proto::Reply::from(""),
    );
    request.rhost = rhost.into();
    veil_proto::ask(
        socket,
        &request,
        Duration::from_secs(30),
        Some(nix::unistd::getuid().as_raw()),
    )
    .ok()
}

/// Sums and counts of veild's decision and store-time histograms, read
/// from its metrics file.
#[derive(Debug, Default, Clone, Copy)]
struct InsideVeild {
    decision_s: f64,
    decisions: f64,
    store_s: f64,
    stores: f64,
    /// None: a veild without the check histogram (before 0.4.1).
    check: Option<(f64, f64)>,
}

impl InsideVeild {
    fn read(file: &Path) -> InsideVeild {
        let text = std::fs::read_to_string(file).expect("veild's metrics file");
        let maybe = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        };
        let value = |name: &str| maybe(name).unwrap_or_else(|| panic!("{name} in veild's metrics"));
        InsideVeild {
            decision_s: value("veil_verification_duration_seconds_sum"),
            decisions: value("veil_verification_duration_seconds_count"),
            store_s: value("veil_store_duration_seconds_sum"),
            stores: value("veil_store_duration_seconds_count"),
            check: maybe("veil_check_duration_seconds_sum")
                .zip(maybe("veil_check_duration_seconds_count")),
        }
    }

    fn since(self, before: &InsideVeild) -> InsideVeild {
        InsideVeild {
            decision_s: self.decision_s - before.decision_s,
            decisions: self.decisions - before.decisions,
            store_s: self.store_s - before.store_s,
            stores: self.stores - before.stores,
            check: self
                .check
                .zip(before.check)
                .map(|((s, n), (bs, bn))| (s - bs, n - bn)),
        }
    }

    fn decision_ms(&self) -> f64 {
        1000.0 * self.decision_s / self.decisions.max(1.0)
    }

    /// None for a veild without the check histogram.
    fn check_ms(&self) -> Option<f64> {
        self.check.map(|(s, n)| 1000.0 * s / n.max(1.0))
    }

    fn store_ms(&self) -> f64 {
        1000.0 * self.store_s / self.stores.max(1.0)
    }
}
