//! The text exposition of [`Metrics`]: one `# HELP` and `# TYPE` per family and
//! its series. Its own file because the families' texts are most of the lines
//! and change apart from the counters they read.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{ALERT_DROPS, ALERT_EVENTS, KINDS, Metrics, OVERLOAD_LIMITS};

impl Metrics {
    /// The metrics in Prometheus' text format, one `# HELP` and `# TYPE`
    /// per family, no timestamps (the textfile collector refuses them).
    pub fn render(&self) -> String {
        let mut out = String::new();
        head(
            &mut out,
            "veil_build_info",
            "gauge",
            "veild's version, wire protocol and database schema versions (always 1).",
        );
        let _ = writeln!(
            out,
            "veil_build_info{{version=\"{}\",protocol=\"{}\",sqlite_schema=\"{}\",postgresql_schema=\"{}\",store=\"{}\"}} 1",
            label(env!("CARGO_PKG_VERSION")),
            veil_proto::PROTOCOL_VERSION,
            crate::common::store::SqliteStore::SCHEMA_VERSION,
            crate::common::store::PgStore::SCHEMA_VERSION,
            self.store_kind,
        );
        head(
            &mut out,
            "veil_start_time_seconds",
            "gauge",
            "When veild started, in Unix seconds.",
        );
        let _ = writeln!(out, "veil_start_time_seconds {}", self.start_time);
        self.render_counts(&mut out);
        out
    }

    fn render_counts(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        head(
            out,
            "veil_attempts_total",
            "counter",
            "Login attempts by outcome and reason (the reason is for the admin; the client only sees allow or deny).",
        );
        let attempts = self
            .attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for ((outcome, reason), n) in attempts {
            let _ = writeln!(
                out,
                "veil_attempts_total{{outcome=\"{outcome}\",reason=\"{}\"}} {n}",
                label(reason)
            );
        }
        head(
            out,
            "veil_locks_total",
            "counter",
            "Locks made, by key kind.",
        );
        for (kind, n) in KINDS.iter().zip(&self.locks) {
            let _ = writeln!(
                out,
                "veil_locks_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                load(n)
            );
        }
        head(
            out,
            "veil_lock_escalations_total",
            "counter",
            "Locks of a key that remembered an earlier lock (each lasts longer), by key kind.",
        );
        for (kind, n) in KINDS.iter().zip(&self.escalations) {
            let _ = writeln!(
                out,
                "veil_lock_escalations_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                load(n)
            );
        }
        head(
            out,
            "veil_locks_in_force",
            "gauge",
            match self.store_kind {
                "postgresql" => {
                    "Ledger rows locked now, by key kind, across the fleet (every host sharing the PostgreSQL store)."
                }
                _ => "Ledger rows locked now, by key kind.",
            },
        );
        for (kind, n) in KINDS.iter().zip(&self.in_force) {
            let n = n.load(Ordering::Relaxed);
            if n >= 0 {
                let _ = writeln!(out, "veil_locks_in_force{{kind=\"{}\"}} {n}", kind.as_str());
            }
        }
        head(
            out,
            "veil_overload_denials_total",
            "counter",
            "Connections and requests denied unevaluated, by the limit that was full.",
        );
        for (limit, n) in OVERLOAD_LIMITS.iter().zip(&self.overload) {
            let _ = writeln!(
                out,
                "veil_overload_denials_total{{limit=\"{limit}\"}} {}",
                load(n)
            );
        }
        head(
            out,
            "veil_store_errors_total",
            "counter",
            "Store (database) failures: a login denied for it, or a failed prune.",
        );
        for (op, n) in [
            ("login", &self.store_errors_login),
            ("prune", &self.store_errors_prune),
        ] {
            let _ = writeln!(out, "veil_store_errors_total{{op=\"{op}\"}} {}", load(n));
        }
        head(
            out,
            "veil_ledger_full_attempts_total",
            "counter",
            "Attempts charged to overflow keys because the ledger was at max_ledger_rows.",
        );
        let _ = writeln!(
            out,
            "veil_ledger_full_attempts_total {}",
            load(&self.ledger_full)
        );
        head(
            out,
            "veil_audit_lines_dropped_total",
            "counter",
            "Audit lines dropped because the log writer fell behind.",
        );
        let _ = writeln!(
            out,
            "veil_audit_lines_dropped_total {}",
            load(&self.audit_dropped)
        );
        head(
            out,
            "veil_verification_duration_seconds",
            "histogram",
            "Time to decide one login (store, password hash, code), delay not included.",
        );
        self.verification_time
            .render(out, "veil_verification_duration_seconds");
        head(
            out,
            "veil_store_duration_seconds",
            "histogram",
            "Time one login waited for the store (database): reads and writes, less what overlapped its checks.",
        );
        self.store_time.render(out, "veil_store_duration_seconds");
        head(
            out,
            "veil_check_duration_seconds",
            "histogram",
            "Time one login's checks took (password hash, code, recovery code), store not included.",
        );
        self.check_time.render(out, "veil_check_duration_seconds");
        head(
            out,
            "veil_ledger_rows",
            "gauge",
            "Rows in the lockout ledger (counted at start and at each minute's prune).",
        );
        let rows = self.ledger_rows.load(Ordering::Relaxed);
        if rows >= 0 {
            let _ = writeln!(out, "veil_ledger_rows {rows}");
        }
        head(
            out,
            "veil_ledger_max_rows",
            "gauge",
            "[lockout] max_ledger_rows: past it the ledger charges new keys to overflow keys.",
        );
        let _ = writeln!(out, "veil_ledger_max_rows {}", self.ledger_max_rows);
        self.render_more(out);
    }

