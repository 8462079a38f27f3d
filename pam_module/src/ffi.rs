//! Every `unsafe` line of pam_veil.so: the `extern "C"` entry points libpam
//! calls, and the libpam calls the module makes. Each entry is a firewall:
//! null checks, the handle kept raw, the body under `catch_unwind`, and any
//! surprise answered with the one denial code.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::Once;

use pam::items::ItemType;
use pam::module::PamHandle;
use veil_proto::Secret;
use zeroize::{Zeroize, Zeroizing};

use crate::auth;
use crate::client::SocketClient;
use crate::handle::Pam;
use crate::session;
use crate::sys::{PamConv, PamMessage, PamResponse};
use crate::vocab::{Item, Level, MessageStyle, PamCode, PamFailure};
use veil_proto::session::SessionOp;

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_get_user(pamh: *mut PamHandle, user: *mut *const c_char, prompt: *const c_char)
    -> c_int;
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
}

/// The live libpam handle, borrowed for one call from libpam.
struct FfiPam {
    pamh: *mut PamHandle,
}

impl FfiPam {
    /// `pam_get_item`, returning libpam's pointer (owned by libpam) or null.
    fn raw_item(&self, item_type: ItemType) -> Result<*const c_void, PamFailure> {
        let mut out: *const c_void = ptr::null();
        // SAFETY: `pamh` is the non-null handle libpam passed to the entry
        // point that created `self`, valid for that call; `out` is a valid
        // place for libpam to store a pointer.
        let rc = unsafe { pam_get_item(self.pamh, item_type as c_int, &mut out) };
        match PamCode::from_raw(rc) {
            PamCode::Success => Ok(out),
            code => Err(PamFailure::Call {
                call: "pam_get_item",
                code,
            }),
        }
    }

    /// A string item copied out of libpam's memory, or `None` when unset.
    fn string_item(&self, item_type: ItemType) -> Result<Option<Vec<u8>>, PamFailure> {
        let raw = self.raw_item(item_type)?;
        if raw.is_null() {
            return Ok(None);
        }
        // SAFETY: string items are NUL-terminated C strings owned by libpam
        // and left alone until the next pam_set_item of the same item, which
        // cannot happen while this copy is made.
        let bytes = unsafe { CStr::from_ptr(raw.cast::<c_char>()) }.to_bytes();
        Ok(Some(bytes.to_vec()))
    }
}

impl Pam for FfiPam {
    fn user(&mut self) -> Result<String, PamFailure> {
        let mut user: *const c_char = ptr::null();
        // SAFETY: valid handle (see `raw_item`); `user` is a valid out
        // pointer; a null prompt asks libpam for its default prompt.
        let rc = unsafe { pam_get_user(self.pamh, &mut user, ptr::null()) };
        match PamCode::from_raw(rc) {
            PamCode::Success if user.is_null() => Err(PamFailure::Null("pam_get_user")),
            PamCode::Success => {
                // SAFETY: on success libpam points `user` at its own
                // NUL-terminated PAM_USER string, valid for this call.
                let bytes = unsafe { CStr::from_ptr(user) }.to_bytes();
                String::from_utf8(bytes.to_vec()).map_err(|_| PamFailure::NotUtf8("the user name"))
            }
            code => Err(PamFailure::Call {
                call: "pam_get_user",
                code,
            }),
        }
    }

