#!/usr/bin/env bash
# End-to-end test of the Debian package with real logins, as root:
# build the .deb, install it, start veild (this machine may have no
# systemd), enrol a real system account with a password and TOTP, then log
# in through a second sshd (loopback, high port, PAM service of its own,
# keyboard-interactive only) with a real ssh client, and through the real
# sudo with /etc/pam.d/sudo put behind veil by `veilctl enable sudo`.
# Every kind of failure must look the same to the client. Finally purge
# the package: common-* byte-identical, service files restored, no veil
# file or user left. A trap restores everything whatever fails.
#
# usage: packaging/e2e.sh [--keep-logs DIR]
# Transcripts (one success and one failure each for ssh and sudo) and
# veild's audit lines are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "e2e: run as root (it installs a package and edits /etc/pam.d/sudo)" >&2
  exit 1
fi

keep_logs=
if [ "${1:-}" = "--keep-logs" ]; then keep_logs=${2:?directory}; fi

scripts/deps.sh package

user=veile2e                  # the real account enrolled in veil
ghost=veile2e-nobody          # a name with no account anywhere
service=veil-e2e-sshd         # sshd's PAM service, from its program name
port=$((42000 + RANDOM % 2000))
# Fixed: libpwquality (veilctl user add) refuses some "word $RANDOM word" passwords as systematic.
password="Hn8-Rt2v Pz6q-Wm4k"
secret=$(head -c 20 /dev/urandom | base32 | tr -d '=\n')

