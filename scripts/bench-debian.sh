#!/usr/bin/env bash
# The benchmark on another Debian release: this checkout's release build
# (made here, as scripts/bench.sh makes it) run inside a Debian root made by
# debootstrap (cached under the cargo target dir as RELEASE-bench), so that
# the sshd, ssh client, libpam, NSS and useradd are that release's. The root
# is entered with systemd-nspawn (no boot, the host's network: loopback
# only) over a throwaway overlay, so it stays pristine across runs; the
# checkout is bound at its own path.
#
# usage: scripts/bench-debian.sh RELEASE [veil-bench ARGS...]
#   e.g. scripts/bench-debian.sh trixie --ssh-timing-per-name
# Environment: VEIL_NSPAWN_MIRROR overrides the Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "bench-debian: FAIL: $*" >&2; exit 1; }
say() { printf '\n== [bench-debian] %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || fail "run as root (debootstrap and systemd-nspawn need it)"
[ $# -ge 1 ] || fail "usage: scripts/bench-debian.sh RELEASE [veil-bench ARGS...]"
release=$1
shift
case $release in
  *[!a-z]* | '') fail "RELEASE is a Debian codename (e.g. trixie), not $release" ;;
esac
scripts/deps.sh build
scripts/deps.sh nspawn
cargo build --release --quiet -p pam-veil -p veil-daemon -p veil-tests

# debian_tree; $target, $cache, $keyring, $mirror.
# shellcheck source=packaging/debian-roots.sh
. packaging/debian-roots.sh

# What the bench runs besides its own binaries: sshd and the client driven
# by expect, the account tools, libpam and libpwquality with the cracklib
# dictionary (veilctl user add checks a new password). Named -bench so it
# never meets nspawn-e2e's or debian-rustc's roots.
debian_tree "$release-bench" "$release" openssh-server openssh-client expect passwd \
  libpam-runtime libpwquality1 cracklib-runtime
root="$cache/$release-bench"

binds=(--bind="$PWD:$PWD")
case $target/ in
  "$PWD"/*) ;;
  *) binds+=(--bind="$target:$target") ;;
esac
release_dir="$target/release"
say "veil-bench $* in $release ($root, overlay discarded at exit)"
# Every library the built binaries link must resolve in the root (built on
# this host: an older glibc than the root's is fine, a library the root
# lacks is not). Where /run is no tmpfs (no systemd on the host), nspawn
# says at exit that it would not remove its propagation directory: noise.
systemd-nspawn -q --register=no --keep-unit --volatile=overlay --as-pid2 -D "$root" \
  "${binds[@]}" --chdir="$PWD" \
  --setenv=VEIL_BENCH_COMMAND="scripts/bench-debian.sh $release" \
  sh -ec 'dir=$1; shift
    for f in "$dir/veild" "$dir/veilctl" "$dir/veil-bench" "$dir/libpam_veil.so"; do
      if ldd "$f" | grep "not found" >&2; then echo "bench-debian: $f: libraries missing in the root" >&2; exit 1; fi
    done
    exec "$dir/veil-bench" "$@"' sh "$release_dir" "$@" \
  2> >(grep --line-buffered -v '^Attempted to remove disk file system under "/run/systemd/nspawn/propagate/' >&2)
