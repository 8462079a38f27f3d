# shellcheck shell=bash
# The upgrade test of packaging/nspawn-e2e.sh, which sources this file and
# calls run_upgrade for each release (its helpers: fail, say, boot, in_ct,
# stop_container, free_port, ms_since, no_sshd_penalties; its globals: root, machine, tmp,
# cache, target, summary). In a booted root: install the package of an
# earlier release (built from a pinned commit of this repository), enrol
# users, make a lock, partial failure counts, recovery codes and a
# known-good pair, then `apt-get install` the tree's package with no
# systemctl or veilctl step in between, and check that everything is kept,
# that the running veild is the new one, and that the next logins work.

# 0.1.0: protocol 2, SQLite schema 4. CI's clone has the full history.
upgrade_from=e7527b3123149c695ba8a49e50260f283e113810
upgrade_from_version=0.1.0-1

# old_deb: the earlier release's package, built once with that commit's own
# packaging/build-deb.sh and cached under the target dir by commit. It
# builds in a target dir of its own, removed after: in a shared one the
# cdylib deps/libpam_veil.so (no hash in its name) of one version
# overwrote the other's, and cargo still took both for fresh.
old_deb() {
  local dir="$cache/upgrade-from-$upgrade_from" t0 deb
  if [ -f "$dir/veil.deb" ]; then
    echo "cached old package $dir/veil.deb" >&2
    old_deb_s=cached
    return
  fi
  if ! git cat-file -e "$upgrade_from^{commit}" 2>/dev/null; then
    # A shallow clone has no history to build the earlier release from:
    # said loudly, not passed silently. A full clone without it fails.
    if [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = true ]; then
      echo "nspawn-e2e: upgrade test IGNORED: this clone is shallow, commit $upgrade_from is not in it (git fetch --unshallow to run it)" >&2
      old_deb_s=ignored
      return
    fi
    fail "commit $upgrade_from is not in this clone (the upgrade test needs the history)"
  fi
  say "build the package of $upgrade_from ($upgrade_from_version) to upgrade from"
  t0=$(date +%s)
  rm -rf "$dir" "$dir.new"
  mkdir -p "$dir.new/src"
  git archive "$upgrade_from" | tar -x -C "$dir.new/src"
  # The tree's release build (packaging/build-deb.sh, run before this)
  # holds the same crates.io dependencies, compiled: about 3 min less.
  scripts/seed-target.sh "$target/release" "$dir.new/target/release"
  deb=$(CARGO_TARGET_DIR=$dir.new/target bash "$dir.new/src/packaging/build-deb.sh") ||
    fail "building the package of $upgrade_from"
  [ "$(dpkg-deb -f "$deb" Version)" = "$upgrade_from_version" ] ||
    fail "$deb is version $(dpkg-deb -f "$deb" Version), not $upgrade_from_version"
  mv "$deb" "$dir.new/veil.deb"
  rm -rf "$dir.new/src" "$dir.new/target"
  mv "$dir.new" "$dir"
  old_deb_s="built in $(($(date +%s) - t0)) s"
  echo "old package: $old_deb_s" >&2
}

# The store as veild keeps it, read from the host as the veil user (a file
# SQLite makes beside the database is then veil's, not root's). Secrets
# and hashes are shown as a digest only.
store_dump() {
  local dir="$root/var/lib/veil"
  setpriv --reuid="$(stat -c %u "$dir")" --regid="$(stat -c %g "$dir")" --clear-groups \
    /usr/bin/python3 - "$dir/veil.db" <<'EOF'
import hashlib, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
d = lambda v: "-" if v is None else hashlib.sha256(v if isinstance(v, bytes) else v.encode()).hexdigest()[:16]
for r in db.execute("SELECT name, phc, totp_secret, totp_last_step, recovery_key, recovery_hashes, recovery_used FROM users ORDER BY name"):
    print(f"user {r[0]} hash={d(r[1])} totp={d(r[2])} last_step={r[3]} recovery={d(r[4])}/{d(r[5])} used={r[6]}")
for r in db.execute("SELECT kind, user, source, failures, window_start, locked_until, locks, locks_remembered_until FROM ledger ORDER BY kind, user, source"):
    print("ledger " + " ".join(map(str, r)))
for r in db.execute("SELECT user, source, last_success FROM known_good ORDER BY user, source"):
    print("known_good " + " ".join(map(str, r)))
EOF
}
schema_version() {
  python3 -c 'import sqlite3,sys; print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute("PRAGMA user_version").fetchone()[0])' \
    "$root/var/lib/veil/veil.db"
}

