//! veilctl: users, TOTP enrolment and locks, on the same database as veild
//! (WAL mode, so it is safe while veild runs). Secrets are read without
//! echo or from stdin, never from the command line.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::{self, Config};
use crate::ledger::{self, Entry, Limits};
use crate::password::Hasher;
use crate::server::unix_now;
use crate::store::{OpenMode, Store, StoreError};
use crate::totp::{self, CodeCheck};

#[derive(Debug, Parser)]
#[command(
    name = "veilctl",
    version,
    about = "Administer veil: users, TOTP secrets and lockouts"
)]
pub struct Cli {
    /// veild's configuration file (names the database and the argon2 parameters)
    #[arg(long, global = true, value_name = "PATH", default_value = config::DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add, change, remove or list users
    #[command(subcommand)]
    User(UserCommand),
    /// Enrol or remove a user's TOTP secret
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Show a user's lockout counters, per source
    Status {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// End the locks of a user (all sources), or of a source (all users)
    Unlock {
        #[arg(required_unless_present = "source", conflicts_with = "source")]
        name: Option<String>,
        /// Clear the counters of this source: an address ("local" for the
        /// console and sudo; an IPv6 address clears its /64), or uid:N for
        /// a local user's own peer counter
        #[arg(long, value_name = "ADDR")]
        source: Option<String>,
    },
    /// List every lock in force
    Locks {
        #[arg(long)]
        json: bool,
    },
    /// Make veil the only authenticator of one PAM service (backs up
    /// /etc/pam.d/SERVICE; refuses while nobody could log in)
    Enable(crate::enable::EnableArgs),
    /// Give a PAM service back its original authentication
    Disable(crate::enable::DisableArgs),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user with a password (asked twice without echo)
    Add {
        name: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's password
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user, their TOTP secret and their lockout counters
    Del { name: String },
    /// List users
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TotpCommand {
    /// Make a new secret, show it as an otpauth:// URI and a QR code, and
    /// activate it once a correct code is typed
    Enroll {
        name: String,
        /// Activate without asking for a code (for scripts)
        #[arg(long)]
        no_confirm: bool,
        /// Import an existing base32 secret, read from standard input
        #[arg(long)]
        secret_stdin: bool,
        /// Do not draw the QR code
        #[arg(long)]
        no_qr: bool,
    },
    /// Remove a user's TOTP secret
    Disable { name: String },
}

/// Errors with the exit status a script can act on.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

const EXIT_FAILURE: u8 = 1;
const EXIT_NO_SUCH_USER: u8 = 3;
const EXIT_NO_DATABASE: u8 = 4;
const EXIT_PERMISSION: u8 = 5;
const EX_CONFIG: u8 = 78;

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        let code = match &e {
            StoreError::NoSuchUser(_) | StoreError::UserExists(_) => EXIT_NO_SUCH_USER,
            StoreError::Missing { .. } => EXIT_NO_DATABASE,
            StoreError::Open { message, .. } if is_permission(message) => EXIT_PERMISSION,
            _ => EXIT_FAILURE,
        };
        let mut message = e.to_string();
        if code == EXIT_PERMISSION {
            message.push_str(" (permission denied: run veilctl as root)");
        } else if code == EXIT_NO_DATABASE {
            message.push_str(" (veild creates it at its first start)");
        }
        Failure::new(code, message)
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Failure::from(StoreError::Sql(e))
    }
}

fn is_permission(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("permission")
        || m.contains("readonly")
        || m.contains("read-only")
        || m.contains("unable to open")
}

/// veilctl's entry point.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("veilctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn execute(cli: Cli) -> Result<(), Failure> {
    // Needs neither the config nor the database: it must work on removal.
    if let Command::Disable(args) = &cli.command {
        let report = crate::enable::disable(args).map_err(|e| Failure::new(e.code, e.message))?;
        eprint!("veilctl: {report}");
        return Ok(());
    }
    let config = Config::load(&cli.config).map_err(|e| Failure::new(EX_CONFIG, e.to_string()))?;
    let open = || -> Result<Store, Failure> {
        let path = &config.database;
        if let Ok(meta) = std::fs::metadata(path)
            && std::fs::File::options()
                .read(true)
                .write(true)
                .open(path)
                .is_err()
        {
            let _ = meta;
            return Err(Failure::new(
                EXIT_PERMISSION,
                format!(
                    "database {}: permission denied (run veilctl as root)",
                    path.display()
                ),
            ));
        }
        Ok(Store::open(path, OpenMode::MustExist)?)
    };
    let limits = Limits::from(&config.lockout);
    let now = unix_now() as i64;
    match cli.command {
        Command::User(UserCommand::Add {
            name,
            password_stdin,
        }) => {
            check_name(&name)?;
            let mut store = open()?;
            if store.user(&name)?.is_some() {
                return Err(Failure::new(
                    EXIT_NO_SUCH_USER,
                    format!("user already exists: {name}"),
                ));
            }
            let password = read_new_password(password_stdin)?;
            let phc = hasher(&config)?
                .hash(password.as_bytes())
                .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?;
            store.add_user(&name, &phc, now)?;
            eprintln!(
                "veilctl: added {name}; enrol a TOTP secret with: veilctl totp enroll {name}"
            );
        }
        Command::User(UserCommand::Passwd {
            name,
            password_stdin,
        }) => {
            let mut store = open()?;
            require_user(&store, &name)?;
            let password = read_new_password(password_stdin)?;
            let phc = hasher(&config)?
                .hash(password.as_bytes())
                .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?;
            store.set_password(&name, &phc, now)?;
            eprintln!("veilctl: password of {name} changed");
        }
        Command::User(UserCommand::Del { name }) => {
            let mut store = open()?;
            store.delete_user(&name)?;
            ledger::unlock_user(store.conn(), &name)?;
            eprintln!("veilctl: removed {name}");
        }
        Command::User(UserCommand::List { json }) => {
            let store = open()?;
            let hasher = hasher(&config)?;
            let mut users = store.list_users()?;
            for u in &mut users {
                u.hash_current = !hasher.needs_rehash(&u.phc);
            }
            if json {
                print_json(&users)?;
            } else {
                // A hash with old argon2 parameters costs a different time
                // than the dummy until the user's next successful login.
                println!("{:<24} {:<10} {:<10}", "USER", "TOTP", "HASH");
                for u in users {
                    let totp = if u.totp {
                        "active"
                    } else if u.totp_pending {
                        "pending"
                    } else {
                        "none"
                    };
                    let hash = if u.hash_current {
                        "current"
                    } else {
                        "old-params"
                    };
                    println!("{:<24} {:<10} {:<10}", u.name, totp, hash);
                }
            }
        }
        Command::Totp(TotpCommand::Enroll {
            name,
            no_confirm,
            secret_stdin,
            no_qr,
        }) => {
            let mut store = open()?;
            require_user(&store, &name)?;
            let secret = if secret_stdin {
                let line = read_line_stdin()?;
                let secret = totp::from_base32(&line)
                    .ok_or_else(|| Failure::new(EXIT_FAILURE, "the secret is not valid base32"))?;
                if secret.len() < 10 {
                    return Err(Failure::new(
                        EXIT_FAILURE,
                        "the secret is shorter than 80 bits",
                    ));
                }
                secret
            } else {
                totp::new_secret().map_err(|e| {
                    Failure::new(EXIT_FAILURE, format!("no randomness from the OS: {e}"))
                })?
            };
            store.set_totp_pending(&name, &secret, now)?;
            if !secret_stdin {
                show_enrolment(&name, &secret, no_qr)?;
            }
            let step = if no_confirm {
                -1
            } else {
                confirm_code(&secret, config.totp.skew)?
            };
            store.activate_totp(&name, step, unix_now() as i64)?;
            eprintln!("veilctl: TOTP active for {name}");
        }
        Command::Totp(TotpCommand::Disable { name }) => {
            let mut store = open()?;
            store.disable_totp(&name, now)?;
            eprintln!("veilctl: TOTP removed for {name}");
        }
        Command::Status { name, json } => {
            let mut store = open()?;
            let known = store.user(&name)?.is_some();
            let entries = ledger::status(store.conn(), &limits, &name, now)?;
            if json {
                #[derive(Serialize)]
                struct Status<'a> {
                    user: &'a str,
                    enrolled: bool,
                    counters: Vec<EntryView>,
                }
                print_json(&Status {
                    user: &name,
                    enrolled: known,
                    counters: entries.iter().map(|e| EntryView::of(e, now)).collect(),
                })?;
            } else {
                println!(
                    "user {name}: {}",
                    if known { "enrolled" } else { "not a veil user" }
                );
                print_entries(&entries, now);
            }
        }
        Command::Unlock { name, source } => {
            let mut store = open()?;
            let (what, n) = match (name, source) {
                (_, Some(src)) => (
                    format!("source {src}"),
                    ledger::unlock_source(store.conn(), &ledger::source_from_admin(&src))?,
                ),
                (Some(user), None) => (
                    format!("user {user}"),
                    ledger::unlock_user(store.conn(), &user)?,
                ),
                (None, None) => return Err(Failure::new(2, "name a user or --source ADDR")),
            };
            eprintln!("veilctl: cleared {n} counter(s) of {what}");
        }
        Command::Enable(args) => {
            let report = crate::enable::enable(&config, &args)
                .map_err(|e| Failure::new(e.code, e.message))?;
            eprint!("veilctl: {report}");
        }
        Command::Disable(_) => unreachable!("handled before the config is read"),
        Command::Locks { json } => {
            let store = open()?;
            let mut store = store;
            let entries = ledger::locks(store.conn(), &limits, now)?;
            if json {
                print_json(
                    &entries
                        .iter()
                        .map(|e| EntryView::of(e, now))
                        .collect::<Vec<_>>(),
                )?;
            } else if entries.is_empty() {
                println!("no locks");
            } else {
                print_entries(&entries, now);
            }
        }
    }
    Ok(())
}

