//! libxcrypt, the system's crypt library (the one pam_unix uses): the
//! three calls veil makes, and nothing else. The only `unsafe` in the
//! daemon library lives here; the safe wrappers own every buffer they
//! hand to C.

use std::ffi::{CStr, CString, c_char, c_int, c_ulong, c_void};

use zeroize::Zeroize;

/// `CRYPT_GENSALT_OUTPUT_SIZE` in `<crypt.h>`.
const GENSALT_OUTPUT_SIZE: usize = 192;
/// `sizeof(struct crypt_data)` in libxcrypt 4's `<crypt.h>` (output and
/// setting of 384 bytes, input 512, reserved 767, the initialised flag,
/// internal 30720). crypt_rn is told the size and treats the buffer as
/// opaque; a smaller one would make it fail, never overrun.
const DATA_SIZE: usize = 32_768;
/// `CRYPT_SALT_OK` and `CRYPT_SALT_METHOD_LEGACY` from `<crypt.h>`.
const SALT_OK: c_int = 0;
const SALT_LEGACY: c_int = 3;

#[link(name = "crypt")]
unsafe extern "C" {
    fn crypt_rn(
        phrase: *const c_char,
        setting: *const c_char,
        data: *mut c_void,
        size: c_int,
    ) -> *mut c_char;
    fn crypt_gensalt_rn(
        prefix: *const c_char,
        count: c_ulong,
        rbytes: *const c_char,
        nrbytes: c_int,
        output: *mut c_char,
        output_size: c_int,
    ) -> *mut c_char;
    fn crypt_checksalt(setting: *const c_char) -> c_int;
}

/// One thread's `struct crypt_data`, wiped when dropped (it holds the
/// phrase and intermediate state after a call).
pub struct Scratch(Box<[u8; DATA_SIZE]>);

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch(Box::new([0u8; DATA_SIZE]))
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scratch")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// `crypt_rn(phrase, setting)`: the hash string, or `None` when libxcrypt
/// refuses the setting. The buffer is zeroed before the call (libxcrypt
/// asks for that before first use) and after the result is copied out.
pub fn crypt(scratch: &mut Scratch, phrase: &CStr, setting: &CStr) -> Option<String> {
    scratch.0.zeroize();
    // SAFETY: both strings are NUL-terminated and live across the call;
    // `data` points to DATA_SIZE writable bytes that nothing else borrows,
    // and DATA_SIZE (32768) fits in c_int and is sizeof(struct
    // crypt_data); crypt_rn writes no more than `size` bytes. The result is NULL or a
    // NUL-terminated string inside `data`, read before `data` is touched
    // again.
    let result = unsafe {
        let out = crypt_rn(
            phrase.as_ptr(),
            setting.as_ptr(),
            scratch.0.as_mut_ptr().cast::<c_void>(),
            DATA_SIZE as c_int,
        );
        if out.is_null() {
            None
        } else {
            Some(CStr::from_ptr(out).to_string_lossy().into_owned())
        }
    };
    scratch.0.zeroize();
    result
}

/// `crypt_gensalt_rn(prefix, count, NULL, 0)`: a setting with a salt from
/// the OS, or `None` for a prefix or count libxcrypt does not accept.
pub fn gensalt(prefix: &str, count: u64) -> Option<String> {
    let prefix = CString::new(prefix).ok()?;
    let count = c_ulong::try_from(count).ok()?;
    let mut output = [0u8; GENSALT_OUTPUT_SIZE];
    // SAFETY: `prefix` is NUL-terminated and outlives the call; rbytes is
    // NULL with nrbytes 0, which tells libxcrypt to read the OS's random
    // source; `output` is GENSALT_OUTPUT_SIZE writable bytes (the minimum
    // the header asks for). The result is NULL or `output` itself, holding
    // a NUL-terminated string, read while `output` is alive.
    unsafe {
        let out = crypt_gensalt_rn(
            prefix.as_ptr(),
            count,
            std::ptr::null(),
            0,
            output.as_mut_ptr().cast::<c_char>(),
            GENSALT_OUTPUT_SIZE as c_int,
        );
        if out.is_null() {
            None
        } else {
            Some(CStr::from_ptr(out).to_string_lossy().into_owned())
        }
    }
}

/// True when libxcrypt can hash with this setting (a stored hash is a
/// setting): `CRYPT_SALT_OK`, or `CRYPT_SALT_METHOD_LEGACY` (still
/// computed, only discouraged).
pub fn setting_usable(setting: &CStr) -> bool {
    // SAFETY: `setting` is NUL-terminated and outlives the call, which
    // only reads it.
    let rc = unsafe { crypt_checksalt(setting.as_ptr()) };
    rc == SALT_OK || rc == SALT_LEGACY
}
