"""The per-boot cache of host capabilities, driven by a small fake QEMU (a shell script).

The fake answers the seven help questions with captured-looking text and logs
every call, so the tests can tell a cache hit (no call) from a probe.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pyvirt.config import Paths
from pyvirt.errors import HostError, QemuError
from pyvirt.host.probe import CACHE_NAME, cache_key, load_or_probe, read_boot_id, read_cache, write_cache

FAKE_QEMU = r"""#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls.log"
case "$1 $2" in
  "--version ") echo "QEMU emulator version 7.2.22 (fake)";;
  "-machine help") printf 'Supported machines are:\npc                   Standard PC (alias of pc-i440fx-7.2)\n'
                   printf 'pc-i440fx-7.2        Standard PC (default)\n';;
  "-accel help") printf 'Accelerators supported in QEMU binary:\ntcg\n';;
  "-cpu help") printf 'Available CPUs:\nx86 qemu64                QEMU Virtual CPU version 2.5+\n';;
  "-device help") printf 'Network devices:\nname "virtio-net-pci", bus PCI, alias "virtio-net"\n';;
  "-spice help") echo "fake: There is no option group 'spice'" >&2; exit 1;;
  "-sandbox help") echo "fake: -sandbox support is not enabled in this QEMU binary" >&2; exit 1;;
  *) echo "fake qemu cannot boot guests: $*" >&2; exit 1;;
esac
"""


@pytest.fixture
def fake_qemu(tmp_path: Path) -> Path:
    binary = tmp_path / "bin" / "qemu-system-x86_64"
    binary.parent.mkdir()
    binary.write_text(FAKE_QEMU)
    binary.chmod(0o755)
    return binary


def help_calls(binary: Path) -> list[str]:
    """Help queries the fake answered (the KVM probe's boot attempt is left out)."""
    log = binary.parent / "calls.log"
    if not log.exists():
        return []
    return [ln for ln in log.read_text().splitlines() if not ln.startswith("-accel kvm")]


def test_probe_then_cache_hit(tmp_path: Path, fake_qemu: Path) -> None:
    paths = Paths(tmp_path / "root")
    caps = load_or_probe(paths, str(fake_qemu), kvm_timeout=1.0)
    assert caps.qemu_version == "7.2.22"
    assert caps.accelerators == ("tcg",) and caps.accel == "tcg"
    assert not caps.has_spice and not caps.has_sandbox
    assert caps.machine("pc") is not None
    assert not caps.kvm.usable
    assert len(help_calls(fake_qemu)) == 7
    cache = paths.cache / CACHE_NAME
    doc = json.loads(cache.read_text())
    assert doc["key"]["boot_id"] == read_boot_id()
    assert doc["key"]["qemu_binary"] == str(fake_qemu)

    again = load_or_probe(paths, str(fake_qemu), kvm_timeout=1.0)
    assert again == caps
    assert len(help_calls(fake_qemu)) == 7  # served from the cache
    assert sorted(p.name for p in paths.cache.iterdir()) == [CACHE_NAME]  # no temp file left


def test_refresh_and_changed_binary_probe_again(tmp_path: Path, fake_qemu: Path) -> None:
    paths = Paths(tmp_path / "root")
    load_or_probe(paths, str(fake_qemu), kvm_timeout=1.0)
    load_or_probe(paths, str(fake_qemu), kvm_timeout=1.0, refresh=True)
    assert len(help_calls(fake_qemu)) == 14
    with fake_qemu.open("a") as f:  # an upgraded binary: new size and mtime
        f.write("# upgraded\n")
    load_or_probe(paths, str(fake_qemu), kvm_timeout=1.0)
    assert len(help_calls(fake_qemu)) == 21
    load_or_probe(paths, str(fake_qemu), kvm_timeout=1.0)
    assert len(help_calls(fake_qemu)) == 21


def test_damaged_cache_is_reprobed(tmp_path: Path, fake_qemu: Path) -> None:
    paths = Paths(tmp_path / "root")
    paths.cache.mkdir(parents=True)
    (paths.cache / CACHE_NAME).write_text('{"key": ')
    caps = load_or_probe(paths, str(fake_qemu), kvm_timeout=1.0)
    assert caps.qemu_version == "7.2.22"
    assert len(help_calls(fake_qemu)) == 7
    assert json.loads((paths.cache / CACHE_NAME).read_text())["caps"]["qemu_version"] == "7.2.22"


def test_cache_key_depends_on_boot_binary_and_timeout(tmp_path: Path, fake_qemu: Path) -> None:
    paths = Paths(tmp_path / "root")
    caps = load_or_probe(paths, str(fake_qemu), kvm_timeout=1.0)
    key = cache_key(str(fake_qemu), boot_id="boot-a", kvm_timeout=1.0)
    assert key == cache_key(str(fake_qemu), boot_id="boot-a", kvm_timeout=1.0)
    assert key != cache_key(str(fake_qemu), boot_id="boot-b", kvm_timeout=1.0)
    assert key != cache_key(str(fake_qemu), boot_id="boot-a", kvm_timeout=5.0)
    st = os.stat(fake_qemu)
    os.utime(fake_qemu, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert key != cache_key(str(fake_qemu), boot_id="boot-a", kvm_timeout=1.0)

    path = tmp_path / "c.json"
    write_cache(path, key, caps)
    assert read_cache(path, key) == caps
    assert read_cache(path, {**key, "boot_id": "boot-b"}) is None
    assert read_cache(tmp_path / "missing.json", key) is None


def test_missing_binary_is_host_error(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="not found"):
        load_or_probe(Paths(tmp_path), str(tmp_path / "no-such-qemu"))


def test_broken_binary_is_qemu_error(tmp_path: Path) -> None:
    binary = tmp_path / "qemu-broken"
    binary.write_text("#!/bin/sh\necho 'qemu: cannot load modules' >&2\nexit 3\n")
    binary.chmod(0o755)
    with pytest.raises(QemuError, match="status 3") as info:
        load_or_probe(Paths(tmp_path), str(binary), kvm_timeout=0.5)
    assert info.value.detail == "qemu: cannot load modules"
    assert not (Paths(tmp_path).cache / CACHE_NAME).exists()
