"""Probe the host and its QEMU binary, and cache the answer for the rest of the boot.

QEMU answers each ``-X help`` question and then exits, so every question costs
one process spawn (about 10-20 ms each). We ask the seven we need all at once
from a thread pool, next to the KVM boot probe, so the whole probe takes as
long as its slowest part: the KVM probe's timeout on a host where KVM hangs,
some 30-60 ms elsewhere. The parsers are pure functions of QEMU's text.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..children import die_with_parent
from ..config import Paths
from ..errors import HostError, PyvirtError, QemuError
from .caps import CAPS_FORMAT, CpuTopology, HostCapabilities, KvmStatus, MachineType
from .kvm_probe import probe_kvm

CACHE_NAME = "host-caps.json"
QUERY_TIMEOUT = 10.0  # seconds for one ``-X help`` spawn; they take ~20 ms

# -- parsers of QEMU's help texts (pure) ---------------------------------------

_VERSION_RE = re.compile(r"version (\d+)\.(\d+)(?:\.(\d+))?")
_MACHINE_RE = re.compile(r"^(\S+)\s+(.*?)\s*$")
_ALIAS_RE = re.compile(r"\s*\(alias of ([^)]+)\)$")
_DEVICE_RE = re.compile(r'^name "([^"]+)"')


def parse_version(text: str) -> tuple[str, tuple[int, int, int]]:
    """``QEMU emulator version 7.2.22 (Debian ...)`` -> ("7.2.22", (7, 2, 22))."""
    m = _VERSION_RE.search(text)
    if not m:
        raise ValueError(f"no version number in {text.strip()[:80]!r}")
    parts = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    return ".".join(str(p) for p in parts), parts


def parse_machine_help(text: str) -> tuple[MachineType, ...]:
    """Parse ``-machine help``; alias lines (``pc ... (alias of pc-i440fx-7.2)``) fold into their target."""
    entries: list[tuple[str, str, bool, bool]] = []
    aliases: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("Supported machines"):
            continue
        m = _MACHINE_RE.match(line)
        if not m:
            continue
        name, desc = m.group(1), m.group(2)
        alias_of = _ALIAS_RE.search(desc)
        if alias_of:
            aliases[alias_of.group(1)] = name
            continue
        is_default = deprecated = False
        # QEMU appends " (default)" then " (deprecated)"; strip from the end.
        if desc.endswith("(deprecated)"):
            deprecated, desc = True, desc[: -len("(deprecated)")].rstrip()
        if desc.endswith("(default)"):
            is_default, desc = True, desc[: -len("(default)")].rstrip()
        entries.append((name, desc, is_default, deprecated))
    return tuple(
        MachineType(name, aliases.get(name), is_default, deprecated, desc)
        for name, desc, is_default, deprecated in entries
    )


def parse_accel_help(text: str) -> tuple[str, ...]:
    """Parse ``-accel help``: one accelerator name per line after the heading."""
    out = []
    for line in text.splitlines():
        word = line.strip()
        if word and not word.endswith(":") and " " not in word:
            out.append(word)
    return tuple(out)


def parse_cpu_help(text: str) -> tuple[str, ...]:
    """Parse ``-cpu help``: the model names (``x86 NAME  description``), not the CPUID flag list."""
    out = []
    for line in text.splitlines():
        if line.startswith("Recognized CPUID flags"):
            break
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "x86":
            out.append(fields[1])
    return tuple(out)


def parse_device_help(text: str) -> frozenset[str]:
    """Parse ``-device help``: every ``name "..."`` in every category."""
    return frozenset(m.group(1) for line in text.splitlines() if (m := _DEVICE_RE.match(line.strip())))


def parse_spice_help(stdout: str) -> bool:
    """``-spice help`` lists "spice options:" only when the spice module is there."""
    return "spice options:" in stdout


def parse_sandbox_help(stderr: str) -> bool:
    """With seccomp, ``-sandbox help`` complains about the value of 'enable'; without, about the option."""
    return "'enable'" in stderr


# -- host facts (read from /proc and /sys) ---------------------------------------


@dataclass(frozen=True)
class CpuInfo:
    model_name: str
    vendor: str | None
    flags_virt: str | None
    topology: CpuTopology


_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon"}


def parse_cpuinfo(text: str, cpu_count: int) -> CpuInfo:
    """Model, vendor, vmx/svm and sockets/cores/threads from /proc/cpuinfo text."""
    model = ""
    vendor = None
    flags: set[str] = set()
    sockets: set[str] = set()
    cores = siblings = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "model name" and not model:
            model = value
        elif key == "vendor_id" and vendor is None:
            vendor = _VENDORS.get(value, value)
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key == "physical id":
            sockets.add(value)
        elif key == "cpu cores" and not cores:
            cores = int(value)
        elif key == "siblings" and not siblings:
            siblings = int(value)
    virt = "vmx" if "vmx" in flags else "svm" if "svm" in flags else None
    n_sockets = max(len(sockets), 1)
    if cores <= 0:
        cores = max(cpu_count // n_sockets, 1)
    threads = max(siblings // cores, 1) if siblings else 1
    return CpuInfo(model or platform.processor() or "unknown", vendor, virt, CpuTopology(n_sockets, cores, threads))


def parse_meminfo_total(text: str) -> int:
    """MemTotal in KiB from /proc/meminfo text."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    raise ValueError("no MemTotal line in /proc/meminfo")