/// A ledger entry with the seconds left, for people and scripts.
#[derive(Debug, Serialize)]
struct EntryView {
    kind: &'static str,
    user: String,
    source: String,
    failures: i64,
    limit: i64,
    locked: bool,
    seconds_left: i64,
}

impl EntryView {
    fn of(e: &Entry, now: i64) -> EntryView {
        EntryView {
            kind: e.key.kind.as_str(),
            user: e.key.user.clone(),
            source: if e.key.kind == ledger::KeyKind::UserSource {
                ledger::source_of(&e.key.source).to_owned()
            } else {
                e.key.source.clone()
            },
            failures: e.failures,
            limit: e.limit,
            locked: e.locked_at(now),
            seconds_left: (e.locked_until - now).max(0),
        }
    }
}

fn print_entries(entries: &[Entry], now: i64) {
    println!(
        "{:<12} {:<24} {:<40} {:>9} {:>10}",
        "KEY", "USER", "SOURCE", "FAILURES", "LOCKED"
    );
    for e in entries {
        let v = EntryView::of(e, now);
        let locked = if v.locked {
            format!("{}s left", v.seconds_left)
        } else {
            "no".into()
        };
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        println!(
            "{:<12} {:<24} {:<40} {:>9} {:>10}",
            v.kind,
            crate::audit::sanitize(&dash(&v.user)),
            crate::audit::sanitize(&dash(&v.source)),
            format!("{}/{}", v.failures, v.limit),
            locked
        );
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn hasher(config: &Config) -> Result<Hasher, Failure> {
    Hasher::new(&config.argon2).map_err(|e| Failure::new(EX_CONFIG, e.to_string()))
}

fn require_user(store: &Store, name: &str) -> Result<(), Failure> {
    match store.user(name)? {
        Some(_) => Ok(()),
        None => Err(Failure::new(
            EXIT_NO_SUCH_USER,
            format!("no such user: {name}"),
        )),
    }
}

/// User names as PAM passes them: no control characters, no leading dash
/// (it would read as an option in other tools), bounded length.
fn check_name(name: &str) -> Result<(), Failure> {
    if name.is_empty()
        || name.len() > 256
        || name.starts_with('-')
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Failure::new(
            2,
            "invalid user name: use printable characters without spaces, not starting with '-'",
        ));
    }
    Ok(())
}

