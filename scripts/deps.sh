#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages veil's build, tests or demo need,
# only those that are missing. Usage: scripts/deps.sh build|test|demo|package|nspawn
set -euo pipefail

# libpam-google-authenticator (test): its google-authenticator tool writes the
# files the import test reads.
# openssh-server (test): `veilctl enable sshd` runs the real `sshd -T`;
# with openssh-client and expect, factors_code.rs logs in through a real sshd.
# python3-paramiko (test): one_prompt_sshd.rs logs in by paramiko's password method.
# libcrypt-dev: veild links the system's libxcrypt ([password] source = "system").
# libssl-dev, pkg-config: TLS to a PostgreSQL store (postgres-openssl).
# libpwquality-dev: veild and veilctl link libpwquality (new passwords' quality).
# cracklib-runtime (test): the dictionary libpwquality's check reads (only
# recommended by libcrack2; without it every password fails that check).
# postgresql, openssl (test): the PostgreSQL tests start a throwaway cluster with
# its initdb, and one with a certificate made by openssl for the TLS test;
# ca-certificates: the system CAs the TLS test checks are not trusted.
# polkitd, pkexec, sudo (test): front_ends.rs runs the real setuid
# polkit-agent-helper-1, su and sudo as another user (setpriv: util-linux).
want=(libpam0g-dev libcrypt-dev libssl-dev libpwquality-dev pkg-config)
case "${1:-build}" in
  build) ;;
  demo) want+=(oathtool passwd cracklib-runtime) ;;
  test) want+=(cracklib-runtime oathtool argon2 libfaketime pamtester libpam-wrapper procps util-linux passwd libpam-google-authenticator openssh-server openssh-client expect python3-paramiko postgresql openssl ca-certificates polkitd pkexec sudo prometheus) ;;
  package) want+=(oathtool lintian openssh-server openssh-client sudo expect dpkg-dev systemd iproute2 python3-paramiko) ;;
  # packaging/nspawn-e2e.sh: Debian roots booted with systemd-nspawn.
  nspawn) want+=(debootstrap systemd-container debian-archive-keyring oathtool openssh-client expect dpkg-dev iproute2 procps util-linux python3) ;;
  *) echo "usage: $0 build|test|demo|package|nspawn" >&2; exit 2 ;;
esac

missing=()
for pkg in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "veil: installing missing packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "veil: please install as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
