//! The quality gate of `veilctl user add | passwd`: the admin's new
//! password for a user goes through the same check as a user's own
//! (`[password] quality`, `quality_config`, `breached_list`). Debian's
//! `passwd` run by root only warns (pam_pwquality without
//! `enforce_for_root`); veilctl, often scripted, refuses unless the admin
//! says `--allow-weak`, which warns and goes on, as `passwd` does for root,
//! and which `enforce_for_root` in pwquality.conf takes away.

use veil_daemon::common::quality::{Checker, Quality};

use crate::Ctx;
use crate::error::{EX_CONFIG, Failure};

pub fn gate(ctx: &Ctx, user: &str, password: &str, allow_weak: bool) -> Result<(), Failure> {
    let checker = Checker::new(&ctx.config.password);
    let weak = match checker.check(password.as_bytes(), None, user) {
        Ok(Quality::Good) => return Ok(()),
        Ok(Quality::Weak(weak)) => weak,
        Err(e) => {
            return Err(Failure::new(
                EX_CONFIG,
                format!("cannot check the password's quality: {e}; nothing changed"),
            ));
        }
    };
    if !allow_weak {
        return Err(Failure::failed(format!(
            "BAD PASSWORD: {}; nothing changed (--allow-weak sets it anyway)",
            weak.why
        )));
    }
    if weak.enforce_for_root {
        return Err(Failure::failed(format!(
            "BAD PASSWORD: {}; nothing changed (pwquality.conf sets enforce_for_root, so --allow-weak does not apply)",
            weak.why
        )));
    }
    eprintln!(
        "veilctl: warning: BAD PASSWORD: {} (set anyway: --allow-weak)",
        weak.why
    );
    Ok(())
}