    fn render_more(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        head(
            out,
            "veil_offline_decisions_total",
            "counter",
            "Logins decided on the host's outage copy while PostgreSQL did not answer.",
        );
        let _ = writeln!(
            out,
            "veil_offline_decisions_total {}",
            load(&self.offline_decisions)
        );
        head(
            out,
            "veil_outage_cache_users",
            "gauge",
            "Users in the host's outage copy at its last refresh.",
        );
        let cached = self.outage_cache_users.load(Ordering::Relaxed);
        if cached >= 0 {
            let _ = writeln!(out, "veil_outage_cache_users {cached}");
        }
        head(
            out,
            "veil_recovery_codes_used_total",
            "counter",
            "Logins that used up a recovery code (each one worth a look).",
        );
        let _ = writeln!(
            out,
            "veil_recovery_codes_used_total {}",
            load(&self.recovery_codes_used)
        );
        head(
            out,
            "veil_pending_enrolments",
            "gauge",
            "Self-service TOTP enrolments started and not yet confirmed or expired.",
        );
        let pending = self.pending_enrolments.load(Ordering::Relaxed);
        if pending >= 0 {
            let _ = writeln!(out, "veil_pending_enrolments {pending}");
        }
        head(
            out,
            "veil_store_up",
            "gauge",
            "1 when the store (SQLite file or PostgreSQL) answered the last login or prune, else 0.",
        );
        let _ = writeln!(
            out,
            "veil_store_up {}",
            u8::from(self.store_up.load(Ordering::Relaxed))
        );
        head(
            out,
            "veil_alerts_total",
            "counter",
            "[alerts] command runs started, by event.",
        );
        for (event, n) in ALERT_EVENTS.iter().zip(&self.alerts_run) {
            let _ = writeln!(out, "veil_alerts_total{{event=\"{event}\"}} {}", load(n));
        }
        head(
            out,
            "veil_alerts_dropped_total",
            "counter",
            "Alerts not run: their kind ran within [alerts] interval_s, or the queue was full.",
        );
        for (why, n) in ALERT_DROPS.iter().zip(&self.alerts_dropped) {
            let _ = writeln!(
                out,
                "veil_alerts_dropped_total{{reason=\"{why}\"}} {}",
                load(n)
            );
        }
        head(
            out,
            "veil_alert_failures_total",
            "counter",
            "[alerts] command runs that failed: not started, exit status not 0, or killed at timeout_s.",
        );
        let _ = writeln!(
            out,
            "veil_alert_failures_total {}",
            load(&self.alert_failures)
        );
    }
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the text format quotes it.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
