//! `--postgres`: SQLite and PostgreSQL side by side in one run, on a
//! throwaway cluster (Unix socket, fsync on): the ledger's cost per
//! attempt, success latency paired with the argon2 floor (samples
//! alternated, ratio with a bootstrap interval), and saturated throughput
//! with one and with two veild on one PostgreSQL.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use veil_daemon::common::config::{Argon2, Config, Lockout, Postgres};
use veil_daemon::common::ledger::{Limits, Origin, charge_for};
use veil_daemon::common::password::Hasher;
use veil_daemon::common::store::{self, Location, OpenMode, PgSettings};
use veil_tests::Veild;
use veil_tests::daemon::with_toml;
use veil_tests::postgres::Cluster;
use veil_tests::stats::{median, quantile};

const PASSWORD: &str = "bench-Passw0rd";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The median of the per-pair ratios and its 95 % bootstrap interval.
fn ratio_ci(pairs: &[(f64, f64)]) -> (f64, f64, f64) {
    let ratios: Vec<f64> = pairs.iter().map(|(e2e, floor)| e2e / floor).collect();
    let (lo, hi) = bootstrap_median_ci(&ratios);
    (median(&ratios), lo, hi)
}

/// A 95 % bootstrap interval of the median (2000 resamples).
fn bootstrap_median_ci(values: &[f64]) -> (f64, f64) {
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

fn backend_config(database: &Path, extra: &str) -> Config {
    Config {
        database: database.to_owned(),
        ..with_toml(Config::default(), extra)
    }
}

fn ask(socket: &Path, user: &str, password: &str, rhost: &str) -> Option<veil_proto::Verdict> {
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

/// The denial classes at failure delay 0 against PostgreSQL, interleaved,
/// one client: KS p against unknown names.
fn denial_classes(url: &Path, n: usize, say: &mut impl FnMut(String)) {
    let mut d = crate::Daemon::start_on(url, "[lockout]\ndeny = 5\n");
    let (real_users, plain_users) = crate::timing::timing_users(n);
    eprintln!(
        "veil-bench: enrolling {} users on PostgreSQL",
        real_users.len() + plain_users.len() + 1
    );
    crate::timing::enrol_timing_users(&d, &real_users, &plain_users);
    let lat = crate::timing::denial_timing(&mut d, 0, n, 1, &real_users, &plain_users);
    say(format!(
        "### Denial timing on PostgreSQL, failure_delay_ms = 0 ({} attempts interleaved at random, 1 client, libpam)\n",
        lat.iter().map(Vec::len).sum::<usize>()
    ));
    crate::timing::denial_table(&lat, say);
    say(String::new());
}

pub fn postgres_report(
    n: usize,
    baseline: Option<&Path>,
    delay: Option<Duration>,
    say: &mut impl FnMut(String),
) {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let backends: Vec<(&str, PathBuf)> = vec![
        ("SQLite", dir.path().join("bench.db")),
        ("PostgreSQL", PathBuf::from(cluster.database("bench"))),
    ];
    say("## PostgreSQL and SQLite side by side\n".into());
    say("One run, one machine; PostgreSQL on a Unix socket (a throwaway cluster in a temp dir, fsync and synchronous_commit on). Socket-level requests as root (no libpam); the success user has no TOTP (`policy = \"if-enrolled\"`), so a success skips the step's compare-and-set but does the ledger's writes.\n".into());

    // 1. The store alone, per call of a login: the lookup, the
    // reservation (a new user each, 3 keys) and a success's writes.
    say("### Store cost per login step (in the bench process, a new user each, 3 keys)\n".into());
    say("| store | N | lookup median | reserve median | reserve p99 | success writes median | success writes p99 |\n|---|---|---|---|---|---|---|".into());
    let limits = Limits::from(&Lockout::default());
    let mut rows: Vec<(String, Location)> = backends
        .iter()
        .map(|(name, database)| {
            let location = match *name {
                "SQLite" => Location::Sqlite(database.clone()),
                _ => Location::Postgres(PgSettings::new(database, &Postgres::default())),
            };
            (name.to_string(), location)
        })
        .collect();
    // The commit's share: the same on a server that does not wait for its
    // WAL to reach the disk (never a setting for veil: a failure must be
    // durable before its denial leaves).
    rows.push((
        "PostgreSQL, synchronous_commit = off (diagnostic only)".into(),
        rows[1].1.clone(),
    ));
    for (k, (name, location)) in rows.iter().enumerate() {
        if k == 2 {
            cluster.sql("postgres", "ALTER SYSTEM SET synchronous_commit = off");
            cluster.sql("postgres", "SELECT pg_reload_conf()");
        }
        let mut s = store::open(location, OpenMode::CreateIfMissing).expect("open");
        let (mut lookup, mut reserve, mut success) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n * 2 {
            let user = format!("ledger{k}-{i}");
            let charge = charge_for(
                &limits,
                &user,
                &Origin::from_root("198.51.100.20", 0, "sshd"),
            );
            let now = 1_000_000 + i as i64;
            let t = Instant::now();
            s.user_or_dummy(&user).expect("lookup");
            lookup.push(ms(t.elapsed()));
            let t = Instant::now();
            let r = s.reserve(&limits, charge, now).expect("reserve");
            reserve.push(ms(t.elapsed()));
            let t = Instant::now();
            s.commit_success(
                &limits,
                &veil_daemon::common::store::Success {
                    user: &user,
                    step: None,
                    reservation: &r,
                    new_hash: None,
                    recovery: None,
                    now,
                },
            )
            .expect("success writes");
            success.push(ms(t.elapsed()));
        }
        say(format!(
            "| {name} | {} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms |",
            reserve.len(),
            median(&lookup),
            median(&reserve),
            quantile(&reserve, 0.99),
            median(&success),
            quantile(&success, 0.99)
        ));
    }
    cluster.sql("postgres", "ALTER SYSTEM RESET synchronous_commit");
    cluster.sql("postgres", "SELECT pg_reload_conf()");
    say(String::new());

    // 2. Success latency: each round takes one argon2 floor sample (with
    // reused memory, as veild's workers verify) and one success through
    // each store, in an order that alternates, so all three see the same
    // machine at the same moment.
    let argon = Argon2::default();
    let hasher = Hasher::new(&argon).expect("argon2");
    let phc = hasher.hash(PASSWORD.as_bytes()).expect("hash");
    let mut memory = veil_daemon::common::password::Memory::default();
    let extra = "failure_delay_ms = 0\n[totp]\npolicy = \"if-enrolled\"\n[limits]\nqueue = 256\nmax_connections_per_user = 256\n";
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
        .map(|b| dir.path().join(format!("metrics-{b}.prom")))
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
    // What each veild counted before the rounds (nothing of them yet).
    std::thread::sleep(Duration::from_millis(1500));
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
            let v = ask(&daemons[b].socket(), &user(b), PASSWORD, "198.51.100.30");
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
    drop(daemons);
    say("### Success latency against the argon2 floor (socket; floor and both stores sampled in each round, order alternating)\n".into());
    say(format!(
        "argon2id verify alone (reused memory, as in veild): median {:.2} ms, p99 {:.2} ms, {} samples.\n",
        median(&floor),
        quantile(&floor, 0.99),
        floor.len()
    ));
    say("| store | rounds | success median | p99 | success − floor (median of pairs) | success/floor (95 % bootstrap CI) |\n|---|---|---|---|---|---|".into());
    for (b, (name, _, _)) in contenders.iter().enumerate() {
        let pairs: Vec<(f64, f64)> = e2e[b].iter().copied().zip(floor.iter().copied()).collect();
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

    // 3. Saturated throughput, and the limit it is held against (argon2
    // verifying on every core in the bench process), in interleaved 2 s
    // slices: the machine's other load falls on all of them alike.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let extra = "failure_delay_ms = 0\n[limits]\nqueue = 256\nmax_connections_per_user = 256\n";
    let configs: Vec<(&str, Vec<Veild>)> = [(0usize, 1usize), (1, 1), (1, 2)]
        .iter()
        .map(|&(b, hosts)| {
            let daemons = (0..hosts)
                .map(|_| Veild::launch_shared(backend_config(&backends[b].1, extra)))
                .collect();
            (backends[b].0, daemons)
        })
        .collect();
    let slots = configs.len() + 1;
    let mut done = vec![0usize; slots];
    let mut seconds = vec![0f64; slots];
    let seq = AtomicUsize::new(0);
    let rounds = 5;
    for round in 0..rounds {
        for k in 0..slots {
            let idx = (k + round) % slots;
            let count = AtomicUsize::new(0);
            let stop = AtomicBool::new(false);
            let started = Instant::now();
            std::thread::scope(|s| {
                if idx < configs.len() {
                    for d in &configs[idx].1 {
                        for _ in 0..16 {
                            let (count, stop, seq) = (&count, &stop, &seq);
                            s.spawn(move || {
                                while !stop.load(Ordering::Relaxed) {
                                    // A new user and source each time: no lock.
                                    let u = seq.fetch_add(1, Ordering::Relaxed);
                                    let rhost = format!(
                                        "10.{}.{}.{}",
                                        (u >> 16) & 255,
                                        (u >> 8) & 255,
                                        u & 255
                                    );
                                    if ask(&d.socket(), &format!("t{u}"), "wrong", &rhost).is_some()
                                    {
                                        count.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            });
                        }
                    }
                } else {
                    for _ in 0..cores {
                        let (count, stop, hasher, phc) = (&count, &stop, &hasher, &phc);
                        s.spawn(move || {
                            let mut memory = veil_daemon::common::password::Memory::default();
                            while !stop.load(Ordering::Relaxed) {
                                hasher.verify_with(&mut memory, phc, b"wrong");
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                }
                std::thread::sleep(Duration::from_secs(2));
                stop.store(true, Ordering::Relaxed);
            });
            done[idx] += count.load(Ordering::Relaxed);
            seconds[idx] += started.elapsed().as_secs_f64();
        }
    }
    drop(configs);
    let rate = |i: usize| done[i] as f64 / seconds[i];
    let limit = rate(slots - 1);
    say(format!(
        "### Saturated throughput (wrong passwords, a new user and source each, delay 0, 16 clients per veild; {rounds} interleaved 2 s slices each)\n"
    ));
    say(format!(
        "The limit: argon2id verify on all {cores} cores in the bench process, in the same slices: {limit:.1}/s.\n"
    ));
    say("| store | veild processes | attempts/s | of the limit |\n|---|---|---|---|".into());
    for (i, (name, hosts)) in [("SQLite", 1), ("PostgreSQL", 1), ("PostgreSQL", 2)]
        .iter()
        .enumerate()
    {
        say(format!(
            "| {name} | {hosts} | {:.1} | {:.0} % |",
            rate(i),
            100.0 * rate(i) / limit
        ));
    }
    say(String::new());

    denial_classes(&PathBuf::from(cluster.database("classes")), n, say);
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
