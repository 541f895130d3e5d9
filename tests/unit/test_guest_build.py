"""The test guest's builder: cpio writer, module ordering, PVH extraction, cache key.

No downloads and no QEMU here; the ELF files are made by ``_elf`` below.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import json
import lzma
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.guest import build as guest_build
from tests.guest import cpio, kernel, kmod


def _elf(sections: dict[str, bytes] | None = None,
         notes: list[tuple[bytes, int, bytes]] | None = None) -> bytes:
    """A minimal little-endian ELF64 file with the given sections and PT_NOTE notes."""
    sections = dict(sections or {})
    note_blob = b""
    for name, note_type, desc in notes or []:
        note_blob += struct.pack("<III", len(name), len(desc), note_type)
        note_blob += name + b"\0" * (-len(name) % 4) + desc + b"\0" * (-len(desc) % 4)
    names = [""] + list(sections) + [".shstrtab"]
    shstrtab = b"\0".join(n.encode() for n in names) + b"\0"
    datas = [b""] + list(sections.values()) + [shstrtab]
    phnum = 1 if notes else 0
    offset = 64 + 56 * phnum
    body = b""
    note_off = offset
    body += note_blob
    offsets = []
    for data in datas:
        offsets.append(offset + len(body))
        body += data
    shoff = offset + len(body)
    name_offsets, pos = [], 0
    for n in names:
        name_offsets.append(pos)
        pos += len(n.encode()) + 1
    shdrs = b"".join(struct.pack("<IIQQQQIIQQ", name_offsets[i], 1 if i else 0, 0, 0,
                                 offsets[i], len(datas[i]), 0, 0, 1, 0)
                     for i in range(len(names)))
    ident = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    header = struct.pack("<16sHHIQQQIHHHHHH", ident, 1, 62, 1, 0, 64 if phnum else 0,
                         shoff, 0, 64, 56, phnum, 64, len(names), len(names) - 1)
    phdr = (struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(note_blob), len(note_blob), 4)
            if phnum else b"")
    return header + phdr + body + shdrs


def _modinfo_section(**fields: str | list[str]) -> bytes:
    items = []
    for key, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            items.append(f"{key}={v}".encode())
    return b"\0".join(items) + b"\0"


def _module(name: str, depends: str = "", aliases: list[str] | None = None,
            softdep: str | None = None) -> kmod.Module:
    fields: dict[str, str | list[str]] = {"depends": depends, "alias": aliases or []}
    if softdep:
        fields["softdep"] = softdep
    return kmod.Module.from_elf(name, _elf({".modinfo": _modinfo_section(**fields)}))


# --- cpio ---------------------------------------------------------------------------

def _archive() -> bytes:
    out = io.BytesIO()
    writer = cpio.NewcWriter(out)
    writer.add_dir("bin")
    writer.add_file("bin/hello", b"hello world\n", 0o755)
    writer.add_symlink("bin/sh", "/bin/busybox")
    writer.add_char_device("dev/console", 5, 1)
    writer.close()
    return out.getvalue()


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio(1) is not installed")
def test_cpio_archive_is_read_by_gnu_cpio() -> None:
    data = _archive()
    listing = subprocess.run(["cpio", "-itv", "--quiet"], input=data, capture_output=True,
                             check=True).stdout.decode().splitlines()
    kinds = {line.split()[-1] if "->" not in line else line.split()[-3]: line[0]
             for line in listing}
    assert kinds == {"bin": "d", "bin/hello": "-", "bin/sh": "l", "dev/console": "c"}
    console = next(line for line in listing if line.endswith("dev/console"))
    assert console.split()[4:6] == ["5,", "1"]  # major, minor
    assert all(line.split()[2:4] == ["root", "root"] for line in listing)
    content = subprocess.run(["cpio", "-i", "--quiet", "--to-stdout", "bin/hello"], input=data,
                             capture_output=True, check=True).stdout
    assert content == b"hello world\n"


def test_cpio_is_deterministic_aligned_and_ends_with_trailer() -> None:
    first, second = _archive(), _archive()
    assert first == second
    assert len(first) % 4 == 0
    assert b"TRAILER!!!\0" in first[-128:]


def test_cpio_rejects_duplicates_and_late_entries() -> None:
    writer = cpio.NewcWriter(io.BytesIO())
    writer.add_dir("etc")
    with pytest.raises(ValueError, match="added twice"):
        writer.add_dir("/etc/")
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.add_file("etc/x", b"")


# --- modules ------------------------------------------------------------------------

@pytest.mark.parametrize(("filename", "name"), [
    ("virtio-rng.ko.xz", "virtio_rng"), ("8139too.ko", "8139too"),
    ("kernel/drivers/scsi/sd_mod.ko.gz", "sd_mod"), ("t10-pi", "t10_pi"),
])
def test_module_name(filename: str, name: str) -> None:
    assert kmod.module_name(filename) == name


def test_modinfo_reads_depends_and_repeated_keys() -> None:
    elf = _elf({".text": b"\x90" * 7,
                ".modinfo": _modinfo_section(depends="virtio,virtio_ring",
                                             alias=["pci:v00001AF4d*", "pci:v00008086d1000*"])})
    info = kmod.modinfo(elf)
    assert info["depends"] == ["virtio,virtio_ring"]
    assert info["alias"] == ["pci:v00001AF4d*", "pci:v00008086d1000*"]
    assert kmod.modinfo(_elf({".text": b""})) == {}
    with pytest.raises(ValueError, match="ELF"):
        kmod.modinfo(b"MZ not an elf at all" * 4)


@pytest.mark.parametrize("suffix", [".ko", ".ko.xz", ".ko.gz"])
def test_module_from_file_decompresses(tmp_path: Path, suffix: str) -> None:
    elf = _elf({".modinfo": _modinfo_section(depends="mii", softdep="pre: crc32c post: x",
                                             alias="pci:v000010ECd00008139sv*")})
    packed = {".ko": elf, ".ko.xz": lzma.compress(elf, format=lzma.FORMAT_XZ),
              ".ko.gz": gzip.compress(elf)}[suffix]
    path = tmp_path / f"8139-too{suffix}"
    path.write_bytes(packed)
    module = kmod.Module.from_file(path)
    assert module.name == "8139_too"
    assert module.data == elf
    assert module.depends == ("mii",)
    assert module.soft_pre == ("crc32c",)
    assert module.pci_vendors == frozenset({"10ec"})


def test_zstd_modules_are_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "x.ko.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(ValueError, match="zstd"):
        kmod.read_module(path)


@pytest.mark.parametrize(("aliases", "vendors"), [
    ([], None),
    (["pci:v00008086d0000100Esv*sd*bc*sc*i*"], frozenset({"8086"})),
    (["pci:v*d*sv*sd*bc01sc06i01*", "pci:v00001002d*"], frozenset({"*"})),
    (["pci:v00001AF4d*", "acpi*:LNRO0005:*"], None),
])
def test_pci_vendors(aliases: list[str], vendors: frozenset[str] | None) -> None:
    assert kmod.pci_vendors(aliases) == vendors


def test_plan_orders_dependencies_first_and_reports_missing() -> None:
    modules = {
        "virtio_ring": _module("virtio_ring"),
        "virtio": _module("virtio"),
        "virtio_net": _module("virtio_net", "virtio_ring,virtio,net-failover",
                              ["virtio:d00000001v*"]),
        "net_failover": _module("net_failover", "failover"),
        "failover": _module("failover"),
        "mii": _module("mii"),
        "8139too": _module("8139too", "mii", ["pci:v000010ECd00008139sv*"]),
        "e1000": _module("e1000", "", ["pci:v00008086d0000100Esv*"], softdep="pre: absent"),
        "broken": _module("broken", "nowhere"),
    }
    plan = kmod.plan(["virtio_net", "8139too", "e1000", "gone", "broken", "unix"],
                     modules.get, frozenset({"unix"}))
    names = [m.name for m in plan.modules]
    assert names == ["virtio_ring", "virtio", "failover", "net_failover", "virtio_net",
                     "mii", "8139too", "e1000"]
    assert plan.missing == ("gone: not found", "broken: needs nowhere (not found)")
    assert plan.builtin == ("unix",)
    assert plan.conditions == {"mii": frozenset({"10ec"}), "8139too": frozenset({"10ec"}),
                               "e1000": frozenset({"8086"})}
    lines = plan.lines().splitlines()
    assert lines[0] == "virtio_ring virtio_ring.ko -"
    assert "mii mii.ko 10ec" in lines


def test_plan_shared_dependency_of_an_always_module_is_always_loaded() -> None:
    modules = {"libata": _module("libata"),
               "ahci": _module("ahci", "libata", ["pci:v*d*sv*sd*bc01sc06i01*"]),
               "pata_acpi": _module("pata_acpi", "libata", ["acpi*:PNP0A03:*"])}
    plan = kmod.plan(["ahci", "pata_acpi"], modules.get)
    assert plan.conditions == {"ahci": frozenset({"*"})}
    assert plan.lines() == "libata libata.ko -\nahci ahci.ko any\npata_acpi pata_acpi.ko -\n"


def test_plan_refuses_a_dependency_cycle() -> None:
    modules = {"a": _module("a", "b"), "b": _module("b", "a")}
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        kmod.plan(["a"], modules.get)


# --- PVH kernel ---------------------------------------------------------------------

def test_pvh_elf_found_behind_a_bzimage_style_prefix() -> None:
    elf = _elf({".text": b"\x90" * 64}, [(b"GNU\0", 3, b"x" * 20), (b"Xen\0", 18, b"\0" * 4)])
    assert kernel.has_pvh_entry(elf)
    bz = b"MZ" + b"\0" * 1000 + b"\xfd7zXZ\x00 fake" + lzma.compress(elf, format=lzma.FORMAT_XZ)
    assert kernel.pvh_elf(bz + b"trailing junk") == elf
    assert kernel.pvh_elf(b"MZ" + b"\0" * 100 + gzip.compress(elf) + b"junk") == elf


def test_pvh_elf_none_without_the_xen_entry_note() -> None:
    elf = _elf({".text": b""}, [(b"Xen\0", 17, b"\0" * 4)])
    assert not kernel.has_pvh_entry(elf)
    assert kernel.pvh_elf(lzma.compress(elf, format=lzma.FORMAT_XZ)) is None
    assert kernel.pvh_elf(b"no kernel here") is None


# --- cache --------------------------------------------------------------------------

INPUTS = guest_build.Inputs("linux-image-6.1.0-1-amd64",
                            "linux-image-6.1.0-1-amd64_6.1.1-1_amd64.deb", "1:1.35.0-4", "")


def test_input_key_follows_the_kernel_and_busybox_versions() -> None:
    key = guest_build.input_key(INPUTS)
    assert key == guest_build.input_key(INPUTS)
    newer = dataclasses.replace(INPUTS, kernel_deb="linux-image-6.1.0-1-amd64_6.1.2-1_amd64.deb")
    assert guest_build.input_key(newer) != key
    assert guest_build.input_key(dataclasses.replace(INPUTS, busybox_version="1:1.36")) != key


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(guest_build.CACHE_ENV, raising=False)
    assert guest_build.cache_dir() == guest_build.DEFAULT_CACHE
    monkeypatch.setenv(guest_build.CACHE_ENV, str(tmp_path / "env"))
    assert guest_build.cache_dir() == tmp_path / "env"
    assert guest_build.cache_dir(tmp_path / "out") == tmp_path / "out"


def test_cached_image_used_only_when_key_and_files_match(tmp_path: Path) -> None:
    for name in ("vmlinux", "vmlinuz", "initrd.img"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "stamp.json").write_text(json.dumps({"key": "k1", "pvh": True}))
    image = guest_build._current(tmp_path, "k1")
    assert image == guest_build.GuestImage(tmp_path / "vmlinux", tmp_path / "initrd.img",
                                           bzimage=tmp_path / "vmlinuz")
    assert image.cmdline == guest_build.DEFAULT_CMDLINE and "console=ttyS0" in image.cmdline
    assert guest_build._current(tmp_path, "k2") is None
    (tmp_path / "vmlinux").unlink()
    assert guest_build._current(tmp_path, "k1") is None


@pytest.mark.parametrize("script", sorted(p for p in guest_build.ROOTFS.rglob("*") if p.is_file()),
                         ids=lambda p: str(p.relative_to(guest_build.ROOTFS)))
def test_rootfs_scripts_parse_and_are_executable(script: Path) -> None:
    shell = shutil.which("busybox") or "sh"
    argv = [shell, "sh", "-n", str(script)] if shell.endswith("busybox") else [shell, "-n", str(script)]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert script.read_bytes().startswith(b"#!/bin/sh\n")
