//! How a host reaches the server: the settings (URL without a password,
//! the password file, TLS that trusts only `ca_file`, timeouts,
//! keepalives), and the errors as they are shown.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use postgres::{Client, NoTls};
use zeroize::Zeroizing;

use super::super::StoreError;
use super::hints::Hints;
use crate::common::config::pg::{redact, unix_only};
use crate::common::config::{PgSslMode, Postgres};

/// Why a store cannot be used as configured: found before or instead of
/// connecting (the admin fixes the setting it names).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the URL: {0}")]
    Url(#[source] postgres::Error),
    #[error("the URL holds a password: use a password_file")]
    UrlPassword,
    #[error("sslmode = \"verify-full\" needs ca_file")]
    NoCaFile,
    #[error(transparent)]
    PasswordFile(#[from] PasswordFileError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Why a password file was refused. Its contents never show.
#[derive(Debug, thiserror::Error)]
pub enum PasswordFileError {
    #[error("password_file {}: {source} (a symlink is refused)", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("password_file {} is not a file", path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "password_file {} may be read by group or others (mode {mode:o}); run: chmod 600 {}",
        path.display(),
        path.display()
    )]
    Readable { path: PathBuf, mode: u32 },
    #[error(
        "password_file {} is owned by uid {uid}, neither root, {daemon_user} nor uid {me}; \
         run: chown {daemon_user} {}",
        path.display(),
        path.display()
    )]
    Owner {
        path: PathBuf,
        uid: u32,
        daemon_user: String,
        me: u32,
    },
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("password_file {} is empty", path.display())]
    Empty { path: PathBuf },
}

/// Why `ca_file` gave no TLS client (verify-full).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("ca_file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not PEM certificates, or one OpenSSL would not take.
    #[error("ca_file {}: {source}", path.display())]
    Certificates {
        path: PathBuf,
        #[source]
        source: openssl::error::ErrorStack,
    },
    #[error("ca_file {} holds no certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("TLS: {0}")]
    OpenSsl(#[source] openssl::error::ErrorStack),
}

/// TCP keepalive probes, both ways: a peer is given up after about
/// idle + probes x interval = 11 s of silence.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_PROBES: u32 = 3;

/// What connecting takes: the URL (which holds no password), the password
/// file, TLS and the timeouts. Its Debug shows no secret.
#[derive(Clone)]
pub struct PgSettings {
    url: String,
    pub(super) target: String,
    password_file: Option<PathBuf>,
    sslmode: PgSslMode,
    ca_file: Option<PathBuf>,
    connect_timeout: Duration,
    statement_timeout: Duration,
    /// Shared by every connection made from this value and its clones.
    pub(super) hints: Hints,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("target", &self.target)
            .field("password_file", &self.password_file)
            .field("sslmode", &self.sslmode)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl PgSettings {
    pub fn new(database: &Path, pg: &Postgres) -> PgSettings {
        let url = database.to_string_lossy().into_owned();
        PgSettings {
            target: redact(&url),
            url,
            password_file: pg.password_file.clone(),
            sslmode: pg.sslmode,
            ca_file: pg.ca_file.clone(),
            connect_timeout: Duration::from_millis(pg.connect_timeout_ms),
            statement_timeout: Duration::from_millis(pg.statement_timeout_ms),
            hints: Hints::default(),
        }
    }

    /// The URL as shown in messages and the audit log.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn setup_error(&self, source: impl Into<SetupError>) -> StoreError {
        StoreError::PostgresSetup {
            target: self.target.clone(),
            source: source.into(),
        }
    }

    pub(super) fn pg_error(&self, e: postgres::Error) -> StoreError {
        let message = describe(&e);
        self.pg_error_with(e, message)
    }

    pub(super) fn pg_error_with(&self, e: postgres::Error, message: String) -> StoreError {
        StoreError::Postgres {
            target: self.target.clone(),
            message,
            source: e,
        }
    }

