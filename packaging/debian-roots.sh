# Sourced by packaging/nspawn-e2e.sh, packaging/debian-rustc.sh and
# scripts/bench-debian.sh: cached Debian roots made by debootstrap. Needs
# from the caller the functions say and fail; sets, when sourced:
#   target   the cargo target dir (absolute)
#   cache    where the roots live, $target/nspawn
#   keyring  Debian's archive keyring (debootstrap checks signatures with it)
#   mirror   VEIL_NSPAWN_MIRROR, else the one this machine's apt uses

# The Debian mirror this machine's apt uses (deb822 or one-line sources).
debian_mirror() {
  local f uri
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '
      /^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }
      /^deb[ \t]/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\/.*\/debian\/?$/) { print $i; exit } }
    ' "$f")
    if [ -n "$uri" ]; then echo "${uri%/}"; return; fi
  done
  echo http://deb.debian.org/debian
}

# debian_tree NAME RELEASE PACKAGE...: a pristine root in $cache/NAME, made
# once per release, mirror and package list (its stamp); signatures checked
# against Debian's archive keyring. Sets tree_made=1 when it made one.
debian_tree() {
  local name=$1 rel=$2 dir="$cache/$1" stamp started
  shift 2
  stamp="release=$rel mirror=$mirror packages=$(printf '%s\n' "$@" | sort | tr '\n' ,)"
  if [ -d "$dir" ] && [ "$(cat "$dir.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "cached tree $dir" >&2
    return
  fi
  say "debootstrap $rel from $mirror into $name (signatures checked with $keyring)"
  started=$(date +%s)
  rm -rf "$dir" "$dir.new" "$dir.stamp"
  if ! debootstrap --variant=minbase --keyring="$keyring" \
    --include="$(IFS=,; echo "$*")" "$rel" "$dir.new" "$mirror" >"$cache/$name.debootstrap.log" 2>&1; then
    tail -n 20 "$cache/$name.debootstrap.log" >&2
    fail "debootstrap $rel failed (log: $cache/$name.debootstrap.log)"
  fi
  # Nothing from the network at test time: what a test installs comes with
  # it, and the packages it needs are in the tree.
  rm -rf "$dir.new/var/cache/apt/archives/"*.deb
  mv "$dir.new" "$dir"
  echo "$stamp" >"$dir.stamp"
  tree_made=1
  echo "debootstrap $name ($rel): $(( $(date +%s) - started )) s" >&2
}

target=$(realpath -m "${CARGO_TARGET_DIR:-$PWD/target}")
cache="$target/nspawn"
mkdir -p "$cache"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || fail "no $keyring (package debian-archive-keyring)"
mirror=${VEIL_NSPAWN_MIRROR:-$(debian_mirror)}
