//! `veilctl totp enroll | disable`: a secret shown once (URI and QR code),
//! active only after one correct code.

use std::io::IsTerminal;

use zeroize::Zeroizing;

use veil_daemon::common::clock::unix_now;
use veil_daemon::common::totp::{self, CodeCheck};

use crate::Ctx;
use crate::cli::TotpCommand;
use crate::error::Failure;
use crate::input::read_line_stdin;
use crate::steps::{require_user, show_enrolment, system_user_row};

pub fn run(ctx: &Ctx, command: TotpCommand) -> Result<(), Failure> {
    match command {
        TotpCommand::Enroll {
            name: None,
            no_qr,
            password_stdin,
            ..
        } => crate::self_service::enrol(ctx, password_stdin, no_qr)?,
        TotpCommand::Enroll {
            name: Some(name),
            no_confirm,
            secret_stdin,
            no_qr,
            ..
        } => {
            own_name_hint(&name)?;
            let mut store = ctx.open()?;
            if !system_user_row(ctx, store.as_mut(), &name)? {
                require_user(store.as_ref(), &name)?;
            }
            let secret = if secret_stdin {
                let line = read_line_stdin()?;
                let secret = totp::from_base32(&line)
                    .ok_or_else(|| Failure::failed("the secret is not valid base32"))?;
                if secret.len() < 10 {
                    return Err(Failure::failed("the secret is shorter than 80 bits"));
                }
                secret
            } else {
                totp::new_secret()
                    .map_err(|e| Failure::failed(format!("no randomness from the OS: {e}")))?
            };
            store.set_totp_pending(&name, &secret, ctx.now)?;
            if !secret_stdin {
                show_enrolment(&ctx.config, &name, &secret, no_qr)?;
            }
            let step = if no_confirm {
                -1
            } else {
                confirm_code(&secret, ctx.config.totp.skew)?
            };
            store.activate_totp(&name, step, unix_now() as i64)?;
            eprintln!("veilctl: TOTP active for {name}");
        }
        TotpCommand::ImportGoogleAuthenticator { name, file } => {
            crate::import::run(ctx, &name, file)?;
        }
        TotpCommand::Disable { name } => {
            ctx.open()?.disable_totp(&name, ctx.now)?;
            eprintln!("veilctl: TOTP removed for {name}");
        }
    }
    Ok(())
}

/// A user (not root) naming their own account is pointed to
/// self-enrolment rather than left with the database's permission error.
fn own_name_hint(name: &str) -> Result<(), Failure> {
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return Ok(());
    }
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(me)) if me.name == name => Err(Failure::usage(
            "to enrol your own account, leave the name out: veilctl totp enroll",
        )),
        _ => Ok(()),
    }
}

/// Asks for codes until one matches (three tries). Returns its step, which
/// becomes the last used one so the confirming code cannot log in again.
fn confirm_code(secret: &[u8], skew: u8) -> Result<i64, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(
            "no terminal to confirm a code on; use --no-confirm in scripts (the secret stays pending)",
        ));
    }
    for _ in 0..3 {
        let code = Zeroizing::new(
            rpassword::prompt_password("Code from the app: ")
                .map_err(|e| Failure::failed(e.to_string()))?,
        );
        match totp::check(secret, code.trim().as_bytes(), unix_now(), skew, -1) {
            CodeCheck::Accepted(step) => return Ok(step),
            _ => eprintln!("veilctl: that code does not match; check the phone's clock"),
        }
    }
    Err(Failure::failed(
        "no matching code; the secret stays pending and inactive",
    ))
}
