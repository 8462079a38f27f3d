#!/usr/bin/env bash
# Builds the Debian package veil into target/debian/: a release build of
# veild, veilctl and pam_veil.so (a cdylib of another crate, so cargo-deb
# cannot build it itself), then `cargo deb --no-build`. Prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "veil: installing cargo-deb" >&2
  cargo install cargo-deb --locked >&2
fi

variant=()
case "$(dpkg --print-architecture)" in
  amd64) ;;
  arm64) variant=(--variant arm64) ;;
  *) echo "veil: no package layout for $(dpkg --print-architecture) yet (daemon/Cargo.toml)" >&2; exit 1 ;;
esac

cargo build --release --locked -p veil-daemon -p pam-veil >&2
# cargo deb prints the absolute path of the package it made.
deb=$(cargo deb -p veil-daemon --no-build --locked "${variant[@]}" | tail -n 1)
[ -f "$deb" ] || { echo "veil: cargo deb made no package" >&2; exit 1; }

# The PAM module must sit in this machine's multiarch security directory.
want="./usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/security/pam_veil.so"
if ! dpkg-deb --contents "$deb" | awk '{print $6}' | grep -qx "$want"; then
  echo "veil: $deb lacks $want" >&2
  exit 1
fi
# journalctl -x reads the events' explanations from the catalog.
if ! dpkg-deb --contents "$deb" | awk '{print $6}' | grep -qx ./usr/lib/systemd/catalog/veil.catalog; then
  echo "veil: $deb lacks the journal catalog" >&2
  exit 1
fi
echo "$deb"
