"""QEMU is confined: an unprivileged user, seccomp, files as descriptors, nothing of the host by path.

Each claim is read from the host itself: /proc/PID/status of the real QEMU, the modes and owners of
the real files, and what a guest whose images only root can read does.
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
from pathlib import Path

import pytest

from tests.guest.build import GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml, fails, make_daemon, ok, qemu_pids_under

pytestmark = pytest.mark.integration

QEMU_USER = "pyvirt-qemu"


def status_of(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def private_copy(src: str, dest: Path) -> str:
    """A copy only root may read: QEMU must get it from the daemon, never open it itself."""
    shutil.copy(src, dest)
    os.chmod(dest, 0o600)
    return str(dest)


def mode_and_owner(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def test_qemu_runs_unprivileged_under_seccomp_on_root_only_files(daemon: DaemonHandle, guest: GuestImage,
                                                                  tmp_path: Path) -> None:
    secret = tmp_path / "private"
    secret.mkdir(mode=0o700)  # not even searchable by others
    kernel = private_copy(str(guest.kernel), secret / "vmlinuz")
    initrd = private_copy(str(guest.initrd), secret / "initrd.img")
    disk = secret / "disk.raw"
    disk.write_bytes(b"pyvirt-marker".ljust(1 << 20, b"\0"))
    os.chmod(disk, 0o600)
    before = {p: mode_and_owner(p) for p in (secret, Path(kernel), Path(initrd), disk)}
    xml = domain_xml("conf1", guest, extra_devices=(
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{disk}'/>"
        "<target dev='vda' bus='virtio'/></disk>"))
    xml = xml.replace(str(guest.kernel), kernel).replace(str(guest.initrd), initrd)
    (tmp_path / "conf1.xml").write_text(xml)
    ok(daemon, "define", str(tmp_path / "conf1.xml"))
    ok(daemon, "start", "conf1")
    try:
        daemon.wait_serial("conf1")  # it booted from files QEMU could not have opened itself
        code, out = daemon.guest_run("conf1", "head -c 13 /dev/vda")
        assert code == 0 and "pyvirt-marker" in out  # and it reads its disk
        [pid] = qemu_pids_under(daemon.root)
        st = status_of(pid)
        user = pwd.getpwnam(QEMU_USER)
        assert st["Uid"].split() == [str(user.pw_uid)] * 4  # real, effective, saved, filesystem
        assert st["Gid"].split() == [str(user.pw_gid)] * 4
        with_kvm = {str(grp.getgrnam("kvm").gr_gid)} if _has_group("kvm") else set()
        assert set(st["Groups"].split()) == with_kvm
        assert st["Seccomp"] == "2"  # filter mode: QEMU's -sandbox
        assert st["NoNewPrivs"] == "1"
        vm_dir = daemon.root / "run/pyvirt/qemu" / _uuid(daemon, "conf1")
        assert mode_and_owner(vm_dir) == (0o700, user.pw_uid, user.pw_gid)
        # what QEMU holds open: the daemon's descriptors, not paths of its own
        opened = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert str(disk) in opened and any(o.startswith("/memfd:vmlinuz") for o in opened)
    finally:
        ok(daemon, "destroy", "conf1")
    assert {p: mode_and_owner(p) for p in before} == before  # no owner or mode of a user's file changed
    assert not vm_dir.exists()
    ok(daemon, "undefine", "conf1")


def test_files_pyvirt_writes_are_private(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    (tmp_path / "conf2.xml").write_text(domain_xml("conf2", guest))
    ok(daemon, "define", str(tmp_path / "conf2.xml"))
    ok(daemon, "start", "conf2")
    try:
        daemon.wait_serial("conf2")
        root = daemon.root
        for path in (root / "var/lib/pyvirt/pyvirt.db", root / "var/log/pyvirt/pyvirtd.log",
                     root / "var/log/pyvirt/qemu/conf2.log", root / "var/log/pyvirt/qemu/conf2.serial.log",
                     root / "run/pyvirt/pyvirtd.sock"):
            mode, uid, _ = mode_and_owner(path)
            assert (mode, uid) == (0o600, 0), f"{path} is {mode:04o} owned by {uid}"
        for path in (root / "var/lib/pyvirt", root / "var/log/pyvirt", root / "var/log/pyvirt/qemu"):
            assert mode_and_owner(path)[0] & 0o077 == 0, f"{path} is readable by others"
        assert mode_and_owner(root / "run/pyvirt/qemu")[0] == 0o711  # the QEMU user only passes through
    finally:
        ok(daemon, "destroy", "conf2")
        ok(daemon, "undefine", "conf2")


@pytest.mark.parametrize(("device", "error"), [
    ("<emulator>/bin/sh</emulator>", "<emulator> '/bin/sh' is not a QEMU binary pyvirt runs"),
    ("<channel type='unix'><target type='virtio' name='../../escape'/></channel>",
     "channel name '../../escape' is not a plain file name"),
    ("<channel type='unix'><target type='virtio' name='a/b'/></channel>", "is not a plain file name"),
])
def test_definitions_cannot_run_or_reach_host_files(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path,
                                                    device: str, error: str) -> None:
    (tmp_path / "bad.xml").write_text(domain_xml("conf-bad", guest, extra_devices=device))
    assert error in fails(daemon, "define", str(tmp_path / "bad.xml"))
    assert "conf-bad" not in ok(daemon, "list", "--all", "--name")  # nothing stored


def test_a_host_without_seccomp_refuses_unless_the_sandbox_is_turned_off(caps_cache: Path, guest: GuestImage,
                                                                         tmp_path: Path) -> None:
    """The probe's verdict is replaced by a host without seccomp support (the real one has it)."""
    no_seccomp = tmp_path / "caps.json"
    caps = json.loads(caps_cache.read_text())
    caps["caps"]["has_sandbox"] = False
    no_seccomp.write_text(json.dumps(caps))
    d = make_daemon(no_seccomp)
    try:
        (tmp_path / "conf3.xml").write_text(domain_xml("conf3", guest))
        ok(d, "define", str(tmp_path / "conf3.xml"))
        err = fails(d, "start", "conf3")
        assert "this host's QEMU has no seccomp sandbox" in err and "sandbox = false" in err
        assert qemu_pids_under(d.root) == []
        settings = d.root / "etc/pyvirt/pyvirt.toml"
        settings.write_text(settings.read_text() + "sandbox = false\n")
        d.stop()
        d.start()
        ok(d, "start", "conf3")
        [pid] = qemu_pids_under(d.root)
        assert status_of(pid)["Seccomp"] == "0"  # the administrator's choice, and still unprivileged
        assert status_of(pid)["Uid"].split()[0] == str(pwd.getpwnam(QEMU_USER).pw_uid)
        ok(d, "destroy", "conf3")
    finally:
        d.cleanup()


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _uuid(d: DaemonHandle, name: str) -> str:
    return ok(d, "domuuid", name).strip()
