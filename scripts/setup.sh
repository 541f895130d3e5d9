#!/usr/bin/env bash
# Install what pyvirt needs on a fresh Debian 12 machine: Debian packages and the virtualenv.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(qemu-system-x86 qemu-utils busybox-static cpio kmod python3-venv python3-pip ca-certificates
          nftables dnsmasq-base iproute2 iperf3 lvm2 e2fsprogs parted tmux openssh-server openssh-client
          swtpm swtpm-tools)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# QEMU runs as this unprivileged user (pyvirtd also creates it at its first start if missing)
if ! getent passwd pyvirt-qemu >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "pyvirt QEMU guests" pyvirt-qemu
fi

# Debian's own python3 starts in ~13 ms (pyenv shims take ~110 ms): the CLI's latency depends on it.
PY=/usr/bin/python3
stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: creating the virtualenv in .venv"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi

# Bytecode for every module, as a packaged (non-editable) install has: with PYTHONDONTWRITEBYTECODE set
# (as in some shells and CI) an editable install would compile each module it imports on every command,
# 20-100 ms of every `pyvirt` call. Stale files are recompiled in memory by Python, so this is always safe.
.venv/bin/python -m compileall -q src >/dev/null
