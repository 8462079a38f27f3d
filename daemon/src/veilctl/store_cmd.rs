//! `veilctl store`: create the schema, copy a host's SQLite store into
//! PostgreSQL.

use std::path::Path;

use veil_daemon::common::store::postgres::{self, PgStore, grant_roles, schema_version};
use veil_daemon::common::store::{Location, OpenMode, PgSettings, SqliteStore};

use crate::Ctx;
use crate::cli::StoreCommand;
use crate::error::{EX_CONFIG, Failure};

pub fn run(ctx: &Ctx, command: StoreCommand) -> Result<(), Failure> {
    match command {
        StoreCommand::Init => {
            let location = ctx.location()?;
            match &location {
                Location::Postgres(settings) => {
                    let store = PgStore::open(settings, OpenMode::CreateIfMissing)?;
                    // Roles a superuser made since the migration get their grants.
                    let missing = grant_roles(&store)?;
                    println!(
                        "{}: schema version {}",
                        settings.target(),
                        schema_version(&store)?
                    );
                    if !missing.is_empty() {
                        println!(
                            "not done for want of privilege (a superuser may do it, then run \
                             this again): {missing}"
                        );
                    }
                }
                Location::Sqlite(path) => {
                    SqliteStore::open(path, OpenMode::CreateIfMissing)?;
                    println!("{}: ready", path.display());
                }
            }
            Ok(())
        }
        StoreCommand::Copy { to } => {
            let Some(from) = Location::of(&ctx.config).sqlite_path().map(Path::to_owned) else {
                return Err(Failure::new(
                    EX_CONFIG,
                    "store copy reads this host's SQLite store: veild.toml's database is not one",
                ));
            };
            let target = Path::new(&to);
            if !postgres::is_url(target) {
                return Err(Failure::new(EX_CONFIG, "--to must be a postgresql:// URL"));
            }
            // The fleet's store is written as its owner (or a veil_admin
            // member): that role's password file when given.
            let mut pg = ctx.config.postgres.clone();
            if let Some(file) = std::env::var_os(crate::ADMIN_PASSWORD_FILE_ENV) {
                pg.password_file = Some(file.into());
            }
            postgres::check_config(target, &pg)
                .map_err(|e| Failure::new(EX_CONFIG, e.to_string()))?;
            let data = SqliteStore::open(&from, OpenMode::MustExist)?.export()?;
            let settings = PgSettings::new(target, &pg);
            let mut store = PgStore::open(&settings, OpenMode::CreateIfMissing)?;
            let done = store.import(&data)?;
            println!(
                "copied {} to {}: {} users added, {} already there and the same, {} ledger rows, {} known-good pairs",
                from.display(),
                settings.target(),
                done.users,
                done.unchanged,
                done.ledger_rows,
                done.known_good
            );
            println!(
                "now set database = \"{}\" in veild.toml on every host and restart veild",
                settings.target()
            );
            Ok(())
        }
    }
}
