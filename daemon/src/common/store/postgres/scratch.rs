//! A throwaway PostgreSQL cluster for tests and the benchmark: Debian's
//! `initdb` and `pg_ctl` in a temp dir, on a Unix socket in that dir (no
//! TCP port to collide with), run as `nobody` when we are root (PostgreSQL
//! refuses to run as root). Dropping it stops the server and removes the
//! dir. It panics with what to install when PostgreSQL is missing: a test
//! that needs it fails rather than skips.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cluster's superuser and the database made for veil.
pub const ROLE: &str = "veil";

#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    /// `nobody` when we are root.
    run_as: Option<String>,
    running: bool,
    /// Set by [`Cluster::serve_tls`]: the loopback port it listens on too.
    tcp_port: Option<u16>,
}

/// The newest `/usr/lib/postgresql/N/bin`.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): \
             run scripts/deps.sh test, which installs Debian's postgresql package"
        ),
    }
}

impl Cluster {
    /// initdb and start; panics (naming the log) if either fails.
    pub fn start() -> Cluster {
        let mut cluster = Cluster::unmade();
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                ROLE,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        cluster.start_again();
        cluster.sql("postgres", "CREATE DATABASE veil");
        cluster
    }

    /// A streaming standby of this cluster, started: `pg_basebackup -R`
    /// over the primary's Unix socket into a dir (and socket) of its own.
    /// Its primary decides whether it is synchronous
    /// (`synchronous_standby_names`).
    pub fn standby(&self) -> Cluster {
        let mut standby = Cluster::unmade();
        let data = standby.data();
        standby.run(
            "pg_basebackup",
            &[
                "-h",
                path_str(&self.dir),
                "-p",
                "5432",
                "-U",
                ROLE,
                "-D",
                path_str(&data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
        );
        standby.start_again();
        standby
    }

    /// Makes a standby the primary (`pg_ctl promote`, waiting for it).
    pub fn promote(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", path_str(&data), "-w", "promote"]);
    }

    /// A URL naming both clusters, for the read-write one of the two
    /// (what a fleet's hosts use to follow a failover).
    pub fn url_either(&self, other: &Cluster, database: &str) -> String {
        let socket = |c: &Cluster| {
            percent_encoding::utf8_percent_encode(
                path_str(&c.dir),
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string()
        };
        format!(
            "postgresql://{ROLE}@{}:5432,{}:5432/{database}?target_session_attrs=read-write",
            socket(self),
            socket(other)
        )
    }

    /// A temp dir for a cluster, owned by whoever runs it; nothing in it.
    fn unmade() -> Cluster {
        let bin = bin_dir();
        let template = std::env::temp_dir().join("veil-pg-XXXXXX");
        let dir = nix::unistd::mkdtemp(&template).expect("make the cluster's temp dir");
        let run_as = nix::unistd::geteuid()
            .is_root()
            .then(|| "nobody".to_owned());
        if let Some(user) = &run_as {
            let u = nix::unistd::User::from_name(user)
                .expect("look up nobody")
                .expect("the nobody account exists");
            nix::unistd::chown(&dir, Some(u.uid), Some(u.gid)).expect("chown the cluster dir");
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod the cluster dir");
        Cluster {
            dir,
            bin,
            run_as,
            running: false,
            tcp_port: None,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs one of the cluster's programs as its owner; panics on failure.
    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = command
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            panic!(
                "{program} {args:?} failed: {}\n{}{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&mut self) {
        let listen = match self.tcp_port {
            Some(_) => "127.0.0.1",
            None => "",
        };
        let options = format!(
            "-k {} -c listen_addresses='{listen}' -p {}",
            path_str(&self.dir),
            self.tcp_port.unwrap_or(5432)
        );
        let data = self.data();
        let log = self.dir.join("log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
        self.running = true;
    }

    /// Stops the server (fast: open connections are cut, as in an outage).
    pub fn stop(&mut self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "fast", "-w", "stop"],
        );
        self.running = false;
    }

    /// The URL of a database on this cluster (over its Unix socket).
    pub fn url(&self, database: &str) -> String {
        let socket_dir = percent_encoding::utf8_percent_encode(
            path_str(&self.dir),
            percent_encoding::NON_ALPHANUMERIC,
        );
        let port = self.tcp_port.unwrap_or(5432);
        format!("postgresql://{ROLE}@{socket_dir}:{port}/{database}")
    }

    /// Restarts the server listening on a free loopback port too, TLS only
    /// there (`hostssl`), with a certificate for `localhost` signed by a
    /// CA made here (openssl). Returns (port, the CA's file).
    pub fn serve_tls(&mut self) -> (u16, PathBuf) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = self.dir.clone();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap_or_else(|e| panic!("run openssl (scripts/deps.sh test installs it): {e}"));
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let subject_alt = dir.join("san.ext");
        std::fs::write(&subject_alt, "subjectAltName=DNS:localhost\n").expect("write san.ext");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=veil test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        for file in ["server.key", "server.crt"] {
            let path = dir.join(file);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod the server's key");
            if let Some(user) = &self.run_as {
                let u = nix::unistd::User::from_name(user)
                    .expect("look up the cluster's owner")
                    .expect("it exists");
                nix::unistd::chown(&path, Some(u.uid), Some(u.gid)).expect("chown the key");
            }
        }
        let conf = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str(&format!(
            "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            path_str(&dir.join("server.crt")),
            path_str(&dir.join("server.key"))
        ));
        std::fs::write(&conf, text).expect("write postgresql.conf");
        // TCP only with TLS; the Unix socket as before.
        let hba = self.data().join("pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        self.stop();
        self.tcp_port = Some(port);
        self.start_again();
        (port, dir.join("ca.pem"))
    }

    /// Runs SQL as the superuser; panics on error.
    pub fn sql(&self, database: &str, sql: &str) {
        let mut client = postgres::Client::connect(&self.url(database), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test cluster: {e}"));
        client
            .batch_execute(sql)
            .unwrap_or_else(|e| match e.as_db_error() {
                Some(db) => panic!("{sql}: {}", db.message()),
                None => panic!("{sql}: {e}"),
            });
    }

    /// A new empty database; returns its URL.
    pub fn database(&self, name: &str) -> String {
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            let mut command = match &self.run_as {
                Some(user) => {
                    let mut c = Command::new("runuser");
                    c.args(["-u", user, "--"]).arg(self.bin.join("pg_ctl"));
                    c
                }
                None => Command::new(self.bin.join("pg_ctl")),
            };
            let _ = command
                .args(["-D", path_str(&data), "-m", "immediate", "-w", "stop"])
                .current_dir(&self.dir)
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
