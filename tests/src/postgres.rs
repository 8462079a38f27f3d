//! veild on a shared PostgreSQL store: a throwaway cluster (initdb and
//! pg_ctl in a temp dir, stopped and removed on drop; it panics if
//! PostgreSQL is missing, so these tests fail rather than skip) and the
//! config of a "host" that uses it.
#![forbid(unsafe_code)]

use std::path::PathBuf;

pub use veil_daemon::common::store::postgres::scratch::Cluster;

use veil_daemon::common::config::Config;

use crate::daemon::{quick_config, with_toml};

/// [`quick_config`] with `extra` TOML over it, its store the database at `url`.
pub fn host_config(url: &str, extra: &str) -> Config {
    Config {
        database: PathBuf::from(url),
        ..with_toml(quick_config(), extra)
    }
}
