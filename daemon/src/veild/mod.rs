//! veild, the verification daemon: start-up checks, then the socket server
//! until SIGTERM. Its audit log and server loop live here too.

pub mod alerts;
pub mod audit;
mod conn;
pub mod journal;
mod listen;
pub mod metrics;
pub mod metrics_file;
pub mod self_service;
pub mod server;
pub mod severity;
pub mod slots;
pub mod subuid;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::common::config::{Config, EX_CONFIG, PasswordSource};
use crate::common::crypt::{self, policy};
use crate::common::files::check_not_writable_by_others;
use crate::common::password::Hasher;
use crate::common::store::{self, OpenMode};
use crate::common::verify::{SystemAccounts, Verifier, dummy_record};
use audit::{Audit, Line, Severity, Sinks};

/// What `veild`'s command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub check_config: bool,
    pub log_stderr: bool,
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("veild: {message}");
    ExitCode::from(code)
}

/// [`fail`] once the config is read: the admin's alert command hears of
/// it too (not for `--check-config`, which starts nothing).
fn refuse(
    alerts: &crate::common::config::alerts::Alerts,
    options: &Options,
    code: u8,
    message: impl std::fmt::Display,
) -> ExitCode {
    if !options.check_config {
        alerts::refused(alerts, &message.to_string());
    }
    fail(code, message)
}

/// Starts veild. Fails closed: any doubt about the config, the database
/// or the socket stops it with a message that names the culprit.
pub fn run(options: &Options) -> ExitCode {
    let config = match Config::load(&options.config) {
        Ok(c) => c,
        Err(e) => return fail(EX_CONFIG, e),
    };
    if let Err(e) = check_not_writable_by_others(&options.config) {
        return fail(EX_CONFIG, e);
    }
    // Run as veild, so only one that just root or veild's own user can
    // change (and checked before any refusal runs it).
    if let Some(Err(e)) = config.alerts.command.as_deref().map(alerts::check_command) {
        return fail(EX_CONFIG, e);
    }
    let hasher = match Hasher::new(&config.argon2) {
        Ok(h) => h,
        Err(e) => return refuse(&config.alerts, options, EX_CONFIG, e),
    };
    let metrics_target = match metrics_file::resolve(&config.metrics) {
        Ok(t) => t,
        Err(e) => return refuse(&config.alerts, options, EX_CONFIG, e),
    };
    if let Err(e) = crate::common::quality::Checker::new(&config.password).probe() {
        return fail(EX_CONFIG, e);
    }
    if options.check_config {
        println!("{}: OK", options.config.display());
        return ExitCode::SUCCESS;
    }
    // No core dumps and no ptrace by other users: memory holds passwords.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        return refuse(
            &config.alerts,
            options,
            1,
            format!("cannot make the process non-dumpable: {e}"),
        );
    }
    let location = store::Location::of(&config);
    // A shared PostgreSQL store that does not answer now does not stop
    // veild: it denies (and says why) until the server is back, and then
    // logs in without a restart. A store that is wrong (password file, CA,
    // schema too new) or a local file that fails stops it here.
    let mut unreachable = None;
    let mut clock_offset = 0;
    let metrics = std::sync::Arc::new(metrics::Metrics::new(
        crate::common::ledger::Limits::from(&config.lockout).max_rows,
        match location {
            store::Location::Postgres(_) => "postgresql",
            _ => "sqlite",
        },
    ));
    // None pending at start: they live in memory only.
    metrics.set_pending_enrolments(0);
    match store::open(&location, OpenMode::CreateIfMissing) {
        Ok(mut store) => {
            let local = crate::common::clock::unix_now().min(i64::MAX as u64) as i64;
            clock_offset = store.fleet_now(local).map_or(0, |t| t - local);
            if let Ok(rows) = store.ledger_rows() {
                metrics.set_ledger_rows(rows);
            }
        }
        Err(e @ store::StoreError::Postgres { .. }) => unreachable = Some(e.to_string()),
        Err(e) => {
            return refuse(
                &config.alerts,
                options,
                1,
                format!("{e}; refusing to start"),
            );
        }
    }
    if let Some(Err(e)) = location.sqlite_path().map(check_not_writable_by_others) {
        return refuse(&config.alerts, options, 1, e);
    }
    let dummy = match dummy_record(&hasher) {
        Ok(d) => d,
        Err(e) => return refuse(&config.alerts, options, 1, e),
    };
    // The fleet shares one dummy row: made with other [argon2] parameters
    // than ours, unknown names would cost other time than known ones here.
    let dummy_hashed_otherwise = match &location {
        store::Location::Postgres(settings) if unreachable.is_none() => {
            store::PgStore::open(settings, OpenMode::MustExist)
                .and_then(|shared| shared.dummy_phc())
                .ok()
                .flatten()
                .filter(|phc| hasher.needs_rehash(phc))
        }
        _ => None,
    };
    let (system, passwords_line) = match system_accounts(&config) {
        Ok(s) => s,
        Err(e) => return refuse(&config.alerts, options, 1, e),
    };
    let pending = std::sync::Arc::new(std::sync::Mutex::new(
        self_service::PendingEnrolments::default(),
    ));
    let recent = std::sync::Arc::default();
    let known = crate::common::verify::KnownHashes::default();
    let workers = (0..config.workers())
        .map(|_| server::Worker {
            verifier: {
                let mut v = Verifier::new(&config, hasher.clone(), dummy.clone(), system.clone());
                v.share_recent(std::sync::Arc::clone(&recent));
                v.share_known(known.clone());
                v.start_reserver();
                v.share_database(&location);
                v
            },
            self_service: self_service::SelfService::new(
                &config,
                hasher.clone(),
                dummy.clone(),
                system.clone(),
                std::sync::Arc::clone(&pending),
            ),
        })
        .collect();
    let listener = match server::listen(&config.socket) {
        Ok(l) => l,
        Err(e) => return refuse(&config.alerts, options, 1, e),
    };
    let (base_audit, writer) = Audit::start(
        Sinks {
            syslog: true,
            stderr: options.log_stderr,
        },
        std::sync::Arc::clone(&metrics),
    );
    // The runner logs through an Audit without alerts (see with_alerts).
    let runner_log = base_audit.clone();
    let (alerts, alert_runner) = match alerts::start(
        &config.alerts,
        std::sync::Arc::clone(&metrics),
        move |report| runner_log.alert_report(report),
    ) {
        Ok(Some((a, h))) => (Some(a), Some(h)),
        Ok(None) => (None, None),
        Err(e) => {
            return refuse(
                &config.alerts,
                options,
                1,
                format!("cannot start the alert thread: {e}"),
            );
        }
    };
    let audit = base_audit.clone().with_alerts(alerts);
    audit.log(Severity::Notice, passwords_line);
    let metrics_writer = metrics_target.and_then(|target| {
        metrics_file::start(
            target,
            location.clone(),
            std::sync::Arc::clone(&metrics),
            base_audit.clone(),
        )
        .map_err(|e| {
            audit.log(
                Severity::Error,
                Line::new("metrics").field("error", e).finish(),
            )
        })
        .ok()
    });
    if let Some(e) = unreachable {
        audit.store_answered(false, Some(&e));
        let action = match config.postgres.outage {
            crate::common::config::pg::Outage::Local => {
                "deciding logins on this host's outage copy until it answers"
            }
            crate::common::config::pg::Outage::Deny => "denying every login until it answers",
        };
        audit.log(
            Severity::Error,
            Line::new("store")
                .field("error", &e)
                .field("action", action)
                .finish(),
        );
    }
    if let Some(phc) = dummy_hashed_otherwise {
        audit.log(
            Severity::Warning,
            Line::new("config")
                .field(
                    "warning",
                    "shared dummy row has other [argon2] parameters; give every host the same",
                )
                .field("dummy_params", store::postgres::phc_params(&phc))
                .finish(),
        );
    }
    if clock_offset != 0 {
        // Fleet state is written in the server's time all the same; the
        // admin should still fix the clock (logs, TLS, the users' codes).
        audit.log(
            Severity::Warning,
            Line::new("clock-skew")
                .field("offset_s", clock_offset)
                .field(
                    "action",
                    "writing fleet state in the database server's time; fix this host's clock",
                )
                .finish(),
        );
    }
    if config.failure_delay_ms == 0 {
        audit.log(
            Severity::Warning,
            Line::new("config")
                .field("warning", "failure_delay_ms=0: denials leave as soon as they are decided, so their timing is visible")
                .finish(),
        );
    }
    let result = server::serve(&config, listener, workers, &audit);
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            audit.log(
                Severity::Error,
                Line::new("fatal").field("error", &e).finish(),
            );
            eprintln!("veild: {e}");
            ExitCode::from(1)
        }
    };
    // Queued alerts run (each at most timeout_s) before the final
    // metrics, so that those count them.
    drop(audit);
    if let Some(handle) = alert_runner {
        let _ = handle.join();
    }
    if let Some((stop, handle)) = metrics_writer {
        let _ = stop.send(());
        let _ = handle.join();
    }
    drop(base_audit);
    let _ = writer.join();
    code
}

