//! `veilctl enable SERVICE` / `veilctl disable SERVICE`: put veil in front of
//! one PAM service, and take it out again, without locking anyone out.
//!
//! Enabling edits `/etc/pam.d/SERVICE` so that `pam_veil.so` is its only
//! authenticator: every `auth` line that authenticates (and `@include
//! common-auth`) is commented out with a `#veil# ` prefix, and one marked
//! block with `auth required pam_veil.so` takes the place of the first one.
//! Gates that do not authenticate (`pam_nologin`, `pam_faildelay`, ...) stay.
//! The edit is exactly reversible ([`disable_text`] undoes it byte for
//! byte) and the original is also copied to a root-only backup directory.
//!
//! Guards: nothing is edited while no user could pass veil (nobody enrolled,
//! or, under `totp.policy = "required"`, nobody with an active TOTP secret);
//! the console (`login`) needs `--console`; for sshd the effective
//! `sshd_config` is read and every setting that would stop sshd from asking
//! veil is named with the exact line to write, and nothing is edited until
//! it is right.
//!
//! The logic is pure functions over file contents; [`enable`] and
//! [`disable`] are the thin I/O layer.

mod files;
mod pam_stack;
mod sshd_config;

use std::fs;
use std::path::PathBuf;

use veil_daemon::common::config::{Config, TotpPolicy};
use veil_daemon::common::store::{self, OpenMode, UserSummary};

use crate::error::{EXIT_USAGE, Failure};
use files::{backup_path, check_private, ensure_backup_dir, read, write_like};
use pam_stack::{disable_text, enable_text, is_enabled};
use sshd_config::{describe_sshd, load_sshd_config, sshd_advice};

pub const DEFAULT_PAM_DIR: &str = "/etc/pam.d";
pub const DEFAULT_SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
/// Root-only: restoring from here must never pick up a file veild (user
/// `veil`) could have written, so it is not under /var/lib/veil.
pub const DEFAULT_BACKUP_DIR: &str = "/etc/veil/pam-backup";

#[derive(Debug, clap::Args)]
pub struct EnableArgs {
    /// PAM service, the file name in /etc/pam.d (sshd, sudo, ...)
    pub service: String,
    /// Directory of the PAM service files
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PAM_DIR)]
    pub pam_dir: PathBuf,
    /// sshd configuration to check (always checked for the service "sshd")
    #[arg(long, value_name = "PATH")]
    pub sshd_config: Option<PathBuf>,
    /// Where the original service file is kept (root only)
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BACKUP_DIR)]
    pub backup_dir: PathBuf,
    /// Also allow the console service `login` (the usual way back in when
    /// veild is down)
    #[arg(long)]
    pub console: bool,
}

#[derive(Debug, clap::Args)]
pub struct DisableArgs {
    /// PAM service, the file name in /etc/pam.d
    pub service: String,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PAM_DIR)]
    pub pam_dir: PathBuf,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BACKUP_DIR)]
    pub backup_dir: PathBuf,
}

// ---------------------------------------------------------------- pure logic

/// A PAM service name as a file name in /etc/pam.d.
pub fn check_service_name(service: &str) -> Result<(), Failure> {
    let ok = !service.is_empty()
        && service.len() <= 64
        && !service.starts_with(['.', '-'])
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if !ok {
        return Err(Failure {
            code: EXIT_USAGE,
            message: format!(
                "invalid PAM service name {:?}: use the file name in /etc/pam.d",
                veil_proto::sanitize::sanitize(service)
            ),
        });
    }
    if service.starts_with("common-") || service == "other" {
        return Err(Failure::refused(format!(
            "{service} is shared by every service; veil does not edit it (the pam-auth-update profile \"veil\" is the way to put veil in front of every service)"
        )));
    }
    Ok(())
}

/// The users who could pass veil today under `policy`.
pub fn able_to_log_in(users: &[UserSummary], policy: TotpPolicy) -> Vec<&str> {
    users
        .iter()
        .filter(|u| u.totp || policy == TotpPolicy::IfEnrolled)
        .map(|u| u.name.as_str())
        .collect()
}

