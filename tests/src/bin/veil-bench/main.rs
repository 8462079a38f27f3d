//! veil-bench: starts real veild processes and drives them through real
//! libpam and pam_veil.so, then prints a markdown report: the argon2 floor,
//! success latency, throughput, memory, and denial timing per failure class
//! with two-sample Kolmogorov–Smirnov tests.
//!
//! Run with `scripts/bench.sh` (release build, as root). `--quick` runs a
//! short version (N = 100 per class, the delayed run skipped). `--pairs`
//! runs only the paired two-class timing (real vs unknown, locked vs
//! fresh, delay 0, N per class); `--flood` only the fair-share figures
//! (libpam, then a real sshd login idle and under issue 18's local flood;
//! `--ssh-flood` the sshd one alone);
//! `--ssh-timing` only denial timing over a real sshd (issue 21: real
//! and unknown names, keyboard-interactive and `one_prompt`);
//! `--ssh-timing-per-name` the same name by name (`--names K` names, each
//! real and unknown in turn, `--per-state M` logins per name and state);
//! `--recovery` only the denial table at delay 0 (with the recovery-code
//! classes); `--ledger` only the ledger's cost at 10, 90 and 100 % of its
//! cap (SQLite, then PostgreSQL on a throwaway cluster). `--svg DIR` also draws the figures into DIR (scripts/bench.sh
//! passes `docs/bench`): denial-time CDFs per class (full, `--quick`,
//! `--recovery` and `--pairs` runs), success latency against the argon2
//! floor and throughput against its limit (full and `--quick` runs).
#![forbid(unsafe_code)]
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock by design

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use veil_daemon::common::config::{Argon2, Config};
use veil_daemon::common::password::Hasher;
mod delay_proxy;
mod edges;
mod ledger;
mod ledger_pg;
mod pg_success;
mod postgres;
mod ssh_flood;
mod ssh_per_name;
mod ssh_timing;
mod svg;
mod system;
mod throughput;
mod timing;

use timing::{denial_table, denial_timing, enrol_timing_users, recovery_report, timing_users};

use veil_tests::daemon::with_toml;
use veil_tests::pam::{PamStack, authenticate, socket_args};
use veil_tests::stats::{ks_two_sample, median, quantile};
use veil_tests::totp::{DEMO_SECRET, code_now};
use veil_tests::{Attempt, Veild};

const PASSWORD: &str = "bench-Passw0rd";
const PAM_OK: i32 = 0;

struct Options {
    n: usize,
    quick: bool,
    pairs: bool,
    flood: bool,
    ssh_flood: bool,
    ssh_timing: bool,
    ssh_per_name: bool,
    names: usize,
    per_state: usize,
    system: bool,
    postgres: bool,
    /// `--postgres`: another build's veild (its directory) beside the
    /// tree's on PostgreSQL in the success rounds, paired with it.
    baseline: Option<std::path::PathBuf>,
    /// `--postgres`: the success rounds reach PostgreSQL through a proxy
    /// that holds each chunk this long each way (a server a network away).
    pg_delay_us: Option<usize>,
    recovery: bool,
    ledger: bool,
    svg: Option<PathBuf>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        n: 500,
        quick: false,
        pairs: false,
        flood: false,
        ssh_flood: false,
        ssh_timing: false,
        ssh_per_name: false,
        names: 6,
        per_state: 8,
        system: false,
        postgres: false,
        baseline: None,
        pg_delay_us: None,
        recovery: false,
        ledger: false,
        svg: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => {
                o.quick = true;
                o.n = 100;
            }
            "--pairs" => o.pairs = true,
            "--flood" => o.flood = true,
            "--ssh-flood" => o.ssh_flood = true,
            "--ssh-timing" => o.ssh_timing = true,
            "--ssh-timing-per-name" => o.ssh_per_name = true,
            "--names" => o.names = number(args.next(), "--names")?,
            "--per-state" => o.per_state = number(args.next(), "--per-state")?,
            "--system" => o.system = true,
            "--postgres" => o.postgres = true,
            "--recovery" => o.recovery = true,
            "--ledger" => o.ledger = true,
            "--svg" => o.svg = Some(args.next().ok_or("--svg takes a directory")?.into()),
            "--n" => o.n = number(args.next(), "--n")?,
            "--pg-delay-us" => o.pg_delay_us = Some(number(args.next(), "--pg-delay-us")?),
            "--baseline-veild" => {
                o.baseline = Some(
                    args.next()
                        .ok_or("--baseline-veild needs a directory")?
                        .into(),
                )
            }
            "-h" | "--help" => {
                println!(
                    "usage: veil-bench [--quick] [--pairs] [--flood] [--ssh-flood] [--ssh-timing] [--ssh-timing-per-name [--names K] [--per-state M]] [--system] [--postgres [--baseline-veild DIR] [--pg-delay-us N]] [--recovery] [--ledger] [--n PER_CLASS] [--svg DIR]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn number(value: Option<String>, flag: &str) -> Result<usize, String> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{flag} takes a number"))
}

