#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, real-socket veild
# tests and real-libpam module tests. Installs missing system packages.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test

cargo fmt --all --check
# `cargo test` does not build the cdylib that the libpam tests load.
cargo build --workspace --all-targets
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
