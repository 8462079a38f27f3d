//! Alerts: the admin's `[alerts] command`, run on events an admin must
//! hear about (a wide key locked, a lock storm, a store outage and its
//! end, a recovery code used, veild refusing to start), with the event in
//! `VEIL_*` environment variables.
//!
//! Never on a login's path: a login only does a `try_send` to one
//! dedicated thread (full queue: the alert is dropped and counted), and
//! that thread runs one command at a time, killing its process group at
//! `timeout_s`. At most one run per event kind per `interval_s`; the rest
//! are dropped, counted (`veil_alerts_dropped_total`) and logged. The
//! command gets no shell, no stdin, and an environment of its own (PATH
//! and the event: never a password; veild's own variables stay out).

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::config::alerts::Alerts as Settings;
use crate::common::files::{FileError, check_not_writable_by_others};
use crate::common::ledger::KeyKind;
use crate::veild::metrics::{ALERT_EVENTS, Metrics};

pub use veil_proto::sanitize::sanitize;

/// Events waiting for the runner; more are dropped. Kinds are few and
/// rate-limited, so this fills only while a command hangs.
const QUEUE: usize = 8;
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The locked keys an admin hears about: those that refuse many users
/// (a source, a user from every remote source, the ledger's overflow).
pub fn is_wide(kind: KeyKind) -> bool {
    matches!(
        kind,
        KeyKind::Source | KeyKind::UserRemote | KeyKind::Overflow
    )
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("[alerts] command: {0}")]
    File(#[from] FileError),
    #[error("[alerts] command {}: not an executable file", .0.display())]
    NotExecutable(PathBuf),
}

/// The command must be an executable file that only root or veild's own
/// user can change.
pub fn check_command(path: &Path) -> Result<(), CommandError> {
    check_not_writable_by_others(path)?;
    let executable =
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if !executable {
        return Err(CommandError::NotExecutable(path.to_owned()));
    }
    Ok(())
}

/// One event: its kind (one of [`ALERT_EVENTS`]) and its variables.
#[derive(Debug, Clone)]
pub struct Event {
    kind: &'static str,
    vars: Vec<(&'static str, String)>,
}

impl Event {
    pub fn new(kind: &'static str, reason: impl std::fmt::Display) -> Event {
        debug_assert!(ALERT_EVENTS.contains(&kind));
        Event {
            kind,
            vars: Vec::new(),
        }
        .var("VEIL_EVENT", kind)
        .var("VEIL_REASON", reason)
        .var("VEIL_TIME", crate::common::clock::unix_now())
    }

