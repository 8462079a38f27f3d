//! `--postgres`: SQLite and PostgreSQL side by side in one run, on a
//! throwaway cluster (Unix socket, fsync on): the ledger's cost per
//! attempt, success latency paired with the argon2 floor (samples
//! alternated, ratio with a bootstrap interval), and saturated throughput
//! with one and with two veild on one PostgreSQL.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use veil_daemon::common::config::{Argon2, Lockout, Postgres};
use veil_daemon::common::ledger::{Limits, Origin, charge_for};
use veil_daemon::common::password::Hasher;
use veil_daemon::common::store::{self, Location, OpenMode, PgSettings};
use veil_tests::Veild;
use veil_tests::postgres::Cluster;
use veil_tests::stats::{median, quantile};

use crate::pg_success::{self, ask, backend_config, ms};

pub(crate) const PASSWORD: &str = "bench-Passw0rd";

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

    // 2. Success latency, paired per round with the argon2 floor.
    pg_success::success_latency(&backends, dir.path(), &cluster, n, baseline, delay, say);

    // 3. Saturated throughput, and the limit it is held against (argon2
    // verifying on every core in the bench process), in interleaved 2 s
    // slices: the machine's other load falls on all of them alike.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hasher = Hasher::new(&Argon2::default()).expect("argon2");
    let phc = hasher.hash(PASSWORD.as_bytes()).expect("hash");
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