/// `veilctl enable`: the guards, the backup, the edit. Returns the report.
pub fn enable(config: &Config, args: &EnableArgs) -> Result<String, Failure> {
    let service = args.service.as_str();
    check_service_name(service)?;
    if service == "login" && !args.console {
        return Err(Failure::refused(
            "login is the console, the way back in when veild is down or a phone is lost; \
             it stays on the system password unless you pass --console",
        ));
    }
    let path = args.pam_dir.join(service);
    let original = read(&path)?;
    if is_enabled(&original) {
        return Ok(format!("veil is already enabled in {}\n", path.display()));
    }
    // Fails here, before anything is written, if the file cannot be handled.
    let edited = enable_text(&original)?;

    // Nobody must be locked out: someone has to be able to pass veil.
    let store = store::open(&store::Location::of(config), OpenMode::MustExist).map_err(|e| {
        Failure::refused(format!(
            "{e}: nobody is enrolled yet; add a user and a TOTP secret first (veilctl user add, veilctl totp enroll)"
        ))
    })?;
    let users = store.list_users().map_err(|e| Failure::io(e.to_string()))?;
    let able = able_to_log_in(&users, config.totp.policy);
    if able.is_empty() {
        return Err(Failure::refused(match config.totp.policy {
            TotpPolicy::Required => {
                "no user has an active TOTP secret, so nobody could log in: \
                 enrol one first (veilctl user add NAME; veilctl totp enroll NAME)"
            }
            TotpPolicy::IfEnrolled => {
                "no user is enrolled, so nobody could log in: enrol one first (veilctl user add NAME)"
            }
        }));
    }
    let mut report = String::new();
    if let Ok(admin) = std::env::var("SUDO_USER")
        && !admin.is_empty()
        && admin != "root"
        && !able.contains(&admin.as_str())
    {
        report.push_str(&format!(
            "warning: you ({admin}) cannot pass veil yet; enrol yourself before you log out\n"
        ));
    }

    let sshd_config = match (&args.sshd_config, service) {
        (Some(p), _) => Some(p.clone()),
        (None, "sshd") => Some(PathBuf::from(DEFAULT_SSHD_CONFIG)),
        _ => None,
    };
    if let Some(sshd_config) = sshd_config {
        let advice = sshd_advice(&load_sshd_config(&sshd_config)?);
        let text = describe_sshd(&advice, &sshd_config);
        if !advice.required.is_empty() {
            return Err(Failure::refused(format!(
                "sshd would not ask veil's prompts; nothing changed.\n{text}then run veilctl enable {service} again"
            )));
        }
        report.push_str(&text);
    }

    let meta = fs::metadata(&path).map_err(|e| Failure::io(format!("{}: {e}", path.display())))?;
    ensure_backup_dir(&args.backup_dir)?;
    let backup = backup_path(&args.backup_dir, service);
    write_like(&backup, &original, &meta)?;
    write_like(&path, &edited.text, &meta)?;
    report.push_str(&format!(
        "veil is now the only authenticator of {}; original kept in {}\nreplaced: {}\n\
         users who can log in through veil: {}\n\
         keep this session open and try a login in another one; undo with: veilctl disable {service}\n",
        path.display(),
        backup.display(),
        edited.replaced.join(" | "),
        able.join(", "),
    ));
    Ok(report)
}

/// `veilctl disable`: undoes the edit (keeping later edits of other lines);
/// falls back to the backup if veil's block was damaged.
pub fn disable(args: &DisableArgs) -> Result<String, Failure> {
    let service = args.service.as_str();
    check_service_name(service)?;
    let path = args.pam_dir.join(service);
    let current = read(&path)?;
    let backup = backup_path(&args.backup_dir, service);
    if !is_enabled(&current) {
        return Ok(format!("veil is not enabled in {}\n", path.display()));
    }
    let meta = fs::metadata(&path).map_err(|e| Failure::io(format!("{}: {e}", path.display())))?;
    let saved = if backup.exists() {
        check_private(&args.backup_dir)?;
        Some(read(&backup)?)
    } else {
        None
    };
    let (restored, how) = match (disable_text(&current), saved) {
        (Ok(text), Some(saved)) if text == saved => (text, "restored the original"),
        (Ok(text), _) => (text, "undid veil's edit (other changes since kept)"),
        (Err(_), Some(saved)) => (saved, "veil's block was damaged: restored the backup"),
        (Err(e), None) => return Err(e),
    };
    write_like(&path, &restored, &meta)?;
    if backup.exists() {
        fs::remove_file(&backup).map_err(|e| Failure::io(format!("{}: {e}", backup.display())))?;
    }
    let _ = fs::remove_dir(&args.backup_dir);
    Ok(format!(
        "{}: {how}; veil no longer authenticates {service}\n",
        path.display()
    ))
}

#[cfg(test)]
mod tests;
