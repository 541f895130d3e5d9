#!/usr/bin/env bash
# The main job: set up, start pyvirtd if it is not running, build the tiny guest,
# define and start a VM from it on the `default` NAT network, show its serial
# console up to the ready line and its DHCP address, list it, show its info,
# shut it down through ACPI and undefine it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BIN=$PWD/.venv/bin
export PATH="$BIN:$PATH"

mapfile -t GUEST < <("$BIN/python" -m tests.guest.build)
KERNEL=${GUEST[0]}; INITRD=${GUEST[1]}

if ! pyvirt -q version >/dev/null 2>&1; then
  echo "demo: starting pyvirtd (logs in /var/log/pyvirt/pyvirtd.log)"
  pyvirtd --detach
  for _ in $(seq 100); do [ -S /run/pyvirt/pyvirtd.sock ] && break; sleep 0.1; done
fi

# `default` autostarts once per host boot; start it if someone stopped it since
if ! pyvirt net-info default 2>/dev/null | grep -q '^Active: *yes'; then
  pyvirt net-start default
fi

XML=$(mktemp --suffix=.xml)
trap 'rm -f "$XML"' EXIT
cat > "$XML" <<XMLEOF
<domain type='qemu'>
  <name>demo</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$KERNEL</kernel>
    <initrd>$INITRD</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 tsc_early_khz=2000000</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <cpu mode='host-passthrough'/>
  <devices>
    <interface type='network'><source network='default'/><model type='virtio'/></interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
XMLEOF

if pyvirt domstate demo >/dev/null 2>&1; then
  pyvirt destroy demo >/dev/null 2>&1 || true
  pyvirt undefine demo >/dev/null
fi
LOG=/var/log/pyvirt/qemu/demo.serial.log
SIZE=$(stat -c %s "$LOG" 2>/dev/null || echo 0)
set -x
pyvirt define "$XML"
pyvirt start demo
set +x
echo "--- serial console of 'demo' until the guest is ready ---"
timeout 120 bash -c "until tail -c +$((SIZE + 1)) '$LOG' 2>/dev/null | grep -q PYVIRT-GUEST-READY; do sleep 0.2; done"
tail -c +$((SIZE + 1)) "$LOG" | sed -n '1,/PYVIRT-GUEST-READY/p' | tail -n 25
echo "--- end of console ---"
# the guest asks DHCP on the `default` NAT network (virbr0, dnsmasq, nftables), as under libvirt
timeout 60 bash -c "until tail -c +$((SIZE + 1)) '$LOG' 2>/dev/null | grep -q PYVIRT-GUEST-LEASE; do sleep 0.2; done"
set -x
pyvirt net-list --all
pyvirt domifaddr demo
pyvirt list --all
pyvirt dominfo demo
pyvirt shutdown demo --timeout 60
pyvirt domstate --reason demo
pyvirt undefine demo
