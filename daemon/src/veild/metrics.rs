//! veild's Prometheus metrics: counters kept where the audit events are
//! made, rendered in the text exposition format (version 0.0.4, what
//! node_exporter's textfile collector reads) and written to a file every
//! `[metrics] interval_s` seconds (see [`crate::veild::metrics_file`]).
//!
//! Labels take only values from closed sets (outcomes, reasons, key kinds,
//! limits): never a user, host or address, so that a reader of the metrics
//! learns nothing of who exists and the series stay few. The text is
//! written by hand: the sets are fixed, a counter is an atomic or one
//! short lock, and prometheus-client's encoder writes OpenMetrics (`# EOF`,
//! an `info` type) rather than the format the textfile collector parses.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::ledger::KeyKind;

mod histogram;
mod render;
use histogram::Histogram;

/// Upper bounds of the verification-time histogram, in seconds: argon2 at
/// its floor takes tens of milliseconds, a slow store seconds.
const BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// The store-time histogram's: a local SQLite read takes well under a
/// millisecond, a PostgreSQL round trip one or a few, a failover seconds.
const STORE_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// The events `[alerts]` runs its command on (see `crate::veild::alerts`).
pub const ALERT_EVENTS: [&str; 6] = [
    "lock",
    "lock-storm",
    "store-outage",
    "store-recovered",
    "recovery-code-used",
    "start-refused",
];
/// Why an alert was not run: its kind ran within `[alerts] interval_s`,
/// or the runner's queue was full (a command hangs).
pub const ALERT_DROPS: [&str; 2] = ["rate-limit", "queue-full"];

/// Every reason a login can be decided with (`Reason::as_str`), plus
/// `overload` (not evaluated): each series exists from the start at 0, so
/// that `rate()` and alerts see the first one.
const DENY_REASONS: [&str; 22] = [
    "peer-not-permitted",
    "policy",
    "locked",
    "unknown-user",
    "account-locked",
    "account-expired",
    "password-expired",
    "no-usable-hash",
    "no-system-account",
    "no-veil-password",
    "shadow-error",
    "wrong-password",
    "overlong-password",
    "no-password",
    "overlong-code",
    "no-code",
    "no-totp-enrolled",
    "wrong-code",
    "replayed-code",
    "used-recovery-code",
    "store-error",
    "internal-error",
];
const ALLOW_REASONS: [&str; 3] = ["success", "recovery-code", "fresh-code-window"];
const KINDS: [KeyKind; 6] = [
    KeyKind::UserSource,
    KeyKind::UserRemote,
    KeyKind::Source,
    KeyKind::User,
    KeyKind::Peer,
    KeyKind::Overflow,
];
/// The limits an overload denial names: `[limits]` keys and `local_share`
/// (see `slots.rs`), and `queue` (no worker free within `[limits] queue`).
pub const OVERLOAD_LIMITS: [&str; 4] = [
    "max_connections",
    "max_connections_per_user",
    "local_share",
    "queue",
];

/// What veild counts. Shared by the event loop, the workers and the audit
/// writer (behind an `Arc`); every update is an atomic add or one short lock.
#[derive(Debug)]
pub struct Metrics {
    attempts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    locks: [AtomicU64; KINDS.len()],
    escalations: [AtomicU64; KINDS.len()],
    /// Ledger rows locked now, by kind, as the store last counted them;
    /// -1: not counted (the store did not answer).
    in_force: [AtomicI64; KINDS.len()],
    overload: [AtomicU64; OVERLOAD_LIMITS.len()],
    store_errors_login: AtomicU64,
    store_errors_prune: AtomicU64,
    ledger_full: AtomicU64,
    verification_time: Histogram<{ BUCKETS.len() }>,
    store_time: Histogram<{ STORE_BUCKETS.len() }>,
    check_time: Histogram<{ BUCKETS.len() }>,
    recovery_codes_used: AtomicU64,
    /// -1 until first counted.
    pending_enrolments: AtomicI64,
    /// Whether the store answered the last login or prune.
    store_up: AtomicBool,
    alerts_run: [AtomicU64; ALERT_EVENTS.len()],
    alerts_dropped: [AtomicU64; ALERT_DROPS.len()],
    alert_failures: AtomicU64,
    /// -1 until first counted.
    ledger_rows: AtomicI64,
    /// `outage = "local"`: decisions made on the host's copy.
    offline_decisions: AtomicU64,
    /// Users in the outage copy at its last refresh; -1 until then.
    outage_cache_users: AtomicI64,
    ledger_max_rows: i64,
    /// Audit lines dropped because the writer's queue was full.
    pub audit_dropped: AtomicU64,
    start_time: u64,
    store_kind: &'static str,
}

