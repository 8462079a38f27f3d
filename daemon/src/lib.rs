//! veil's daemon side: the core that veild and veilctl share, and veild.
//!
//! * [`common`]: configuration, the clock, the store (SQLite) and the rules
//!   on top of it: lockout ledger, password hashing, TOTP, peer policy and
//!   the verification pipeline. veilctl (its own binary tree under
//!   `src/veilctl/`) uses these too.
//! * [`veild`]: the daemon: start-up, the socket server, the audit log.
//!
//! The `veild` binary is one call to [`veild::run`].
//!
//! Only `common::crypt::ffi` (libxcrypt) may use `unsafe_code`: the
//! crate denies it (a module-level `allow` there is the one exception),
//! and every other module of the crate is held to that.
#![deny(unsafe_code)]

pub mod common;
pub mod veild;
