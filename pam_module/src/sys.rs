//! The C structs of the PAM conversation, written once: `struct pam_message`,
//! `struct pam_response`, `struct pam_conv` and its function pointer, as in
//! libpam's `<security/_pam_types.h>`. The module's FFI and the test
//! harness's PAM application both use these; the layout tests check them
//! against the header.
#![forbid(unsafe_code)]

use std::ffi::{c_char, c_int, c_void};

/// `struct pam_message { int msg_style; const char *msg; }`: one message
/// from a module to the application.
#[repr(C)]
#[derive(Debug)]
pub struct PamMessage {
    /// `PAM_PROMPT_ECHO_OFF` and the other styles (`vocab::MessageStyle`).
    pub msg_style: c_int,
    /// The text, NUL-terminated, owned by the module.
    pub msg: *const c_char,
}

/// `struct pam_response { char *resp; int resp_retcode; }`: the
/// application's answer to one message, `malloc`ed, freed by the module.
#[repr(C)]
#[derive(Debug)]
pub struct PamResponse {
    /// The reply, `malloc`ed and NUL-terminated, or null.
    pub resp: *mut c_char,
    /// Unused by Linux-PAM; zero expected.
    pub resp_retcode: c_int,
}

/// `int (*conv)(int num_msg, const struct pam_message **msg,
/// struct pam_response **resp, void *appdata_ptr)`.
pub type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

/// `struct pam_conv { int (*conv)(...); void *appdata_ptr; }`: the
/// application's conversation function (null is `None`) and its data.
#[repr(C)]
#[derive(Debug)]
pub struct PamConv {
    pub conv: Option<ConvFn>,
    pub appdata_ptr: *mut c_void,
}

#[cfg(test)]
mod tests;