impl Metrics {
    pub fn new(ledger_max_rows: i64, store_kind: &'static str) -> Metrics {
        let mut attempts = BTreeMap::new();
        for r in DENY_REASONS.iter().chain(["overload"].iter()) {
            attempts.insert(("deny", *r), 0);
        }
        for r in ALLOW_REASONS {
            attempts.insert(("allow", r), 0);
        }
        Metrics {
            attempts: Mutex::new(attempts),
            locks: Default::default(),
            escalations: Default::default(),
            in_force: std::array::from_fn(|_| AtomicI64::new(-1)),
            overload: Default::default(),
            store_errors_login: AtomicU64::new(0),
            store_errors_prune: AtomicU64::new(0),
            ledger_full: AtomicU64::new(0),
            verification_time: Histogram::new(&BUCKETS),
            store_time: Histogram::new(&STORE_BUCKETS),
            check_time: Histogram::new(&BUCKETS),
            recovery_codes_used: AtomicU64::new(0),
            pending_enrolments: AtomicI64::new(-1),
            store_up: AtomicBool::new(true),
            alerts_run: Default::default(),
            alerts_dropped: Default::default(),
            alert_failures: AtomicU64::new(0),
            ledger_rows: AtomicI64::new(-1),
            offline_decisions: AtomicU64::new(0),
            outage_cache_users: AtomicI64::new(-1),
            ledger_max_rows,
            audit_dropped: AtomicU64::new(0),
            start_time: crate::common::clock::unix_now(),
            store_kind,
        }
    }

    /// One decided (or, `reason = "overload"`, refused) login attempt.
    pub fn attempt(&self, allowed: bool, reason: &'static str) {
        let outcome = if allowed { "allow" } else { "deny" };
        let mut map = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((outcome, reason)).or_insert(0) += 1;
    }