# veild_is_new PID: the process runs the installed /usr/sbin/veild (same
# inode; a veild not restarted runs the unlinked old file).
veild_is_new() {
  local exe
  exe=$(in_ct readlink "/proc/$1/exe")
  [ "$exe" = /usr/sbin/veild ] || { echo "veild pid $1 runs $exe" >&2; return 1; }
  [ "$(in_ct stat -L -c %i "/proc/$1/exe")" = "$(in_ct stat -c %i /usr/sbin/veild)" ]
}

run_upgrade() {
  release=$1
  local started port u rc t apt_ms pid_before pid_after new_version recovery
  declare -A pw secret
  started=$(date +%s)
  tmp=$(mktemp -d /tmp/veil-upgrade.XXXXXX)
  root="$cache/upgrade-$release"
  machine="veil-up-$release"
  rm -rf "$root"
  cp -a "$cache/$release" "$root"
  port=$(free_port)
  cat >"$root/etc/ssh/sshd_config.d/00-veil-e2e.conf" <<EOF
ListenAddress 127.0.0.1
Port $port
PubkeyAuthentication no
PermitRootLogin no
MaxAuthTries 2
KbdInteractiveAuthentication yes
PasswordAuthentication no
EOF
  no_sshd_penalties
  echo "$machine" >"$root/etc/hostname"
  cp "$cache/upgrade-from-$upgrade_from/veil.deb" "$root/root/veil-old.deb"
  cp "$deb" "$root/root/veil-new.deb"
  new_version=$(dpkg-deb -f "$deb" Version)

  say "upgrade: boot $root, install $upgrade_from_version"
  boot
  in_ct apt-get install -y -q /root/veil-old.deb >"$tmp/apt-old.log" 2>&1 ||
    { cat "$tmp/apt-old.log" >&2; fail "apt install of $upgrade_from_version"; }
  [ "$(in_ct dpkg-query -W -f='${Version}' veil)" = "$upgrade_from_version" ] || fail "not $upgrade_from_version"
  # The binaries too, not the tree's.
  [ "$(in_ct veild --version)" = "veil-daemon ${upgrade_from_version%-*}" ] ||
    fail "the old package's veild says $(in_ct veild --version)"

  # The config 0.1.0 ships, for the new veild to check after the upgrade
  # (an admin who edited theirs may keep it at dpkg's conffile prompt).
  in_ct cp /etc/veil/veild.toml /root/veild-old.toml
  # bob, carol, erin, frank: no system password ('*'); dave: useradd's
  # bare '!'. erin and frank log in only in the windows between unpack and
  # restart (each with a code of a step no one used).
  for u in bob carol dave erin frank; do
    in_ct useradd --create-home --shell /bin/bash "$u"
    [ "$u" = dave ] || in_ct usermod -p '*' "$u"
    pw[$u]="$u $RANDOM horse"
    secret[$u]=$(head -c 20 /dev/urandom | base32 | tr -d '=\n')
    printf '%s\n' "${pw[$u]}" | in_ct veilctl user add "$u" --password-stdin >/dev/null 2>&1 || fail "old veilctl user add $u"
    printf '%s\n' "${secret[$u]}" | in_ct veilctl totp enroll "$u" --secret-stdin --no-confirm --no-qr >/dev/null 2>&1 ||
      fail "old veilctl totp enroll $u"
    echo 0 >"$tmp/last_step-$u"
  done
  [ "$(in_ct getent shadow dave | cut -d: -f2)" = '!' ] || fail "useradd did not leave dave's shadow field '!'"
  recovery=$(in_ct veilctl recovery new bob 2>/dev/null | awk '/^    [^ ]/ { print $1; exit }')
  [ -n "$recovery" ] || fail "old veilctl recovery new bob showed no code"
  in_ct veilctl enable sshd >"$tmp/enable.log" 2>&1 || { cat "$tmp/enable.log" >&2; fail "old veilctl enable sshd"; }

  # A code of a time step not used before by that user.
  code() { unused_step_code "$tmp/last_step-$1" "${secret[$1]}"; }
  wrong() { wrong_code_of "${secret[$1]}"; }
  # up_ssh NAME USER PASSWORD CODE WANT: one ssh login, its exit status must be WANT.
  up_ssh() {
    set +e
    VEIL_E2E_PASSWORD=$3 VEIL_E2E_CODE=$4 expect -f packaging/ssh-login.exp "$port" "$2" id >"$tmp/ssh-$1.log" 2>&1
    rc=$?
    set -e
    echo "  ssh $1: exit $rc" >&2
    [ "$rc" = "$5" ] || { in_ct journalctl -b --no-pager -n 30 >&2; fail "ssh $1: exit $rc, not $5: $(cat "$tmp/ssh-$1.log")"; }
  }

  say "upgrade: logins under $upgrade_from_version"
  up_ssh old-bob bob "${pw[bob]}" "$(code bob)" 0                 # the known-good pair
  up_ssh old-bob-wrong bob "${pw[bob]}" "$(wrong bob)" 255        # a partial count
  # 0.1.0 took a bare '!' for `passwd -l`: useradd's account was denied.
  up_ssh old-dave dave "${pw[dave]}" "$(code dave)" 255
  # [lockout] deny = 5: five failures of the pair lock it.
  for t in 1 2 3 4 5; do up_ssh "old-carol-$t" carol "wrong $t" "$(wrong carol)" 255; done
  in_ct veilctl locks --json >"$tmp/locks-old.json"
  python3 -c 'import json,sys; sys.exit(0 if any(e["user"] == "carol" and e["locked"] for e in json.load(open(sys.argv[1]))) else 1)' \
    "$tmp/locks-old.json" || fail "carol not locked under $upgrade_from_version: $(cat "$tmp/locks-old.json")"
  [ "$(in_ct systemctl is-active veild.service)" = active ] || fail "veild.service not running before the upgrade"
  pid_before=$(in_ct systemctl show veild.service -p MainPID --value)
  store_dump >"$tmp/store-old"
  [ "$(schema_version)" = 4 ] || fail "schema $(schema_version) under $upgrade_from_version, not 4"
  sed 's/^/    /' "$tmp/store-old" >&2
  grep -q '^user bob hash=[0-9a-f]* totp=[0-9a-f]* last_step=[0-9]* recovery=[0-9a-f]*/[0-9a-f]* used=0$' "$tmp/store-old" ||
    fail "bob's row lacks a hash, secret, step or recovery codes"
  grep -q '^known_good bob ' "$tmp/store-old" || fail "no known-good pair for bob"
  awk -v now="$(date +%s)" '$2 == "user+source" && $3 == "bob" && $5 > 0 { b = 1 }
    $2 == "user+source" && $3 == "carol" && $7 > now { c = 1 } END { exit !(b && c) }' \
    "$tmp/store-old" || fail "no partial count for bob or no lock for carol"

  say "upgrade: a config this release would refuse stops the upgrade before anything is replaced"
  # The tree's package with one rule in its preinst's table that the
  # config in place breaks (0.1.0 ships max_ledger_rows = 100000).
  rm -rf "$tmp/refusing"
  dpkg-deb -R "$deb" "$tmp/refusing"
  python3 - "$tmp/refusing/DEBIAN/preinst" <<'EOF'
import sys
p = sys.argv[1]
s = open(p).read()
block = "cat <<'TABLE'\nTABLE"
assert block in s, "preinst has no table"
open(p, "w").write(s.replace(block, "cat <<'TABLE'\nlockout.max_ledger_rows\trange 1000000 100000000\tset max_ledger_rows = 1000000\nTABLE"))
EOF
  dpkg-deb -b "$tmp/refusing" "$root/root/veil-refusing.deb" >/dev/null
  set +e
  in_ct apt-get install -y -q /root/veil-refusing.deb >"$tmp/apt-refusing.log" 2>&1
  rc=$?
  set -e
  [ "$rc" != 0 ] || fail "apt-get installed a package whose preinst refuses the config"
  grep -q "veild.toml:[0-9]*: lockout.max_ledger_rows = 100000 must be from 1000000 to 100000000; fix: set max_ledger_rows = 1000000" "$tmp/apt-refusing.log" ||
    fail "the refusal does not name the line and the fix: $(cat "$tmp/apt-refusing.log")"
  [ "$(in_ct dpkg-query -W -f='${Version} ${Status}' veil)" = "$upgrade_from_version install ok installed" ] ||
    fail "after the refused upgrade veil is $(in_ct dpkg-query -W -f='${Version} ${Status}' veil)"
  [ "$(in_ct veild --version)" = "veil-daemon ${upgrade_from_version%-*}" ] || fail "the refused upgrade replaced veild"
  in_ct systemctl is-active --quiet veild.socket || fail "veild.socket not listening after the refused upgrade"
  grep "veild.toml:" "$tmp/apt-refusing.log" | sed 's/^/    /' >&2
  echo "  refused before unpack; $upgrade_from_version still installed and listening" >&2

  # The window between unpack and restart: the new package's files are in
  # place while the old veild still runs. Its module is put in alone here:
  # the old veild must deny a right login, log why, and charge no one.
  say "upgrade: the tree's module against the old veild (the window before the restart)"
  modpath=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/security/pam_veil.so
  dpkg-deb --fsys-tarfile "$deb" | tar -xO ".$modpath" >"$root/root/pam_veil-new.so"
  dpkg-deb --fsys-tarfile "$cache/upgrade-from-$upgrade_from/veil.deb" | tar -xO ".$modpath" >"$root/root/pam_veil-old.so"
  in_ct install -m 644 /root/pam_veil-new.so "$modpath"
  up_ssh window-old-veild erin "${pw[erin]}" "$(code erin)" 255
  in_ct install -m 644 /root/pam_veil-old.so "$modpath"
  in_ct journalctl -b --no-pager -t veild -g 'event=malformed' >"$tmp/window-old.log" 2>&1 ||
    fail "the old veild did not log why it denied the new module: $(in_ct journalctl -b --no-pager -t veild -n 5)"
  tail -n 1 "$tmp/window-old.log" | sed 's/^/    /' >&2
  store_dump >"$tmp/store-window"
  cmp -s "$tmp/store-old" "$tmp/store-window" ||
    fail "the window's denial changed the store: $(diff "$tmp/store-old" "$tmp/store-window")"

  say "upgrade: apt-get install the tree's package ($new_version), nothing else"
  t=$(date +%s%N)
  in_ct apt-get install -y -q /root/veil-new.deb >"$tmp/apt-new.log" 2>&1 ||
    { cat "$tmp/apt-new.log" >&2; fail "apt install of $new_version over $upgrade_from_version"; }
  apt_ms=$(ms_since "$t")
  echo "  apt-get install: $apt_ms ms" >&2
  [ "$(in_ct dpkg-query -W -f='${Version}' veil)" = "$new_version" ] || fail "not $new_version after the upgrade"
  in_ct veild --version | grep -q "^veild ${new_version%-*} (" || fail "veild --version: $(in_ct veild --version)"
  [ "$(in_ct systemctl is-active veild.service || true)" = active ] || fail "veild.service not running after the upgrade"
  pid_after=$(in_ct systemctl show veild.service -p MainPID --value)
  [ "$pid_after" != "$pid_before" ] || fail "veild (pid $pid_before) was not restarted by the upgrade"
  veild_is_new "$pid_after" || fail "the running veild (pid $pid_after) is not the installed binary"
  echo "  veild pid $pid_before -> $pid_after, $(in_ct veild --version | head -n 1)" >&2
  store_dump >"$tmp/store-new"
  cmp -s "$tmp/store-old" "$tmp/store-new" ||
    fail "the store changed in the upgrade: $(diff "$tmp/store-old" "$tmp/store-new")"
  echo "  every user, hash, TOTP secret and last step, recovery code, known-good pair, count and lock kept" >&2

  # The other window: the new veild, and a module of the old release
  # (what a host whose module file was not yet replaced sends).
  say "upgrade: the old module against the new veild"
  in_ct install -m 644 /root/pam_veil-old.so "$modpath"
  up_ssh window-new-veild frank "${pw[frank]}" "$(code frank)" 255
  in_ct install -m 644 /root/pam_veil-new.so "$modpath"
  in_ct journalctl -b --no-pager -t veild -g 'event=malformed' >"$tmp/window-new.log" 2>&1 ||
    fail "the new veild did not log why it denied the old module"
  [ "$(wc -l <"$tmp/window-new.log")" -gt "$(wc -l <"$tmp/window-old.log")" ] ||
    fail "no new malformed line from the new veild: $(tail -n 3 "$tmp/window-new.log")"
  tail -n 1 "$tmp/window-new.log" | sed 's/^/    /' >&2

  say "upgrade: the next logins, with no step in between"
  up_ssh new-bob bob "${pw[bob]}" "$(code bob)" 0
  up_ssh new-bob-recovery bob "${pw[bob]}" "$recovery" 0
  up_ssh new-carol carol "${pw[carol]}" "$(code carol)" 255     # the lock is kept
  up_ssh new-dave dave "${pw[dave]}" "$(code dave)" 0          # 0.2.0: a bare '!' is no lock
  up_ssh new-frank frank "${pw[frank]}" "$(code frank)" 0       # the window charged nothing
  [ "$(schema_version)" = 6 ] || fail "schema $(schema_version) after the upgrade, not 6"
  veild_is_new "$(in_ct systemctl show veild.service -p MainPID --value)" || fail "veild not the new one after the logins"
  in_ct veilctl locks >&2
  in_ct veild --check-config --config /root/veild-old.toml >"$tmp/check-old.log" 2>&1 ||
    fail "the new veild refuses 0.1.0's veild.toml: $(cat "$tmp/check-old.log")"
  echo "  the new veild --check-config accepts $upgrade_from_version's veild.toml" >&2

  stop_container
  t=$(($(date +%s) - started))
  summary+=("$release upgrade $upgrade_from_version -> $new_version: ${t} s (old package $old_deb_s); apt-get install of the new one $apt_ms ms")
  if [ -z "${VEIL_NSPAWN_KEEP:-}" ]; then rm -rf "$root"; fi
  rm -rf "$tmp"
  root= tmp=
}