    fn item(&self, item: Item) -> Option<String> {
        let item_type = match item {
            Item::User => ItemType::User,
            Item::Service => ItemType::Service,
            Item::Tty => ItemType::Tty,
            Item::RHost => ItemType::RHost,
            Item::RUser => ItemType::RUser,
        };
        // Not secrets: a lossy copy keeps what an administrator can read.
        let bytes = self.string_item(item_type).ok().flatten()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn authtok(&self) -> Result<Option<Secret>, PamFailure> {
        Ok(self.string_item(ItemType::AuthTok)?.map(Secret::new))
    }

    fn prompt(&mut self, style: MessageStyle, text: &str) -> Result<Secret, PamFailure> {
        let conv = self.raw_item(ItemType::Conv)?.cast::<PamConv>();
        if conv.is_null() {
            return Err(PamFailure::NoConversation);
        }
        // SAFETY: a non-null PAM_CONV item points at the application's
        // `struct pam_conv`, which libpam keeps alive for the whole handle.
        let (Some(function), appdata) = (unsafe { ((*conv).conv, (*conv).appdata_ptr) }) else {
            return Err(PamFailure::NoConversation);
        };
        let text = to_c_string(text.as_bytes());
        let message = PamMessage {
            msg_style: style.to_raw(),
            msg: text.as_ptr().cast(),
        };
        let mut messages: *const PamMessage = &message;
        let mut responses: *mut PamResponse = ptr::null_mut();
        // SAFETY: one message in a one-element array, both alive across the
        // call; `responses` is a valid out pointer; `appdata` is the
        // application's own pointer handed back to it unchanged.
        let rc = unsafe { function(1, &mut messages, &mut responses, appdata) };
        // Whatever came back is wiped and freed, even with a failure code
        // (libpam's own pam_prompt does the same).
        // SAFETY: `responses` is null or the malloc'ed one-element array the
        // conversation function returned for our one message.
        let reply = unsafe { take_response(responses) };
        match PamCode::from_raw(rc) {
            // Any bytes: what they are is veild's to judge, never the module's.
            PamCode::Success => match reply {
                Some(bytes) => Ok(Secret::new(bytes)),
                None => Err(PamFailure::Null("the conversation")),
            },
            code => Err(PamFailure::Call {
                call: "the conversation",
                code,
            }),
        }
    }

    fn set_authtok(&mut self, token: &Secret) -> Result<(), PamFailure> {
        let value = to_c_string(token.expose());
        // SAFETY: valid handle; `value` is a NUL-terminated string alive
        // across the call, which libpam copies (it never keeps our pointer).
        let rc =
            unsafe { pam_set_item(self.pamh, ItemType::AuthTok as c_int, value.as_ptr().cast()) };
        match PamCode::from_raw(rc) {
            PamCode::Success => Ok(()),
            code => Err(PamFailure::Call {
                call: "pam_set_item(PAM_AUTHTOK)",
                code,
            }),
        }
    }

    fn log(&self, level: Level, message: &str) {
        log_raw(self.pamh, level, message);
    }
}

fn log_raw(pamh: *const PamHandle, level: Level, message: &str) {
    let priority = match level {
        Level::Err => libc::LOG_ERR,
        Level::Debug => libc::LOG_DEBUG,
    };
    let message = to_c_string(message.as_bytes());
    // SAFETY: valid handle; a constant "%s" format with exactly one
    // NUL-terminated string argument, so no text is read as a format.
    unsafe {
        pam_syslog(
            pamh,
            priority,
            c"%s".as_ptr(),
            message.as_ptr().cast::<c_char>(),
        )
    };
}

/// A NUL-terminated copy, wiped when dropped. An inner NUL (impossible for
/// what the module passes: replies come from C strings) ends the string
/// early rather than failing.
fn to_c_string(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let mut out = Zeroizing::new(Vec::with_capacity(end + 1));
    out.extend_from_slice(&bytes[..end]);
    out.push(0);
    out
}

/// Copies the reply out of a conversation's response array, overwrites the
/// application's copy, and frees both the string and the array.
///
/// # Safety
/// `responses` is null, or a `malloc`ed array of at least one `pam_response`
/// whose `resp` is null or a `malloc`ed NUL-terminated string, none of which
/// is used afterwards by anyone else (the module owns them, per pam_conv(3)).
unsafe fn take_response(responses: *mut PamResponse) -> Option<Vec<u8>> {
    if responses.is_null() {
        return None;
    }
    // SAFETY: `responses` points at at least one element (caller's contract).
    let resp = unsafe { (*responses).resp };
    let reply = if resp.is_null() {
        None
    } else {
        // SAFETY: `resp` is a NUL-terminated malloc'ed string (contract).
        let len = unsafe { libc::strlen(resp) };
        // SAFETY: `resp` points at `len` initialised bytes that we own and
        // nobody else touches until they are freed below.
        let bytes = unsafe { std::slice::from_raw_parts_mut(resp.cast::<u8>(), len) };
        let mut copy = Vec::with_capacity(len);
        copy.extend_from_slice(bytes);
        bytes.zeroize();
        // SAFETY: `resp` was allocated with malloc by the application and is
        // freed exactly once, here.
        unsafe { libc::free(resp.cast()) };
        Some(copy)
    };
    // SAFETY: the array was malloc'ed by the application; freed once, here.
    unsafe { libc::free(responses.cast()) };
    reply
}

/// Collects argv into byte slices; a null entry or a broken argv becomes
/// `None`, which the argument parser counts as a problem (fail closed).
///
/// # Safety
/// When `argc > 0` and `argv` is non-null, `argv` points at `argc` entries,
/// each null or a NUL-terminated string, all alive for `'a`.
unsafe fn raw_args<'a>(argc: c_int, argv: *const *const c_char) -> Vec<Option<&'a [u8]>> {
    let Ok(count) = usize::try_from(argc) else {
        return vec![None];
    };
    if count == 0 {
        return Vec::new();
    }
    if argv.is_null() {
        return vec![None];
    }
    // SAFETY: `argv` holds `count` entries (caller's contract).
    let entries = unsafe { std::slice::from_raw_parts(argv, count) };
    entries
        .iter()
        .map(|&arg| {
            // SAFETY: each non-null entry is a NUL-terminated string alive for 'a.
            (!arg.is_null()).then(|| unsafe { CStr::from_ptr(arg) }.to_bytes())
        })
        .collect()
}

/// Runs an entry point's body; a panic becomes `PAM_AUTH_ERR`, never an
/// unwind into C. The default panic hook would print to the application's
/// stderr (a login terminal), so a silent one is installed; it lives in this
/// library's own copy of std and governs only panics raised in pam_veil.
fn firewall(pamh: *mut PamHandle, body: impl FnOnce() -> PamCode) -> c_int {
    quiet_panics();
    match guard(body) {
        Some(code) => code.to_raw(),
        None => {
            if !pamh.is_null() {
                log_raw(pamh, Level::Err, "internal error (panic); denied");
            }
            PamCode::AuthErr.to_raw()
        }
    }
}

/// Installs the silent panic hook once (see [`firewall`]).
fn quiet_panics() {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| panic::set_hook(Box::new(|_| {})));
}