/// How the report names the command that made it: scripts/bench.sh, or
/// what scripts/bench-debian.sh sets (the run inside a Debian root).
fn command() -> String {
    std::env::var("VEIL_BENCH_COMMAND").unwrap_or_else(|_| "scripts/bench.sh".into())
}

/// The bench's veild: the one test harness ([`Veild`]) at veild's own
/// defaults (production argon2), with what the bench does to it.
struct Daemon(Veild);

impl Daemon {
    fn start(extra: &str) -> Daemon {
        Daemon(Veild::launch(with_toml(Config::default(), extra)))
    }

    /// veild at its defaults with `extra` over them, on the store `database`
    /// names (a path or a postgresql:// URL).
    fn start_on(database: &Path, extra: &str) -> Daemon {
        Daemon(Veild::launch_shared(Config {
            database: database.to_owned(),
            ..with_toml(Config::default(), extra)
        }))
    }

    /// veild's defaults with `extra` over them, on the same database.
    fn restart(&mut self, extra: &str) {
        let base = Config {
            socket: self.0.socket(),
            database: self.0.config().database,
            ..Config::default()
        };
        self.0.restart(with_toml(base, extra));
    }

    fn pid(&self) -> u32 {
        self.0.pid().unwrap_or(0)
    }

    fn socket(&self) -> PathBuf {
        self.0.socket()
    }

    fn veilctl(&self, args: &[&str], stdin: &str) {
        self.0.veilctl(args, stdin);
    }

    fn enrol(&self, user: &str) {
        self.0.add_user(user, PASSWORD);
        self.0.enroll_totp(user, DEMO_SECRET);
    }

    fn clear_ledger_except(&self, keep_user: &str) {
        let database = self.0.config().database;
        if veil_daemon::common::store::postgres::is_url(&database) {
            let mut client =
                ::postgres::Client::connect(&database.to_string_lossy(), ::postgres::NoTls)
                    .expect("connect to the bench's PostgreSQL");
            client
                .execute("DELETE FROM ledger WHERE username <> $1", &[&keep_user])
                .expect("clear ledger");
            return;
        }
        let mut store = veil_daemon::common::store::SqliteStore::open(
            &database,
            veil_daemon::common::store::OpenMode::MustExist,
        )
        .expect("open the bench database");
        store
            .conn()
            .execute("DELETE FROM ledger WHERE user != ?1", [keep_user])
            .expect("clear ledger");
    }

    fn stack(&self) -> PamStack {
        PamStack::veil(&socket_args(&self.0.socket(), "30"))
    }
}

/// (VmRSS, VmHWM) of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**not met**" }
}

