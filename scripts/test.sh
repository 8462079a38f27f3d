#!/usr/bin/env bash
# The test suite, in tiers. Installs missing system packages.
#
#   scripts/test.sh          every tier: what CI runs (.ci/run)
#   scripts/test.sh quick    fmt, clippy, unit and in-process tests, none that
#                            needs root or takes a minute: the daily loop
#                            (under 2 minutes after a build)
#   scripts/test.sh root     quick, then the tests that need root (real su,
#                            sudo, sshd, polkit) and the slow ones (both
#                            marked #[ignore] otherwise), then the tests
#                            against the pinned earlier release
#   scripts/test.sh package  the Debian package: packaging/e2e.sh, then
#                            packaging/nspawn-e2e.sh (booted Debian 12 and 13),
#                            packaging/debian-rustc.sh (built with trixie's rustc)
set -euo pipefail
cd "$(dirname "$0")/.."

tier="${1:-all}"
case "$tier" in
  all | quick | root | package) ;;
  *) echo "usage: $0 [all|quick|root|package]" >&2; exit 2 ;;
esac
is_root() { [ "$(id -u)" -eq 0 ]; }
started=$SECONDS
step() { echo "== test.sh: $* ($((SECONDS - started)) s so far)" >&2; }

# Work that runs beside the rest, each in a session of its own (so that
# a failure or an exit stops its children too), its output in a log.
declare -A bg_pid=() bg_log=()
# bg_start NAME NICENESS COMMAND...
bg_start() {
  local name=$1 niceness=$2
  shift 2
  bg_log[$name]=$(mktemp "/tmp/veil-$name.XXXXXX")
  setsid -w nice -n "$niceness" "$@" >"${bg_log[$name]}" 2>&1 &
  bg_pid[$name]=$!
}
# bg_wait NAME WHAT: waits for NAME, shows its log, fails the run if it
# failed; its log's last line goes to $bg_last. Nothing if never started.
bg_last=
bg_wait() {
  local name=$1 rc=0
  [ -n "${bg_pid[$name]:-}" ] || return 0
  step "$2"
  wait "${bg_pid[$name]}" || rc=$?
  unset "bg_pid[$name]"
  cat "${bg_log[$name]}" >&2
  bg_last=$(tail -n 1 "${bg_log[$name]}")
  rm -f "${bg_log[$name]}"
  [ "$rc" -eq 0 ] || { echo "test.sh: $name failed (status $rc)" >&2; exit 1; }
}

# The tests against an earlier release (tests/tests/postgres_rolling.rs,
# tests/tests/fresh_code_versions.rs: every test with "pinned" in its
# name) need that release's binaries: scripts/build-pinned.sh builds them
# (cached by commit in the target dir) once the tree's build is done,
# from its compiled dependencies (scripts/seed-target.sh: veil's own
# crates only, about 15 s), beside clippy and the tests at the lowest CPU
# priority; it prints their directory last. Those tests run after the
# root tests.
rolling_test() {
  bg_wait pinned "tests against the pinned release (after scripts/build-pinned.sh)"
  VEIL_PINNED_BIN_DIR=$bg_last \
    cargo test -p veil-tests --test postgres_rolling --test fresh_code_versions -- --include-ignored
}

# In a full run as root: the Debian roots of the package tier (three
# debootstraps, about 3 min that mostly wait for the mirror) are made
# from the start, beside the build and the tests; the package's release
# build (about 4 min of CPU) runs beside clippy and the tests at the
# lowest priority, where they leave a core idle (waiting for servers,
# sshd, timeouts), and packaging/e2e.sh then finds it built.

rustc_pid=
cleanup() {
  local pid
  for pid in "${bg_pid[@]}"; do
    [ -z "$pid" ] || kill -- "-$pid" 2>/dev/null || true
  done
  [ -z "$rustc_pid" ] || kill "$rustc_pid" 2>/dev/null || true
}
trap cleanup EXIT

if [ "$tier" != package ]; then
  scripts/deps.sh test
  if [ "$tier" = all ] && is_root; then
    # Every package first, one apt at a time: nothing below waits for
    # apt's lock.
    scripts/deps.sh package
    scripts/deps.sh nspawn
    bg_start trees 10 bash -c 'VEIL_NSPAWN_ONLY=trees bash packaging/nspawn-e2e.sh &&
      bash packaging/debian-rustc.sh tree'
  fi
  step "fmt, build, clippy"
  cargo fmt --all --check
  # `cargo test` does not build the cdylib that the libpam tests load.
  cargo build --workspace --all-targets
  if [ "$tier" != quick ] && is_root; then bg_start pinned 19 scripts/build-pinned.sh; fi
  if [ "$tier" = all ] && is_root; then bg_start deb 19 packaging/build-deb.sh; fi
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

case "$tier" in
  quick)
    step "tests (no root-only or slow ones)"
    cargo test --workspace
    ;;
  root | all)
    if is_root; then
      # Tests that play a setuid front end (su, sudo, sshd) need root; they
      # are #[ignore]d for a plain `cargo test` and fail if run as anyone
      # else. So are the slow ones (CONTRIBUTING.md, "Test tiers").
      step "tests, root-only and slow ones included"
      cargo test --workspace -- --include-ignored --skip pinned
      rolling_test
    elif [ "$tier" = root ]; then
      echo "test.sh root: the root tier needs root" >&2
      exit 1
    else
      cargo test --workspace
      echo "root-only and slow tests (marked ignored) not run: run scripts/test.sh as root"
    fi
    ;;
esac

if [ "$tier" = package ] || [ "$tier" = all ]; then
  if is_root; then
    # Every package first, one apt at a time: the scripts below then find
    # nothing missing, so the one running beside the others never waits
    # for apt's lock.
    scripts/deps.sh package
    scripts/deps.sh nspawn
    bg_wait trees "the Debian roots (made since the start)"
    bg_wait deb "the package's release build (since the tests started)"
    # The code builds with Debian 13's own rustc and cargo (rust-version):
    # in a root of its own, beside e2e.sh (its build overlaps e2e.sh's
    # waits for logins).
    rustc_log=$(mktemp /tmp/veil-debian-rustc.XXXXXX)
    bash packaging/debian-rustc.sh >"$rustc_log" 2>&1 &
    rustc_pid=$!
    # Builds the .deb, installs it, logs in through a second sshd and sudo,
    # then purges it and checks the machine is as it was.
    step "packaging/e2e.sh (packaging/debian-rustc.sh runs beside it)"
    bash packaging/e2e.sh
    # The package under a booted systemd: Debian 12 and 13 roots (cached in
    # the target dir) booted with systemd-nspawn; fails if they cannot boot.
    step "packaging/nspawn-e2e.sh"
    bash packaging/nspawn-e2e.sh
    step "packaging/debian-rustc.sh (its output)"
    rustc_rc=0
    wait "$rustc_pid" || rustc_rc=$?
    rustc_pid=
    cat "$rustc_log" >&2
    rm -f "$rustc_log"
    [ "$rustc_rc" -eq 0 ] || { echo "packaging/debian-rustc.sh failed (status $rustc_rc)" >&2; exit 1; }
  elif [ "$tier" = package ]; then
    echo "test.sh package: the package tier needs root" >&2
    exit 1
  else
    echo "packaging/e2e.sh skipped: it needs root (installs the .deb, runs sshd and sudo)"
    echo "packaging/nspawn-e2e.sh skipped: it needs root (debootstrap, systemd-nspawn)"
    echo "packaging/debian-rustc.sh skipped: it needs root (debootstrap, systemd-nspawn)"
  fi
fi
step "done: tier $tier passed"
