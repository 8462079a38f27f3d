//! Every `unsafe` line of the harness: libpam's application API and a
//! scripted conversation function. The conversation's C structs are the
//! module's own ([`pam_veil::sys`]), checked there against libpam's header.

use std::collections::VecDeque;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::ptr;

use pam_veil::sys::{PamConv, PamMessage, PamResponse};

/// Opaque `pam_handle_t`.
#[repr(C)]
pub struct PamHandle {
    _private: [u8; 0],
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start_confdir(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_open_session(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_close_session(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
}

pub const PAM_SUCCESS: c_int = 0;
pub const PAM_CONV_ERR: c_int = 19;
pub const PAM_BUF_ERR: c_int = 5;
pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
pub const PAM_PROMPT_ECHO_ON: c_int = 2;
pub const PAM_RHOST: c_int = 4;
pub const PAM_RUSER: c_int = 8;
pub const PAM_AUTHTOK: c_int = 6;

/// One message the application was shown: its style and text, and whether
/// the script had an answer for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub style: c_int,
    pub text: String,
}

/// What the conversation function sees and answers.
#[derive(Debug, Default)]
pub struct Script {
    pub answers: VecDeque<String>,
    pub seen: Vec<RawMessage>,
}

/// What one `pam_authenticate` returned, plus the codes of the set-up calls.
#[derive(Debug)]
pub struct RawRun {
    pub start: c_int,
    pub set_items: Vec<(c_int, c_int)>,
    pub authenticate: c_int,
}

/// Runs pam_start_confdir, sets `items` as the application, then
/// pam_authenticate with a conversation answering from `script`, then pam_end.
pub fn run_authenticate(
    confdir: &CStr,
    service: &CStr,
    user: Option<&CStr>,
    items: &[(c_int, CString)],
    script: &mut Script,
) -> RawRun {
    run_login(confdir, service, user, items, script, None::<fn()>).0
}

/// What the session phase of [`run_login`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCodes {
    pub open: c_int,
    pub close: c_int,
}

/// [`run_authenticate`], and when it succeeded and `during` is given, a
/// login's session phase on the same handle, as sshd's monitor or login
/// runs it: pam_open_session, `during` (the session), pam_close_session.
pub fn run_login<F: FnOnce()>(
    confdir: &CStr,
    service: &CStr,
    user: Option<&CStr>,
    items: &[(c_int, CString)],
    script: &mut Script,
    during: Option<F>,
) -> (RawRun, Option<SessionCodes>) {
    let conv = PamConv {
        conv: Some(converse),
        appdata_ptr: ptr::from_mut(script).cast(),
    };
    let mut pamh: *mut PamHandle = ptr::null_mut();
    // SAFETY: every string is NUL-terminated and alive across the call; `conv`
    // outlives the handle (pam_end below, in this function); `pamh` is a
    // valid out pointer.
    let start = unsafe {
        pam_start_confdir(
            service.as_ptr(),
            user.map_or(ptr::null(), CStr::as_ptr),
            &conv,
            confdir.as_ptr(),
            &mut pamh,
        )
    };
    if start != PAM_SUCCESS || pamh.is_null() {
        let run = RawRun {
            start,
            set_items: Vec::new(),
            authenticate: -1,
        };
        return (run, None);
    }
    let mut set_items = Vec::new();
    for (item, value) in items {
        // SAFETY: live handle; libpam copies the string.
        let rc = unsafe { pam_set_item(pamh, *item, value.as_ptr().cast()) };
        set_items.push((*item, rc));
    }
    // SAFETY: live handle; the conversation's appdata (`script`) is borrowed
    // mutably for this whole function and only touched through `converse`.
    let authenticate = unsafe { pam_authenticate(pamh, 0) };
    let session = match during {
        Some(during) if authenticate == PAM_SUCCESS => {
            // SAFETY: live handle, authenticated.
            let open = unsafe { pam_open_session(pamh, 0) };
            during();
            // SAFETY: live handle; closed once, after the open above.
            let close = unsafe { pam_close_session(pamh, 0) };
            Some(SessionCodes { open, close })
        }
        _ => None,
    };
    // SAFETY: live handle, ended exactly once.
    unsafe { pam_end(pamh, authenticate) };
    let run = RawRun {
        start,
        set_items,
        authenticate,
    };
    (run, session)
}

/// The application's conversation: records every message; answers prompts
/// from the script (malloc'ed, as libpam expects); no answer left is a
/// conversation error.
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Ok(count) = usize::try_from(num_msg) else {
            return PAM_CONV_ERR;
        };
        if count == 0 || msg.is_null() || resp.is_null() || appdata.is_null() {
            return PAM_CONV_ERR;
        }
        // SAFETY: appdata is the `Script` run_authenticate registered, and
        // nothing else holds a reference to it during pam_authenticate.
        let script = unsafe { &mut *appdata.cast::<Script>() };
        // SAFETY: calloc of `count` zeroed responses; checked for null.
        let replies = unsafe { libc::calloc(count, std::mem::size_of::<PamResponse>()) }
            .cast::<PamResponse>();
        if replies.is_null() {
            return PAM_BUF_ERR;
        }
        for i in 0..count {
            // SAFETY: Linux-PAM passes `msg` as an array of `count` pointers to messages.
            let message = unsafe { &**msg.add(i) };
            let text = if message.msg.is_null() {
                String::new()
            } else {
                // SAFETY: a non-null msg is a NUL-terminated string owned by the module.
                unsafe { CStr::from_ptr(message.msg) }
                    .to_string_lossy()
                    .into_owned()
            };
            script.seen.push(RawMessage {
                style: message.msg_style,
                text,
            });
            if message.msg_style == PAM_PROMPT_ECHO_OFF || message.msg_style == PAM_PROMPT_ECHO_ON {
                let Some(answer) = script.answers.pop_front() else {
                    // SAFETY: frees what this call allocated so far.
                    unsafe { free_replies(replies, i) };
                    return PAM_CONV_ERR;
                };
                let answer = CString::new(answer).unwrap_or_default();
                // SAFETY: strdup of a valid C string; the module frees it.
                let copy = unsafe { libc::strdup(answer.as_ptr()) };
                // SAFETY: `i < count`, inside the calloc'ed array.
                unsafe { (*replies.add(i)).resp = copy };
            }
        }
        // SAFETY: `resp` is a valid out pointer (checked non-null).
        unsafe { *resp = replies };
        PAM_SUCCESS
    }));
    result.unwrap_or(PAM_CONV_ERR)
}

/// # Safety
/// `replies` is a calloc'ed array whose first `filled` entries hold null or
/// strdup'ed strings.
unsafe fn free_replies(replies: *mut PamResponse, filled: usize) {
    for i in 0..filled {
        // SAFETY: within the array; each resp is null or from strdup.
        unsafe { libc::free((*replies.add(i)).resp.cast()) };
    }
    // SAFETY: the array came from calloc.
    unsafe { libc::free(replies.cast()) };
}

/// Asks the kernel to SIGKILL the child when the thread that spawned it
/// exits, so a veild started by a test or the demo never outlives it, even
/// when the parent is killed and no destructor runs.
pub fn kill_with_parent(command: &mut Command) {
    // SAFETY: the hook runs in the child between fork and exec and only
    // calls prctl(2), which is async-signal-safe; it touches no Rust state.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    };
}