fn main() -> ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("veil-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!(
            "veil-bench: run as root (veild answers a non-root caller only about its own account)"
        );
        return ExitCode::from(2);
    }
    // 1 000 idle connections need more descriptors than some defaults give.
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ = nix::sys::resource::setrlimit(
            nix::sys::resource::Resource::RLIMIT_NOFILE,
            hard.min(8192),
            hard,
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let argon = Argon2::default();
    let figures = svg::Figures::new(opts.svg.clone());
    // A figure that could not be written fails the run (it went on).
    let finish = |figures: &svg::Figures| {
        if figures.failed() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    };
    let cmd = command();
    let out = &mut String::new();
    let mut say = |s: String| {
        println!("{s}");
        out.push_str(&s);
        out.push('\n');
    };
    say("# veil benchmark\n".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    say(format!(
        "Machine: {cores} cores ({cpu}), Linux {}; argon2id m={} KiB t={} p={} (veild's defaults); veild workers = {cores} (one per core); N = {} per timing class.\n",
        kernel.trim(),
        argon.m_cost_kib,
        argon.t_cost,
        argon.p_cost,
        opts.n
    ));

    if opts.postgres {
        postgres::postgres_report(
            opts.n,
            opts.baseline.as_deref(),
            opts.pg_delay_us
                .map(|us| std::time::Duration::from_micros(us as u64)),
            &mut say,
        );
        say(format!("Command: `{cmd} --postgres --n {}`", opts.n));
        return ExitCode::SUCCESS;
    }
    if opts.ledger {
        ledger::ledger_report(opts.quick, &mut say);
        say(format!(
            "Command: `{cmd} --ledger{}`",
            if opts.quick { " --quick" } else { "" }
        ));
        return ExitCode::SUCCESS;
    }
    if opts.ssh_per_name {
        let ran = ssh_per_name::ssh_per_name_report(opts.names, opts.per_state, &mut say);
        say(format!(
            "Command: `{cmd} --ssh-timing-per-name --names {} --per-state {}`",
            opts.names, opts.per_state
        ));
        return if ran {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if opts.ssh_timing {
        ssh_timing::ssh_timing_report(opts.n, &mut say);
        say(format!("Command: `{cmd} --ssh-timing --n {}`", opts.n));
        return ExitCode::SUCCESS;
    }
    if opts.recovery {
        recovery_report(opts.n, &figures, &mut say);
        say(format!("Command: `{cmd} --recovery --n {}`", opts.n));
        return finish(&figures);
    }
    if opts.pairs || opts.flood || opts.ssh_flood || opts.system {
        if opts.system {
            system::system_report(opts.n, &mut say);
        }
        if opts.flood {
            edges::flood_report(opts.quick, &mut say);
        }
        if opts.flood || opts.ssh_flood {
            ssh_flood::ssh_flood_report(opts.quick, &mut say);
        }
        if opts.pairs {
            edges::pairs_report(opts.n, &figures, &mut say);
        }
        say(format!(
            "Command: `{cmd}{}{}{}{}{}{}`",
            if opts.system { " --system" } else { "" },
            if opts.flood { " --flood" } else { "" },
            if opts.ssh_flood { " --ssh-flood" } else { "" },
            if opts.pairs { " --pairs" } else { "" },
            if opts.quick { " --quick" } else { "" },
            if opts.pairs || opts.system {
                format!(" --n {}", opts.n)
            } else {
                String::new()
            }
        ));
        return finish(&figures);
    }

    // 1. The physical floor.
    let hasher = Hasher::new(&argon).expect("argon2 parameters");
    let phc = hasher.hash(PASSWORD.as_bytes()).expect("hash");
    let samples = if opts.quick { 50 } else { 200 };
    // Reused memory, as each of veild's workers verifies: a fresh 19 MiB
    // per call would add its allocation to the floor.
    let mut memory = veil_daemon::common::password::Memory::default();
    let argon_ms: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            assert!(hasher.verify_with(&mut memory, &phc, PASSWORD.as_bytes()));
            ms(t.elapsed())
        })
        .collect();
    let argon_median = median(&argon_ms);
    say("## 1. Bare argon2id verify (the floor)\n".into());
    say(format!(
        "| samples | median | p99 |\n|---|---|---|\n| {samples} | {:.2} ms | {:.2} ms |\n",
        argon_median,
        quantile(&argon_ms, 0.99)
    ));

    // 2. Success through libpam + pam_veil + veild.
    let mut d =
        Daemon::start("failure_delay_ms = 2000\n[lockout]\ndeny = 5\n[limits]\nqueue = 256\n");
    let (idle_rss, _) = memory_kib(d.pid());
    let successes = if opts.quick { 30 } else { 150 };
    let (real_users, plain_users) = timing_users(opts.n);
    eprintln!(
        "veil-bench: enrolling {} users (argon2 at full cost, so this takes a while)",
        2 * successes + real_users.len() + plain_users.len() + 1
    );
    let success_users: Vec<String> = (0..2 * successes).map(|i| format!("ok{i:04}")).collect();
    for u in &success_users {
        d.enrol(u);
    }
    enrol_timing_users(&d, &real_users, &plain_users);
    let stack = d.stack();
    let mut success_ms = Vec::new();
    let mut socket_ms = Vec::new();
    for u in &success_users[successes..] {
        let request = veil_proto::Request::new(
            u,
            veil_proto::Reply::from(PASSWORD),
            veil_proto::Reply::given(code_now(DEMO_SECRET).into_bytes()),
        );
        let t = Instant::now();
        let verdict = veil_proto::ask(
            &d.socket(),
            &request,
            Duration::from_secs(30),
            Some(nix::unistd::getuid().as_raw()),
        );
        socket_ms.push(ms(t.elapsed()));
        assert_eq!(
            verdict.ok(),
            Some(veil_proto::Verdict::Allow),
            "socket success failed for {u}"
        );
    }
    for u in &success_users[..successes] {
        let run = authenticate(
            &stack,
            &Attempt::new(u, &[PASSWORD, &code_now(DEMO_SECRET)]),
        );
        assert_eq!(run.code, PAM_OK, "success case failed for {u}");
        success_ms.push(ms(run.elapsed));
    }
    let success_median = median(&success_ms);
    let ratio = success_median / argon_median;
    say("## 2. Successful login end to end (libpam → pam_veil.so → veild)\n".into());
    say(format!(
        "| samples | median | p99 | median / argon2 median | target ≤ 1.10 |\n|---|---|---|---|---|\n| {} | {:.2} ms | {:.2} ms | {:.3} | {} |\n",
        success_ms.len(),
        success_median,
        quantile(&success_ms, 0.99),
        ratio,
        verdict(ratio <= 1.10)
    ));
    say(format!(
        "Over the socket alone (veil_proto::ask, no libpam): median {:.2} ms, p99 {:.2} ms ({} samples).\n",
        median(&socket_ms),
        quantile(&socket_ms, 0.99),
        socket_ms.len()
    ));
    say_some(
        &mut say,
        figures.save("success-vs-floor.svg", || {
            svg::cdf_svg(
                &format!("Successful login against the argon2 floor ({cores} cores)"),
                &[
                    svg::Line::new("bare argon2id verify (the floor)", &argon_ms, 6),
                    svg::Line::new("success through libpam + pam_veil + veild", &success_ms, 0),
                    svg::Line::new("success over the socket alone", &socket_ms, 2).dashed(),
                ],
                &[(
                    "target: 1.10 × floor median".to_owned(),
                    1.10 * argon_median,
                )],
            )
        }),
    );

    // 3. Saturated throughput (denials with failure_delay_ms = 0 cost the same argon2 work).
    throughput::throughput_report(&mut d, cores, argon_median, opts.quick, &figures, &mut say);
    let (_, saturated_hwm) = memory_kib(d.pid());

    // 4. Memory with 1 000 idle connections.
    let conns: Vec<UnixStream> = (0..1000)
        .filter_map(|_| UnixStream::connect(d.socket()).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (conn_rss, conn_hwm) = memory_kib(d.pid());
    let fds = open_fds(d.pid());
    drop(conns);
    let budget = cores as f64 * f64::from(argon.m_cost_kib) / 1024.0 + 16.0;
    let peak = mib(saturated_hwm.max(conn_hwm));
    say("## 4. veild memory\n".into());
    say(format!(
        "| state | RSS |\n|---|---|\n| idle, after start | {:.1} MiB |\n| peak at saturation (VmHWM) | {:.1} MiB |\n| {} idle connections open ({fds} fds) | {:.1} MiB (VmHWM {:.1} MiB) |\n\nBudget = workers × argon2 memory + 16 MiB = {budget:.1} MiB: {}\n",
        mib(idle_rss),
        mib(saturated_hwm),
        1000,
        mib(conn_rss),
        mib(conn_hwm),
        verdict(peak <= budget)
    ));

    // 5. Denial timing per class.
    say("## 5. Denial timing per class\n".into());
    let runs: Vec<(u64, usize)> = if opts.quick {
        vec![(0, 1)]
    } else {
        vec![(0, 1), (2000, 32)]
    };
    for (delay, concurrency) in runs {
        eprintln!("veil-bench: timing run, failure_delay_ms = {delay}");
        let lat = denial_timing(
            &mut d,
            delay,
            opts.n,
            concurrency,
            &real_users,
            &plain_users,
        );
        say(format!(
            "### failure_delay_ms = {delay} ({} attempts interleaved at random, {concurrency} client(s))\n",
            lat.iter().map(Vec::len).sum::<usize>()
        ));
        denial_table(&lat, &mut say);
        let unknown = &lat[0];
        let (_, p) = ks_two_sample(unknown, &lat[1]);
        let dm = (median(&lat[1]) - median(unknown)).abs();
        let target = if delay == 0 {
            format!(
                "Target (unknown vs wrong password, no delay): KS p > 0.01 and |Δ median| < 1 ms: p = {p:.3}, |Δ| = {dm:.3} ms: {}",
                verdict(p > 0.01 && dm < 1.0)
            )
        } else {
            format!(
                "Target (with the default delay): |Δ median| < 0.5 ms: {dm:.3} ms: {}",
                verdict(dm < 0.5)
            )
        };
        say(format!("\n{target}\n"));
        say_some(
            &mut say,
            figures.save(&format!("denial-cdf-delay-{delay}.svg"), || {
                timing::denial_cdf(
                    &format!(
                        "Denial time per class, failure_delay_ms = {delay}, {concurrency} client(s)"
                    ),
                    &lat,
                )
            }),
        );
    }
    // 6. The ledger's own cost, against how full it is.
    ledger::ledger_report(opts.quick, &mut say);
    // 7. Fair share under a flood.
    edges::flood_report(opts.quick, &mut say);
    ssh_flood::ssh_flood_report(opts.quick, &mut say);
    say(format!(
        "Command: `{cmd}{}`",
        if opts.quick { " --quick" } else { "" }
    ));
    let _ = Path::new(".");
    finish(&figures)
}

/// Adds a figure's line to the report when one was written.
fn say_some(say: &mut dyn FnMut(String), line: Option<String>) {
    if let Some(line) = line {
        say(line);
    }
}
