#!/usr/bin/env bash
# The demo: builds veil, starts a throwaway veild, enrols a demo user with a
# password and a TOTP secret, and runs real PAM conversations through libpam
# and pam_veil.so. Prints one table; leaves nothing running or behind.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh demo

cargo build --quiet -p pam-veil -p veil-daemon -p veil-tests
demo=target/debug/veil-demo
# veild answers a non-root caller only about that caller's own account, so
# the demo's conversations (as sshd's would) run as root.
if [ "$(id -u)" -eq 0 ]; then
  exec "$demo"
else
  exec sudo --preserve-env=CARGO_TARGET_DIR "$demo"
fi
