#!/usr/bin/env bash
# Builds veil the Debian way, as root: with Debian 13's own rustc and cargo
# (1.85, what trixie ships), offline, from crates vendored here by
# `cargo vendor`, in a trixie root made by debootstrap (cached under the
# cargo target dir) and entered with systemd-nspawn. Proves the workspace's
# `rust-version` (cargo refuses a compiler older than it says) and that the
# code needs nothing newer than what Debian builds with.
#
# usage: packaging/debian-rustc.sh [tree]   (tree: only make the cached root)
# Environment: VEIL_NSPAWN_MIRROR overrides the Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "debian-rustc: FAIL: $*" >&2; exit 1; }
say() { printf '\n== [debian-rustc] %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || fail "run as root (debootstrap and systemd-nspawn need it)"
scripts/deps.sh nspawn
command -v git >/dev/null || fail "no git (the source list comes from git ls-files)"

# debian_tree; $target, $cache, $keyring, $mirror.
# shellcheck source=packaging/debian-roots.sh
. packaging/debian-roots.sh

# What Debian's own build of veil would pull in (Build-Depends).
debian_tree trixie-rustc trixie rustc cargo gcc libc6-dev pkg-config libssl-dev libpam0g-dev libcrypt-dev libpwquality-dev
# `debian-rustc.sh tree`: only the cached root (scripts/test.sh makes it
# early, beside its build).
[ "${1:-}" != tree ] || exit 0

work=$(mktemp -d /tmp/veil-debian-rustc.XXXXXX)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

# The tree as it is (committed or not), and the crates it locks, vendored.
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$work"
say "cargo vendor (from the lock file)"
cargo vendor --locked --versioned-dirs "$work/vendor" >/dev/null 2>"$work/vendor.log" ||
  { cat "$work/vendor.log" >&2; fail "cargo vendor failed"; }
mkdir -p "$work/.cargo"
cat >"$work/.cargo/config.toml" <<'TOML'
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "vendor"
TOML

# The root stays pristine (read-only); the build writes only under /build.
mkdir -p "$cache/trixie-rustc/build"
say "cargo build with trixie's toolchain, offline"
systemd-nspawn -q --register=no --keep-unit --read-only -D "$cache/trixie-rustc" \
  --bind="$work:/build" --setenv=CARGO_HOME=/build/.cargo-home --setenv=HOME=/build \
  --private-network --chdir=/build \
  sh -ec 'rustc --version; cargo --version
    cargo build --offline --locked --workspace --exclude veil-tests
    target/debug/veild --version
    target/debug/veilctl --version
    test -f target/debug/libpam_veil.so' >"$work/build.log" 2>&1 ||
  { tail -n 30 "$work/build.log" >&2; fail "the build with Debian 13's rustc failed (above)"; }
grep -E '^(rustc|cargo|veild|veilctl) ' "$work/build.log" >&2
echo "debian-rustc: PASS ($(( $(date +%s) - started )) s after the root)" >&2
