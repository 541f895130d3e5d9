"""cgroup v2 limits for guests: <cputune>, <memtune> and <blkiotune> as cgroup files.

Each running guest gets a cgroup of its own under one of the daemon's
(``/sys/fs/cgroup/pyvirt/NAME``) and its QEMU process is moved in; the limits
are files there. That needs a cgroup v2 tree we may write, with the cpu,
memory and io controllers in it: a host whose controllers sit in the old v1
hierarchies (or a container with a read-only /sys/fs/cgroup) has none, and
``CgroupV2.support()`` says so in words the daemon passes on to the user.

``limit_files`` is the pure part (a domain's settings -> file name -> text),
kept apart from the I/O so it is tested without a cgroup tree.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import HostError
from ..model.domain import BlkioTune, CpuTune, MemTune

MOUNTS = Path("/proc/self/mounts")
CONTROLLERS = ("cpu", "memory", "io")


# -- pure ---------------------------------------------------------------------------------------------


def cgroup2_mounts(mounts_text: str) -> list[Path]:
    """Where cgroup2 is mounted, from /proc/self/mounts text (the plain /sys/fs/cgroup first)."""
    found = [Path(line.split()[1]) for line in mounts_text.splitlines()
             if len(line.split()) > 2 and line.split()[2] == "cgroup2"]
    return sorted(found, key=lambda p: (p != Path("/sys/fs/cgroup"), str(p)))


def partition_dir(partition: str) -> str:
    """libvirt's resource partition -> its cgroup directory under the tree, as systemd names slices:
    /machine -> machine.slice, /machine/web -> machine.slice/machine-web.slice."""
    parts = [p for p in partition.split("/") if p]
    out = []
    for i in range(len(parts)):
        out.append("-".join(parts[: i + 1]) + ".slice")
    return "/".join(out)


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2..262144, 1024 by default) -> v2 cpu.weight (1..10000, 100 by default)."""
    shares = min(max(shares, 2), 262144)
    return 1 + (shares - 2) * 9999 // 262142


def limit_files(cpu: CpuTune | None, mem: MemTune | None, blkio: BlkioTune | None, vcpus: int) -> dict[str, str]:
    """The cgroup v2 files and contents that carry a domain's tuning.

    <period>/<quota> are per vCPU in libvirt; the guest's one cgroup gets the quota of all its vCPUs.
    """
    out: dict[str, str] = {}
    if cpu is not None:
        if cpu.shares is not None:
            out["cpu.weight"] = str(shares_to_weight(cpu.shares))
        if cpu.period is not None or cpu.quota is not None:
            period = cpu.period or 100000
            quota = "max" if cpu.quota is None or cpu.quota < 0 else str(cpu.quota * max(vcpus, 1))
            out["cpu.max"] = f"{quota} {period}"
    if mem is not None:
        if mem.hard_limit_kib is not None:
            out["memory.max"] = str(mem.hard_limit_kib * 1024)
        if mem.soft_limit_kib is not None:
            out["memory.high"] = str(mem.soft_limit_kib * 1024)
    if blkio is not None and blkio.weight is not None:
        out["io.weight"] = f"default {blkio.weight}"
    return out


# -- I/O ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Support:
    """Whether guests can get cgroup limits here; ``reason`` says why not, in words for the user."""

    usable: bool
    reason: str
    mount: Path | None = None


class CgroupV2:
    """The cgroup v2 tree at ``mount`` (found in /proc/self/mounts when None); guests under ``parent``."""

    def __init__(self, parent: str = "pyvirt", mount: Path | None = None, mounts_file: Path = MOUNTS) -> None:
        self.parent = parent
        self._mount = mount
        self._mounts_file = mounts_file

    def support(self) -> Support:
        mounts = [self._mount] if self._mount is not None else _read_mounts(self._mounts_file)
        if not mounts:
            return Support(False, "this host has no cgroup v2 tree mounted (only cgroup v1, or none); <cputune>, "
                                  "<memtune> and <blkiotune> are kept in the definition but not applied")
        reasons = []
        for mount in mounts:
            try:
                have = set((mount / "cgroup.controllers").read_text().split())
            except OSError as exc:
                reasons.append(f"{mount}: {exc.strerror}")
                continue
            missing = [c for c in CONTROLLERS if c not in have]
            if missing:
                reasons.append(f"the cgroup v2 tree at {mount} lacks the {', '.join(missing)} controller(s) "
                               "(they are bound to cgroup v1 hierarchies on this host)")
                continue
            if not os.access(mount / "cgroup.subtree_control", os.W_OK):
                reasons.append(f"the cgroup v2 tree at {mount} is read-only here")
                continue
            return Support(True, "", mount)
        return Support(False, "; ".join(reasons) + "; <cputune>, <memtune> and <blkiotune> are kept in the "
                       "definition but not applied")

    def _require(self) -> Path:
        found = self.support()
        if not found.usable or found.mount is None:
            raise HostError(f"cannot apply cgroup limits: {found.reason}")
        return found.mount

    def path(self, name: str, parent: str | None = None) -> Path:
        """The guest's cgroup: under the daemon's own (``self.parent``), or ``parent`` (a partition's dir)."""
        return self._require() / (parent or self.parent) / name

    def create(self, name: str, parent: str | None = None) -> Path:
        """The guest's cgroup, with the controllers enabled down to it."""
        mount = self._require()
        group = self.path(name, parent)
        where = mount
        _enable(where)
        for part in group.relative_to(mount).parts[:-1]:
            where = where / part
            where.mkdir(exist_ok=True)
            _enable(where)
        group.mkdir(exist_ok=True)
        return group

    def write(self, group: Path, files: Mapping[str, str]) -> None:
        for fname, text in files.items():
            try:
                (group / fname).write_text(text + "\n")
            except OSError as exc:
                raise HostError(f"the kernel refused {fname}={text!r} for cgroup {group}: "
                                f"{exc.strerror or exc}") from exc

    def read(self, group: Path, fname: str) -> str | None:
        try:
            return (group / fname).read_text().strip()
        except OSError:
            return None

    @staticmethod
    def attach(group: Path, pid: int) -> None:
        (group / "cgroup.procs").write_text(f"{pid}\n")

    @staticmethod
    def remove(group: Path) -> None:
        with contextlib.suppress(OSError):
            group.rmdir()


def _read_mounts(path: Path) -> list[Path]:
    try:
        return cgroup2_mounts(path.read_text())
    except OSError:
        return []


def _enable(where: Path) -> None:
    """Turn the controllers on for ``where``'s children (subtree_control), as far as they are there."""
    try:
        enabled = set((where / "cgroup.subtree_control").read_text().split())
    except OSError:
        return
    wanted = " ".join(f"+{c}" for c in CONTROLLERS if c not in enabled)
    if wanted:
        try:
            (where / "cgroup.subtree_control").write_text(wanted + "\n")
        except OSError as exc:
            raise HostError(f"cannot enable the {wanted} controllers in {where}: {exc.strerror or exc}") from exc
