"""Kernel modules for the test guest: find them, read their dependencies, order them.

The initramfs has no modprobe database, so /init loads a fixed list with
busybox insmod. That list must put every module after the modules it needs;
the needs are read from each module's ``.modinfo`` ELF section (``depends=``
and the ``pre:`` part of ``softdep=``), the same data modinfo(8) prints.
Modules are stored uncompressed because busybox insmod may not read .ko.xz.

Each insmod costs tens of milliseconds under TCG, so a module that only
drives PCI devices (every ``alias=`` is ``pci:``), and the libraries only such
modules need, carry the PCI vendor ids they match: /init skips them when no
such vendor is on the bus (a microvm has no PCI at all).
"""
from __future__ import annotations

import gzip
import lzma
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

_ELF_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_SECTION_HEADER = struct.Struct("<IIQQQQIIQQ")
_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")


def module_name(filename: str) -> str:
    """The name the kernel knows a module by: ``virtio-rng.ko.xz`` -> ``virtio_rng``."""
    base = filename.rsplit("/", 1)[-1]
    base = base[: base.index(".ko")] if ".ko" in base else base
    return base.replace("-", "_")


def read_module(path: Path) -> bytes:
    """The module's ELF bytes, decompressed if the package ships it compressed."""
    raw = path.read_bytes()
    name = path.name
    if name.endswith(".ko.xz"):
        return lzma.decompress(raw)
    if name.endswith(".ko.gz"):
        return gzip.decompress(raw)
    if name.endswith(".ko.zst"):
        raise ValueError(f"{path}: zstd-compressed modules are not supported "
                         "(Python has no zstd); use a kernel with .ko or .ko.xz modules")
    return raw


def modinfo(elf: bytes) -> dict[str, list[str]]:
    """The key=value pairs of an ELF64 module's ``.modinfo`` section."""
    if len(elf) < _ELF_HEADER.size or elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ValueError("not a little-endian 64-bit ELF file")
    fields = _ELF_HEADER.unpack_from(elf)
    shoff, shentsize, shnum, shstrndx = fields[6], fields[11], fields[12], fields[13]

    def section(index: int) -> tuple[int, int, int]:
        start = shoff + index * shentsize
        if start + _SECTION_HEADER.size > len(elf):
            raise ValueError("ELF section table runs past the end of the file")
        name, _type, _flags, _addr, offset, size, *_ = _SECTION_HEADER.unpack_from(elf, start)
        return name, offset, size

    _, names_off, names_size = section(shstrndx)
    names = elf[names_off:names_off + names_size]
    for index in range(shnum):
        name_off, offset, size = section(index)
        if names[name_off:names.find(b"\0", name_off)] == b".modinfo":
            info: dict[str, list[str]] = {}
            for item in elf[offset:offset + size].split(b"\0"):
                key, sep, value = item.decode(errors="replace").partition("=")
                if sep:
                    info.setdefault(key, []).append(value)
            return info
    return {}


@dataclass(frozen=True)
class Module:
    """One loadable module, uncompressed, with what it needs loaded first."""

    name: str
    data: bytes
    depends: tuple[str, ...]
    soft_pre: tuple[str, ...]
    pci_vendors: frozenset[str] | None = None  # None: not a PCI-only driver

    @classmethod
    def from_file(cls, path: Path) -> Module:
        return cls.from_elf(module_name(path.name), read_module(path))

    @classmethod
    def from_elf(cls, name: str, data: bytes) -> Module:
        info = modinfo(data)
        depends = tuple(module_name(dep) for value in info.get("depends", [])
                        for dep in value.split(",") if dep)
        soft_pre: list[str] = []
        for value in info.get("softdep", []):
            in_pre = False
            for word in value.split():
                if word.endswith(":"):
                    in_pre = word == "pre:"
                elif in_pre:
                    soft_pre.append(module_name(word))
        return cls(name, data, depends, tuple(soft_pre), pci_vendors(info.get("alias", [])))


