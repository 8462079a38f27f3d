#!/usr/bin/env bash
# seed-target.sh FROM TO: copies the compiled dependencies of one cargo
# profile dir (e.g. target/release) into another target's profile dir, so
# that a build of an earlier release of this repository (the upgrade
# test's old package, the pinned release of the rolling test) compiles
# only veil's own crates: their Cargo.lock differs from the tree's in
# veil's versions only, so most of crates.io's artifacts are fresh there.
#
# Copied: the fingerprints, build-script outputs and library files
# (`deps/lib*`), not test binaries or incremental data. Real copies, not
# hard links: the build writes files whose names carry no hash (the
# cdylib), which must not land in FROM. Cargo decides freshness itself
# (its fingerprints hold features, profile and rustc), so a crate built
# differently there is simply rebuilt. A missing FROM copies nothing.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 FROM-PROFILE-DIR TO-PROFILE-DIR" >&2; exit 2; }
from=$1 to=$2
if [ ! -d "$from/deps" ]; then
  echo "seed-target: nothing in $from to seed from; a full build" >&2
  exit 0
fi
mkdir -p "$to/deps"
# Fingerprints first: one copied names outputs complete by then. A build
# may be running in FROM (clippy beside it makes and renames files): a
# file gone before it is copied only means a rebuild, so errors here are
# not fatal.
cp -a "$from/.fingerprint" "$from/build" "$to/" 2>/dev/null || true
find "$from/deps" -maxdepth 1 -type f -name 'lib*' -exec cp -a -t "$to/deps" {} + 2>/dev/null || true
echo "seed-target: $(du -sh "$to" | cut -f1) of dependencies from $from" >&2
