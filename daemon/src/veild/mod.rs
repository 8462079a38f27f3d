//! veild, the verification daemon: start-up checks, then the socket server
//! until SIGTERM. Its audit log and server loop live here too.

pub mod audit;
pub mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::common::config::{Config, EX_CONFIG};
use crate::common::files::check_not_writable_by_others;
use crate::common::password::Hasher;
use crate::common::store::{self, OpenMode};
use crate::common::verify::{Verifier, dummy_record};
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
    let hasher = match Hasher::new(&config.argon2) {
        Ok(h) => h,
        Err(e) => return fail(EX_CONFIG, e),
    };
    if options.check_config {
        println!("{}: OK", options.config.display());
        return ExitCode::SUCCESS;
    }
    // No core dumps and no ptrace by other users: memory holds passwords.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        return fail(1, format!("cannot make the process non-dumpable: {e}"));
    }
    match store::open(&config.database, OpenMode::CreateIfMissing) {
        Ok(store) => drop(store),
        Err(e) => return fail(1, format!("{e}; refusing to start")),
    }
    if let Err(e) = check_not_writable_by_others(&config.database) {
        return fail(1, e);
    }
    let dummy = match dummy_record(&hasher) {
        Ok(d) => d,
        Err(e) => return fail(1, e),
    };
    let verifiers = (0..config.workers())
        .map(|_| Verifier::new(&config, hasher.clone(), dummy.clone()))
        .collect();
    let listener = match server::listen(&config.socket) {
        Ok(l) => l,
        Err(e) => return fail(1, e),
    };
    let (audit, writer) = Audit::start(Sinks {
        syslog: true,
        stderr: options.log_stderr,
    });
    if config.failure_delay_ms == 0 {
        audit.log(
            Severity::Warning,
            Line::new("config")
                .field("warning", "failure_delay_ms=0: denials leave as soon as they are decided, so their timing is visible")
                .finish(),
        );
    }
    let result = server::serve(&config, listener, verifiers, &audit);
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
    drop(audit);
    let _ = writer.join();
    code
}
