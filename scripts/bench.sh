#!/usr/bin/env bash
# The benchmark: release build, real veild, real libpam and pam_veil.so.
# Prints a markdown report (pass --quick for a short run) and draws its
# figures into docs/bench/ (a later --svg DIR on the command line wins).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cargo build --release --quiet -p pam-veil -p veil-daemon -p veil-tests
if [ "$(id -u)" -eq 0 ]; then
  exec target/release/veil-bench --svg docs/bench "$@"
else
  exec sudo target/release/veil-bench --svg docs/bench "$@"
fi
