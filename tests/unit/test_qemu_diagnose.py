"""QEMU's start-up messages: its reason picked out of the log, the hint for each known one, one error shape."""
from __future__ import annotations

import pytest

from pyvirt.errors import QemuError
from pyvirt.model.domain_xml import parse_domain_xml
from pyvirt.qemu.diagnose import exit_text, hint, reason, start_error

FORMAT_LINE = ('2026-12-03T14:13:06.572907Z qemu-system-x86_64: -blockdev {"node-name":"libvirt-2-format",'
               '"read-only":false,"driver":"qcow2","file":"libvirt-2-storage"}: Image is not in qcow2 format')
CPU_LINE = "2026-12-03T14:13:06.699570Z qemu-system-x86_64: Property 'Nehalem-IBRS-x86_64-cpu.bogusflag' not found"

TWO_DISKS = """<domain type='qemu'><name>two</name><memory>65536</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/images/a.img'/>
      <target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/images/b.img'/>
      <target dev='vdb' bus='virtio'/></disk>
  </devices></domain>"""


def test_reason_is_the_last_line_that_is_not_a_warning_without_the_timestamp() -> None:
    tail = f"qemu-system-x86_64: warning: host doesn't support requested feature\n{CPU_LINE}\n"
    assert reason(tail) == "qemu-system-x86_64: Property 'Nehalem-IBRS-x86_64-cpu.bogusflag' not found"
    assert reason("qemu-system-x86_64: warning: only this\n\n") == "qemu-system-x86_64: warning: only this"
    assert reason("") == ""


def test_format_mismatch_names_the_disk_by_its_node() -> None:
    domain = parse_domain_xml(TWO_DISKS)
    said = hint(FORMAT_LINE, domain)
    assert said is not None
    assert said.startswith("disk vdb: /images/b.img is not a qcow2 image, as its <driver type='qcow2'/> says")
    assert "set <driver type='raw'/>" in said and "`qemu-img info /images/b.img`" in said
    generic = hint(FORMAT_LINE)  # without the domain: still what to do
    assert generic is not None and "<driver type='raw'/>" in generic


@pytest.mark.parametrize(("line", "words"), [
    (CPU_LINE, ["no feature 'bogusflag'", "<feature name='bogusflag'/>", "Nehalem-IBRS"]),
    ("qemu-system-x86_64: -chardev socket,id=c,path=/x: UNIX socket path '/x' is too long", ["--root", "107"]),
    ('qemu-system-x86_64: -blockdev {...}: Failed to get "write" lock', ["<shareable/>"]),
    ("qemu-system-x86_64: -blockdev {...}: Could not open '/images/a.img': Permission denied", ["/images/a.img"]),
    ("qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory", ["<memory>"]),
    ("qemu-system-x86_64: Could not access KVM kernel module: No such file or directory", ["<domain type='qemu'>"]),
])
def test_known_messages_get_a_hint(line: str, words: list[str]) -> None:
    said = hint(line)
    assert said is not None
    for word in words:
        assert word in said


def test_an_unknown_message_gets_no_hint() -> None:
    assert hint("qemu-system-x86_64: something nobody has seen before") is None


def test_exit_text() -> None:
    assert exit_text(1) == "exit status 1"
    assert exit_text(-9) == "killed by SIGKILL"
    assert exit_text(None) == "exit status unknown"


def test_start_error_of_a_qemu_that_exited() -> None:
    domain = parse_domain_xml(TWO_DISKS)
    tail = f"some earlier line\n{FORMAT_LINE}"
    err = start_error(when="during the QMP handshake", tail=tail, log_path="/var/log/pyvirt/qemu/two.log",
                      domain=domain, status=1)
    assert isinstance(err, QemuError) and err.code == "qemu-error"
    assert err.message.startswith(
        "cannot start domain 'two': QEMU failed to start (exit status 1) during the QMP handshake: "
        'qemu-system-x86_64: -blockdev {"node-name":"libvirt-2-format"')
    assert "Image is not in qcow2 format; disk vdb: " in err.message
    assert err.message.endswith("(QEMU's output is below and in /var/log/pyvirt/qemu/two.log)")
    assert err.detail == tail


def test_start_error_of_a_qemu_that_was_killed() -> None:
    err = start_error(when="before opening its monitor", tail="", log_path="/l.log", exited=False,
                      cause="it did not open its QMP socket /q within 1 s")
    assert err.message == ("QEMU failed to start before opening its monitor: it did not open its QMP socket /q "
                           "within 1 s; it was killed (see /l.log)")
    assert err.detail is None
