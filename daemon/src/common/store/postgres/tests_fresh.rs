//! The fresh-code bindings on a real server: a host on the login role
//! binds, reads, unbinds and prunes them; hosts of one fleet share the
//! table, each seeing only its own host's sessions. Fails on the old
//! main, which had no such table (and no such store calls).

use std::path::Path;

use super::scratch::Cluster;
use super::*;
use crate::common::config::Postgres;

fn key<'a>(host: &'a str, session: u32, user: &'a str) -> SessionKey<'a> {
    SessionKey {
        host,
        boot: "boot-1",
        session,
        user,
    }
}

#[test]
fn a_login_role_binds_reads_unbinds_and_prunes_per_host() {
    let cluster = Cluster::start();
    let url = cluster.database("fresh");
    let admin = PgStore::open(
        &PgSettings::new(Path::new(&url), &Postgres::default()),
        OpenMode::CreateIfMissing,
    )
    .unwrap();
    cluster.sql("postgres", "CREATE ROLE host1 LOGIN IN ROLE veil_login");
    // A login role made after the migration (as a superuser may, later):
    // `veilctl store init` (grant_roles) grants it the table as well.
    cluster.sql("fresh", "REVOKE ALL ON fresh_code_sessions FROM veil_login");
    assert_eq!(schema::grant_roles(&admin).unwrap(), "");
    drop(admin);
    let login_url = url.replacen("veil@", "host1@", 1);
    let mut host = PgStore::open(
        &PgSettings::new(Path::new(&login_url), &Postgres::default()),
        OpenMode::MustExist,
    )
    .unwrap();
    host.fresh_bind(&key("h1", 7, "alice"), 1000).unwrap();
    host.fresh_bind(&key("h2", 7, "alice"), 500).unwrap();
    assert_eq!(
        host.fresh_bound_at(&key("h1", 7, "alice")).unwrap(),
        Some(1000)
    );
    // Another host's session 7 is another session.
    assert_eq!(
        host.fresh_bound_at(&key("h2", 7, "alice")).unwrap(),
        Some(500)
    );
    assert_eq!(host.fresh_bound_at(&key("h3", 7, "alice")).unwrap(), None);
    // A new bind of the same session moves it.
    host.fresh_bind(&key("h1", 7, "alice"), 1100).unwrap();
    assert_eq!(
        host.fresh_bound_at(&key("h1", 7, "alice")).unwrap(),
        Some(1100)
    );
    assert_eq!(host.fresh_prune(600).unwrap(), 1);
    assert_eq!(host.fresh_bound_at(&key("h2", 7, "alice")).unwrap(), None);
    assert_eq!(host.fresh_unbind(&key("h1", 7, "alice")).unwrap(), 1);
    assert_eq!(host.fresh_bound_at(&key("h1", 7, "alice")).unwrap(), None);
}