fn read_line_stdin() -> Result<Zeroizing<String>, Failure> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot read standard input: {e}")))?;
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(line)
}

fn read_new_password(from_stdin: bool) -> Result<Zeroizing<String>, Failure> {
    let password = if from_stdin {
        read_line_stdin()?
    } else {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::new(
                2,
                "no terminal to ask the password on; use --password-stdin",
            ));
        }
        let first = Zeroizing::new(
            rpassword::prompt_password("New password: ")
                .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?,
        );
        let second = Zeroizing::new(
            rpassword::prompt_password("Repeat password: ")
                .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?,
        );
        if first != second {
            return Err(Failure::new(
                EXIT_FAILURE,
                "the passwords differ; nothing changed",
            ));
        }
        first
    };
    if password.is_empty() {
        return Err(Failure::new(
            EXIT_FAILURE,
            "empty password refused; nothing changed",
        ));
    }
    if password.len() > 1024 {
        return Err(Failure::new(
            EXIT_FAILURE,
            "password longer than 1024 bytes refused; nothing changed",
        ));
    }
    Ok(password)
}

fn show_enrolment(name: &str, secret: &[u8], no_qr: bool) -> Result<(), Failure> {
    let uri = totp::otpauth_uri("veil", name, secret);
    let mut out = std::io::stdout().lock();
    let fail = |e: std::io::Error| Failure::new(EXIT_FAILURE, e.to_string());
    writeln!(
        out,
        "Scan this with an authenticator app, or enter the secret by hand."
    )
    .map_err(fail)?;
    if !no_qr {
        let code = qrcode::QrCode::new(uri.as_bytes())
            .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?;
        let drawing = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build();
        writeln!(out, "{drawing}").map_err(fail)?;
    }
    writeln!(out, "URI:    {}", uri.as_str()).map_err(fail)?;
    writeln!(out, "Secret: {}", totp::to_base32(secret).as_str()).map_err(fail)?;
    out.flush().map_err(fail)
}

/// Asks for codes until one matches (three tries). Returns its step, which
/// becomes the last used one so the confirming code cannot log in again.
fn confirm_code(secret: &[u8], skew: u8) -> Result<i64, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            2,
            "no terminal to confirm a code on; use --no-confirm in scripts (the secret stays pending)",
        ));
    }
    for _ in 0..3 {
        let code = Zeroizing::new(
            rpassword::prompt_password("Code from the app: ")
                .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?,
        );
        match totp::check(secret, code.trim().as_bytes(), unix_now(), skew, -1) {
            CodeCheck::Accepted(step) => return Ok(step),
            _ => eprintln!("veilctl: that code does not match; check the phone's clock"),
        }
    }
    Err(Failure::new(
        EXIT_FAILURE,
        "no matching code; the secret stays pending and inactive",
    ))
}
