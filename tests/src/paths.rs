//! Where the built binaries are.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

/// The file name of the built PAM module.
pub const MODULE_FILE: &str = "libpam_veil.so";

/// The directory holding `libpam_veil.so`, `veild` and `veilctl`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VEIL_BIN_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = exe_dir().filter(|d| d.join(MODULE_FILE).exists()) {
        return dir;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug")
}

/// The profile directory of the running executable (`target/debug` for
/// both `target/debug/deps/<test>` and `target/debug/veil-demo`).
fn exe_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let dir = if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent()?
    } else {
        dir
    };
    Some(dir.to_path_buf())
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Absolute path of the module, with a clear message when it is not built.
pub fn module() -> PathBuf {
    built(MODULE_FILE, "cargo build -p pam-veil")
}

pub fn veild() -> PathBuf {
    built("veild", "cargo build -p veil-daemon")
}

pub fn veilctl() -> PathBuf {
    built("veilctl", "cargo build -p veil-daemon")
}

/// A stand-in server that answers ALLOW to anyone (see its source).
pub fn fake_veild() -> PathBuf {
    built("fake-veild", "cargo build -p veil-tests")
}

/// Many non-root peers from one root process (see its source).
pub fn subuid_peers() -> PathBuf {
    built("subuid-peers", "cargo build -p veil-tests")
}

/// A login and the programs run inside it, as processes (see its source).
pub fn pam_login() -> PathBuf {
    built("pam-login", "cargo build -p veil-tests")
}

fn built(name: &str, how: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `{how}` first (or set VEIL_BIN_DIR)",
        path.display()
    );
    path.canonicalize().unwrap_or(path)
}