def pci_vendors(aliases: Iterable[str]) -> frozenset[str] | None:
    """Lower-case PCI vendor ids (``*`` for any) if every alias is a PCI one, else None."""
    vendors: set[str] = set()
    for alias in aliases:
        if not alias.startswith("pci:v"):
            return None
        vendor = alias[5:].split("d", 1)[0]
        vendors.add("*" if "*" in vendor else vendor[-4:].lower())
    if "*" in vendors:
        return frozenset("*")
    return frozenset(vendors) if vendors else None


def index_modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every module file under ``root``."""
    return {module_name(path.name): path for path in sorted(root.rglob("*.ko*"))
            if path.name.endswith(_SUFFIXES)}


def builtin_names(modules_builtin: Path) -> frozenset[str]:
    """Names listed in a kernel's ``modules.builtin`` (compiled in, nothing to load)."""
    if not modules_builtin.exists():
        return frozenset()
    return frozenset(module_name(line.strip()) for line in
                     modules_builtin.read_text().splitlines() if line.strip())


@dataclass(frozen=True)
class LoadPlan:
    """Modules in an order insmod can load them, and why some wanted ones are left out."""

    modules: tuple[Module, ...]
    builtin: tuple[str, ...]
    missing: tuple[str, ...]
    # Module name -> PCI vendors one of which must be present to load it;
    # absent: always load.
    conditions: dict[str, frozenset[str]] = field(default_factory=dict)

    def lines(self) -> str:
        """The /etc/modules.load text: ``name file.ko vendors``.

        vendors is ``-`` (always load), ``any`` (any PCI device) or a comma
        list of vendor ids; words, not ``*``, so the shell cannot glob them.
        """
        def vendors(name: str) -> str:
            if name not in self.conditions:
                return "-"
            ids = self.conditions[name]
            return "any" if "*" in ids else ",".join(sorted(ids))
        return "".join(f"{m.name} {m.name}.ko {vendors(m.name)}\n" for m in self.modules)


def plan(wanted: Iterable[str], lookup: Callable[[str], Module | None],
         builtin: frozenset[str] = frozenset()) -> LoadPlan:
    """Order ``wanted`` and their dependencies, dependencies first.

    A wanted module that is not found (or needs one that is not found) is
    listed in ``missing`` with the reason and left out; soft dependencies
    that are not found are ignored, as modprobe does.
    """
    order: list[Module] = []
    done: set[str] = set()
    failed: dict[str, str] = {}
    builtins_seen: list[str] = []

    def visit(name: str, stack: tuple[str, ...], soft: bool) -> bool:
        if name in done or name in builtin:
            if name in builtin and name not in builtins_seen:
                builtins_seen.append(name)
            return True
        if name in failed:
            return False
        if name in stack:
            raise ValueError("module dependency cycle: " + " -> ".join(stack + (name,)))
        module = lookup(name)
        if module is None:
            if not soft:
                failed[name] = "not found"
            return False
        for dep in module.depends:
            if not visit(dep, stack + (name,), False):
                failed[name] = f"needs {dep} ({failed.get(dep, 'not found')})"
                return False
        for dep in module.soft_pre:
            visit(dep, stack + (name,), True)
        order.append(module)
        done.add(name)
        return True

    missing: list[str] = []
    roots: list[str] = []
    for name in wanted:
        name = module_name(name)
        if visit(name, (), False):
            roots.append(name)
        else:
            missing.append(f"{name}: {failed[name]}")
    return LoadPlan(tuple(order), tuple(builtins_seen), tuple(missing),
                    _conditions(order, roots))


def _conditions(order: list[Module], roots: list[str]) -> dict[str, frozenset[str]]:
    """PCI vendor conditions: a module inherits those of every wanted module needing it."""
    by_name = {m.name: m for m in order}
    vendors: dict[str, set[str]] = {}
    always: set[str] = set()
    for root in roots:
        if root not in by_name:  # built in
            continue
        own = by_name[root].pci_vendors
        stack, seen = [root], set()
        while stack:
            name = stack.pop()
            if name in seen or name not in by_name:
                continue
            seen.add(name)
            if own is None:
                always.add(name)
            else:
                vendors.setdefault(name, set()).update(own)
            stack.extend(by_name[name].depends + by_name[name].soft_pre)
    return {name: frozenset("*") if "*" in v else frozenset(v)
            for name, v in vendors.items() if name not in always}