/// `catch_unwind`, dropping a panic payload without letting its own drop unwind.
fn guard(body: impl FnOnce() -> PamCode) -> Option<PamCode> {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(code) => Some(code),
        Err(payload) => {
            if let Err(again) = panic::catch_unwind(AssertUnwindSafe(|| drop(payload))) {
                std::mem::forget(again);
            }
            None
        }
    }
}

/// Asks for the password and the verification code, then asks veild.
///
/// # Safety
/// Called by libpam with its handle and the module arguments of the
/// configuration line (argc entries in argv).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut PamHandle,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    firewall(pamh, || {
        if pamh.is_null() {
            return PamCode::AuthErr;
        }
        // SAFETY: libpam passes argc/argv of the module line, alive for this call.
        let args = unsafe { raw_args(argc, argv) };
        auth::authenticate(&mut FfiPam { pamh }, &mut SocketClient, args)
    })
}

/// veil establishes no credentials: `PAM_SUCCESS`, so a stack's setcred
/// phase is never blocked by it.
///
/// # Safety
/// Called by libpam; no pointer is touched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_setcred(
    pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    firewall(pamh, || PamCode::Success)
}

/// veil does not manage accounts: `PAM_IGNORE`, so pam_unix and the other
/// account modules decide.
///
/// # Safety
/// Called by libpam; no pointer is touched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_acct_mgmt(
    pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    firewall(pamh, || PamCode::Ignore)
}

