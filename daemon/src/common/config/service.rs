//! `[service.NAME]`: the factors one PAM service accepts and its TOTP
//! policy. Unset keys (and services without a section) take the host's
//! settings: whatever factors the module line declares, `[totp] policy`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Invalid, TotpPolicy};

/// One factor a service may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Factor {
    Password,
    Code,
}

/// The factors a service accepts, as a set: written as a list in any
/// order, each factor once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Factor>", into = "Vec<Factor>")]
pub enum Factors {
    /// The module's default line (`Password: `, `Verification code: `).
    PasswordAndCode,
    /// `factors=code` on the module line: an earlier method (sshd's
    /// publickey) proved the account.
    Code,
    /// The password alone: the module line is the default one (its code
    /// prompt may be left empty) and veild never asks for the code.
    Password,
}

impl TryFrom<Vec<Factor>> for Factors {
    type Error = String;
    fn try_from(list: Vec<Factor>) -> Result<Factors, String> {
        let mut set = list.clone();
        set.sort();
        set.dedup();
        match (set.len() == list.len(), set.as_slice()) {
            (true, [Factor::Password, Factor::Code]) => Ok(Factors::PasswordAndCode),
            (true, [Factor::Code]) => Ok(Factors::Code),
            (true, [Factor::Password]) => Ok(Factors::Password),
            _ => Err(
                "factors must be [\"password\", \"code\"], [\"code\"] or [\"password\"], each once"
                    .into(),
            ),
        }
    }
}

impl From<Factors> for Vec<Factor> {
    fn from(factors: Factors) -> Vec<Factor> {
        match factors {
            Factors::PasswordAndCode => vec![Factor::Password, Factor::Code],
            Factors::Code => vec![Factor::Code],
            Factors::Password => vec![Factor::Password],
        }
    }
}

impl std::fmt::Display for Factors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Factors::PasswordAndCode => "[\"password\", \"code\"]",
            Factors::Code => "[\"code\"]",
            Factors::Password => "[\"password\"]",
        })
    }
}

/// One `[service.NAME]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Unset: whatever the module line declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors: Option<Factors>,
    /// Unset: `[totp] policy` (and its rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_policy: Option<TotpPolicy>,
    /// Seconds after a login that passed password and code (bound to its
    /// audit session by pam_veil's session line) in which this service
    /// accepts an empty code in that session. Unset or 0: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh_code_window_s: Option<u64>,
}

/// A PAM service name as libpam finds it: a file name in /etc/pam.d.
pub fn is_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

/// Names sane, and no section that contradicts itself.
pub(super) fn check(services: &BTreeMap<String, Service>) -> Result<(), Invalid> {
    for (name, service) in services {
        let invalid = |message: String| Invalid {
            key: "service",
            message,
        };
        if !is_service_name(name) {
            return Err(invalid(format!(
                "{:?} is not a PAM service name (the file name in /etc/pam.d)",
                veil_proto::sanitize::sanitize(name)
            )));
        }
        let window = service.fresh_code_window_s.unwrap_or(0);
        if window > crate::common::fresh::MAX_WINDOW_S {
            return Err(invalid(format!(
                "service.{name}: fresh_code_window_s = {window} is above {} (an hour)",
                crate::common::fresh::MAX_WINDOW_S
            )));
        }
        if window > 0 && matches!(service.factors, Some(Factors::Password | Factors::Code)) {
            return Err(invalid(format!(
                "service.{name}: fresh_code_window_s needs a line that asks password and code \
                 (factors = [\"password\", \"code\"] or unset)"
            )));
        }
        match (service.factors, service.totp_policy) {
            (Some(Factors::Password), Some(_)) => {
                return Err(invalid(format!(
                    "service.{name}: totp_policy does not apply to factors = [\"password\"] (no code is asked)"
                )));
            }
            // factors=code always needs a code: the password is not checked.
            (Some(Factors::Code), Some(TotpPolicy::IfEnrolled)) => {
                return Err(invalid(format!(
                    "service.{name}: factors = [\"code\"] always needs a code; totp_policy = \"if-enrolled\" would let users without one in with nothing"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}