    /// Adds `key` (a `VEIL_*` name); the value sanitised like a log
    /// value (no control character, so never a NUL either).
    pub fn var(mut self, key: &'static str, value: impl std::fmt::Display) -> Event {
        self.vars.push((key, sanitize(&value.to_string())));
        self
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

/// What the runner reports, for the audit log.
#[derive(Debug)]
pub enum Report {
    Ran {
        event: &'static str,
    },
    /// The first failure after a run that worked; later ones only count.
    Failed {
        event: &'static str,
        error: AlertError,
    },
    WorksAgain {
        event: &'static str,
        failures: u64,
    },
    Dropped {
        event: &'static str,
        why: &'static str,
        total: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("cannot start {}: {source}", command.display())]
    Spawn {
        command: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} exited with {status}", command.display())]
    Status {
        command: PathBuf,
        status: ExitStatus,
    },
    #[error("{} ran past timeout_s = {timeout_s}; its process group was killed", command.display())]
    TimedOut { command: PathBuf, timeout_s: u64 },
    #[error("waiting for {}: {source}", command.display())]
    Wait {
        command: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Log = Arc<dyn Fn(Report) + Send + Sync>;

/// The senders' side: rate limit, lock-storm window, the runner's queue.
pub struct Alerts {
    tx: SyncSender<Event>,
    metrics: Arc<Metrics>,
    log: Log,
    interval: Duration,
    storm_locks: usize,
    storm_window: Duration,
    last_run: Mutex<[Option<Instant>; ALERT_EVENTS.len()]>,
    storm: Mutex<VecDeque<Instant>>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").finish_non_exhaustive()
    }
}

/// Starts the runner when `[alerts] command` is set; `log` gets its
/// reports. The runner ends when the returned `Alerts` is dropped, after
/// the events already queued.
pub fn start(
    settings: &Settings,
    metrics: Arc<Metrics>,
    log: impl Fn(Report) + Send + Sync + 'static,
) -> std::io::Result<Option<(Arc<Alerts>, JoinHandle<()>)>> {
    let Some(command) = settings.command.clone() else {
        return Ok(None);
    };
    let log: Log = Arc::new(log);
    let (tx, rx) = sync_channel(QUEUE);
    let runner = Runner {
        command,
        args: settings.args.clone(),
        timeout: Duration::from_secs(settings.timeout_s),
        metrics: Arc::clone(&metrics),
        log: Arc::clone(&log),
    };
    let handle = std::thread::Builder::new()
        .name("alerts".into())
        .spawn(move || runner.serve(rx))?;
    let alerts = Alerts {
        tx,
        metrics,
        log,
        interval: Duration::from_secs(settings.interval_s),
        storm_locks: settings.storm_locks as usize,
        storm_window: Duration::from_secs(settings.storm_window_s),
        last_run: Mutex::new([None; ALERT_EVENTS.len()]),
        storm: Mutex::new(VecDeque::new()),
    };
    Ok(Some((Arc::new(alerts), handle)))
}

impl Alerts {
    /// Queues `event` unless its kind ran within the interval or the
    /// queue is full; never blocks.
    pub fn send(&self, event: Event) {
        let kind = event.kind;
        let i = ALERT_EVENTS.iter().position(|e| *e == kind).unwrap_or(0);
        let now = Instant::now();
        let why = {
            let mut last = self.last_run.lock().unwrap_or_else(|p| p.into_inner());
            if last[i].is_some_and(|t| now.duration_since(t) < self.interval) {
                "rate-limit"
            } else {
                match self.tx.try_send(event) {
                    Ok(()) => {
                        last[i] = Some(now);
                        return;
                    }
                    Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => "queue-full",
                }
            }
        };
        let total = self.metrics.alert_dropped(why);
        (self.log)(Report::Dropped {
            event: kind,
            why,
            total,
        });
    }

    /// One lock made: counted towards a storm; more than `storm_locks`
    /// within `storm_window` sends `lock-storm` and starts a new count.
    pub fn lock_made(&self) {
        let now = Instant::now();
        let count = {
            let mut times = self.storm.lock().unwrap_or_else(|p| p.into_inner());
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.storm_window)
            {
                times.pop_front();
            }
            times.push_back(now);
            if times.len() <= self.storm_locks {
                return;
            }
            let n = times.len();
            times.clear();
            n
        };
        self.send(
            Event::new(
                "lock-storm",
                "more locks than storm_locks within storm_window_s",
            )
            .var("VEIL_LOCKS", count)
            .var("VEIL_WINDOW_S", self.storm_window.as_secs()),
        );
    }
}

/// The runner thread's side.
struct Runner {
    command: PathBuf,
    args: Vec<String>,
    timeout: Duration,
    metrics: Arc<Metrics>,
    log: Log,
}

impl Runner {
    fn serve(self, rx: Receiver<Event>) {
        let mut failures = 0u64;
        for event in rx {
            self.metrics.alert_run(event.kind);
            match run(&self.command, &self.args, &event, self.timeout) {
                Ok(()) => {
                    if failures > 0 {
                        (self.log)(Report::WorksAgain {
                            event: event.kind,
                            failures,
                        });
                    } else {
                        (self.log)(Report::Ran { event: event.kind });
                    }
                    failures = 0;
                }
                Err(error) => {
                    self.metrics.alert_failed();
                    failures += 1;
                    if failures == 1 {
                        (self.log)(Report::Failed {
                            event: event.kind,
                            error,
                        });
                    }
                }
            }
        }
    }
}

/// Runs the command once for `event` in a process group of its own, and
/// kills that group if it is still running after `timeout`.
pub fn run(
    command: &PathBuf,
    args: &[String],
    event: &Event,
    timeout: Duration,
) -> Result<(), AlertError> {
    let mut cmd = Command::new(command);
    cmd.args(args)
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0);
    if let Ok(host) = nix::unistd::gethostname() {
        cmd.env("VEIL_HOST", sanitize(&host.to_string_lossy()));
    }
    for (key, value) in &event.vars {
        cmd.env(key, value);
    }
    let mut child = cmd.spawn().map_err(|source| AlertError::Spawn {
        command: command.clone(),
        source,
    })?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(AlertError::Status {
                    command: command.clone(),
                    status,
                });
            }
            Ok(None) if Instant::now() >= deadline => {
                // The group: a shell script's children die with it.
                let group = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err(AlertError::TimedOut {
                    command: command.clone(),
                    timeout_s: timeout.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(AlertError::Wait {
                    command: command.clone(),
                    source,
                });
            }
        }
    }
}

/// veild refuses to start: runs the command now (the process is about to
/// exit, so no thread and no rate limit), and says on stderr if it failed.
pub fn refused(settings: &Settings, reason: &str) {
    if let Some(command) = &settings.command {
        let event = Event::new("start-refused", reason);
        let timeout = Duration::from_secs(settings.timeout_s);
        if let Err(e) = run(command, &settings.args, &event, timeout) {
            eprintln!("veild: alert command: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings for `/bin/sh -c SCRIPT sh DIR`.
    fn settings(script: &str, dir: &Path, interval_s: u64) -> Settings {
        Settings {
            command: Some(PathBuf::from("/bin/sh")),
            args: vec![
                "-c".into(),
                script.into(),
                "sh".into(),
                dir.to_str().unwrap().into(),
            ],
            interval_s,
            timeout_s: 30,
            ..Settings::default()
        }
    }

    #[test]
    fn a_full_queue_drops_without_blocking_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        // Each run waits until the test lets it go: the first holds the
        // runner, the queue fills behind it.
        let wait = "while [ ! -e \"$1/go\" ]; do sleep 0.02; done";
        let metrics = Arc::new(Metrics::new(100, "sqlite"));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&reports);
        let (alerts, runner) = start(
            &settings(wait, dir.path(), 0),
            Arc::clone(&metrics),
            move |r| seen.lock().unwrap().push(format!("{r:?}")),
        )
        .unwrap()
        .unwrap();
        for _ in 0..(QUEUE + 4) {
            alerts.send(Event::new("lock", "test"));
        }
        let text = metrics.render();
        let dropped: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("veil_alerts_dropped_total{reason=\"queue-full\"} "))
            .unwrap()
            .parse()
            .unwrap();
        // At most one taken by the runner, QUEUE waiting: the rest dropped.
        assert!((3..=4).contains(&dropped), "{dropped}\n{text}");
        std::fs::write(dir.path().join("go"), "").unwrap();
        drop(alerts);
        runner.join().unwrap();
        let reports = reports.lock().unwrap();
        let dropped_reports = reports.iter().filter(|r| r.contains("queue-full")).count();
        assert_eq!(dropped_reports as u64, dropped, "{reports:?}");
    }

    #[test]
    fn a_kind_runs_once_per_interval_and_a_storm_takes_more_than_storm_locks() {
        let dir = tempfile::tempdir().unwrap();
        let record = "echo \"$VEIL_EVENT $VEIL_LOCKS\" >> \"$1/runs\"";
        let mut s = settings(record, dir.path(), 3600);
        s.storm_locks = 3;
        s.storm_window_s = 3600;
        let metrics = Arc::new(Metrics::new(100, "sqlite"));
        let (alerts, runner) = start(&s, Arc::clone(&metrics), |_| {}).unwrap().unwrap();
        alerts.send(Event::new("lock", "first"));
        alerts.send(Event::new("lock", "second, within the interval"));
        for _ in 0..7 {
            alerts.lock_made();
        }
        drop(alerts);
        runner.join().unwrap();
        let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap();
        // One lock; the fourth lock is a storm of 4, the next three count anew.
        assert_eq!(runs, "lock \nlock-storm 4\n");
        assert!(
            metrics
                .render()
                .contains("veil_alerts_dropped_total{reason=\"rate-limit\"} 1\n")
        );
    }
}
