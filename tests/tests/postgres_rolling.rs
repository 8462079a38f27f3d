//! A rolling upgrade on one real PostgreSQL: host A runs the pinned
//! earlier release (scripts/build-pinned.sh: veild, veilctl, pam_veil.so
//! of 0.3.0, PostgreSQL schema 4), host B the tree. A's veilctl makes the
//! store and the users, as a fleet on that release has them; B starts and
//! migrates the schema to the tree's; then both hosts keep logging users
//! in through real libpam (each with its own pam_veil.so), and the fleet's
//! guarantees hold across the two releases: failures on one count on the
//! other, a lock made on either holds on the other, a code used on either
//! is a replay on the other; the old veilctl lifts a lock on the new
//! schema.
//!
//! Fails when an older host cannot run on the tree's schema (tried with a
//! temporary migration 0005 on the tree): with READERS_FROM 5, host A's
//! first login after the migration was a store error ("this veil (0.3.0)
//! speaks schema 4; ..."); with READERS_FROM 4 but revoking
//! `veil_success` from `veil_login`, a store error ("permission denied");
//! with READERS_FROM 4 and only a new table, it passed.

use std::process::Command;
use std::time::Duration;

use totp_rs::Secret;
use veil_daemon::common::store::PgStore;
use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS};
use veil_tests::postgres::{Cluster, host_config};
use veil_tests::totp::{code_now, wrong_code};
use veil_tests::{Attempt, PamStack, Veild, paths, pinned};

const PASSWORD: &str = "rolling upgrade horse";
/// deny = 3 on both hosts: a lock needs failures through both.
const DENY: u32 = 3;

/// A secret of each user's own: every code is fresh for its user, so no
/// login waits for a TOTP step.
fn secret(user: &str) -> String {
    let mut bytes = format!("rolling-{user}-secret-bytes").into_bytes();
    bytes.truncate(20);
    Secret::Raw(bytes).to_encoded().to_string()
}

/// One host: its veild and a PAM stack loading the module of its release.
struct Host {
    name: &'static str,
    veild: Veild,
    stack: PamStack,
}

impl Host {
    fn new(name: &'static str, veild: Veild, module: &std::path::Path) -> Host {
        let args = pam::socket_args(&veild.socket(), "5");
        let stack = PamStack::new(&[format!("auth required {} {args}", module.display())]);
        Host { name, veild, stack }
    }

    /// One login through libpam from `rhost`, which must end as `outcome`
    /// says (`outcome=allow`: PAM_SUCCESS, else PAM_AUTH_ERR with that
    /// reason in the host's audit log).
    fn login(&self, user: &str, password: &str, code: &str, rhost: &str, outcome: &str) {
        let attempt = Attempt::new(user, &[password, code]).from_host(rhost);
        let got = pam::authenticate(&self.stack, &attempt).code;
        let want = if outcome == "outcome=allow" {
            PAM_SUCCESS
        } else {
            PAM_AUTH_ERR
        };
        assert_eq!(
            got,
            want,
            "host {}: {user}'s login was {}, not {outcome}:\n{}",
            self.name,
            pam::code_name(got),
            self.veild.stderr()
        );
        self.said(user, outcome);
    }

    /// The audit line for `user` with `outcome` (e.g. `reason=locked`).
    fn said(&self, user: &str, outcome: &str) -> String {
        let user = format!("user={user} ");
        self.veild
            .wait_for_line(&["event=attempt", &user, outcome], Duration::from_secs(5))
            .unwrap_or_else(|| {
                panic!(
                    "host {} logged no {outcome} for {user}:\n{}",
                    self.name,
                    self.veild.stderr()
                )
            })
    }

