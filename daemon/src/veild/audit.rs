//! The audit trail: one key=value line per attempt, to syslog (authpriv)
//! and optionally stderr. A dedicated thread does the writing; requests
//! only hand over a line with a non-blocking send, so a stuck or missing
//! syslog never delays a login. Values are sanitised so that a crafted
//! user name cannot forge or split a line.

use veil_proto::{Request, Verdict};

use crate::common::peer::Peer;
use crate::common::verify::{Decision, Reason};
use crate::veild::alerts::{self, Alerts, Event, Report};
use crate::veild::journal::Journal;
use crate::veild::metrics::Metrics;
pub use crate::veild::severity::Severity;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use syslog::{Facility, Formatter3164};

pub use veil_proto::sanitize::{MAX_VALUE, sanitize};
const QUEUE: usize = 4096;

/// The store error an offline decision reports: the shared store did not
/// answer and the host's outage copy decided.
const OUTAGE_COPY: &str = "no answer: outage copy";
/// Hands lines to the writer thread, and holds the metrics every place
/// that makes an audit event counts into. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Audit {
    tx: SyncSender<(Severity, String)>,
    metrics: Arc<Metrics>,
    alerts: Option<Arc<Alerts>>,
}

/// Where lines go.
#[derive(Debug, Clone, Copy)]
pub struct Sinks {
    pub syslog: bool,
    pub stderr: bool,
}