/// veil's password and TOTP secret are changed with `veilctl`, not through
/// PAM: `PAM_IGNORE`, so a `password` stack that lists pam_veil by mistake
/// still lets pam_unix change the Unix password, and veil never claims a
/// change it did not make. (Exported so such a stack loads at all.)
///
/// # Safety
/// Called by libpam; no pointer is touched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_chauthtok(
    pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    firewall(pamh, || PamCode::Ignore)
}

/// Runs a session entry point: never a failure (a panic, a null handle
/// or anything else is `PAM_IGNORE`), so no login depends on veil here.
fn session_entry(
    pamh: *mut PamHandle,
    argc: c_int,
    argv: *const *const c_char,
    op: SessionOp,
) -> c_int {
    if pamh.is_null() {
        return PamCode::Ignore.to_raw();
    }
    quiet_panics();
    match guard(|| {
        // SAFETY: libpam passes argc/argv of the module line, alive for this call.
        let args = unsafe { raw_args(argc, argv) };
        session::note_session(&FfiPam { pamh }, &mut SocketClient, args, op)
    }) {
        Some(code) => code.to_raw(),
        None => {
            log_raw(
                pamh,
                Level::Err,
                "internal error (panic) in the session phase; ignored",
            );
            PamCode::Ignore.to_raw()
        }
    }
}

/// Tells veild the session opened (for the fresh-code window); always
/// `PAM_IGNORE`.
///
/// # Safety
/// Called by libpam with its handle and the module arguments of the line.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_open_session(
    pamh: *mut PamHandle,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    session_entry(pamh, argc, argv, SessionOp::Open)
}

/// Tells veild the session closed (its window ends); always `PAM_IGNORE`.
///
/// # Safety
/// Called by libpam with its handle and the module arguments of the line.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_close_session(
    pamh: *mut PamHandle,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    session_entry(pamh, argc, argv, SessionOp::Close)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_body_is_caught() {
        assert_eq!(guard(|| PamCode::Success), Some(PamCode::Success));
        assert_eq!(guard(|| panic!("boom")), None);
    }

    #[test]
    fn the_response_is_copied_out_and_freed() {
        // Build a response the way an application would: malloc'ed.
        let text = b"hunter2\0";
        // SAFETY: plain mallocs of the right sizes, filled before use; both
        // are handed to take_response, which frees them.
        let reply = unsafe {
            let resp = libc::malloc(text.len()).cast::<u8>();
            ptr::copy_nonoverlapping(text.as_ptr(), resp, text.len());
            let array = libc::malloc(std::mem::size_of::<PamResponse>()).cast::<PamResponse>();
            array.write(PamResponse {
                resp: resp.cast(),
                resp_retcode: 0,
            });
            take_response(array)
        };
        assert_eq!(reply.as_deref(), Some(&b"hunter2"[..]));
        // SAFETY: null is allowed by the contract.
        assert_eq!(unsafe { take_response(ptr::null_mut()) }, None);
    }

    #[test]
    fn broken_argv_is_a_problem_not_a_crash() {
        // SAFETY: negative argc and null argv are handled before any read.
        unsafe {
            assert_eq!(raw_args(-1, ptr::null()), vec![None]);
            assert_eq!(raw_args(2, ptr::null()), vec![None]);
            assert!(raw_args(0, ptr::null()).is_empty());
        }
        let one = c"debug";
        let argv = [one.as_ptr(), ptr::null()];
        // SAFETY: two entries, one a valid string, one null.
        let got = unsafe { raw_args(2, argv.as_ptr()) };
        assert_eq!(got, vec![Some(&b"debug"[..]), None]);
    }
}
