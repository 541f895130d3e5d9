"""Real-world XML as virt-install writes it defines and starts (metadata, controllers,
addresses, channels, spice + vnc, ich9 sound, redirdev, rng, watchdog, panic...)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import DaemonHandle, qemu_pids_under

pytestmark = pytest.mark.integration

FULL = Path(__file__).resolve().parents[1] / "unit/data/domain_xml/q35_full.xml"


def _network_interface_removed(xml: str) -> str:
    # <interface type='network'> needs virtual networks (their own issue): keep the user NIC only
    return re.sub(r'<interface type="network">.*?</interface>', "", xml, flags=re.S)


def test_full_virt_install_domain_starts(daemon: DaemonHandle, tmp_path: Path) -> None:
    disk = tmp_path / "web1.qcow2"
    iso = tmp_path / "install.iso"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(iso), "1M"], check=True)
    xml = FULL.read_text().replace("/var/lib/pyvirt/images/web1.qcow2", str(disk))
    xml = xml.replace("/var/lib/pyvirt/images/debian-12.iso", str(iso))
    xml = _network_interface_removed(xml)
    kvm_xml = tmp_path / "kvm.xml"
    kvm_xml.write_text(xml)
    daemon.cli("define", str(kvm_xml), check=True)
    name = re.search(r"<name>(.*?)</name>", xml).group(1)  # type: ignore[union-attr]
    try:
        r = daemon.cli("start", name)
        conn = daemon.connect()
        kvm_ok = conn.host_info()["kvm_usable"]
        conn.close()
        if not kvm_ok:
            # type='kvm' on a host whose KVM hangs guests: refused with the way out
            assert r.returncode == 1 and "type='qemu'" in r.stderr, r.stderr
            qemu_xml = tmp_path / "qemu.xml"
            qemu_xml.write_text(xml.replace('<domain type="kvm">', '<domain type="qemu">'))
            daemon.cli("define", str(qemu_xml), check=True)
            r = daemon.cli("start", name)
        assert r.returncode == 0, r.stderr
        assert daemon.cli("domstate", name, check=True).stdout.strip() == "running"
        live = daemon.cli("dumpxml", name, check=True).stdout
        assert "libosinfo" in live and "org.qemu.guest_agent.0" in live and "ich9" in live
        info = daemon.cli("dominfo", name, check=True).stdout
        assert re.search(r"^CPU\(s\):\s+\d+$", info, re.M), info
        log = (daemon.root / f"var/log/pyvirt/qemu/{name}.log").read_text()
        assert "-blockdev" in log and "ich9-intel-hda" in log
        daemon.cli("destroy", name, check=True)
        assert not qemu_pids_under(daemon.root)
    finally:
        daemon.cli("destroy", name)
        daemon.cli("undefine", name)
