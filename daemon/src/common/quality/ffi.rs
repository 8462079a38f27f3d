//! libpwquality, the library behind Debian's pam_pwquality: the five calls
//! veil makes, and nothing else. The safe wrapper owns the settings and
//! every buffer it hands to C. libpwquality (and cracklib under it) keeps
//! no thread-safety promise, so every call runs under one process-wide
//! lock.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::Mutex;

/// `PWQ_MAX_ERROR_MESSAGE_LEN` in `<pwquality.h>`.
const MAX_ERROR_MESSAGE_LEN: usize = 256;
/// `PWQ_SETTING_ENFORCE_ROOT` in `<pwquality.h>` (libpwquality 1.4.1+).
const SETTING_ENFORCE_ROOT: c_int = 19;

/// Opaque `pwquality_settings_t`.
#[repr(C)]
struct RawSettings {
    _private: [u8; 0],
}

#[link(name = "pwquality")]
unsafe extern "C" {
    fn pwquality_default_settings() -> *mut RawSettings;
    fn pwquality_free_settings(pwq: *mut RawSettings);
    fn pwquality_read_config(
        pwq: *mut RawSettings,
        cfgfile: *const c_char,
        auxerror: *mut *mut c_void,
    ) -> c_int;
    fn pwquality_get_int_value(pwq: *mut RawSettings, setting: c_int, value: *mut c_int) -> c_int;
    fn pwquality_check(
        pwq: *mut RawSettings,
        password: *const c_char,
        oldpassword: *const c_char,
        user: *const c_char,
        auxerror: *mut *mut c_void,
    ) -> c_int;
    fn pwquality_strerror(
        buf: *mut c_char,
        len: usize,
        errcode: c_int,
        auxerror: *mut c_void,
    ) -> *const c_char;
}

/// Serialises every call into libpwquality and cracklib.
static LOCK: Mutex<()> = Mutex::new(());

/// `pwquality_strerror(code, aux)` as owned text. Always called after an
/// error so that `aux` (which the library may have allocated) is freed.
fn message(code: c_int, aux: *mut c_void) -> String {
    let mut buf = [0 as c_char; MAX_ERROR_MESSAGE_LEN];
    // SAFETY: `buf` holds MAX_ERROR_MESSAGE_LEN writable bytes and its
    // length is passed; `aux` is NULL or what the failing libpwquality call
    // returned for this `code`, handed over exactly once (strerror frees it
    // where it was allocated). The result is NULL, `buf`, or a static
    // NUL-terminated string, copied before `buf` goes out of scope.
    unsafe {
        let text = pwquality_strerror(buf.as_mut_ptr(), buf.len(), code, aux);
        if text.is_null() {
            format!("libpwquality error {code}")
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    }
}

/// One settings object, read from a configuration file; freed on drop.
/// Not `Send`: it is made, used and dropped under [`LOCK`] in [`check`].
struct Settings(*mut RawSettings);

impl Drop for Settings {
    fn drop(&mut self) {
        // SAFETY: the pointer came from pwquality_default_settings, is not
        // NULL (checked in `read`) and is freed only here, once.
        unsafe { pwquality_free_settings(self.0) }
    }
}

impl Settings {
    /// Defaults, then `path` (NULL: libpwquality's own file,
    /// /etc/security/pwquality.conf, and its `.d` directory). A missing
    /// default file is no error (pam_pwquality goes on with the defaults
    /// too); a named file that cannot be read or parsed is.
    fn read(path: Option<&CStr>) -> Result<Settings, String> {
        // SAFETY: no arguments; the result is checked for NULL below.
        let raw = unsafe { pwquality_default_settings() };
        if raw.is_null() {
            return Err("libpwquality could not allocate its settings".to_owned());
        }
        let settings = Settings(raw);
        let mut aux: *mut c_void = std::ptr::null_mut();
        // SAFETY: `settings.0` is a live settings object; `path` is NULL or
        // a NUL-terminated string that outlives the call; `aux` is a valid
        // out-pointer.
        let rc = unsafe {
            pwquality_read_config(
                settings.0,
                path.map_or(std::ptr::null(), CStr::as_ptr),
                &mut aux,
            )
        };
        if rc == 0 {
            return Ok(settings);
        }
        let text = message(rc, aux);
        // PWQ_ERROR_CFGFILE_OPEN for the default file: defaults stand.
        if path.is_none() && rc == -3 {
            return Ok(settings);
        }
        Err(text)
    }

    fn enforce_for_root(&self) -> bool {
        let mut value: c_int = 0;
        // SAFETY: `self.0` is a live settings object; `value` is a valid
        // out-pointer for one int.
        let rc = unsafe { pwquality_get_int_value(self.0, SETTING_ENFORCE_ROOT, &mut value) };
        rc == 0 && value != 0
    }
}

/// What libpwquality said of one password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `None`: accepted (score 0-100); `Some`: libpwquality's own reason.
    pub refusal: Option<String>,
    /// The file's `enforce_for_root`.
    pub enforce_for_root: bool,
}

/// `pwquality_check(password, old, user)` under the settings read from
/// `path`. The strings are NUL-terminated by the caller (a password with
/// an inner NUL never gets here). `Err`: the settings could not be read.
pub fn check(
    path: Option<&CStr>,
    password: &CStr,
    old: Option<&CStr>,
    user: &CStr,
) -> Result<Verdict, String> {
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let settings = Settings::read(path)?;
    let enforce_for_root = settings.enforce_for_root();
    let mut aux: *mut c_void = std::ptr::null_mut();
    // SAFETY: `settings.0` is live; the three strings are NUL-terminated
    // (or NULL for no old password) and outlive the call; `aux` is a valid
    // out-pointer. libpwquality copies nothing it keeps past the call.
    let rc = unsafe {
        pwquality_check(
            settings.0,
            password.as_ptr(),
            old.map_or(std::ptr::null(), CStr::as_ptr),
            user.as_ptr(),
            &mut aux,
        )
    };
    let refusal = (rc < 0).then(|| message(rc, aux));
    Ok(Verdict {
        refusal,
        enforce_for_root,
    })
}
