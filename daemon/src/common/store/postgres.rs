//! The PostgreSQL back end: one store for many hosts. Each veild worker
//! holds one connection; every check-and-reserve is one transaction that
//! takes a transaction-level advisory lock per key (in a fixed order, so
//! two attempts never deadlock, and a key that has no row yet is locked
//! too), so concurrent guesses through any number of hosts are counted one
//! after the other. Any error drops the connection: the next request opens
//! a new one, so veild recovers by itself when the server comes back.
//! Numbered migrations are recorded in `veil_schema`.

mod ledger;
#[cfg(any(test, feature = "pg-scratch"))]
pub mod scratch;

use std::cell::{Cell, RefCell};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use postgres::{Client, NoTls, Statement};
use zeroize::Zeroizing;

use super::{OpenMode, Store, StoreError, Success, UserRecord, UserSummary};
use crate::common::config::pg::unix_only;
pub use crate::common::config::pg::{check_config, is_url, redact};
use crate::common::config::{PgSslMode, Postgres};
use crate::common::ledger::{Charge, Entry, Limits, Reservation};
use crate::common::recovery::RecoverySet;

/// Numbered migrations; `veil_schema.version` records how many have run.
/// Text columns use the C collation: names compare byte for byte, on every
/// host alike, whatever the cluster's locale.
const MIGRATIONS: &[&str] = &[
    // 1: users, the ledger and the known-good pairs.
    include_str!("postgres/migrations/0001_tables.sql"),
    // 2: the login path's statements as functions, so that each costs one
    // round trip: locking an attempt's keys and reading them (a VOLATILE
    // function reads with a fresh snapshot after each statement, so after
    // the locks), and a success's writes (one call, one commit).
    include_str!("postgres/migrations/0002_login_functions.sql"),
    // 3: recovery codes, in the user's row (the login path still reads one
    // row, the dummy's alike): the set's HMAC key, its hashes (one blob,
    // slot order) and a bit per used slot; a success that used a code
    // takes its slot's bit by compare-and-set in veil_success.
    include_str!("postgres/migrations/0003_recovery_codes.sql"),
];

/// For each migration, the oldest schema a veil may speak and still run
/// on the database once it has run: the migration's own number when older
/// hosts cannot (a changed function, a column they must write), lower when
/// it only adds what they do not use. Recorded in `veil_schema.readers_from`
/// (the highest over the migrations run), so that during a rolling upgrade
/// hosts still on the older release keep serving logins after the first
/// host migrates, as long as every migration since allows it.
const READERS_FROM: [i64; 3] = [1, 2, 3];
const _: () = assert!(READERS_FROM.len() == MIGRATIONS.len());

/// Advisory lock ids of the whole store ("veil" and a number); the keys'
/// own lock ids are hashes of the key.
const MIGRATE_LOCK: i64 = 0x7665_696c_0000_0001;
const PRUNE_LOCK: i64 = 0x7665_696c_0000_0002;

/// How often (local seconds) a connection measures the server's clock.
const CLOCK_RECHECK_S: i64 = 60;

/// Seconds of difference between a host's clock and the server's that
/// count as none: whole-second clocks read a round trip apart differ by
/// one now and then, and a host in sync by NTP keeps its own.
pub const CLOCK_DEAD_BAND_S: i64 = 2;