/// Why veild cannot serve `source = "system"`.
#[derive(Debug, thiserror::Error)]
enum SystemError {
    #[error(
        "[password] source = \"system\" needs to read {}: {source} (veild.service runs with SupplementaryGroups=shadow)",
        path.display()
    )]
    Shadow {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the dummy hash for source = \"system\": {0}")]
    Method(#[from] policy::PolicyError),
    #[error("the dummy hash for source = \"system\": {0}")]
    Dummy(#[from] crypt::CryptError),
}

/// What veild reads of the system's accounts, and the audit line that says
/// so at start. `source = "system"` needs the shadow file now (else veild
/// does not start) and makes the dummy with the host's method and cost;
/// `source = "veil"` checks lock and expiry only where it can read it.
fn system_accounts(config: &Config) -> Result<(SystemAccounts, String), SystemError> {
    let p = &config.password;
    let readable = std::fs::File::open(&p.shadow);
    match p.source {
        PasswordSource::System => {
            if let Err(source) = readable {
                return Err(SystemError::Shadow {
                    path: p.shadow.clone(),
                    source,
                });
            }
            let method = policy::host(p.dummy_method, p.dummy_cost)?;
            let dummy = crypt::dummy(&method)?;
            let line = Line::new("passwords")
                .field("source", "system")
                .field("shadow", p.shadow.display())
                .field("dummy_method", method.kind.name())
                .field(
                    "dummy_cost",
                    method.cost.map_or("default".to_owned(), |c| c.to_string()),
                )
                .field("dummy_settings", crypt::settings_of(&dummy))
                .field("from", &method.from)
                .finish();
            Ok((
                SystemAccounts {
                    shadow: Some(p.shadow.clone()),
                    crypt_dummy: Some(dummy),
                },
                line,
            ))
        }
        PasswordSource::Veil => {
            let checked = readable.is_ok();
            let line = Line::new("passwords")
                .field("source", "veil")
                .field("shadow", p.shadow.display())
                .field(
                    "account_state",
                    if checked {
                        "checked"
                    } else {
                        "unreadable-not-checked"
                    },
                )
                .finish();
            Ok((
                SystemAccounts {
                    shadow: checked.then(|| p.shadow.clone()),
                    crypt_dummy: None,
                },
                line,
            ))
        }
    }
}
