"""import-libvirt's reading of libvirt's directory, domxml-to-native's layout and its planned descriptors
(the daemon parts run in tests/integration/test_xml_corpus.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.cli.libvirt_cmds import argv_lines
from pyvirt.client.libvirt_import import scan
from pyvirt.daemon.hostfiles import PlannedFiles, open_host_files
from pyvirt.daemon.native import FIRST_FD, planned_nic_fds
from pyvirt.model.domain_xml import parse_domain_xml
from tests.xml_corpus import CORPUS


def test_scan_finds_each_kind_in_import_order_with_autostart(tmp_path: Path) -> None:
    for sub in ("qemu/autostart", "qemu/networks/autostart", "storage/autostart"):
        (tmp_path / sub).mkdir(parents=True)
    for rel in ("qemu/web.xml", "qemu/db.xml", "qemu/networks/default.xml", "storage/images.xml"):
        (tmp_path / rel).write_text("<x/>")
    (tmp_path / "qemu/notes.txt").write_text("not a definition")
    (tmp_path / "qemu/autostart/web.xml").symlink_to(tmp_path / "qemu/web.xml")
    (tmp_path / "qemu/networks/autostart/default.xml").symlink_to("/nonexistent/dangling")  # a link is enough
    found = [(f.kind, f.name, f.autostart) for f in scan(tmp_path)]
    assert found == [("network", "default", True), ("pool", "images", False), ("domain", "db", False),
                     ("domain", "web", True)]


def test_scan_of_a_missing_directory_says_which(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no libvirt configuration directory at .*nope; give the right one"):
        scan(tmp_path / "nope")
    assert scan(tmp_path) == []  # a directory without qemu/ or storage/: nothing to import


def test_argv_lines_are_virsh_layout() -> None:
    text = argv_lines({"LC_ALL": "C"}, ["/usr/bin/qemu-system-x86_64", "-name", "guest=a b", "-S", "-m", "128"])
    assert text == "LC_ALL=C \\\n/usr/bin/qemu-system-x86_64 \\\n-name 'guest=a b' \\\n-S \\\n-m 128\n"


def test_planned_files_open_nothing_and_number_from_first_fd(tmp_path: Path) -> None:
    xml = (CORPUS / "many-devices-linux.xml").read_text().replace("/tmp/pyvirt-corpus", str(tmp_path / "absent"))
    domain = parse_domain_xml(xml)
    files = open_host_files(domain, str(tmp_path / "absent/serial.log"), PlannedFiles(FIRST_FD))
    assert not (tmp_path / "absent").exists()
    assert [a.fd for a in files.add_fds] == list(range(FIRST_FD, FIRST_FD + len(files.add_fds)))
    assert files.paths[str(tmp_path / "absent/disk.qcow2")] == "/dev/fdset/1"
    files.close()  # nothing to close: nothing was opened


def test_planned_nic_fds_skip_user_networking() -> None:
    xml = (CORPUS / "many-devices-linux.xml").read_text()
    domain = parse_domain_xml(xml)
    fds, nxt = planned_nic_fds(domain, FIRST_FD)
    assert fds == {} and nxt == FIRST_FD  # its one NIC is type='user'
    bridge = '<interface type="bridge"><source bridge="br0"/>'
    bridged = parse_domain_xml(xml.replace('<interface type="user">', bridge))
    fds, nxt = planned_nic_fds(bridged, FIRST_FD)
    assert fds[0].taps == (FIRST_FD,) and nxt == FIRST_FD + 1
