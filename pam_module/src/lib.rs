//! `pam_veil.so`: asks for a password and a verification code, then asks
//! veild, and answers `PAM_SUCCESS` only for veild's exact ALLOW frame.
//!
//! Module arguments: `socket=PATH` (default `/run/veil/veild.sock`),
//! `timeout=SECONDS` (default 5, from 1 to 60, decimals allowed; keep it above
//! veild's failure delay), `server_user=NAME`, `use_first_pass`,
//! `try_first_pass`, `debug`.
//!
//! Every failure, whatever its cause, is `PAM_AUTH_ERR` after the same
//! prompts and without a message. `pam_sm_setcred` answers `PAM_SUCCESS`
//! (no credentials to establish); `pam_sm_acct_mgmt` and `pam_sm_chauthtok`
//! answer `PAM_IGNORE` (veil manages neither accounts nor, through PAM, its
//! secrets). `pam_sm_open_session` and `pam_sm_close_session` send veild a
//! session note for the fresh-code window ([`session`]) and answer
//! `PAM_IGNORE` whatever happens.
//!
//! The modules, leaves first (each uses only those above it):
//! [`vocab`] (codes, styles, items, levels, failures) and [`sys`] (the C
//! structs); [`args`] and [`client`]; [`handle`] (the [`handle::Pam`] trait)
//! and [`outcome`]; [`conv`]; [`auth`]; and `ffi`, the entry points.
//!
//! Only `ffi` may use `unsafe_code`; every other module forbids it.

pub mod args;
pub mod auth;
pub mod client;
pub mod conv;
#[allow(unsafe_code)]
mod ffi;
pub mod handle;
pub mod outcome;
pub mod session;
pub mod sys;
pub mod vocab;

pub use ffi::{
    pam_sm_acct_mgmt, pam_sm_authenticate, pam_sm_chauthtok, pam_sm_close_session,
    pam_sm_open_session, pam_sm_setcred,
};
