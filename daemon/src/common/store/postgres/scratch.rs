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
        let mut cluster = Cluster {
            dir,
            bin,
            run_as,
            running: false,
        };
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
        let options = format!("-k {} -c listen_addresses='' -p 5432", path_str(&self.dir));
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
        format!("postgresql://{ROLE}@{socket_dir}:5432/{database}")
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
