//! `veilctl recovery new | clear`: ten single-use codes that stand in for
//! a TOTP code at the `Verification code:` prompt. Shown once; only their
//! keyed hashes are stored. root names the user and writes the database;
//! a user leaves the name out and asks veild (`self_service`).

use veil_daemon::common::recovery;

use crate::Ctx;
use crate::cli::RecoveryCommand;
use crate::error::Failure;
use crate::steps::{require_user, show_codes};

pub fn run(ctx: &Ctx, command: RecoveryCommand) -> Result<(), Failure> {
    match command {
        RecoveryCommand::New {
            name: None,
            password_stdin,
        } => crate::self_service::recovery_new(ctx, password_stdin)?,
        RecoveryCommand::New {
            name: Some(name), ..
        } => {
            own_name_hint(&name)?;
            let mut store = ctx.open()?;
            require_user(store.as_ref(), &name)?;
            let new = recovery::generate()
                .map_err(|e| Failure::failed(format!("no randomness from the OS: {e}")))?;
            store.set_recovery(&name, Some(&new.set), ctx.now)?;
            let shown: Vec<&str> = new.codes.iter().map(|c| c.as_str()).collect();
            show_codes(&name, &shown)?;
            let active = store
                .user(&name)?
                .is_some_and(|record| record.totp_secret.is_some());
            if !active {
                eprintln!(
                    "veilctl: {name} has no active TOTP secret: the codes count only once one is \
                     enrolled (veilctl totp enroll {name})"
                );
            }
        }
        RecoveryCommand::Clear { name } => {
            ctx.open()?.set_recovery(&name, None, ctx.now)?;
            eprintln!("veilctl: recovery codes removed for {name}");
        }
    }
    Ok(())
}

/// A user (not root) naming their own account is pointed to making their
/// own codes rather than left with the database's permission error.
fn own_name_hint(name: &str) -> Result<(), Failure> {
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return Ok(());
    }
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(me)) if me.name == name => Err(Failure::usage(
            "to make your own codes, leave the name out: veilctl recovery new",
        )),
        _ => Ok(()),
    }
}
