//! `veilctl recovery new | clear`: ten single-use codes that stand in for
//! a TOTP code at the `Verification code:` prompt. Shown once; only their
//! keyed hashes are stored.

use std::io::Write;

use veil_daemon::common::recovery;

use crate::Ctx;
use crate::cli::RecoveryCommand;
use crate::error::Failure;
use crate::users::require_user;

pub fn run(ctx: &Ctx, command: RecoveryCommand) -> Result<(), Failure> {
    match command {
        RecoveryCommand::New { name } => {
            let name = match name {
                Some(name) => name,
                None => invoking_user()?,
            };
            let mut store = ctx.open()?;
            require_user(store.as_ref(), &name)?;
            let new = recovery::generate()
                .map_err(|e| Failure::failed(format!("no randomness from the OS: {e}")))?;
            store.set_recovery(&name, Some(&new.set), ctx.now)?;
            let mut out = std::io::stdout().lock();
            let fail = |e: std::io::Error| Failure::failed(e.to_string());
            writeln!(
                out,
                "Recovery codes for {name}. Each works once, at the \"Verification code:\" prompt,\n\
                 in place of a code from the app. Keep them somewhere safe: they are not shown again."
            )
            .map_err(fail)?;
            writeln!(out).map_err(fail)?;
            for pair in new.codes.chunks(2) {
                let line: Vec<&str> = pair.iter().map(|c| c.as_str()).collect();
                writeln!(out, "    {}", line.join("    ")).map_err(fail)?;
            }
            out.flush().map_err(fail)?;
            let active = store
                .user(&name)?
                .is_some_and(|record| record.totp_secret.is_some());
            eprintln!(
                "veilctl: {} recovery codes made for {name}; any earlier ones no longer work",
                recovery::COUNT
            );
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

/// The account running veilctl, for `recovery new` without a NAME.
fn invoking_user() -> Result<String, Failure> {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => Ok(user.name),
        _ => Err(Failure::usage(format!(
            "uid {uid} has no account name; name the user"
        ))),
    }
}

/// Codes left for `name` (0 when there is no set), for `status` and `user list`.
pub fn left(store: &dyn veil_daemon::common::store::Store, name: &str) -> Result<u32, Failure> {
    Ok(store
        .user(name)?
        .and_then(|record| record.recovery)
        .map_or(0, |set| set.left()))
}