impl Audit {
    /// Starts the writer thread. It ends when every `Audit` clone is dropped.
    pub fn start(sinks: Sinks, metrics: Arc<Metrics>) -> (Audit, JoinHandle<()>) {
        let (tx, rx) = sync_channel(QUEUE);
        let counter = Arc::clone(&metrics);
        let handle = std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || write_lines(rx, sinks, &counter))
            .unwrap_or_else(|e| {
                // Without a writer thread lines are dropped and counted.
                eprintln!("veild: cannot start the audit thread: {e}");
                std::thread::spawn(|| {})
            });
        (
            Audit {
                tx,
                metrics,
                alerts: None,
            },
            handle,
        )
    }

    /// This audit, also sending alerts to `alerts`' runner. The runner's
    /// own log must be an `Audit` without: else it would keep itself open.
    pub fn with_alerts(mut self, alerts: Option<Arc<Alerts>>) -> Audit {
        self.alerts = alerts;
        self
    }

    /// Hands `event` to the alert runner, if `[alerts]` has a command.
    pub fn alert(&self, event: impl FnOnce() -> Event) {
        if let Some(a) = &self.alerts {
            a.send(event());
        }
    }

    /// Whether the store answered (a login or a prune): its gauge, and an
    /// alert when that changed (`error`: why it did not).
    pub fn store_answered(&self, up: bool, error: Option<&str>) {
        if self.metrics.store_answered(up) {
            self.alert(|| match error {
                // `[postgres] outage = "local"`: logins go on, on the copy.
                Some(e) if !up && e == OUTAGE_COPY => Event::new(
                    "store-outage",
                    "the store failed; logins are decided on this host's outage copy",
                )
                .var("VEIL_ERROR", e),
                Some(e) if !up => Event::new("store-outage", "the store failed; logins are denied")
                    .var("VEIL_ERROR", e),
                _ if !up => Event::new("store-outage", "the store failed; logins are denied"),
                _ => Event::new("store-recovered", "the store answers again"),
            });
        }
    }

    /// A report of the alert runner, as an `event=alert` line.
    pub fn alert_report(&self, report: Report) {
        let (severity, line) = match report {
            Report::Ran { event } => (
                Severity::Info,
                Line::new("alert")
                    .field("alert", event)
                    .field("outcome", "ran"),
            ),
            Report::Failed { event, error } => (
                Severity::Error,
                Line::new("alert")
                    .field("alert", event)
                    .field("outcome", "failed")
                    .field("error", error)
                    .field(
                        "note",
                        "further failures are only counted until it works again",
                    ),
            ),
            Report::WorksAgain { event, failures } => (
                Severity::Notice,
                Line::new("alert")
                    .field("alert", event)
                    .field("outcome", "ran")
                    .field("failed_before", failures),
            ),
            Report::Dropped { event, why, total } => (
                Severity::Notice,
                Line::new("alert")
                    .field("alert", event)
                    .field("outcome", "dropped")
                    .field("why", why)
                    .field("dropped_total", total),
            ),
        };
        self.log(severity, line.finish());
    }

    /// Queues a line; never blocks. A full queue drops the line and counts it.
    pub fn log(&self, severity: Severity, line: String) {
        match self.tx.try_send((severity, line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.audit_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counters (see [`Metrics`]).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Lines dropped so far (the writer reports them in the log itself).
    #[cfg(test)]
    fn dropped(&self) -> u64 {
        self.metrics.audit_dropped.load(Ordering::Relaxed)
    }
}

type Syslog = syslog::Logger<syslog::LoggerBackend, Formatter3164>;

fn connect_syslog() -> Option<Syslog> {
    let formatter = Formatter3164 {
        facility: Facility::LOG_AUTHPRIV,
        hostname: None,
        process: "veild".into(),
        pid: std::process::id(),
    };
    syslog::unix(formatter).ok()
}

fn write_lines(rx: Receiver<(Severity, String)>, sinks: Sinks, metrics: &Metrics) {
    // journald, where it runs: the line plus fields. Else syslog. Never
    // both (journald also reads /dev/log: each event would show twice).
    let mut journal = if sinks.syslog { Journal::open() } else { None };
    let mut syslog = if sinks.syslog && journal.is_none() {
        connect_syslog()
    } else {
        None
    };
    let mut last_try = Instant::now();
    let mut reported_drops = 0;
    for (severity, line) in rx {
        let drops = metrics.audit_dropped.load(Ordering::Relaxed);
        let line = if drops != reported_drops {
            reported_drops = drops;
            format!("{line} audit_dropped_total={drops}")
        } else {
            line
        };
        if sinks.stderr {
            let _ = writeln!(std::io::stderr().lock(), "veild: {line}");
        }
        if sinks.syslog {
            // Without the journal, look for it (else /dev/log) every 30 s:
            // either may start after veild.
            if journal.is_none() && last_try.elapsed() > Duration::from_secs(30) {
                last_try = Instant::now();
                journal = Journal::open();
                if journal.is_none() && syslog.is_none() {
                    syslog = connect_syslog();
                }
            }
            if let Some(j) = &journal {
                if j.send(severity, &line).is_ok() {
                    syslog = None;
                    continue;
                }
                // journald gone or stuck: this line to syslog, if it is there.
                journal = None;
                last_try = Instant::now();
                if syslog.is_none() {
                    syslog = connect_syslog();
                }
            }
            if let Some(logger) = syslog.as_mut() {
                let sent = match severity {
                    Severity::Info => logger.info(&line),
                    Severity::Notice => logger.notice(&line),
                    Severity::Warning => logger.warning(&line),
                    Severity::Error => logger.err(&line),
                };
                if sent.is_err() {
                    syslog = None;
                    last_try = Instant::now();
                }
            }
        }
    }
}

/// Builds one `key=value ...` line with every value sanitised.
#[derive(Debug, Default)]
pub struct Line(String);

impl Line {
    pub fn new(event: &str) -> Line {
        Line(format!("event={}", sanitize(event)))
    }

    pub fn field(mut self, key: &str, value: impl std::fmt::Display) -> Line {
        let _ = write!(self.0, " {key}={}", sanitize(&value.to_string()));
        self
    }

    pub fn finish(self) -> String {
        self.0
    }
}

/// What verify decided, for the audit log: the reason, and the keys it locked.
/// The source the ledger charged, as the audit line shows it.
fn audit_source(request: &Request, peer: Peer) -> String {
    match peer.uid {
        0 => crate::common::ledger::source_of(
            crate::common::ledger::Origin::from_root(
                &request.rhost,
                request.ruid,
                &request.service,
            )
            .source(),
        )
        .to_owned(),
        uid => format!("uid:{uid}"),
    }
}

/// The audit line for one decided request.
pub fn audit_decision(audit: &Audit, request: &Request, peer: Peer, decision: &Decision) {
    let outcome = if decision.verdict == Verdict::Allow {
        "allow"
    } else {
        "deny"
    };
    count_decision(audit.metrics(), decision);
    // Every decision but a panic's read the store first. One made on the
    // outage copy is the shared store's silence.
    match &decision.reason {
        Reason::Store(e) => audit.store_answered(false, Some(e)),
        Reason::Internal => {}
        _ if decision.offline => audit.store_answered(false, Some(OUTAGE_COPY)),
        _ => audit.store_answered(true, None),
    }
    // A non-root peer's rhost and ruid are only what it claims, and
    // PAM_RUSER is a claim from anyone (polkit's helper puts the target
    // there): marked so, never shown as if the system had reported them.
    let (rhost_key, ruid_key) = if peer.uid == 0 {
        ("rhost", "ruid")
    } else {
        ("claimed_rhost", "claimed_ruid")
    };
    let mut line = Line::new("attempt")
        .field("user", &request.user)
        .field("service", &request.service)
        .field(rhost_key, &request.rhost)
        .field("tty", &request.tty)
        .field("claimed_ruser", &request.ruser)
        .field(ruid_key, request.ruid)
        .field("source", audit_source(request, peer))
        .field("peer_uid", peer.uid)
        .field("peer_pid", peer.pid)
        .field("outcome", outcome)
        .field("reason", decision.reason.as_str());
    if request.one_prompt && !request.code_only {
        line = line.field("prompts", "one");
    }
    if request.code_only {
        line = line.field("factors", "code");
    }
    if decision.offline {
        line = line.field("offline", 1);
    }
    let mut severity = if decision.verdict == Verdict::Allow {
        Severity::Info
    } else {
        Severity::Notice
    };
    match &decision.reason {
        Reason::Locked(r) => {
            line = line
                .field("key", &r.key)
                .field("key_failures", r.failures)
                .field("locked_until", r.locked_until);
        }
        Reason::Store(e) | Reason::Shadow(e) => {
            line = line.field("error", e);
            severity = Severity::Error;
        }
        Reason::RecoveryCode { left } => {
            line = line.field("recovery_codes_left", left);
            severity = Severity::Notice;
        }
        // A line the service's policy does not accept is the admin's to fix.
        Reason::PeerNotPermitted | Reason::Policy => severity = Severity::Warning,
        Reason::Internal => severity = Severity::Error,
        _ => {}
    }
    if decision.ledger_full {
        // The admin must hear that the ledger is full: new pairs are now
        // charged to shared overflow keys (stricter for everyone new).
        line = line.field("ledger", "full");
        severity = severity.max(Severity::Warning);
    }
    audit.log(severity, line.finish());
    // A recovery code's use is a line of its own, for the admin to follow up.
    if let Reason::RecoveryCode { left } = &decision.reason {
        audit.alert(|| {
            Event::new("recovery-code-used", "a login used up a recovery code")
                .var("VEIL_USER", &request.user)
                .var("VEIL_SERVICE", &request.service)
                .var("VEIL_SOURCE", audit_source(request, peer))
                .var("VEIL_CODES_LEFT", left)
        });
        audit.log(
            Severity::Warning,
            Line::new("recovery-code-used")
                .field("user", &request.user)
                .field("service", &request.service)
                .field(rhost_key, &request.rhost)
                .field("source", audit_source(request, peer))
                .field("codes_left", left)
                .finish(),
        );
    }
    for lock in &decision.locked {
        let key = &lock.key;
        audit.log(
            Severity::Warning,
            Line::new("lock")
                .field("key", key)
                .field("user", &request.user)
                .field("source", audit_source(request, peer))
                .field("locks", lock.nth)
                .finish(),
        );
        if alerts::is_wide(key.kind) {
            audit.alert(|| {
                Event::new("lock", "a key that refuses many logins was locked")
                    .var("VEIL_KEY_KIND", key.kind.as_str())
                    .var("VEIL_KEY", key)
                    .var("VEIL_USER", &request.user)
                    .var("VEIL_SERVICE", &request.service)
                    .var("VEIL_SOURCE", audit_source(request, peer))
            });
        }
        if let Some(a) = &audit.alerts {
            a.lock_made();
        }
    }
}

/// One decided attempt in the metrics: its outcome and reason, the locks
/// it made, a store failure, a charge to overflow keys.
fn count_decision(metrics: &Metrics, decision: &Decision) {
    metrics.attempt(decision.verdict == Verdict::Allow, decision.reason.as_str());
    for lock in &decision.locked {
        metrics.lock(lock.key.kind, lock.escalated());
    }
    if let Reason::RecoveryCode { .. } = decision.reason {
        metrics.recovery_code_used();
    }
    if let Reason::Store(_) = decision.reason {
        metrics.store_error_login();
    }
    if decision.ledger_full {
        metrics.ledger_full();
    }
    if decision.offline {
        metrics.offline_decision();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_escapes_cannot_split_or_colour_a_line() {
        let line = Line::new("attempt")
            .field("user", "evil\nevent=attempt outcome=allow\x1b[2J")
            .finish();
        assert!(!line.contains('\n') && !line.contains('\x1b'), "{line}");
        assert_eq!(line.matches("outcome=").count(), 0, "{line}");
        assert!(
            line.starts_with("event=attempt user=evil\\x0aevent\\x3dattempt\\x20outcome"),
            "{line}"
        );
    }

    #[test]
    fn logging_never_blocks_when_the_queue_is_full() {
        let (tx, _rx) = sync_channel(1);
        let audit = Audit {
            tx,
            metrics: Arc::new(Metrics::new(100, "sqlite")),
            alerts: None,
        };
        for _ in 0..10 {
            audit.log(Severity::Info, "x".into());
        }
        assert_eq!(audit.dropped(), 9);
    }
}
