//! An earlier release's `veild`, `veilctl` and `pam_veil.so`, built from
//! this repository's history by `scripts/build-pinned.sh` (scripts/test.sh
//! runs it and sets `VEIL_PINNED_BIN_DIR`), for hosts on two releases
//! sharing one store. Without them a test fails, saying how to build them.
#![forbid(unsafe_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::Veild;
use crate::paths::MODULE_FILE;

/// The release `scripts/build-pinned.sh` builds.
pub const VERSION: &str = "0.3.0";

/// The directory of the pinned binaries; panics unless all three are there.
pub fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("VEIL_PINNED_BIN_DIR").map(PathBuf::from);
    let Some(dir) = dir else {
        panic!(
            "VEIL_PINNED_BIN_DIR is not set: run \
             `export VEIL_PINNED_BIN_DIR=$(scripts/build-pinned.sh)` first (scripts/test.sh does)"
        );
    };
    for file in ["veild", "veilctl", MODULE_FILE] {
        assert!(
            dir.join(file).is_file(),
            "{} is missing: run scripts/build-pinned.sh (VEIL_PINNED_BIN_DIR={})",
            dir.join(file).display(),
            dir.display()
        );
    }
    dir
}

/// The pinned pam_veil.so: a host's module goes with its veild.
pub fn module() -> PathBuf {
    bin_dir().join(MODULE_FILE)
}

/// A running pinned veild whose config is `toml` as written (plus its
/// socket): the text, not a serialised `Config` of this tree, because an
/// older veild refuses the keys it does not know.
pub fn launch(toml: &str) -> Veild {
    let dir = tempfile::Builder::new()
        .prefix("veil-d-old-")
        .tempdir()
        .expect("temp daemon dir");
    // As for the tree's veild: others reach the socket, never write.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the temp dir");
    let mut veild = Veild {
        child: None,
        dir,
        env: Vec::new(),
        bin_dir: Some(bin_dir()),
    };
    let socket = toml::Value::String(veild.socket().display().to_string());
    let text = format!("socket = {socket}\n{toml}");
    std::fs::write(veild.config_path(), text).expect("write veild.toml");
    veild.spawn();
    veild
}
