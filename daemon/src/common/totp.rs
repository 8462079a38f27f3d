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
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    /// RFC 6238 appendix B, SHA-1 column; the RFC prints 8 digits, the
    /// 6-digit code is its last six.
    #[test]
    fn rfc6238_sha1_vectors() {
        for (time, eight) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(
                code_at(RFC_SECRET, step_of(time)).as_str(),
                &eight[2..],
                "t={time}"
            );
        }
    }

    #[test]
    fn codes_from_oathtool_are_accepted() {
        let secret =
            b"\x3d\xc6\xca\xa4\x82\x4a\x6d\x28\x87\x67\xb2\x33\x1e\x20\xb4\x31\x66\xcb\x85\xd9";
        let b32 = to_base32(secret);
        for time in [0u64, 1_000_000_000, 1_700_000_000, 2_000_000_029] {
            let out = std::process::Command::new("oathtool")
                .args(["--totp", "-b", "--now", &format!("@{time}"), b32.as_str()])
                .output();
            let Ok(out) = out else {
                eprintln!("oathtool not installed; RFC vectors still checked");
                return;
            };
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let code = String::from_utf8(out.stdout).unwrap();
            assert_eq!(
                check(secret, code.trim().as_bytes(), time, 0, -1),
                CodeCheck::Accepted(step_of(time)),
                "t={time}"
            );
        }
    }

    #[test]
    fn skew_accepts_neighbouring_steps_only() {
        let t = 1_700_000_000u64;
        let now = step_of(t);
        for (delta, skew, accepted) in [
            (-1, 1, true),
            (1, 1, true),
            (-2, 1, false),
            (2, 1, false),
            (0, 0, true),
            (1, 0, false),
        ] {
            let code = code_at(RFC_SECRET, now + delta);
            let got = check(RFC_SECRET, code.as_bytes(), t, skew, -1);
            assert_eq!(
                got == CodeCheck::Accepted(now + delta),
                accepted,
                "delta={delta} skew={skew} got={got:?}"
            );
        }
    }

    #[test]
    fn a_code_is_not_accepted_twice() {
        let t = 1_700_000_000u64;
        let code = code_at(RFC_SECRET, step_of(t));
        let CodeCheck::Accepted(step) = check(RFC_SECRET, code.as_bytes(), t, 1, -1) else {
            panic!("first use refused")
        };
        assert_eq!(
            check(RFC_SECRET, code.as_bytes(), t, 1, step),
            CodeCheck::Replayed
        );
        assert_eq!(
            check(RFC_SECRET, code.as_bytes(), t + 5, 1, step),
            CodeCheck::Replayed
        );
        // An older code within the skew is refused too once a newer one was used.
        let older = code_at(RFC_SECRET, step - 1);
        assert_eq!(
            check(RFC_SECRET, older.as_bytes(), t, 1, step),
            CodeCheck::Replayed
        );
        let newer = code_at(RFC_SECRET, step + 1);
        assert_eq!(
            check(RFC_SECRET, newer.as_bytes(), t + 30, 1, step),
            CodeCheck::Accepted(step + 1)
        );
    }

    #[test]
    fn malformed_codes_are_wrong() {
        for code in ["", "12345", "1234567", "12345a", " 12345", "١٢٣٤٥٦"] {
            assert_eq!(
                check(RFC_SECRET, code.as_bytes(), 59, 1, -1),
                CodeCheck::Wrong,
                "{code:?}"
            );
        }
    }

    #[test]
    fn base32_round_trip_and_lenient_parsing() {
        let secret = new_secret().unwrap();
        assert_eq!(secret.len(), 20);
        let b32 = to_base32(&secret);
        assert_eq!(b32.len(), 32);
        assert_eq!(from_base32(&b32).unwrap(), secret);
        let spaced: String = b32
            .to_lowercase()
            .chars()
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(from_base32(&spaced).unwrap(), secret);
        assert!(from_base32("not base32!").is_none());
    }

    #[test]
    fn otpauth_uri_escapes_the_account() {
        let uri = otpauth_uri("veil", "al ice", RFC_SECRET);
        assert!(
            uri.starts_with(
                "otpauth://totp/veil:al%20ice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=veil"
            ),
            "{}",
            uri.as_str()
        );
    }
}
