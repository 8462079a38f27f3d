//! The bounds of every key, checked once at load: a value outside them
//! stops veild and veilctl naming the key.

use super::{Config, Invalid, day_start_unix, pg, service};

impl Config {
    /// Every key's bounds; the first value outside them names its key.
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        fn check(ok: bool, key: &'static str, message: &str) -> Result<(), Invalid> {
            if ok {
                Ok(())
            } else {
                Err(Invalid {
                    key,
                    message: message.to_owned(),
                })
            }
        }
        check(
            self.socket.is_absolute(),
            "socket",
            "must be an absolute path",
        )?;
        if pg::is_url(&self.database) {
            pg::check_config(&self.database, &self.postgres)?;
        } else {
            check(
                self.database.is_absolute(),
                "database",
                "must be an absolute path or a postgresql:// URL",
            )?;
        }
        check(
            self.failure_delay_ms <= 30_000,
            "failure_delay_ms",
            "must be at most 30000",
        )?;
        let l = &self.lockout;
        check(
            (1..=100).contains(&l.deny),
            "lockout.deny",
            "must be between 1 and 100",
        )?;
        check(
            l.fail_interval_s >= 1,
            "lockout.fail_interval_s",
            "must be at least 1",
        )?;
        check(
            l.unlock_time_s >= 1,
            "lockout.unlock_time_s",
            "must be at least 1",
        )?;
        check(
            l.unlock_time_max_s >= l.unlock_time_s,
            "lockout.unlock_time_max_s",
            "must be at least lockout.unlock_time_s",
        )?;
        check(
            l.known_good_days <= 3650,
            "lockout.known_good_days",
            "must be at most 3650",
        )?;
        check(l.user_deny >= 1, "lockout.user_deny", "must be at least 1")?;
        check(
            l.source_deny >= 1,
            "lockout.source_deny",
            "must be at least 1",
        )?;
        check(
            l.max_ledger_rows >= 100,
            "lockout.max_ledger_rows",
            "must be at least 100",
        )?;
        // Wider blocks would put whole providers behind one counter.
        check(
            (16..=32).contains(&l.ipv4_prefix),
            "lockout.ipv4_prefix",
            "must be between 16 and 32",
        )?;
        check(
            (32..=128).contains(&l.ipv6_prefix),
            "lockout.ipv6_prefix",
            "must be between 32 and 128",
        )?;
        self.metrics.check()?;
        self.alerts.check()?;
        service::check(&self.service)?;
        check(self.totp.skew <= 10, "totp.skew", "must be at most 10")?;
        check(
            self.totp
                .enrol_by
                .as_deref()
                .is_none_or(|d| day_start_unix(d).is_some()),
            "totp.enrol_by",
            "must be a date such as \"2026-03-01\" (YYYY-MM-DD, from 00:00 UTC)",
        )?;
        check(
            self.totp
                .required_groups
                .iter()
                .all(|g| !g.is_empty() && g.len() <= 256 && !g.chars().any(char::is_control)),
            "totp.required_groups",
            "must be group names",
        )?;
        check(
            self.totp.issuer.as_deref().is_none_or(|i| {
                !i.trim().is_empty()
                    && i.len() <= 64
                    && !i.contains(':')
                    && !i.contains(char::is_control)
            }),
            "totp.issuer",
            "must be 1 to 64 characters, without ':' or control characters",
        )?;
        let a = &self.argon2;
        check(a.t_cost >= 1, "argon2.t_cost", "must be at least 1")?;
        check(
            (1..=64).contains(&a.p_cost),
            "argon2.p_cost",
            "must be between 1 and 64",
        )?;
        check(
            a.m_cost_kib >= 8 * a.p_cost && a.m_cost_kib <= 4 * 1024 * 1024,
            "argon2.m_cost_kib",
            "must be between 8*p_cost and 4194304",
        )?;
        check(
            self.password.shadow.is_absolute(),
            "password.shadow",
            "must be an absolute path",
        )?;
        check(
            self.password.dummy_cost.is_none_or(|c| c >= 1),
            "password.dummy_cost",
            "must be at least 1 (leave it out for the host's cost)",
        )?;
        check(
            self.password
                .quality_config
                .as_ref()
                .is_none_or(|p| p.is_absolute()),
            "password.quality_config",
            "must be an absolute path",
        )?;
        check(
            self.password
                .breached_list
                .as_ref()
                .is_none_or(|p| p.is_absolute()),
            "password.breached_list",
            "must be an absolute path",
        )?;
        let m = &self.limits;
        check(
            (1..=65_536).contains(&m.max_connections),
            "limits.max_connections",
            "must be between 1 and 65536",
        )?;
        check(
            (1..=m.max_connections.max(1)).contains(&m.max_connections_per_user),
            "limits.max_connections_per_user",
            "must be between 1 and limits.max_connections",
        )?;
        check(
            m.workers <= 256,
            "limits.workers",
            "must be at most 256 (0 = one per core)",
        )?;
        check(
            (1..=65_536).contains(&m.queue),
            "limits.queue",
            "must be between 1 and 65536",
        )?;
        check(
            (100..=60_000).contains(&m.request_timeout_ms),
            "limits.request_timeout_ms",
            "must be between 100 and 60000",
        )?;
        Ok(())
    }
}
