#!/usr/bin/env bash
# Builds veild, veilctl and pam_veil.so of a pinned earlier release from
# this repository's own history, for the rolling-upgrade test
# (tests/tests/postgres_rolling.rs: hosts on that release and on the tree
# share one PostgreSQL). Prints the directory holding the three files;
# scripts/test.sh passes it to the test as VEIL_PINNED_BIN_DIR.
#
#   scripts/build-pinned.sh            build (or reuse) and print the dir
#
# Cached by commit under the target dir: a second run costs nothing. The
# build has a target dir of its own, removed after (see
# packaging/upgrade-e2e.sh: in a shared one, the cdylib of one version
# overwrote the other's).
set -euo pipefail
cd "$(dirname "$0")/.."

# 0.3.0 as released: protocol 4, PostgreSQL schema 4 (SQLite 5).
pinned=125444872a0ac094a8818e253301294ac58a3066
pinned_version=0.3.0

target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
dir="$target/pinned/$pinned"
files=(veild veilctl libpam_veil.so)

have_all() { for f in "${files[@]}"; do [ -f "$1/$f" ] || return 1; done; }

if have_all "$dir/bin"; then
  echo "build-pinned: cached $pinned_version ($pinned) in $dir/bin" >&2
  echo "$dir/bin"
  exit 0
fi
if ! git cat-file -e "$pinned^{commit}" 2>/dev/null; then
  # The test must not pass without it: fail, saying why and the fix.
  if [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = true ]; then
    echo "build-pinned: this clone is shallow and has no commit $pinned ($pinned_version): run git fetch --unshallow" >&2
  else
    echo "build-pinned: commit $pinned ($pinned_version) is not in this repository's history" >&2
  fi
  exit 1
fi

started=$SECONDS
rm -rf "$dir"
mkdir -p "$dir/src" "$dir/bin.new"
git archive "$pinned" | tar -x -C "$dir/src"
# The tree's debug build holds the same crates.io dependencies, compiled:
# only veil's crates are left to build (about 15 s instead of 3 min).
scripts/seed-target.sh "$target/debug" "$dir/target/debug"
# --locked: that commit's own Cargo.lock, the dependencies it shipped with.
# Only what the test runs: veild and veilctl (no examples, tests or benches)
# and the module.
(cd "$dir/src" && CARGO_TARGET_DIR="$dir/target" cargo build --locked --quiet \
  -p veil-daemon --bins -p pam-veil --lib) >&2 ||
  { echo "build-pinned: building $pinned_version ($pinned) failed" >&2; exit 1; }
for f in "${files[@]}"; do
  cp "$dir/target/debug/$f" "$dir/bin.new/$f"
done
got=$("$dir/bin.new/veild" --version)
case "$got" in
  "veild $pinned_version "*) ;;
  *) echo "build-pinned: the built veild says '$got', not $pinned_version" >&2; exit 1 ;;
esac
mv "$dir/bin.new" "$dir/bin"
rm -rf "$dir/src" "$dir/target"
echo "build-pinned: built $pinned_version ($pinned) in $((SECONDS - started)) s: $dir/bin" >&2
echo "$dir/bin"