    fn version(&self) -> String {
        let out = Command::new(self.veild.binary("veild"))
            .arg("--version")
            .output()
            .expect("run veild --version");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

fn schema(cluster: &Cluster) -> (i64, i64) {
    let mut c = postgres::Client::connect(&cluster.url("rolling"), postgres::NoTls).unwrap();
    let row = c
        .query_one(
            "SELECT version::int8, readers_from::int8 FROM veil_schema",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
#[ignore = "needs the pinned release's binaries: VEIL_PINNED_BIN_DIR=$(scripts/build-pinned.sh) (scripts/test.sh)"]
fn hosts_on_the_pinned_release_and_the_tree_share_one_database_during_an_upgrade() {
    // Before anything: without the pinned build the test fails here.
    eprintln!("pinned binaries: {}", pinned::bin_dir().display());
    let cluster = Cluster::start();
    let owner = cluster.database("rolling");
    // Host A as 0.3.0 recommends: a login role of its own.
    cluster.sql("postgres", "CREATE ROLE host_a LOGIN");
    let url_a = owner.replacen("veil@", "host_a@", 1);
    // The same settings as the tree's host_config gives B (quick_config).
    let mut a = Host::new(
        "A (pinned)",
        pinned::launch(&format!(
            "database = {}\nfailure_delay_ms = 20\n\
             [lockout]\ndeny = {DENY}\n\
             [argon2]\nm_cost_kib = 256\nt_cost = 1\np_cost = 1\n\
             [metrics]\ninterval_s = 0\n",
            toml::Value::String(url_a)
        )),
        &pinned::module(),
    );
    // The old veilctl makes the schema (4) and the users, with the admin URL.
    let admin = [("VEIL_ADMIN_URL", owner.as_str())];
    let (code, out, err) = a.veild.ctl_env(&["store", "init"], "", &admin);
    assert_eq!(code, 0, "old veilctl store init: {out}{err}");
    cluster.sql("postgres", "GRANT veil_login TO host_a");
    let users = ["alice", "bob", "carol", "dave", "erin"];
    for user in users {
        let (code, _, err) = a.veild.ctl_env(
            &["user", "add", user, "--password-stdin"],
            &format!("{PASSWORD}\n"),
            &admin,
        );
        assert_eq!(code, 0, "old veilctl user add {user}: {err}");
        let enrol = [
            "totp",
            "enroll",
            user,
            "--secret-stdin",
            "--no-confirm",
            "--no-qr",
        ];
        let (code, _, err) = a
            .veild
            .ctl_env(&enrol, &format!("{}\n", secret(user)), &admin);
        assert_eq!(code, 0, "old veilctl totp enroll {user}: {err}");
    }
    let before = schema(&cluster);
    eprintln!("schema made by the pinned veilctl: (version, readers_from) = {before:?}");
    assert_eq!(before.0, 4, "0.3.0 makes PostgreSQL schema 4");

    // Before the upgrade: A logs alice in.
    let alice = code_now(&secret("alice"));
    a.login("alice", PASSWORD, &alice, "192.0.2.1", "outcome=allow");

    // Host B, the tree, on the owner's role: it migrates at start.
    let b = Host::new(
        "B (tree)",
        Veild::launch_shared(host_config(&owner, &format!("[lockout]\ndeny = {DENY}\n"))),
        &paths::module(),
    );
    let after = schema(&cluster);
    let (version_a, version_b) = (a.version(), b.version());
    eprintln!(
        "host A: {version_a}\nhost B: {version_b}\n\
         schema after B started: (version, readers_from) = {after:?}"
    );
    assert!(version_a.starts_with(&format!("veild {} ", pinned::VERSION)));
    assert!(version_b.starts_with(&format!("veild {} ", env!("CARGO_PKG_VERSION"))));
    assert_eq!(after.0, PgStore::SCHEMA_VERSION, "B migrated to the tree's");

    // Both log users in; a code used on one is a replay on the other.
    let bob = code_now(&secret("bob"));
    a.login("bob", PASSWORD, &bob, "192.0.2.2", "outcome=allow");
    b.login("bob", PASSWORD, &bob, "192.0.2.2", "reason=replayed-code");
    // A restarts on the migrated schema, as hosts do during an upgrade (a
    // reboot): it refuses to start unless the schema's readers_from admits
    // it. (A running veild checks the schema when it connects: bob's login
    // may have used a connection made before B migrated.)
    a.veild.stop();
    a.veild.spawn();
    let carol = code_now(&secret("carol"));
    b.login("carol", PASSWORD, &carol, "192.0.2.3", "outcome=allow");
    a.login(
        "carol",
        PASSWORD,
        &carol,
        "192.0.2.3",
        "reason=replayed-code",
    );

    // Failures count across hosts, and a lock made on one holds on the
    // other: dave's last failure (the one that locks) is on B, erin's on A.
    for (user, first, last, rhost) in [("dave", &a, &b, "192.0.2.4"), ("erin", &b, &a, "192.0.2.5")]
    {
        let wrong = wrong_code(&secret(user));
        for _ in 1..DENY {
            first.login(user, "wrong", &wrong, rhost, "reason=wrong-password");
        }
        last.login(user, "wrong", &wrong, rhost, "reason=wrong-password");
        // The right password and a fresh code, on the host that did not
        // make the lock: refused as locked.
        let code = code_now(&secret(user));
        first.login(user, PASSWORD, &code, rhost, "reason=locked");
    }

    // The old veilctl on A (its login role) lifts dave's lock, made on B;
    // B then logs him in.
    let (code, out, err) = a.veild.ctl(&["unlock", "dave"], "");
    assert_eq!(
        code, 0,
        "old veilctl unlock on the migrated schema: {out}{err}"
    );
    let dave = code_now(&secret("dave"));
    b.login("dave", PASSWORD, &dave, "192.0.2.4", "outcome=allow");

    for host in [&a, &b] {
        assert!(
            !host.veild.stderr().contains("reason=store-error"),
            "host {}: every login was decided:\n{}",
            host.name,
            host.veild.stderr()
        );
    }
}
