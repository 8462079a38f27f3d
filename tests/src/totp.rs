//! TOTP codes for tests (RFC 6238: SHA-1, 6 digits, 30 s), computed with
//! totp-rs, independent of veild's own implementation.
#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use totp_rs::{Algorithm, Secret, TOTP};

/// A fixed 160-bit secret for tests and the demo (base32, no padding).
pub const DEMO_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn totp(secret_base32: &str) -> TOTP {
    let bytes = Secret::Encoded(secret_base32.to_owned())
        .to_bytes()
        .expect("a base32 secret");
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, bytes)
}

/// The code for the given Unix time.
pub fn code_at(secret_base32: &str, unix_time: u64) -> String {
    totp(secret_base32).generate(unix_time)
}

/// The code for now.
#[allow(clippy::disallowed_methods)] // test helper: the wall clock is the point
pub fn code_now(secret_base32: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    code_at(secret_base32, now)
}

/// A code that is valid for no step near now (±10 steps), so "wrong code"
/// cannot pass by luck.
#[allow(clippy::disallowed_methods)]
pub fn wrong_code(secret_base32: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let near: Vec<String> = (0..=20)
        .map(|i| code_at(secret_base32, now + i * 30 - 300))
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", truncated to 6 digits.
        let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(seed, time), code, "{time}");
        }
    }
}
