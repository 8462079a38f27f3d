//! What socket-level tests send veild: the test account's password and
//! TOTP secret, codes for it, raw frames.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The password [`Veild::enrol`](crate::Veild::enrol) gives every user.
pub const PASSWORD: &str = "Tr0ub4dor&3-correct";
/// The TOTP secret it gives them (base32).
pub const SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// The code for [`SECRET_B32`] now.
pub fn code_now() -> String {
    code_at(0)
}

/// The code `offset_steps` 30-second steps from now.
pub fn code_at(offset_steps: i64) -> String {
    let secret = veil_daemon::common::totp::from_base32(SECRET_B32).expect("valid base32");
    let now = veil_daemon::common::clock::unix_now();
    veil_daemon::common::totp::code_at(
        &secret,
        veil_daemon::common::totp::step_of(now) + offset_steps,
    )
    .to_string()
}

/// A code that is certainly not one of the accepted ones right now.
pub fn wrong_code() -> String {
    code_at(5)
}

/// A frame around any body, valid or not.
pub fn frame(body: &[u8]) -> Vec<u8> {
    [&(body.len() as u32).to_be_bytes()[..], body].concat()
}

/// Sends raw bytes, half-closes, returns every byte the server sent
/// (nothing when nothing listens).
pub fn raw(socket: &Path, bytes: &[u8]) -> Vec<u8> {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}