def format_uuid(raw: str) -> str:
    """A product_uuid or a 32-hex-digit machine-id as a canonical lower-case UUID."""
    return str(uuid.UUID(raw.strip()))


def read_boot_id(root: Path = Path("/")) -> str:
    try:
        return (root / "proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError as exc:
        raise HostError(f"cannot read the boot id from /proc/sys/kernel/random/boot_id: {exc.strerror}; "
                        "is /proc mounted?") from exc


def read_host_uuid(root: Path = Path("/")) -> str:
    """DMI product UUID, else /etc/machine-id as a UUID, else one derived from the hostname."""
    for rel in ("sys/class/dmi/id/product_uuid", "etc/machine-id"):
        try:
            return format_uuid((root / rel).read_text())
        except (OSError, ValueError):
            continue
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, socket.gethostname()))


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


# -- QEMU queries ------------------------------------------------------------------

_QUERIES: dict[str, tuple[str, ...]] = {
    "version": ("--version",),
    "machine": ("-machine", "help"),
    "accel": ("-accel", "help"),
    "cpu": ("-cpu", "help"),
    "device": ("-device", "help"),
    "spice": ("-spice", "help"),
    "sandbox": ("-sandbox", "help"),
}
# These two answer by failing on purpose; the others must exit 0.
_MAY_FAIL = {"spice", "sandbox"}


@dataclass(frozen=True)
class _Answer:
    returncode: int
    stdout: str
    stderr: str


def _ask(binary: str, args: tuple[str, ...]) -> _Answer:
    try:
        proc = subprocess.run(
            [binary, *args], check=False, stdin=subprocess.DEVNULL, capture_output=True,
            timeout=QUERY_TIMEOUT, env={**os.environ, "LC_ALL": "C"}, preexec_fn=die_with_parent(),
        )
    except subprocess.TimeoutExpired as exc:  # run() has killed it
        raise QemuError(f"QEMU binary {binary} did not answer '{' '.join(args)}' within {QUERY_TIMEOUT:.0f} s; "
                        "check that it is a working qemu-system binary") from exc
    except OSError as exc:
        raise HostError(f"cannot run QEMU binary {binary}: {exc.strerror or exc}; "
                        "install qemu-system-x86 or set qemu_binary in pyvirt.toml") from exc
    return _Answer(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))


def resolve_binary(qemu_binary: str) -> str:
    """An absolute path for ``qemu_binary`` (a bare name is looked up on PATH)."""
    found = qemu_binary if os.sep in qemu_binary else shutil.which(qemu_binary)
    if not found or not os.path.isfile(found):
        raise HostError(f"QEMU binary {qemu_binary} not found; install qemu-system-x86 "
                        "or set qemu_binary in /etc/pyvirt/pyvirt.toml")
    return os.path.abspath(found)


