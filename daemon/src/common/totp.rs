//! RFC 6238 TOTP (SHA-1, 6 digits, 30 s steps) with replay protection:
//! a code is accepted only for a time step newer than the last accepted one.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

pub const DIGITS: usize = 6;
pub const STEP_SECONDS: u64 = 30;
/// 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

/// What checking a code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// Matched this time step, newer than the last accepted one.
    Accepted(i64),
    /// Matched only steps already used.
    Replayed,
    Wrong,
}

/// The time step of a Unix time.
pub fn step_of(unix_seconds: u64) -> i64 {
    (unix_seconds / STEP_SECONDS) as i64
}

/// The code for one time step.
pub fn code_at(secret: &[u8], step: i64) -> Zeroizing<String> {
    let totp = TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 0, STEP_SECONDS, secret.to_vec());
    Zeroizing::new(totp.generate(step.max(0) as u64 * STEP_SECONDS))
}

/// Checks `code` against every step in `now ± skew`. The same work is done
/// whatever the code or the secret: every step is generated and compared
/// in constant time, with no early exit.
pub fn check(secret: &[u8], code: &[u8], unix_seconds: u64, skew: u8, last_step: i64) -> CodeCheck {
    let well_formed = code.len() == DIGITS && code.iter().all(u8::is_ascii_digit);
    // A malformed code (any bytes at all) is still compared, against a
    // fixed filler, so that it costs the same as a well-formed one.
    let typed: &[u8] = if well_formed { code } else { b"xxxxxx" };
    let now = step_of(unix_seconds);
    let mut newest_match: Option<i64> = None;
    let mut stale_match = false;
    for step in now - i64::from(skew)..=now + i64::from(skew) {
        let expected = code_at(secret, step);
        let equal: bool = expected.as_bytes().ct_eq(typed).into();
        if equal && well_formed {
            if step > last_step {
                newest_match = Some(newest_match.map_or(step, |s| s.max(step)));
            } else {
                stale_match = true;
            }
        }
    }
    match (newest_match, stale_match) {
        (Some(step), _) => CodeCheck::Accepted(step),
        (None, true) => CodeCheck::Replayed,
        (None, false) => CodeCheck::Wrong,
    }
}

/// A new secret from the OS random generator.
pub fn new_secret() -> Result<Zeroizing<Vec<u8>>, getrandom::Error> {
    let mut secret = Zeroizing::new(vec![0u8; SECRET_BYTES]);
    getrandom::getrandom(&mut secret)?;
    Ok(secret)
}

/// Base32 without padding, as authenticator apps expect.
pub fn to_base32(secret: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(data_encoding::BASE32_NOPAD.encode(secret))
}

/// Parses a base32 secret as typed by a person (any case, spaces, padding).
pub fn from_base32(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let cleaned: Zeroizing<String> = Zeroizing::new(
        text.chars()
            .filter(|c| !c.is_whitespace() && *c != '=' && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .ok()
        .map(Zeroizing::new)
}

/// How an authenticator app names this host's entry for `user`: the
/// issuer (`[totp] issuer`, else `veil on HOSTNAME`) and the account
/// (`user@HOSTNAME`), so that one person's entries for ten hosts differ.
pub fn label(issuer: Option<&str>, user: &str, host: &str) -> (String, String) {
    let issuer = issuer.map_or_else(|| format!("veil on {host}"), str::to_owned);
    (issuer, format!("{user}@{host}"))
}

/// This host's name as `gethostname` gives it (`localhost` if it fails).
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> Zeroizing<String> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let issuer_enc = utf8_percent_encode(issuer, NON_ALPHANUMERIC);
    let account_enc = utf8_percent_encode(account, NON_ALPHANUMERIC);
    Zeroizing::new(format!(
        "otpauth://totp/{issuer_enc}:{account_enc}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        to_base32(secret).as_str()
    ))
}

#[cfg(test)]
mod tests;
