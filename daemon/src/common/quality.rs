//! The quality of a new veil password, checked as Debian's `passwd` checks
//! one through pam_pwquality: libpwquality with
//! `/etc/security/pwquality.conf` (or `[password] quality_config`), and,
//! when `[password] breached_list` names one, a local list of breached
//! passwords ([`breached`]). Used by `veilctl user add | passwd` and by
//! veild for a user's own `veilctl passwd`; the reason goes only to the
//! one setting the password.

pub mod breached;
#[allow(unsafe_code)]
mod ffi;

use std::ffi::CString;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::common::config::Password;

/// Why a new password is refused, in words for the person choosing it.
/// Never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}")]
pub struct Weak {
    pub why: String,
    /// pwquality.conf's `enforce_for_root`: root may not override.
    pub enforce_for_root: bool,
}

/// The check could not be made (a file named in the config is unreadable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QualityError {
    #[error("password.quality_config: {0}")]
    Settings(String),
    #[error("password.breached_list {path}: {message}")]
    Breached { path: PathBuf, message: String },
}

/// What a check came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quality {
    Good,
    Weak(Weak),
}

/// The checks `[password]` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checker {
    enabled: bool,
    settings: Option<PathBuf>,
    breached: Option<PathBuf>,
}

/// The breached list's reason (libpwquality's messages read alike).
pub const BREACHED: &str = "The password is in the list of breached passwords";

impl Checker {
    pub fn new(password: &Password) -> Checker {
        Checker {
            enabled: password.quality,
            settings: password.quality_config.clone(),
            breached: password.breached_list.clone(),
        }
    }

    /// Checks `new` for `user` (the old password, when known, lets
    /// libpwquality's `difok` compare). `[password] quality = false`
    /// leaves only the breached list.
    pub fn check(
        &self,
        new: &[u8],
        old: Option<&[u8]>,
        user: &str,
    ) -> Result<Quality, QualityError> {
        if new.contains(&0) {
            return Ok(weak("The password contains a NUL byte", false));
        }
        let mut enforce_for_root = false;
        if self.enabled {
            let path = match &self.settings {
                Some(p) => Some(c_string(p.as_os_str().as_encoded_bytes()).ok_or_else(|| {
                    QualityError::Settings(format!("{}: a NUL in the path", p.display()))
                })?),
                None => None,
            };
            let new_c = secret_c_string(new);
            let old_c = old.filter(|o| !o.contains(&0)).map(secret_c_string);
            let user_c = c_string(user.as_bytes()).unwrap_or_default();
            let verdict = ffi::check(
                path.as_deref(),
                as_cstr(&new_c),
                old_c.as_ref().map(as_cstr),
                &user_c,
            )
            .map_err(QualityError::Settings)?;
            enforce_for_root = verdict.enforce_for_root;
            if let Some(why) = verdict.refusal {
                return Ok(weak(&why, enforce_for_root));
            }
        }
        if let Some(path) = &self.breached {
            let hex = Zeroizing::new(breached::sha1_hex(new));
            let found = breached::contains(path, &hex).map_err(|e| QualityError::Breached {
                path: path.clone(),
                message: e.to_string(),
            })?;
            if found {
                return Ok(weak(BREACHED, enforce_for_root));
            }
        }
        Ok(Quality::Good)
    }
}

impl Checker {
    /// Whether the files the check reads can be read and parsed: one check
    /// of a fixed, public word, its verdict ignored. veild runs it at
    /// start (and `--check-config`), so a list it may not read stops it
    /// there, not at a user's first `veilctl passwd`.
    pub fn probe(&self) -> Result<(), QualityError> {
        let settings_only = Checker {
            breached: None,
            ..self.clone()
        };
        settings_only.check(b"veil-probe", None, "veil")?;
        if let Some(path) = &self.breached {
            breached::contains(path, &"0".repeat(40)).map_err(|e| QualityError::Breached {
                path: path.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }
}

fn weak(why: &str, enforce_for_root: bool) -> Quality {
    Quality::Weak(Weak {
        why: why.to_owned(),
        enforce_for_root,
    })
}

fn c_string(bytes: &[u8]) -> Option<CString> {
    CString::new(bytes).ok()
}

/// `bytes` and a NUL, in a buffer wiped on drop (`bytes` has no NUL).
fn secret_c_string(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
    buf.extend_from_slice(bytes);
    buf.push(0);
    buf
}

fn as_cstr(buf: &Zeroizing<Vec<u8>>) -> &std::ffi::CStr {
    std::ffi::CStr::from_bytes_with_nul(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests;
