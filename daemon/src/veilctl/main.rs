//! veilctl: users, TOTP enrolment, locks and PAM stacks, on the same
//! database as veild (WAL mode, so it is safe while veild runs). Secrets are
//! read without echo or from stdin, never from the command line. See
//! veilctl(8).
//!
//! This binary's own modules (commands, clap types, PAM file editing) are
//! not in the library veild links; the store, config and rules are.
#![forbid(unsafe_code)]

mod account;
mod cli;
mod enable;
mod error;
mod import;
mod input;
mod locks;
mod output;
mod quality;
mod recovery;
mod self_service;
mod steps;
mod store_cmd;
mod totp;
mod users;

use std::process::ExitCode;

use clap::Parser;

use veil_daemon::common::clock::unix_now;
use veil_daemon::common::config::Config;
use veil_daemon::common::ledger::Limits;
use veil_daemon::common::store::{self, OpenMode, Store};

use cli::{Cli, Command};
use error::{EX_CONFIG, Failure};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("veilctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// What every command works with: the config, its limits, and one `now`.
#[derive(Debug)]
pub struct Ctx {
    pub config: Config,
    pub limits: Limits,
    pub now: i64,
}

impl Ctx {
    /// The database; made, owned by veil as veild would make it, when
    /// veild has not started yet (socket activation starts it only at the
    /// first login), so that the first command after installing works.
    pub fn open(&self) -> Result<Box<dyn Store>, Failure> {
        Ok(store::open(&self.location()?, OpenMode::CreateAsDirOwner)?)
    }

    /// The store veilctl works on: [`ADMIN_URL_ENV`] when set (the admin's
    /// machine: a role that may change users, its password in
    /// [`ADMIN_PASSWORD_FILE_ENV`] or else `[postgres] password_file`),
    /// else veild.toml's `database` (on a host of a fleet, its login role,
    /// which may not).
    pub fn location(&self) -> Result<store::Location, Failure> {
        let Some(url) = std::env::var_os(ADMIN_URL_ENV) else {
            return Ok(store::Location::of(&self.config));
        };
        let url = std::path::PathBuf::from(url);
        if !store::postgres::is_url(&url) {
            return Err(Failure::new(
                EX_CONFIG,
                format!("{ADMIN_URL_ENV} must be a postgresql:// URL"),
            ));
        }
        let mut pg = self.config.postgres.clone();
        if let Some(file) = std::env::var_os(ADMIN_PASSWORD_FILE_ENV) {
            pg.password_file = Some(file.into());
        }
        store::postgres::check_config(&url, &pg).map_err(|e| {
            Failure::new(
                EX_CONFIG,
                format!("{ADMIN_URL_ENV} ({}): {}", e.key, e.message),
            )
        })?;
        Ok(store::Location::Postgres(store::PgSettings::new(&url, &pg)))
    }
}

/// The admin's PostgreSQL URL (no password in it), on the admin's machine.
pub const ADMIN_URL_ENV: &str = "VEIL_ADMIN_URL";
/// The admin role's password file (root's, mode 0600), on the admin's machine.
pub const ADMIN_PASSWORD_FILE_ENV: &str = "VEIL_ADMIN_PASSWORD_FILE";

fn run(cli: Cli) -> Result<(), Failure> {
    // Needs neither the config nor the database: it must work on removal.
    if let Command::Disable(args) = &cli.command {
        eprint!("veilctl: {}", enable::disable(args)?);
        return Ok(());
    }
    let config = Config::load(&cli.config).map_err(|e| Failure::new(EX_CONFIG, e.to_string()))?;
    let ctx = Ctx {
        limits: Limits::from(&config.lockout),
        config,
        now: unix_now() as i64,
    };
    match cli.command {
        Command::User(command) => users::run(&ctx, command),
        Command::Totp(command) => totp::run(&ctx, command),
        Command::Recovery(command) => recovery::run(&ctx, command),
        Command::Passwd { password_stdin } => self_service::passwd(&ctx, password_stdin),
        Command::Status { name, json } => locks::status(&ctx, &name, json),
        Command::Unlock { name, source } => locks::unlock(&ctx, name, source),
        Command::Locks { json } => locks::locks(&ctx, json),
        Command::Store(command) => store_cmd::run(&ctx, command),
        Command::Metrics => metrics(&ctx),
        Command::Enable(args) => {
            eprint!("veilctl: {}", enable::enable(&ctx.config, &args)?);
            Ok(())
        }
        Command::Disable(_) => unreachable!("handled before the config is read"),
    }
}

/// `metrics`: the file veild last wrote (every `[metrics] interval_s`
/// seconds and at exit). Read, not asked of veild: no new socket request,
/// and the numbers are the ones node_exporter serves.
fn metrics(ctx: &Ctx) -> Result<(), Failure> {
    let Some(path) = ctx.config.metrics.target() else {
        return Err(Failure::new(
            1,
            "metrics are off: set [metrics] file, or install prometheus-node-exporter (its directory turns them on), and restart veild",
        ));
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::new(
            1,
            format!(
                "{}: {e} (veild writes it at start and every [metrics] interval_s seconds)",
                path.display()
            ),
        )
    })?;
    print!("{text}");
    Ok(())
}
