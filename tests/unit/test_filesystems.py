"""<filesystem> shares: virtiofs through the daemon's virtiofsd connection and shared memory; 9p refused at start."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvirt.config import Config, Paths, Settings
from pyvirt.daemon import virtiofs
from pyvirt.errors import HostError, InvalidArgument, UnsupportedConfig
from tests.unit.feature_xml import build, parse, round_trip, values

SHARED = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"
VIRTIOFS = ("<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='/srv/share'/>"
            "<target dir='share'/></filesystem>")


def test_virtiofs_share_on_shared_memfd_memory() -> None:
    d = round_trip(parse(VIRTIOFS, top=SHARED))
    args = build(d, fs_fds={0: 11}).argv
    assert values(args, "-object")[0] == ('{"qom-type":"memory-backend-memfd","id":"pc.ram","size":134217728,'
                                          '"share":true}')
    assert "memory-backend=pc.ram" in values(args, "-machine")[0]
    assert "socket,id=chr-vu-fs0,fd=11" in values(args, "-chardev")
    assert "vhost-user-fs-pci,id=fs0,chardev=chr-vu-fs0,tag=share" in values(args, "-device")


def test_virtiofs_needs_shared_memory_and_9p_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="access mode='shared'"):
        build(parse(VIRTIOFS), fs_fds={0: 11})
    ninep = parse(VIRTIOFS.replace("virtiofs", "path"), top=SHARED)
    with pytest.raises(UnsupportedConfig, match=r"9p share .* by path"):
        build(ninep)
    with pytest.raises(UnsupportedConfig, match="type='block'"):
        parse("<filesystem type='block'><source dev='/dev/sdb'/><target dir='x'/></filesystem>")
    with pytest.raises(InvalidArgument, match="mount tag"):
        parse(VIRTIOFS.replace("dir='share'", "dir='a,b'"))


def test_missing_virtiofsd_and_missing_directory_are_named(tmp_path: Path) -> None:
    config = Config(Paths(tmp_path), Settings(virtiofsd_binary=str(tmp_path / "none")))
    d = parse(VIRTIOFS, top=SHARED)
    assert "Debian package virtiofsd" in (virtiofs.missing(config, d) or "")
    with pytest.raises(HostError, match="virtiofsd"):
        virtiofs.Virtiofs.prepare(config, d)
    exe = tmp_path / "virtiofsd"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    config = Config(Paths(tmp_path), Settings(virtiofsd_binary=str(exe)))
    assert "does not exist" in (virtiofs.missing(config, d) or "")
    assert virtiofs.missing(config, parse("")) is None


def test_connection_pair_leaves_no_path(tmp_path: Path) -> None:
    (tmp_path / "run/pyvirt").mkdir(parents=True)
    config = Config(Paths(tmp_path), Settings(virtiofsd_binary="/bin/true"))
    share = tmp_path / "share"
    share.mkdir()
    d = parse(VIRTIOFS.replace("/srv/share", str(share)), top=SHARED)
    fs = virtiofs.Virtiofs.prepare(config, d)
    assert fs is not None and set(fs.qemu_fds) == {0} and set(fs.listen_fds) == {0}
    assert not any((tmp_path / "run/pyvirt").iterdir())  # the socket's path is gone again
    fds = [*fs.qemu_fds.values(), *fs.listen_fds.values()]
    fs.close()
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_virtiofsd_argv_for_both_versions() -> None:
    fs = parse(VIRTIOFS.replace("<target", "<readonly/><target"), top=SHARED).devices.filesystems[0]
    assert virtiofs.argv(virtiofs.LEGACY, 5, fs)[1:4] == ["--fd=5", "-o", "source=/srv/share"]
    assert virtiofs.argv("/usr/libexec/virtiofsd", 5, fs)[-1] == "--readonly"
