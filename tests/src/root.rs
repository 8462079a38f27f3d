//! What tests need of the process: root, for some, and many descriptors.
//!
//! Tests that need root (to play a setuid front end, switch uid, mount):
//! they are `#[ignore = "needs root ..."]`, `scripts/test.sh` runs them as
//! root with `--include-ignored`, and run as anyone else they fail here
//! rather than pass without testing.
#![forbid(unsafe_code)]

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Fails the test unless it runs as root.
pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root: run it as root (scripts/test.sh does, with --include-ignored)"
    );
}

/// Raises this process's limit on open descriptors (children started
/// afterwards inherit it) to at least 65536 where allowed (root), else to
/// the hard limit, and returns the new soft limit. Flood and backlog tests
/// hold thousands of connections.
pub fn raise_fd_limit() -> nix::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let want = hard.max(65_536);
    if setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
        return Ok(want);
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// Runs one test of the current test binary again, as `uid`/`gid`, with
/// `env`; its stdout. The test fails unless that run succeeds. This is how
/// a root test plays an unprivileged peer of veild's socket.
pub fn rerun_as(uid: u32, gid: u32, test: &str, env: &[(&str, &std::ffi::OsStr)]) -> String {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", test, "--nocapture", "--include-ignored"])
        .envs(env.iter().copied())
        .uid(uid)
        .gid(gid)
        .output()
        .expect("run the test binary");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