    /// A key locked; `escalated`: it remembered an earlier lock.
    pub fn lock(&self, kind: KeyKind, escalated: bool) {
        if let Some(i) = KINDS.iter().position(|k| *k == kind) {
            self.locks[i].fetch_add(1, Ordering::Relaxed);
            if escalated {
                self.escalations[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The locks in force now, by kind, as the store counted them (kinds
    /// not named have none); `None`: the store did not answer, and the
    /// gauge is left out rather than shown stale.
    pub fn set_locks_in_force(&self, counted: Option<&[(KeyKind, i64)]>) {
        for (kind, slot) in KINDS.iter().zip(&self.in_force) {
            let n = counted.map_or(-1, |c| {
                c.iter().filter(|(k, _)| k == kind).map(|(_, n)| *n).sum()
            });
            slot.store(n, Ordering::Relaxed);
        }
    }

    /// Whether the store answered the last login or prune.
    pub fn store_is_up(&self) -> bool {
        self.store_up.load(Ordering::Relaxed)
    }

    /// A connection or request refused by `limit` (one of [`OVERLOAD_LIMITS`]).
    pub fn overload(&self, limit: &str) {
        if let Some(i) = OVERLOAD_LIMITS.iter().position(|l| *l == limit) {
            self.overload[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn store_error_login(&self) {
        self.store_errors_login.fetch_add(1, Ordering::Relaxed);
    }

    pub fn store_error_prune(&self) {
        self.store_errors_prune.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ledger_full(&self) {
        self.ledger_full.fetch_add(1, Ordering::Relaxed);
    }

    /// How long one verification took (store reads, argon2, writes).
    pub fn verification(&self, took: Duration) {
        self.verification_time.observe(took);
    }

    /// How long one login waited for the store (its reads and writes, less what
    /// overlapped its checks).
    pub fn store_time(&self, took: Duration) {
        self.store_time.observe(took);
    }

    /// How long one login's checks took (the password verify, the code
    /// and recovery checks): with the store's time, where a decision's
    /// time went.
    pub fn check_time(&self, took: Duration) {
        self.check_time.observe(took);
    }

    pub fn recovery_code_used(&self) {
        self.recovery_codes_used.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_pending_enrolments(&self, n: usize) {
        let n = n.min(i64::MAX as usize) as i64;
        self.pending_enrolments.store(n, Ordering::Relaxed);
    }

    /// Whether the store answered; true when that changed from before.
    pub fn store_answered(&self, up: bool) -> bool {
        self.store_up.swap(up, Ordering::Relaxed) != up
    }

    /// An alert command started for `event` (one of [`ALERT_EVENTS`]).
    pub fn alert_run(&self, event: &str) {
        if let Some(i) = ALERT_EVENTS.iter().position(|e| *e == event) {
            self.alerts_run[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An alert dropped (`why`: one of [`ALERT_DROPS`]); the total so far.
    pub fn alert_dropped(&self, why: &str) -> u64 {
        ALERT_DROPS.iter().position(|d| *d == why).map_or(0, |i| {
            self.alerts_dropped[i].fetch_add(1, Ordering::Relaxed) + 1
        })
    }

    pub fn alert_failed(&self) {
        self.alert_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_ledger_rows(&self, rows: i64) {
        self.ledger_rows.store(rows, Ordering::Relaxed);
    }

    pub fn offline_decision(&self) {
        self.offline_decisions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_outage_cache_users(&self, users: usize) {
        let users = i64::try_from(users).unwrap_or(i64::MAX);
        self.outage_cache_users.store(users, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_up_under_their_labels_and_the_histogram_is_cumulative() {
        let m = Metrics::new(1000, "sqlite");
        m.attempt(false, "wrong-code");
        m.attempt(false, "wrong-code");
        m.attempt(true, "success");
        m.lock(KeyKind::UserSource, false);
        m.lock(KeyKind::UserSource, true);
        m.lock(KeyKind::Source, false);
        m.set_locks_in_force(Some(&[(KeyKind::UserSource, 2), (KeyKind::Overflow, 1)]));
        m.overload("queue");
        m.verification(Duration::from_millis(30));
        m.verification(Duration::from_secs(60));
        m.set_ledger_rows(7);
        m.store_time(Duration::from_micros(700));
        m.check_time(Duration::from_millis(30));
        m.recovery_code_used();
        m.set_pending_enrolments(3);
        assert!(m.store_answered(false));
        assert!(!m.store_answered(false));
        m.alert_run("lock-storm");
        assert_eq!(m.alert_dropped("queue-full"), 1);
        assert_eq!(m.alert_dropped("queue-full"), 2);
        m.alert_failed();
        let text = m.render();
        for line in [
            "veil_attempts_total{outcome=\"deny\",reason=\"wrong-code\"} 2",
            "veil_attempts_total{outcome=\"allow\",reason=\"success\"} 1",
            "veil_attempts_total{outcome=\"deny\",reason=\"unknown-user\"} 0",
            "veil_locks_total{kind=\"user+source\"} 2",
            "veil_locks_total{kind=\"source\"} 1",
            "veil_lock_escalations_total{kind=\"user+source\"} 1",
            "veil_lock_escalations_total{kind=\"source\"} 0",
            "veil_locks_in_force{kind=\"user+source\"} 2",
            "veil_locks_in_force{kind=\"overflow\"} 1",
            "veil_locks_in_force{kind=\"user+remote\"} 0",
            "veil_overload_denials_total{limit=\"queue\"} 1",
            "veil_verification_duration_seconds_bucket{le=\"0.025\"} 0",
            "veil_verification_duration_seconds_bucket{le=\"0.05\"} 1",
            "veil_verification_duration_seconds_bucket{le=\"10\"} 1",
            "veil_verification_duration_seconds_bucket{le=\"+Inf\"} 2",
            "veil_verification_duration_seconds_count 2",
            "veil_ledger_rows 7",
            "veil_ledger_max_rows 1000",
            "veil_store_duration_seconds_bucket{le=\"0.0005\"} 0",
            "veil_store_duration_seconds_bucket{le=\"0.001\"} 1",
            "veil_store_duration_seconds_count 1",
            "veil_check_duration_seconds_bucket{le=\"0.025\"} 0",
            "veil_check_duration_seconds_bucket{le=\"0.05\"} 1",
            "veil_check_duration_seconds_count 1",
            "veil_recovery_codes_used_total 1",
            "veil_pending_enrolments 3",
            "veil_store_up 0",
            "veil_alerts_total{event=\"lock-storm\"} 1",
            "veil_alerts_total{event=\"start-refused\"} 0",
            "veil_alerts_dropped_total{reason=\"queue-full\"} 2",
            "veil_alerts_dropped_total{reason=\"rate-limit\"} 0",
            "veil_alert_failures_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn locks_in_force_are_left_out_when_the_store_did_not_answer() {
        let m = Metrics::new(1000, "postgresql");
        // Not counted yet: no series, rather than a made-up 0.
        assert!(!m.render().contains("veil_locks_in_force{"));
        m.set_locks_in_force(Some(&[]));
        let text = m.render();
        assert!(
            text.lines()
                .any(|l| l == "veil_locks_in_force{kind=\"source\"} 0"),
            "{text}"
        );
        assert!(text.contains("across the fleet"), "{text}");
        m.set_locks_in_force(None);
        assert!(!m.render().contains("veil_locks_in_force{"));
    }

    /// Every family veild writes has a row in README's "Watching veil".
    #[test]
    fn the_readme_lists_every_metric() {
        let readme = include_str!("../../../README.md");
        let m = Metrics::new(1000, "sqlite");
        m.set_locks_in_force(Some(&[]));
        let text = m.render();
        let missing: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
            .filter(|name| {
                !readme.contains(&format!("| `{name}")) && !readme.contains(&format!(", `{name}"))
            })
            .collect();
        assert!(missing.is_empty(), "not in README.md: {missing:?}");
    }
}
