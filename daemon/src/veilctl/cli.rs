//! veilctl's command line (clap): every command, its arguments and help.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use veil_daemon::common::config;

#[derive(Debug, Parser)]
#[command(
    name = "veilctl",
    version = veil_daemon::common::version::text(),
    about = "Administer veil: users, TOTP secrets and lockouts"
)]
pub struct Cli {
    /// veild's configuration file (names the database and the argon2 parameters)
    #[arg(long, global = true, value_name = "PATH", default_value = config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add, change, remove or list users
    #[command(subcommand)]
    User(UserCommand),
    /// Enrol or remove a user's TOTP secret
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Make or remove a user's recovery codes (single-use stand-ins for a TOTP code)
    #[command(subcommand)]
    Recovery(RecoveryCommand),
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
        /// Clear the counters of this source: an address (its block, by
        /// [lockout] ipv4_prefix/ipv6_prefix), "names" (every host name),
        /// "local" for the console, uid:N for what a local user tried (their
        /// own programs, su, sudo, polkit), or service:NAME for a root
        /// service without a remote host
        #[arg(long, value_name = "ADDR")]
        source: Option<String>,
    },
    /// List every lock in force
    Locks {
        #[arg(long)]
        json: bool,
    },
    /// Create the configured store's schema, or copy this host's SQLite
    /// store into a PostgreSQL one
    #[command(subcommand)]
    Store(StoreCommand),
    /// Change your own veil password (as a user, not root; through veild:
    /// your current password, and code if you have a secret, come first)
    Passwd {
        /// Read the current password, the code and the new password from
        /// standard input, one line each
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print veild's Prometheus metrics (the [metrics] file veild writes)
    Metrics,
    /// Make veil the only authenticator of one PAM service (backs up
    /// /etc/pam.d/SERVICE; refuses while nobody could log in)
    Enable(crate::enable::EnableArgs),
    /// Give a PAM service back its original authentication
    Disable(crate::enable::DisableArgs),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user with a password (asked twice without echo)
    Add {
        name: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
        /// Set a password the quality check refuses (libpwquality, the
        /// breached list), with a warning; refused when pwquality.conf
        /// sets enforce_for_root
        #[arg(long)]
        allow_weak: bool,
    },
    /// Change a user's password
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        /// As for `user add`
        #[arg(long)]
        allow_weak: bool,
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
pub enum StoreCommand {
    /// Create or migrate the schema of the store veild.toml names (veild
    /// does it too at start)
    Init,
    /// Copy this host's users, TOTP secrets, ledger and known-good pairs
    /// into PostgreSQL, in one transaction; refuses, writing nothing, if a
    /// user there differs. [postgres] in veild.toml gives the password
    /// file, TLS and timeouts
    Copy {
        /// The PostgreSQL store (postgresql://ROLE@HOST/DB, no password)
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TotpCommand {
    /// Make a new secret, show it as an otpauth:// URI and a QR code, and
    /// activate it once a correct code is typed. Without NAME, as a user
    /// (not root): your own account, through veild (your password, and
    /// your current code if you have a secret, are asked first)
    Enroll {
        /// The user (root only); leave it out to enrol yourself
        name: Option<String>,
        /// Activate without asking for a code (for scripts)
        #[arg(long, requires = "name")]
        no_confirm: bool,
        /// Import an existing base32 secret, read from standard input
        #[arg(long, requires = "name")]
        secret_stdin: bool,
        /// Do not draw the QR code
        #[arg(long)]
        no_qr: bool,
        /// Enrolling yourself: read the password, the current code and the
        /// confirming codes from standard input, one line each
        #[arg(long, conflicts_with = "name")]
        password_stdin: bool,
    },
    /// Take over the TOTP secret of a google-authenticator file and
    /// activate it; reports the options veil does not carry over (HOTP
    /// files are refused). The file is left in place
    ImportGoogleAuthenticator {
        name: String,
        /// The file (default: ~NAME/.google_authenticator, NAME's home from
        /// NSS); must be owned by NAME or root and writable by its owner only
        file: Option<PathBuf>,
    },
    /// Remove a user's TOTP secret
    Disable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum RecoveryCommand {
    /// Make 10 new single-use codes (the old ones stop working), show
    /// them once, and store only their keyed hashes. Without NAME, as a
    /// user (not root): your own, through veild (your password and your
    /// current code are asked first; you need an active TOTP secret)
    New {
        /// The user (root only); leave it out to make your own
        name: Option<String>,
        /// Making your own: read the password and the current code from
        /// standard input, one line each
        #[arg(long, conflicts_with = "name")]
        password_stdin: bool,
    },
    /// Remove a user's recovery codes
    Clear { name: String },
}

#[cfg(test)]
mod tests;
