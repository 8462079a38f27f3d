//! Integration harness for veil: real libpam through `pam_start_confdir`
//! (a temp config dir, no /etc, no root needed for the module itself), a
//! real `veild` on a temp socket with a temp SQLite file, and `veilctl` to
//! enrol users.
//!
//! Binaries come from the build directory: `VEIL_BIN_DIR` if set, else the
//! directory of the running test or demo executable, else
//! `$CARGO_TARGET_DIR/debug`, else the workspace's `target/debug`. Build
//! them first: `cargo build -p pam-veil -p veil-daemon`.

pub mod accounts;
pub mod daemon;
#[allow(unsafe_code)]
mod ffi;
pub mod pam;
pub mod paths;
pub mod pinned;
pub mod postgres;
pub mod recorder;
pub mod root;
pub mod sshd;
pub mod stats;
pub mod totp;
pub mod wire;

pub use daemon::{DaemonConfig, Veild};
pub use ffi::kill_with_parent;
pub use pam::{Attempt, Exchange, PamRun, PamStack, Style, code_name};
pub use root::raise_fd_limit;