# A child that has exited stays a zombie until waited for: not alive.
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$st" ] && [ "${st#Z}" = "$st" ]; }
say() { printf '\n== %s\n' "$*" >&2; }
fail() { echo "e2e: FAIL: $*" >&2; exit 1; }

# Refuse to run where cleaning up would destroy something that was there.
dpkg-query -W -f='${Status}' veil 2>/dev/null | grep -q 'install ok installed' &&
  fail "the package veil is installed already; purging it at the end would remove the admin's setup"
getent passwd "$user" >/dev/null && fail "account $user exists already"
getent passwd "$ghost" >/dev/null && fail "account $ghost exists"
[ -e "/etc/pam.d/$service" ] && fail "/etc/pam.d/$service exists already"
[ -e /etc/sudoers.d/veil-e2e ] && fail "/etc/sudoers.d/veil-e2e exists already"
grep -q 'pam_veil' /etc/pam.d/sudo && fail "/etc/pam.d/sudo already names pam_veil"

tmp=$(mktemp -d /tmp/veil-e2e.XXXXXX)
chmod 0755 "$tmp"
mkdir "$tmp/before"
cp -a /etc/pam.d/common-* /etc/pam.d/sudo "$tmp/before/"
cp -a /var/lib/pam "$tmp/before/var-lib-pam"
made_run_sshd=
[ -d /run/sshd ] || made_run_sshd=1
made_run_veil=
[ -d /run/veil ] || made_run_veil=1
sshd_pid=
veild_pid=
etc_veild_toml=/etc/veil/veild.toml

# ---------------------------------------------------------------- cleanup
cleanup() {
  local status=$?
  set +e
  if [ -n "$sshd_pid" ] && kill -0 "$sshd_pid" 2>/dev/null; then
    kill "$sshd_pid"; wait "$sshd_pid" 2>/dev/null
  fi
  rm -f "/etc/pam.d/$service"
  # sudo: veil's own undo first, then the test's copy wins in any case.
  if grep -q pam_veil /etc/pam.d/sudo 2>/dev/null && command -v veilctl >/dev/null; then
    veilctl disable sudo >/dev/null 2>&1
  fi
  if ! cmp -s "$tmp/before/sudo" /etc/pam.d/sudo; then
    cp -a "$tmp/before/sudo" /etc/pam.d/sudo
    echo "e2e: restored /etc/pam.d/sudo from the test's copy" >&2
  fi
  rm -f /etc/sudoers.d/veil-e2e
  if [ -n "$veild_pid" ] && alive "$veild_pid"; then
    kill "$veild_pid"; wait "$veild_pid" 2>/dev/null
  fi
  if dpkg-query -W -f='${Status}' veil 2>/dev/null | grep -q 'installed'; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq veil >/dev/null 2>&1 ||
      echo "e2e: could not purge veil" >&2
  fi
  # The common-* files must never change; if anything went wrong, put the
  # originals back (and say so: the test has failed then anyway).
  for f in "$tmp"/before/common-*; do
    if ! cmp -s "$f" "/etc/pam.d/${f##*/}"; then
      cp -a "$f" "/etc/pam.d/${f##*/}"
      echo "e2e: restored /etc/pam.d/${f##*/}" >&2
    fi
  done
  getent passwd "$user" >/dev/null && userdel -r "$user" >/dev/null 2>&1
  [ -n "$made_run_sshd" ] && rm -rf /run/sshd
  [ -n "$made_run_veil" ] && rm -rf /run/veil
  if [ -n "$keep_logs" ]; then mkdir -p "$keep_logs" && cp -a "$tmp"/*.log "$keep_logs"/ 2>/dev/null; fi
  rm -rf "$tmp"
  if [ "$status" -eq 0 ]; then echo "e2e: PASS" >&2; else echo "e2e: FAIL (status $status)" >&2; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---------------------------------------------------------------- package
say "build and lint the package"
deb=$(packaging/build-deb.sh)
set +e
lintian_out=$(lintian --fail-on error,warning "$deb" 2>&1)
lintian_rc=$?
set -e
lintian_out=$(grep -v 'running with root privileges' <<<"$lintian_out" || true)
[ "$lintian_rc" -eq 0 ] || fail "lintian: $lintian_out"
echo "lintian: ${lintian_out:-no errors, no warnings}" >&2
exposure=$(systemd-analyze security --offline=true packaging/systemd/veild.service 2>/dev/null |
  sed -n 's/.*Overall exposure level for veild.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze exposure: $exposure" >&2
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' || fail "exposure $exposure > 2.0"

say "install $deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
for f in "$tmp"/before/common-*; do
  cmp -s "$f" "/etc/pam.d/${f##*/}" || fail "installing changed /etc/pam.d/${f##*/}"
done
getent passwd veil >/dev/null || fail "no veil user"
[ "$(stat -c '%U %a' /var/lib/veil)" = "veil 700" ] || fail "/var/lib/veil: $(stat -c '%U %a' /var/lib/veil)"
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
[ -f "/usr/lib/$triplet/security/pam_veil.so" ] || fail "pam_veil.so not in the multiarch security dir"
grep -q pam_veil /etc/pam.d/common-auth && fail "pam_veil in common-auth after install"
# Installing twice must be harmless (idempotent maintainer scripts).
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall "$deb" >/dev/null

# ---------------------------------------------------------------- veild
say "start veild as user veil (no systemd here: by hand, like the unit)"
/usr/sbin/veild --check-config >&2
install -d -o veil -g veil -m 0755 /run/veil
start_veild() {
  setpriv --reuid=veil --regid=veil --init-groups --inh-caps=-all --bounding-set=-all \
    /usr/sbin/veild --log-stderr 2>>"$tmp/veild.log" &
  veild_pid=$!
  for _ in $(seq 50); do [ -S /run/veil/veild.sock ] && break; sleep 0.1; done
  [ -S /run/veil/veild.sock ] || fail "veild did not start: $(cat "$tmp/veild.log")"
}
stop_veild() { kill "$veild_pid"; wait "$veild_pid" 2>/dev/null || true; veild_pid=; }
start_veild
[ "$(stat -c '%U %a' /var/lib/veil/veil.db)" = "veil 600" ] || fail "database: $(stat -c '%U %a' /var/lib/veil/veil.db)"

say "enrol $user (a real account) with a password and TOTP"
useradd --create-home --shell /bin/bash "$user"
usermod -p '*' "$user"   # no system password; not locked ('!') for sshd
printf '%s\n' "$password" | veilctl user add "$user" --password-stdin
printf '%s\n' "$secret" | veilctl totp enroll "$user" --secret-stdin --no-confirm --no-qr
veilctl user list >&2

# TOTP codes: each success needs a time step never used before. The last
# one handed out is kept in a file: $(fresh_code) runs in a subshell.
echo 0 >"$tmp/last_step"
fresh_code() {
  local step last
  step=$(( $(date +%s) / 30 ))
  last=$(cat "$tmp/last_step")
  if [ "$step" -le "$last" ]; then step=$((last + 1)); fi
  # Within veild's skew (one step): wait if even the next step is used.
  while [ "$step" -gt $(( $(date +%s) / 30 + 1 )) ]; do sleep 1; done
  echo "$step" >"$tmp/last_step"
  oathtool --totp -b --now "@$((step * 30))" "$secret"
}
current_code() { oathtool --totp -b "$secret"; }
wrong_code() {
  local right c
  right=$(current_code)
  c=$(printf '%06d' $(( (10#$right + 500000) % 1000000 )))
  echo "$c"
}

# ---------------------------------------------------------------- sshd
say "sshd on 127.0.0.1:$port, PAM service $service, keyboard-interactive only"
mkdir -p /run/sshd && chmod 0755 /run/sshd
cp /usr/sbin/sshd "$tmp/$service"
ssh-keygen -q -t ed25519 -N '' -f "$tmp/host_ed25519" 
cat >"$tmp/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $tmp/host_ed25519
PidFile $tmp/sshd.pid
UsePAM yes
KbdInteractiveAuthentication yes
AuthenticationMethods keyboard-interactive
PasswordAuthentication no
PubkeyAuthentication no
PermitRootLogin no
MaxAuthTries 2
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
Banner none
EOF
cp -a /etc/pam.d/sshd "/etc/pam.d/$service"

# The guard: nothing changes while sshd would not ask veil's prompts.
sed 's/^KbdInteractiveAuthentication yes/KbdInteractiveAuthentication no/' "$tmp/sshd_config" >"$tmp/sshd_config.bad"
set +e
veilctl enable "$service" --sshd-config "$tmp/sshd_config.bad" 2>"$tmp/enable-refused.log"
rc=$?
set -e
[ "$rc" -eq 6 ] || fail "enable with KbdInteractiveAuthentication no: status $rc"
grep -q 'KbdInteractiveAuthentication yes' "$tmp/enable-refused.log" || fail "no advice: $(cat "$tmp/enable-refused.log")"
cmp -s /etc/pam.d/sshd "/etc/pam.d/$service" || fail "refused enable changed the file"
echo "refused as it should:" >&2; sed 's/^/    /' "$tmp/enable-refused.log" >&2

veilctl enable "$service" --sshd-config "$tmp/sshd_config" 2>&1 | sed 's/^/    /' >&2
grep -q '^auth *required *pam_veil.so' "/etc/pam.d/$service" || fail "veil not in /etc/pam.d/$service"
"$tmp/$service" -t -f "$tmp/sshd_config" || fail "sshd config test"
"$tmp/$service" -f "$tmp/sshd_config" -E "$tmp/sshd.log"
for _ in $(seq 50); do [ -s "$tmp/sshd.pid" ] && break; sleep 0.1; done
sshd_pid=$(cat "$tmp/sshd.pid")

say "nothing listens beyond loopback"
listening=$(ss -Hltnp | grep -F "pid=$sshd_pid," | awk '{print $4}')
[ "$listening" = "127.0.0.1:$port" ] || fail "sshd listens on: $listening"
ss -Hlxp | grep -F veild | grep -qF /run/veil/veild.sock || fail "veild socket"
if ss -Hltunp | grep -F 'veild'; then fail "veild has a network socket"; fi

# ssh_login NAME USER PASSWORD CODE: transcript in $tmp/ssh-NAME.log
ssh_login() {
  local name=$1 login=$2
  set +e
  VEIL_E2E_PASSWORD=$3 VEIL_E2E_CODE=$4 \
    expect -f packaging/ssh-login.exp "$port" "$login" id >"$tmp/ssh-$name.log" 2>&1
  local rc=$?
  set -e
  echo "$rc" >"$tmp/ssh-$name.rc"
  # Same shape whoever the user: the client names the login in its prompts.
  sed -e "s/$login@/USER@/g" -e 's/\r$//' "$tmp/ssh-$name.log" >"$tmp/ssh-$name.norm"
  echo "  ssh $name: exit $rc" >&2
}

say "ssh logins"
ssh_login success "$user" "$password" "$(fresh_code)"
[ "$(cat "$tmp/ssh-success.rc")" = 0 ] || fail "ssh success: $(cat "$tmp/ssh-success.log")"
grep -q "uid=$(id -u "$user")($user)" "$tmp/ssh-success.log" || fail "no id output: $(cat "$tmp/ssh-success.log")"

ssh_login wrong-password "$user" "not the password" "$(current_code)"
ssh_login unknown-user "$ghost" "$password" "$(current_code)"
ssh_login wrong-code "$user" "$password" "$(wrong_code)"
# Lock the account: deny = 5 failures from one source (two so far).
for i in 1 2 3; do ssh_login "lockout-$i" "$user" "wrong $i" "$(wrong_code)"; done
veilctl status "$user" >&2
ssh_login locked "$user" "$password" "$(fresh_code)"
for kind in wrong-password unknown-user wrong-code locked; do
  [ "$(cat "$tmp/ssh-$kind.rc")" = 255 ] || fail "ssh $kind: exit $(cat "$tmp/ssh-$kind.rc")"
  cmp -s "$tmp/ssh-wrong-password.norm" "$tmp/ssh-$kind.norm" ||
    fail "ssh $kind looks different: $(diff "$tmp/ssh-wrong-password.norm" "$tmp/ssh-$kind.norm")"
done
grep -q 'Verification code: ' "$tmp/ssh-unknown-user.norm" || fail "unknown user was not asked for a code"
echo "  all four failures: identical transcripts" >&2
veilctl unlock "$user" >&2

say "crafted replies over sshd: $user and $ghost must fail alike, whatever the bytes"
# sshd hands PAM the client's bytes only for a known account; the ghost's
# replies become sshd's own junk of the same length. Every shape must give
# the same outcome, the same ledger effect and a denial at the delay. Any
# non-zero delay shows a denial was not decided locally: 49 pairs run at
# 200 ms (about 25 s) instead of the shipped 2 s (about 100 s).
crafted_delay_ms=200
cp "$etc_veild_toml" "$tmp/veild.toml.shipped"
sed -i "s/^failure_delay_ms = .*/failure_delay_ms = $crafted_delay_ms/" "$etc_veild_toml"
grep -qx "failure_delay_ms = $crafted_delay_ms" "$etc_veild_toml" || fail "failure_delay_ms not set in $etc_veild_toml"
stop_veild; start_veild
/usr/bin/python3 packaging/crafted_replies.py --port "$port" --real "$user" --ghost "$ghost" \
  --veilctl /usr/sbin/veilctl --min-delay-ms "$crafted_delay_ms" >"$tmp/crafted.log" 2>&1 ||
  fail "crafted replies: $(cat "$tmp/crafted.log")"
cat "$tmp/crafted.log" >&2
# The shipped config back (byte for byte), and veild with it.
cp "$tmp/veild.toml.shipped" "$etc_veild_toml"
stop_veild; start_veild
veilctl unlock "$user" >&2
veilctl unlock "$ghost" >&2
veilctl unlock --source 127.0.0.1 >&2

# ---------------------------------------------------------------- sudo
say "sudo with /etc/pam.d/sudo behind veil"
echo "$user ALL=(ALL:ALL) ALL" >/etc/sudoers.d/veil-e2e
chmod 0440 /etc/sudoers.d/veil-e2e
visudo -cq
veilctl enable sudo 2>&1 | sed 's/^/    /' >&2
grep -q '^auth *required *pam_veil.so' /etc/pam.d/sudo || fail "veil not in /etc/pam.d/sudo"

# sudo_try NAME PASSWORD CODE: sudo -S reads both answers, one per line.
sudo_try() {
  local name=$1
  set +e
  printf '%s\n%s\n' "$2" "$3" |
    setpriv --reuid="$user" --regid="$user" --init-groups \
      env -i PATH=/usr/bin:/bin LANG=C sudo -S -k true >"$tmp/sudo-$name.log" 2>&1
  local rc=$?
  set -e
  echo "$rc" >"$tmp/sudo-$name.rc"
  echo "  sudo $name: exit $rc" >&2
}
sudo_try success "$password" "$(fresh_code)"
[ "$(cat "$tmp/sudo-success.rc")" = 0 ] || fail "sudo success: $(cat "$tmp/sudo-success.log")"
sudo_try wrong-password "not the password" "$(current_code)"
sudo_try wrong-code "$password" "$(wrong_code)"
sudo_try empty "" ""
for i in 1 2; do sudo_try "lockout-$i" "wrong $i" "$(wrong_code)"; done
sudo_try locked "$password" "$(fresh_code)"
grep -q 'Sorry, try again.' "$tmp/sudo-wrong-password.log" || fail "no 'Sorry, try again.': $(cat "$tmp/sudo-wrong-password.log")"
for kind in wrong-password wrong-code empty locked; do
  [ "$(cat "$tmp/sudo-$kind.rc")" = 1 ] || fail "sudo $kind: exit $(cat "$tmp/sudo-$kind.rc")"
  cmp -s "$tmp/sudo-wrong-password.log" "$tmp/sudo-$kind.log" ||
    fail "sudo $kind looks different: $(diff "$tmp/sudo-wrong-password.log" "$tmp/sudo-$kind.log")"
done
echo "  all four failures: identical output" >&2

veilctl disable sudo 2>&1 | sed 's/^/    /' >&2
cmp -s "$tmp/before/sudo" /etc/pam.d/sudo || fail "veilctl disable did not restore /etc/pam.d/sudo byte for byte"
veilctl enable sudo >/dev/null 2>&1   # left enabled: removing the package must undo it

# ---------------------------------------------------------------- purge
say "purge: veil leaves the PAM stacks before the module goes"
kill "$sshd_pid"; wait "$sshd_pid" 2>/dev/null || true; sshd_pid=
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq veil >/dev/null
if alive "$veild_pid"; then fail "veild still runs after removal"; fi
wait "$veild_pid" 2>/dev/null || true; veild_pid=
for f in "$tmp"/before/common-* "$tmp/before/sudo"; do
  cmp -s "$f" "/etc/pam.d/${f##*/}" || fail "/etc/pam.d/${f##*/} differs after purge"
done
cmp -s /etc/pam.d/sshd "/etc/pam.d/$service" || fail "/etc/pam.d/$service not restored by removal"
diff -r "$tmp/before/var-lib-pam" /var/lib/pam >&2 || fail "/var/lib/pam differs after purge"
left=$(ls -d /etc/veil /var/lib/veil /run/veil /usr/sbin/veild /usr/sbin/veilctl \
  "/usr/lib/$triplet/security/pam_veil.so" /usr/share/pam-configs/veil \
  /usr/lib/systemd/system/veild.* /etc/systemd/system/*/veild.* \
  /var/lib/systemd/deb-systemd-helper-enabled/*veild* 2>/dev/null || true)
[ -z "$left" ] || fail "left after purge: $left"
getent passwd veil >/dev/null && fail "user veil left after purge"
getent group veil >/dev/null && fail "group veil left after purge"
grep -rl pam_veil /etc/pam.d && fail "pam_veil still named in /etc/pam.d"
echo "  common-*, sudo and $service byte-identical; no veil file, user or group left" >&2
# The sudo service works again on the system password path (no veil).
rm -f "/etc/pam.d/$service"

# ---------------------------------------------------------------- report
say "transcripts"
for t in ssh-success ssh-wrong-password ssh-unknown-user sudo-success sudo-wrong-password sudo-locked; do
  printf -- '--- %s (exit %s)\n' "$t" "$(cat "$tmp/$t.rc")"
  sed -e 's/\r$//' -e '$a\' "$tmp/$t.log"
done
printf -- '--- veild audit lines (the real reasons, for the admin only)\n'
grep -v '^$' "$tmp/veild.log" | tail -n 30