def probe_host(qemu_binary: str, *, kvm_timeout: float = 3.0, workdir: Path | None = None) -> HostCapabilities:
    """Ask QEMU and the host everything, concurrently, and time the whole probe (the KVM boot's files
    go under ``workdir``)."""
    start = time.monotonic()
    binary = resolve_binary(qemu_binary)
    with ThreadPoolExecutor(max_workers=len(_QUERIES) + 1, thread_name_prefix="pyvirt-probe") as pool:
        kvm_future = pool.submit(probe_kvm, binary, kvm_timeout, workdir=workdir)
        futures = {key: pool.submit(_ask, binary, args) for key, args in _QUERIES.items()}
        answers = {key: f.result() for key, f in futures.items()}
        kvm: KvmStatus = kvm_future.result()
    for key, ans in answers.items():
        if key not in _MAY_FAIL and ans.returncode != 0:
            raise QemuError(
                f"QEMU binary {binary} failed '{' '.join(_QUERIES[key])}' with status {ans.returncode}; "
                "check that it is a working qemu-system binary",
                detail=ans.stderr.strip() or None,
            )
    try:
        version, version_tuple = parse_version(answers["version"].stdout)
    except ValueError as exc:
        raise QemuError(f"QEMU binary {binary} printed no version for --version: {exc}") from exc

    cpu_count = os.cpu_count() or 1
    cpu = parse_cpuinfo(_read("/proc/cpuinfo"), cpu_count)
    try:
        memory_kib = parse_meminfo_total(_read("/proc/meminfo"))
    except ValueError as exc:
        raise HostError(f"cannot read host memory size: {exc}; is /proc mounted?") from exc
    return HostCapabilities(
        hostname=socket.gethostname(),
        arch=platform.machine(),
        cpu_model_name=cpu.model_name,
        cpu_vendor=cpu.vendor,
        cpu_count=cpu_count,
        cpu_flags_virt=cpu.flags_virt,
        cpu_topology=cpu.topology,
        memory_kib=memory_kib,
        host_uuid=read_host_uuid(),
        host_boot_id=read_boot_id(),
        qemu_binary=binary,
        qemu_version=version,
        qemu_version_tuple=version_tuple,
        machine_types=parse_machine_help(answers["machine"].stdout),
        accelerators=parse_accel_help(answers["accel"].stdout),
        cpu_models=parse_cpu_help(answers["cpu"].stdout),
        devices=parse_device_help(answers["device"].stdout),
        has_spice=parse_spice_help(answers["spice"].stdout),
        has_sandbox=parse_sandbox_help(answers["sandbox"].stderr),
        kvm=kvm,
        probe_seconds=round(time.monotonic() - start, 3),
    )


# -- the per-boot cache --------------------------------------------------------------


def cache_key(qemu_binary: str, *, boot_id: str, kvm_timeout: float = 3.0) -> dict[str, Any]:
    """What a cached probe depends on: this boot, the exact QEMU binary file, the probe settings."""
    binary = resolve_binary(qemu_binary)
    st = os.stat(binary)
    return {
        "format": CAPS_FORMAT,
        "boot_id": boot_id,
        "qemu_binary": binary,
        "qemu_mtime_ns": st.st_mtime_ns,
        "qemu_size": st.st_size,
        "kvm_timeout": kvm_timeout,
    }


def read_cache(path: Path, key: dict[str, Any]) -> HostCapabilities | None:
    """The cached capabilities if ``path`` holds some under exactly ``key``; None otherwise."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key:
        return None
    try:
        return HostCapabilities.from_dict(doc["caps"])
    except (PyvirtError, KeyError, TypeError):
        return None


def write_cache(path: Path, key: dict[str, Any], caps: HostCapabilities) -> None:
    """Write atomically (temp file in the same directory, fsync, rename): readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"key": key, "caps": caps.to_dict()}, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_or_probe(
    paths: Paths, qemu_binary: str, *, refresh: bool = False, kvm_timeout: float = 3.0
) -> HostCapabilities:
    """Cached capabilities for this boot and this QEMU binary; probe (and cache) when they changed."""
    path = paths.cache / CACHE_NAME
    key = cache_key(qemu_binary, boot_id=read_boot_id(), kvm_timeout=kvm_timeout)
    if not refresh:
        cached = read_cache(path, key)
        if cached is not None:
            return cached
    caps = probe_host(qemu_binary, kvm_timeout=kvm_timeout, workdir=paths.probe_run)
    write_cache(path, key, caps)
    return caps