    /// The role the URL names ("" if none: the client's default).
    pub fn user(&self) -> String {
        postgres::Config::from_str(&self.url)
            .ok()
            .and_then(|c| c.get_user().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The client configuration, with the password read from its file.
    pub(super) fn client_config(&self) -> Result<postgres::Config, StoreError> {
        let mut config = postgres::Config::from_str(&self.url)
            .map_err(|e| self.setup_error(SetupError::Url(e)))?;
        if config.get_password().is_some() {
            return Err(self.setup_error(SetupError::UrlPassword));
        }
        if let Some(path) = &self.password_file {
            config.password(
                read_password_file(path)
                    .map_err(|e| self.setup_error(e))?
                    .as_str(),
            );
        }
        config
            .connect_timeout(self.connect_timeout)
            // A server that stops answering mid-statement (a cut network)
            // is given up on rather than waited for.
            .tcp_user_timeout(self.connect_timeout + self.statement_timeout)
            // A server gone silently while the connection is idle is
            // noticed in about 11 s (5 s idle, 3 probes 2 s apart), not
            // after the kernel's two hours.
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_PROBES)
            .application_name("veild");
        Ok(config)
    }

    pub(super) fn connect(&self) -> Result<Client, StoreError> {
        let mut config = self.client_config()?;
        let tls = self.sslmode == PgSslMode::VerifyFull && !unix_only(&config);
        let mut client = if tls {
            let Some(ca) = &self.ca_file else {
                return Err(self.setup_error(SetupError::NoCaFile));
            };
            config.ssl_mode(postgres::config::SslMode::Require);
            if config.get_password().is_some() {
                // SCRAM bound to this TLS channel only: a cleartext or md5
                // request (a server, or someone between, asking for the
                // password itself) is refused before the password is sent.
                config.channel_binding(postgres::config::ChannelBinding::Require);
            }
            config
                .connect(tls_connector(ca).map_err(|e| self.setup_error(e))?)
                .map_err(|e| self.pg_error(e))?
        } else {
            config.ssl_mode(postgres::config::SslMode::Disable);
            config.connect(NoTls).map_err(|e| self.pg_error(e))?
        };
        let ms = self.statement_timeout.as_millis();
        // The server probes us alike (it ignores this on a Unix socket): a
        // host cut off while holding a transaction's key locks or the
        // prune lock has them released in seconds.
        let (idle, interval) = (KEEPALIVE_IDLE.as_secs(), KEEPALIVE_INTERVAL.as_secs());
        // Lock waits (a busy key, a migration on another host) are bounded
        // like statements; a transaction left open by a stalled veild is
        // ended by the server. The functions are written for read committed
        // (each statement sees what the locks let through) and a reserved
        // failure must be on disk when the reply goes out: a role's or
        // database's other defaults are overridden.
        client
            .batch_execute(&format!(
                "SET statement_timeout = {ms}; SET lock_timeout = {ms};
                 SET default_transaction_isolation = 'read committed';
                 SET synchronous_commit = on;
                 SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = {interval};
                 SET tcp_keepalives_count = {KEEPALIVE_PROBES};
                 SET idle_in_transaction_session_timeout = {}",
                ms * 10
            ))
            .map_err(|e| self.pg_error(e))?;
        Ok(client)
    }
}

/// A client error in one line: the server's code and message, or the
/// client's whole chain ("error connecting to server: Connection refused").
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// An OpenSSL connector that checks the server's certificate against `ca`
/// and its name against the host connected to (verify-full). Only `ca`'s
/// certificates are trusted: the builder's default store (the system's
/// CAs, `SSL_CERT_FILE`, `SSL_CERT_DIR`) is replaced, else any publicly
/// trusted CA could vouch for a server named like ours.
fn tls_connector(ca: &Path) -> Result<postgres_openssl::MakeTlsConnector, TlsError> {
    let builder = tls_builder(ca)?;
    Ok(postgres_openssl::MakeTlsConnector::new(builder.build()))
}

pub(super) fn tls_builder(ca: &Path) -> Result<openssl::ssl::SslConnectorBuilder, TlsError> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    use openssl::x509::X509;
    use openssl::x509::store::X509StoreBuilder;
    let path = || ca.to_path_buf();
    let pem = std::fs::read(ca).map_err(|source| TlsError::Read {
        path: path(),
        source,
    })?;
    let bad = |source| TlsError::Certificates {
        path: path(),
        source,
    };
    let certs = X509::stack_from_pem(&pem).map_err(bad)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path() });
    }
    let mut store = X509StoreBuilder::new().map_err(TlsError::OpenSsl)?;
    for cert in certs {
        store.add_cert(cert).map_err(bad)?;
    }
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(TlsError::OpenSsl)?;
    builder.set_cert_store(store.build());
    builder.set_verify(SslVerifyMode::PEER);
    Ok(builder)
}

/// The account veild runs as (`User=veil` in veild.service); veilctl runs
/// as root, and both read the same password file.
const DAEMON_USER: &str = "veil";

/// The first line of a password file that only its owner may read, the
/// owner being root, the daemon's account or whoever runs this.
pub fn read_password_file(path: &Path) -> Result<Zeroizing<String>, PasswordFileError> {
    read_password_file_owned(path, DAEMON_USER)
}

pub(super) fn read_password_file_owned(
    path: &Path,
    daemon_user: &str,
) -> Result<Zeroizing<String>, PasswordFileError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // The file opened is the file checked: no symlink, fstat not stat;
    // non-blocking, so that a FIFO put there cannot stall the start.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| PasswordFileError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| PasswordFileError::Stat {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(PasswordFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PasswordFileError::Readable {
            path: path.to_path_buf(),
            mode,
        });
    }
    let me = nix::unistd::geteuid().as_raw();
    let daemon = nix::unistd::User::from_name(daemon_user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    if meta.uid() != 0 && meta.uid() != me && Some(meta.uid()) != daemon {
        return Err(PasswordFileError::Owner {
            path: path.to_path_buf(),
            uid: meta.uid(),
            daemon_user: daemon_user.to_owned(),
            me,
        });
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|source| PasswordFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(PasswordFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Zeroizing::new(line.to_owned()))
}