/// What to add to this host's clock to write in the server's time.
pub fn fleet_offset(server_epoch: f64, local_now: i64) -> i64 {
    let offset = (server_epoch.floor() as i64).saturating_sub(local_now);
    if offset.abs() <= CLOCK_DEAD_BAND_S {
        0
    } else {
        offset
    }
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
    target: String,
    password_file: Option<PathBuf>,
    sslmode: PgSslMode,
    ca_file: Option<PathBuf>,
    connect_timeout: Duration,
    statement_timeout: Duration,
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
        }
    }

    /// The URL as shown in messages and the audit log.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn setup_error(&self, message: impl Into<String>) -> StoreError {
        StoreError::PostgresSetup {
            target: self.target.clone(),
            message: message.into(),
        }
    }

    fn pg_error(&self, e: postgres::Error) -> StoreError {
        StoreError::Postgres {
            target: self.target.clone(),
            message: describe(&e),
        }
    }

    /// The client configuration, with the password read from its file.
    fn client_config(&self) -> Result<postgres::Config, StoreError> {
        let mut config = postgres::Config::from_str(&self.url)
            .map_err(|e| self.setup_error(format!("the URL: {e}")))?;
        if config.get_password().is_some() {
            return Err(self.setup_error("the URL holds a password: use a password_file"));
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

    fn connect(&self) -> Result<Client, StoreError> {
        let mut config = self.client_config()?;
        let tls = self.sslmode == PgSslMode::VerifyFull && !unix_only(&config);
        let mut client = if tls {
            let Some(ca) = &self.ca_file else {
                return Err(self.setup_error("sslmode = \"verify-full\" needs ca_file"));
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
fn tls_connector(ca: &Path) -> Result<postgres_openssl::MakeTlsConnector, String> {
    let builder = tls_builder(ca)?;
    Ok(postgres_openssl::MakeTlsConnector::new(builder.build()))
}

fn tls_builder(ca: &Path) -> Result<openssl::ssl::SslConnectorBuilder, String> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    use openssl::x509::X509;
    use openssl::x509::store::X509StoreBuilder;
    let pem = std::fs::read(ca).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
    let certs = X509::stack_from_pem(&pem).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
    if certs.is_empty() {
        return Err(format!("ca_file {} holds no certificate", ca.display()));
    }
    let mut store = X509StoreBuilder::new().map_err(|e| format!("TLS: {e}"))?;
    for cert in certs {
        store
            .add_cert(cert)
            .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
    }
    let mut builder =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| format!("TLS: {e}"))?;
    builder.set_cert_store(store.build());
    builder.set_verify(SslVerifyMode::PEER);
    Ok(builder)
}

/// The account veild runs as (`User=veil` in veild.service); veilctl runs
/// as root, and both read the same password file.
const DAEMON_USER: &str = "veil";

/// The first line of a password file that only its owner may read, the
/// owner being root, the daemon's account or whoever runs this.
pub fn read_password_file(path: &Path) -> Result<Zeroizing<String>, String> {
    read_password_file_owned(path, DAEMON_USER)
}

fn read_password_file_owned(path: &Path, daemon_user: &str) -> Result<Zeroizing<String>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // The file opened is the file checked: no symlink, fstat not stat;
    // non-blocking, so that a FIFO put there cannot stall the start.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            format!(
                "password_file {}: {e} (a symlink is refused)",
                path.display()
            )
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("password_file {} is not a file", path.display()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "password_file {} may be read by group or others (mode {mode:o}); run: chmod 600 {}",
            path.display(),
            path.display()
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    let daemon = nix::unistd::User::from_name(daemon_user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    if meta.uid() != 0 && meta.uid() != me && Some(meta.uid()) != daemon {
        return Err(format!(
            "password_file {} is owned by uid {}, neither root, {daemon_user} nor uid {me}; \
             run: chown {daemon_user} {}",
            path.display(),
            meta.uid(),
            path.display()
        ));
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(format!("password_file {} is empty", path.display()));
    }
    Ok(Zeroizing::new(line.to_owned()))
}

/// A PHC string's algorithm, version and parameters, with the `$` that
/// ends them (`$argon2id$v=19$m=19456,t=2,p=1$`): what makes two hashes
/// cost the same. The whole string if it has fewer parts.
pub fn phc_params(phc: &str) -> &str {
    match phc.match_indices('$').nth(3) {
        Some((i, _)) => &phc[..=i],
        None => phc,
    }
}

/// The statements of the login path, prepared once per connection.
struct Statements {
    user_or_dummy: Statement,
    read: Statement,
    reserve: Statement,
    lock_read: Statement,
    write_counters: Statement,
    success: Statement,
}

impl Statements {
    fn prepare(client: &mut Client) -> Result<Statements, postgres::Error> {
        Ok(Statements {
            user_or_dummy: client.prepare(
                "SELECT phc, totp_secret, totp_last_step, recovery_key, recovery_hashes,
                        recovery_used, name <> '' FROM users
                 WHERE name IN ($1, '') ORDER BY name DESC LIMIT 1",
            )?,
            read: client.prepare(ledger::READ)?,
            reserve: client.prepare(ledger::RESERVE)?,
            lock_read: client.prepare(ledger::LOCK_READ)?,
            write_counters: client.prepare(ledger::WRITE_COUNTERS)?,
            success: client.prepare(ledger::SUCCESS)?,
        })
    }
}

/// A connection to the shared store.
pub struct PgStore {
    settings: PgSettings,
    client: RefCell<Client>,
    statements: Statements,
    /// Set by any error: the connection may be dead or mid-transaction,
    /// so the caller opens a new one.
    broken: Cell<bool>,
    /// The ledger had more rows than the cap at this host's last prune:
    /// attempts whose keys have no row are charged to overflow keys.
    ledger_full: bool,
    /// (local time it was measured at, server clock minus local clock).
    clock: Option<(i64, i64)>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.settings.target)
            .field("broken", &self.broken.get())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    pub fn open(settings: &PgSettings, mode: OpenMode) -> Result<PgStore, StoreError> {
        let mut client = settings.connect()?;
        migrate(&mut client, settings, mode)?;
        let statements = Statements::prepare(&mut client).map_err(|e| settings.pg_error(e))?;
        Ok(PgStore {
            settings: settings.clone(),
            client: RefCell::new(client),
            statements,
            broken: Cell::new(false),
            ledger_full: false,
            clock: None,
        })
    }

    pub fn target(&self) -> &str {
        &self.settings.target
    }

    /// The shared dummy row's hash, if there is one: veild compares its
    /// parameters with its own at start.
    pub fn dummy_phc(&self) -> Result<Option<String>, StoreError> {
        self.with(|c, _| {
            Ok(c.query_opt("SELECT phc FROM users WHERE name = ''", &[])?
                .map(|row| row.get(0)))
        })
    }

    /// Runs `f` on the connection; any error marks it broken.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client, &Statements) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut client = self.client.borrow_mut();
        f(&mut client, &self.statements).map_err(|e| {
            self.broken.set(true);
            self.settings.pg_error(e)
        })
    }

    fn update_one(
        &self,
        name: &str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<(), StoreError> {
        if self.with(|c, _| c.execute(sql, params))? == 0 {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        Ok(())
    }

    /// Copies users, TOTP state, ledger rows and known-good pairs in, in
    /// one transaction; refuses (and writes nothing) if a user exists here
    /// with a different hash or secret. Returns (users added, users already
    /// the same, ledger rows, known-good pairs).
    pub fn import(&mut self, data: &super::Export) -> Result<super::Imported, StoreError> {
        let settings = self.settings.clone();
        let result = self.with(|c, _| ledger::import(c, data));
        match result {
            Ok(Ok(imported)) => Ok(imported),
            Ok(Err(name)) => Err(StoreError::PostgresSetup {
                target: settings.target,
                message: format!(
                    "user {name} exists there with a different password or TOTP state; nothing was copied"
                ),
            }),
            Err(e) => Err(e),
        }
    }
}

/// Creates or migrates the schema, in one transaction under an advisory
/// lock so that hosts starting together migrate once.
fn migrate(client: &mut Client, settings: &PgSettings, mode: OpenMode) -> Result<(), StoreError> {
    let err = |e| settings.pg_error(e);
    let mut tx = client.transaction().map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .map_err(err)?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('veil_schema') IS NOT NULL", &[])
        .map_err(err)?
        .get(0);
    if !exists {
        if mode == OpenMode::MustExist {
            return Err(StoreError::Missing {
                path: PathBuf::from(&settings.target),
            });
        }
        let foreign: bool = tx
            .query_one(
                "SELECT to_regclass('users') IS NOT NULL OR to_regclass('ledger') IS NOT NULL",
                &[],
            )
            .map_err(err)?
            .get(0);
        if foreign {
            return Err(StoreError::Corrupt {
                path: PathBuf::from(&settings.target),
                message: "its schema holds users or ledger tables but no veil_schema version"
                    .into(),
            });
        }
        tx.batch_execute(
            "CREATE TABLE veil_schema (version integer NOT NULL);
             INSERT INTO veil_schema (version) VALUES (0);",
        )
        .map_err(err)?;
    }
    // `readers_from` read without naming it: a store made before 0.2.0
    // has no such column yet.
    let row = tx
        .query_one(
            "SELECT version, (to_jsonb(s) ->> 'readers_from')::integer,
                 to_jsonb(s) ? 'readers_from'
             FROM veil_schema s",
            &[],
        )
        .map_err(err)?;
    let version: i32 = row.get(0);
    let readers_from: Option<i32> = row.get(1);
    let has_readers_from: bool = row.get(2);
    let supported = MIGRATIONS.len() as i64;
    if i64::from(version) > supported {
        // A newer veil migrated; this one runs on it only if every
        // migration since said older readers may.
        if readers_from.is_some_and(|from| i64::from(from) <= supported) {
            return tx.commit().map_err(err);
        }
        return Err(StoreError::TooNew {
            path: PathBuf::from(&settings.target),
            found: i64::from(version),
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).map_err(err)?;
        tx.execute("UPDATE veil_schema SET version = $1", &[&((i + 1) as i32)])
            .map_err(err)?;
    }
    if !has_readers_from {
        // Not a migration: a release before 0.2.0 reads only `version`.
        tx.batch_execute("ALTER TABLE veil_schema ADD COLUMN readers_from integer")
            .map_err(err)?;
    }
    let from = READERS_FROM.iter().copied().max().unwrap_or(1) as i32;
    if readers_from.is_none_or(|r| r < from) {
        tx.execute("UPDATE veil_schema SET readers_from = $1", &[&from])
            .map_err(err)?;
    }
    tx.commit().map_err(err)
}

/// The schema version a store has, for `veilctl store init`.
pub fn schema_version(store: &PgStore) -> Result<i64, StoreError> {
    store.with(|c, _| {
        let v: i32 = c.query_one("SELECT version FROM veil_schema", &[])?.get(0);
        Ok(i64::from(v))
    })
}

/// A row's first six columns: phc, totp_secret, totp_last_step and the
/// recovery columns (absent or malformed ones are no set).
fn record(row: &postgres::Row) -> UserRecord {
    let key: Option<Vec<u8>> = row.get(3);
    let hashes: Option<Vec<u8>> = row.get(4);
    UserRecord {
        phc: row.get(0),
        totp_secret: row.get::<_, Option<Vec<u8>>>(1).map(Zeroizing::new),
        totp_last_step: row.get(2),
        recovery: key
            .zip(hashes)
            .and_then(|(key, hashes)| RecoverySet::from_parts(key, &hashes, row.get::<_, i64>(5))),
    }
}

impl Store for PgStore {
    fn still_usable(&self) -> bool {
        !self.broken.get() && !self.client.borrow().is_closed()
    }

    fn put_dummy(&mut self, record: &UserRecord, now: i64) -> Result<(), StoreError> {
        let secret = record.totp_secret.as_deref().map(Vec::as_slice);
        let rkey = record.recovery.as_ref().map(|r| r.key.to_vec());
        let rhashes = record.recovery.as_ref().map(RecoverySet::hashes_blob);
        let rused = record.recovery.as_ref().map_or(0, |r| i64::from(r.used));
        let params = phc_params(&record.phc);
        // One dummy for the fleet: written when missing, or when it lacks a
        // part this host's has or was hashed with other parameters (each
        // such host rewrites it; veild warns at start). Not on every
        // connection of every host, which would only churn the row.
        self.with(|c, _| {
            c.execute(
                "INSERT INTO users (name, phc, totp_secret, totp_last_step, recovery_key,
                                    recovery_hashes, recovery_used, created_at, updated_at)
                 VALUES ('', $1, $2, $3, $5, $6, $7, $4, $4)
                 ON CONFLICT (name) DO UPDATE SET phc = excluded.phc,
                     totp_secret = excluded.totp_secret, totp_last_step = excluded.totp_last_step,
                     recovery_key = excluded.recovery_key,
                     recovery_hashes = excluded.recovery_hashes,
                     recovery_used = excluded.recovery_used, updated_at = excluded.updated_at
                 WHERE left(users.phc, length($8::text)) IS DISTINCT FROM $8::text
                    OR (users.totp_secret IS NULL) <> (excluded.totp_secret IS NULL)
                    OR (users.recovery_key IS NULL) <> (excluded.recovery_key IS NULL)",
                &[
                    &record.phc,
                    &secret,
                    &record.totp_last_step,
                    &now,
                    &rkey,
                    &rhashes,
                    &rused,
                    &params,
                ],
            )
        })?;
        Ok(())
    }

    fn user_or_dummy(&self, name: &str) -> Result<Option<(UserRecord, bool)>, StoreError> {
        self.with(|c, st| {
            Ok(c.query_opt(&st.user_or_dummy, &[&name])?
                .map(|row| (record(&row), row.get(6))))
        })
    }

    fn reserve(
        &mut self,
        limits: &Limits,
        charge: Charge,
        now: i64,
    ) -> Result<Reservation, StoreError> {
        let full = self.ledger_full;
        self.with(|c, st| ledger::reserve(c, st, limits, charge, full, now))
    }

    fn commit_success(&mut self, limits: &Limits, success: &Success) -> Result<bool, StoreError> {
        self.with(|c, st| ledger::commit_success(c, st, limits, success))
    }

    fn fleet_now(&mut self, local_now: i64) -> Result<i64, StoreError> {
        if let Some((at, offset)) = self.clock
            && (at..at + CLOCK_RECHECK_S).contains(&local_now)
        {
            return Ok(local_now.saturating_add(offset));
        }
        let server: f64 = self.with(|c, _| {
            Ok(
                c.query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])?
                    .get(0),
            )
        })?;
        let offset = fleet_offset(server, local_now);
        self.clock = Some((local_now, offset));
        Ok(local_now.saturating_add(offset))
    }

    fn prune(&mut self, limits: &Limits, now: i64) -> Result<usize, StoreError> {
        let (removed, full) = self.with(|c, _| ledger::prune(c, limits, now, PRUNE_LOCK))?;
        self.ledger_full = full;
        Ok(removed)
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.with(|c, _| {
            Ok(c.query_opt(
                "SELECT phc, totp_secret, totp_last_step, recovery_key, recovery_hashes,
                        recovery_used
                 FROM users WHERE name = $1 AND name <> ''",
                &[&name],
            )?
            .map(|row| record(&row)))
        })
    }

    fn add_user(&mut self, name: &str, phc: &str, now: i64) -> Result<(), StoreError> {
        let inserted = self.with(|c, _| {
            c.execute(
                "INSERT INTO users (name, phc, created_at, updated_at) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &phc, &now],
            )
        })?;
        if inserted == 0 {
            return Err(StoreError::UserExists(name.to_owned()));
        }
        Ok(())
    }

    fn set_password(&mut self, name: &str, phc: &str, now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET phc = $2, updated_at = $3 WHERE name = $1",
            &[&name, &phc, &now],
        )
    }

    fn delete_user(&mut self, name: &str) -> Result<(), StoreError> {
        self.unlock_user(name)?;
        self.update_one(name, "DELETE FROM users WHERE name = $1", &[&name])
    }

    fn list_users(&self) -> Result<Vec<UserSummary>, StoreError> {
        self.with(|c, _| {
            let rows = c.query(
                "SELECT name, totp_secret IS NOT NULL, totp_pending IS NOT NULL, created_at,
                        updated_at, phc
                 FROM users WHERE name <> '' ORDER BY name",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| UserSummary {
                    name: r.get(0),
                    totp: r.get(1),
                    totp_pending: r.get(2),
                    created_at: r.get(3),
                    updated_at: r.get(4),
                    phc: r.get(5),
                    hash_current: true,
                    system_hash: None,
                })
                .collect())
        })
    }

    fn set_totp_pending(&mut self, name: &str, secret: &[u8], now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET totp_pending = $2, updated_at = $3 WHERE name = $1",
            &[&name, &secret, &now],
        )
    }

    fn totp_pending(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let row = self.with(|c, _| {
            Ok(
                c.query_opt("SELECT totp_pending FROM users WHERE name = $1", &[&name])?
                    .map(|r| r.get::<_, Option<Vec<u8>>>(0)),
            )
        })?;
        match row {
            None => Err(StoreError::NoSuchUser(name.to_owned())),
            Some(s) => Ok(s.map(Zeroizing::new)),
        }
    }

    fn activate_totp(&mut self, name: &str, used_step: i64, now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL,
                              totp_last_step = $2, updated_at = $3
             WHERE name = $1 AND totp_pending IS NOT NULL",
            &[&name, &used_step, &now],
        )
    }

    fn disable_totp(&mut self, name: &str, now: i64) -> Result<(), StoreError> {
        self.update_one(
            name,
            "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = -1,
                              updated_at = $2
             WHERE name = $1",
            &[&name, &now],
        )
    }

    fn set_recovery(
        &mut self,
        name: &str,
        set: Option<&RecoverySet>,
        now: i64,
    ) -> Result<(), StoreError> {
        let key = set.map(|s| s.key.to_vec());
        let hashes = set.map(RecoverySet::hashes_blob);
        let used = set.map_or(0, |s| i64::from(s.used));
        self.update_one(
            name,
            "UPDATE users SET recovery_key = $2, recovery_hashes = $3, recovery_used = $4,
                              updated_at = $5
             WHERE name = $1 AND name <> ''",
            &[&name, &key, &hashes, &used, &now],
        )
    }

    fn locks(&mut self, limits: &Limits, now: i64) -> Result<Vec<Entry>, StoreError> {
        self.with(|c, _| ledger::locks(c, limits, now))
    }

    fn status(&mut self, limits: &Limits, user: &str, now: i64) -> Result<Vec<Entry>, StoreError> {
        self.with(|c, _| ledger::status(c, limits, user, now))
    }

    fn unlock_user(&mut self, user: &str) -> Result<usize, StoreError> {
        self.with(|c, _| {
            Ok(c.execute("DELETE FROM ledger WHERE username = $1", &[&user])? as usize)
        })
    }

    fn unlock_source(&mut self, source: &str) -> Result<usize, StoreError> {
        self.with(|c, _| {
            Ok(c.execute("DELETE FROM ledger WHERE source = $1", &[&source])? as usize)
        })
    }

    fn ledger_rows(&self) -> Result<i64, StoreError> {
        self.with(|c, _| Ok(c.query_one("SELECT count(*) FROM ledger", &[])?.get(0)))
    }
}

impl PgStore {
    /// The schema version this build speaks (the number of migrations), for
    /// `--version` and the refusal of a newer database.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
}

#[cfg(test)]
mod tests;
