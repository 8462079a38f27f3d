//! What several commands share: finding the user, activating a TOTP
//! secret, and showing a new secret or new recovery codes once. A leaf:
//! the command modules use it, it uses none of them.

use std::io::Write;

use veil_daemon::common::clock::unix_now;
use veil_daemon::common::config::{Config, PasswordSource};
use veil_daemon::common::shadow;
use veil_daemon::common::store::{SYSTEM_ONLY_PHC, Store};
use veil_daemon::common::totp;

use crate::Ctx;
use crate::error::{EXIT_NO_SUCH_USER, Failure};

/// `NoSuchUser` (its own exit status) unless `name` has a row.
pub fn require_user(store: &dyn Store, name: &str) -> Result<(), Failure> {
    match store.user(name)? {
        Some(_) => Ok(()),
        None => Err(Failure::new(
            EXIT_NO_SUCH_USER,
            format!("no such user: {name}"),
        )),
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
pub fn system_user_row(ctx: &Ctx, store: &mut dyn Store, name: &str) -> Result<bool, Failure> {
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

/// Prints a new set once, two codes a line, for `name`.
pub fn show_codes(name: &str, codes: &[&str]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let fail = |e: std::io::Error| Failure::failed(e.to_string());
    writeln!(
        out,
        "Recovery codes for {name}. Each works once, at the \"Verification code:\" prompt,\n\
         in place of a code from the app. Keep them somewhere safe: they are not shown again."
    )
    .map_err(fail)?;
    writeln!(out).map_err(fail)?;
    for pair in codes.chunks(2) {
        writeln!(out, "    {}", pair.join("    ")).map_err(fail)?;
    }
    out.flush().map_err(fail)?;
    eprintln!(
        "veilctl: {} recovery codes made for {name}; any earlier ones no longer work",
        codes.len()
    );
    Ok(())
}

/// Codes left for `name` (0 when there is no set), for `status` and `user list`.
pub fn left(store: &dyn Store, name: &str) -> Result<u32, Failure> {
    Ok(store
        .user(name)?
        .and_then(|record| record.recovery)
        .map_or(0, |set| set.left()))
}
