//! `veilctl user add | passwd | del | list`: veil's own password hashes.

use veil_daemon::common::config::PasswordSource;
use veil_daemon::common::crypt::{self, policy};
use veil_daemon::common::password::Hasher;
use veil_daemon::common::shadow::{self, State};
use veil_daemon::common::store::UserSummary;

use crate::Ctx;
use crate::cli::UserCommand;
use crate::error::{EX_CONFIG, EXIT_NO_SUCH_USER, Failure};
use crate::input::read_new_password;
use crate::output::print_json;
use crate::quality;
use crate::steps::require_user;

pub fn run(ctx: &Ctx, command: UserCommand) -> Result<(), Failure> {
    match command {
        UserCommand::Add {
            name,
            password_stdin,
            allow_weak,
        } => {
            check_name(&name)?;
            let mut store = ctx.open()?;
            if store.user(&name)?.is_some() {
                return Err(Failure::new(
                    EXIT_NO_SUCH_USER,
                    format!("user already exists: {name}"),
                ));
            }
            let password = read_new_password(password_stdin)?;
            quality::gate(ctx, &name, &password, allow_weak)?;
            let phc = hasher(ctx)?
                .hash(password.as_bytes())
                .map_err(|e| Failure::failed(e.to_string()))?;
            store.add_user(&name, &phc, ctx.now)?;
            eprintln!(
                "veilctl: added {name}; enrol a TOTP secret with: veilctl totp enroll {name}"
            );
            crate::account::warn(ctx, &[&name]);
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            allow_weak,
        } => {
            let mut store = ctx.open()?;
            require_user(store.as_ref(), &name)?;
            let password = read_new_password(password_stdin)?;
            quality::gate(ctx, &name, &password, allow_weak)?;
            let phc = hasher(ctx)?
                .hash(password.as_bytes())
                .map_err(|e| Failure::failed(e.to_string()))?;
            store.set_password(&name, &phc, ctx.now)?;
            eprintln!("veilctl: password of {name} changed");
        }
        UserCommand::Del { name } => {
            ctx.open()?.delete_user(&name)?;
            eprintln!("veilctl: removed {name}");
        }
        UserCommand::List { json } => {
            let store = ctx.open()?;
            let hasher = hasher(ctx)?;
            let mut users = store.list_users()?;
            for u in &mut users {
                u.hash_current = !hasher.needs_rehash(&u.phc);
            }
            if ctx.config.password.source == PasswordSource::System {
                system_hashes(ctx, &mut users)?;
            }
            let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
            crate::account::warn(ctx, &names);
            let mut recovery_left = Vec::with_capacity(users.len());
            for u in &users {
                recovery_left.push(crate::steps::left(store.as_ref(), &u.name)?);
            }
            if json {
                #[derive(serde::Serialize)]
                struct Listed<'a> {
                    #[serde(flatten)]
                    user: &'a UserSummary,
                    recovery_codes_left: u32,
                }
                let listed: Vec<Listed> = users
                    .iter()
                    .zip(&recovery_left)
                    .map(|(user, &recovery_codes_left)| Listed {
                        user,
                        recovery_codes_left,
                    })
                    .collect();
                print_json(&listed)?;
            } else {
                // A hash with old argon2 parameters costs a different time
                // than the dummy until the user's next successful login.
                println!(
                    "{:<24} {:<10} {:<10} {:<8}",
                    "USER", "TOTP", "HASH", "RECOVERY"
                );
                for (u, left) in users.into_iter().zip(recovery_left) {
                    let totp = if u.totp {
                        "active"
                    } else if u.totp_pending {
                        "pending"
                    } else {
                        "none"
                    };
                    let hash = match &u.system_hash {
                        Some(h) => h.as_str(),
                        None if u.hash_current => "current",
                        None => "old-params",
                    };
                    println!("{:<24} {:<10} {:<10} {:<8}", u.name, totp, hash, left);
                }
            }
        }
    }
    Ok(())
}

/// `source = "system"`: every account in shadow with a password (usable
/// or locked) joins the list, and each user's HASH is its shadow hash's
/// method and cost when they differ from the dummy's (those accounts'
/// denials cost a different time), else "current"; or its state.
fn system_hashes(ctx: &Ctx, users: &mut Vec<UserSummary>) -> Result<(), Failure> {
    let p = &ctx.config.password;
    let method = policy::host(p.dummy_method, p.dummy_cost)
        .map_err(|e| Failure::new(EX_CONFIG, e.to_string()))?;
    let dummy = crypt::setting(&method).map_err(|e| Failure::new(EX_CONFIG, e.to_string()))?;
    let dummy = crypt::settings_of(&dummy);
    let text = shadow::read(&p.shadow)
        .map_err(|e| Failure::failed(format!("cannot read {}: {e}", p.shadow.display())))?;
    let entries = shadow::entries(&text);
    for e in &entries {
        let has_password = crypt::usable(e.hash.trim_start_matches('!'));
        if has_password && !users.iter().any(|u| u.name == e.name) {
            users.push(UserSummary {
                name: e.name.clone(),
                totp: false,
                totp_pending: false,
                created_at: 0,
                updated_at: 0,
                phc: String::new(),
                hash_current: true,
                system_hash: None,
            });
        }
    }
    users.sort_by(|a, b| a.name.cmp(&b.name));
    let today = shadow::day_of(ctx.now.max(0) as u64);
    for u in users.iter_mut() {
        u.hash_current = true;
        u.system_hash = match entries.iter().find(|e| e.name == u.name) {
            None => Some("no-system-account".to_owned()),
            Some(e) => match e.state(today) {
                State::Locked => Some("locked".to_owned()),
                State::Expired | State::PasswordInactive => Some("expired".to_owned()),
                State::NoUsableHash => Some("none".to_owned()),
                State::Usable if crypt::settings_of(&e.hash) == dummy => None,
                State::Usable => Some(crypt::describe(&e.hash)),
            },
        };
    }
    Ok(())
}

fn hasher(ctx: &Ctx) -> Result<Hasher, Failure> {
    Hasher::new(&ctx.config.argon2).map_err(|e| Failure::new(EX_CONFIG, e.to_string()))
}

/// User names as PAM passes them: no control characters, no leading dash
/// (it would read as an option in other tools), bounded length.
fn check_name(name: &str) -> Result<(), Failure> {
    if name.is_empty()
        || name.len() > 256
        || name.starts_with('-')
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Failure::usage(
            "invalid user name: use printable characters without spaces, not starting with '-'",
        ));
    }
    Ok(())
}
