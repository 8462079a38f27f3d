#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, real-socket veild
# tests, real-libpam module tests, and (as root) the Debian package against
# real sshd and sudo. Installs missing system packages.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test

cargo fmt --all --check
# `cargo test` does not build the cdylib that the libpam tests load.
cargo build --workspace --all-targets
cargo clippy --workspace --all-targets --quiet -- -D warnings
if [ "$(id -u)" -eq 0 ]; then
  # Tests that play a setuid front end (su, sudo, sshd) need root; they are
  # #[ignore]d for a plain `cargo test` and fail if run as anyone else.
  cargo test --workspace -- --include-ignored
else
  cargo test --workspace
  echo "root-only tests (marked ignored) not run: run scripts/test.sh as root"
fi

if [ "$(id -u)" -eq 0 ]; then
  # Builds the .deb, installs it, logs in through a second sshd and sudo,
  # then purges it and checks the machine is as it was.
  bash packaging/e2e.sh
  # The package under a booted systemd: Debian 12 and 13 roots (cached in
  # the target dir) booted with systemd-nspawn; fails if they cannot boot.
  bash packaging/nspawn-e2e.sh
else
  echo "packaging/e2e.sh skipped: it needs root (installs the .deb, runs sshd and sudo)"
  echo "packaging/nspawn-e2e.sh skipped: it needs root (debootstrap, systemd-nspawn)"
fi
