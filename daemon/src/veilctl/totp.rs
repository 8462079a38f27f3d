//! `veilctl totp enroll | disable`: a secret shown once (URI and QR code),
//! active only after one correct code.

use std::io::{IsTerminal, Write};

use zeroize::Zeroizing;

use veil_daemon::common::clock::unix_now;
use veil_daemon::common::config::{Config, PasswordSource};
use veil_daemon::common::shadow;
use veil_daemon::common::store::{SYSTEM_ONLY_PHC, Store};
use veil_daemon::common::totp::{self, CodeCheck};

use crate::Ctx;
use crate::cli::TotpCommand;
use crate::error::Failure;
use crate::input::read_line_stdin;
use crate::users::require_user;

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

/// Activates `secret` for `name` at once, as `enroll --secret-stdin
/// --no-confirm` does (a system account gets its TOTP-only row).
pub fn activate(ctx: &Ctx, name: &str, secret: &[u8]) -> Result<(), Failure> {
    let mut store = ctx.open()?;
    if !system_user_row(ctx, store.as_mut(), name)? {
        require_user(store.as_ref(), name)?;
    }
    store.set_totp_pending(name, secret, ctx.now)?;
    store.activate_totp(name, -1, unix_now() as i64)?;
    eprintln!("veilctl: TOTP active for {name}");
    Ok(())
}

/// With `source = "system"`, a system account with no veil row gets one
/// that holds only its TOTP state (phc [`SYSTEM_ONLY_PHC`]: no veil
/// password). True when the name is such an account (row made or there).
fn system_user_row(ctx: &Ctx, store: &mut dyn Store, name: &str) -> Result<bool, Failure> {
    let p = &ctx.config.password;
    if p.source != PasswordSource::System || store.user(name)?.is_some() {
        return Ok(false);
    }
    let entry = shadow::lookup(&p.shadow, name)
        .map_err(|e| Failure::failed(format!("cannot read {}: {e}", p.shadow.display())))?;
    if entry.is_none() {
        return Ok(false);
    }
    store.add_user(name, SYSTEM_ONLY_PHC, ctx.now)?;
    eprintln!("veilctl: {name} is a system account; its TOTP state is kept in veil's database");
    Ok(true)
}

/// Prints the secret as a QR code, an otpauth:// URI and base32, labelled
/// for this host (`[totp] issuer`, `NAME@HOSTNAME`).
pub fn show_enrolment(
    config: &Config,
    name: &str,
    secret: &[u8],
    no_qr: bool,
) -> Result<(), Failure> {
    let (issuer, account) = totp::label(config.totp.issuer.as_deref(), name, &totp::host_name());
    let uri = totp::otpauth_uri(&issuer, &account, secret);
    let mut out = std::io::stdout().lock();
    let fail = |e: std::io::Error| Failure::failed(e.to_string());
    writeln!(
        out,
        "Scan this with an authenticator app, or enter the secret by hand."
    )
    .map_err(fail)?;
    if !no_qr {
        let code =
            qrcode::QrCode::new(uri.as_bytes()).map_err(|e| Failure::failed(e.to_string()))?;
        let drawing = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build();
        writeln!(out, "{drawing}").map_err(fail)?;
    }
    writeln!(out, "URI:    {}", uri.as_str()).map_err(fail)?;
    writeln!(out, "Secret: {}", totp::to_base32(secret).as_str()).map_err(fail)?;
    out.flush().map_err(fail)
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
