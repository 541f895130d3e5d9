"""What tests leave on the host, read from the host itself, never from pyvirt's store.

A pyvirt bug that forgets a runtime record also hides what the record named,
so a check guided by the store sees nothing exactly when it matters. Here
every kind of object is listed from its kernel or tool source:

* network links (bridges, taps, macvtaps, veths, anything else): netlink (pyroute2)
* network namespaces: /run/netns
* loop devices and device-mapper devices: /sys/block
* nftables tables: `nft -j list tables`
* mounts: /proc/self/mountinfo
* QEMU, dnsmasq and pyvirtd processes: /proc/PID/cmdline
* temporary files and directories: the run's own temp directory (below)

Objects are compared by a stable identity (a link's name, a QEMU's pidfile, a
dnsmasq's config file), not by pid or ifindex, so a shared network restarted
inside a test is the same object as before. LVM is asked (`pvs`, slow) only to
name the volume group on a loop device left behind.

The host is shared (other people run daemons in /tmp/pv* roots of their own while
these tests run), so what other users make is told apart: ``use_private_tmp``
points TMPDIR at a directory of this run, so every temporary path of the tests,
the daemons they start and pyvirt itself lands there; a process is this run's
when it descends from it or names that directory (or pytest's basetemp); a
tap, macvtap or bridge is someone else's when only other users' processes use
it (hold its fd, or serve DHCP on it); mounts and loop devices are this run's
when their paths are, a pyvirt nft table when its daemon's root is (see
``new_objects``). Anything that existed before is ignored.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROGRAMS = {b"qemu-system": "qemu", b"dnsmasq": "dnsmasq"}
LINK_KINDS = {"tun": "tap", None: "link"}


@dataclass(frozen=True)
class Obj:
    """One host object: ``kind`` and ``key`` identify it, ``detail`` only helps the reader."""

    kind: str
    key: str
    detail: str = ""
    pid: int = 0  # a process: who runs it (other users' processes are not ours to judge)
    cmdline: str = ""  # a process: its command line
    index: int = 0  # a link: its ifindex

    def __str__(self) -> str:
        return f"{self.kind} {self.key}" + (f" ({self.detail})" if self.detail else "")


Snapshot = dict[tuple[str, str], Obj]


# ------------------------------------------------------------------ sources
def _links() -> Iterable[Obj]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            if kind is None and name in ("lo",):
                continue
            yield Obj(LINK_KINDS.get(kind, kind), name, index=link["index"])


def _netns() -> Iterable[Obj]:
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir("/run/netns"):
            yield Obj("netns", name)


def _block() -> Iterable[Obj]:
    for dev in sorted(Path("/sys/block").iterdir()):
        if dev.name.startswith("loop"):
            with contextlib.suppress(OSError):
                backing = (dev / "loop/backing_file").read_text().strip()
                yield Obj("loop device", f"/dev/{dev.name}", f"backing {backing}")
        elif dev.name.startswith("dm-"):
            with contextlib.suppress(OSError):
                yield Obj("device-mapper device", (dev / "dm/name").read_text().strip(), dev.name)


def _nft_tables() -> Iterable[Obj]:
    try:
        done = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        return
    if done.returncode != 0:
        return
    for item in json.loads(done.stdout).get("nftables", []):
        table = item.get("table")
        if table:
            yield Obj("nft table", f"{table['family']} {table['name']}")


def _mounts() -> Iterable[Obj]:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, source = right.split()[:2]
            if fstype != "nsfs":  # a named network namespace's own mount: listed as a netns
                yield Obj("mount", left.split()[4], f"of {source}")


def _identity(program: str, argv: list[str]) -> str:
    """What stays the same when the object is restarted: QEMU's pidfile, dnsmasq's config file."""
    flags = {"qemu": ("-pidfile", "-name"), "dnsmasq": ("--conf-file", "-C"), "pyvirtd": ("--root",)}[program]
    for i, arg in enumerate(argv):
        for flag in flags:
            if arg == flag and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return " ".join(argv)


def _processes() -> Iterable[Obj]:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        words = raw.split(b"\0", 2)
        argv0 = os.path.basename(words[0])
        argv = [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]
        for marker, program in PROGRAMS.items():
            if marker in argv0:
                yield Obj(program, _identity(program, argv), f"pid {entry}", int(entry), " ".join(argv))
        if len(words) > 1 and os.path.basename(words[1]) == b"pyvirtd":  # a venv's python3 running pyvirtd
            yield Obj("pyvirtd", _identity("pyvirtd", argv), f"pid {entry}", int(entry), " ".join(argv))


RUN_TMP: Path | None = None


def use_private_tmp() -> Path:
    """A temp directory for this run, made the default of this process and its children (TMPDIR);
    pytest's own basetemp stays where it was. Short: unix socket paths under it must fit 108 bytes."""
    global RUN_TMP
    if RUN_TMP is None:
        os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
        RUN_TMP = Path(tempfile.mkdtemp(prefix="pr", dir="/tmp"))
        RUN_TMP.chmod(0o755)  # dnsmasq reads its hosts files as nobody
        os.environ["TMPDIR"] = str(RUN_TMP)
        tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    return RUN_TMP


def _temp_paths() -> Iterable[Obj]:
    if RUN_TMP is None:
        return
    for path in RUN_TMP.iterdir():
        yield Obj("temporary dir" if path.is_dir() else "temporary file", str(path))


SOURCES = (_links, _netns, _block, _nft_tables, _mounts, _processes, _temp_paths)


def snapshot() -> Snapshot:
    """Every object of the kinds above that the host has now."""
    return {(o.kind, o.key): o for source in SOURCES for o in source()}


# ------------------------------------------------------------------ ownership
def _descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(64):
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


def _fd_texts(pid: int) -> Iterable[tuple[str, str]]:
    """(what fd N points at, its fdinfo text) for each open fd of ``pid``."""
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                yield os.readlink(f"/proc/{pid}/fd/{fd}"), Path(f"/proc/{pid}/fdinfo/{fd}").read_text()


def _conf_text(proc: Obj) -> str:
    try:
        return Path(proc.key).read_text()
    except OSError:
        return ""


def _users(link: Obj, processes: list[Obj]) -> list[Obj]:
    """The QEMU and dnsmasq processes that use ``link``: hold its tap or macvtap fd, serve DHCP on it,
    or (a bridge) use one of its ports."""
    users = []
    tap_dev = f"/dev/tap{link.index}"  # a macvtap's character device, by ifindex
    for proc in processes:
        if proc.kind == "dnsmasq":
            if f"interface={link.key}\n" in _conf_text(proc):
                users.append(proc)
        elif any(target == tap_dev or f"iff:\t{link.key}\n" in info for target, info in _fd_texts(proc.pid)):
            users.append(proc)
    if link.kind == "bridge":
        with contextlib.suppress(OSError):
            for port in os.listdir(f"/sys/class/net/{link.key}/brif"):
                index = int(Path(f"/sys/class/net/{port}/ifindex").read_text())
                users += _users(Obj("port", port, index=index), processes)
    return users


OWN_ROOTS: set[Path] = set()  # roots of the daemons this run started (register_root)


def register_root(root: Path) -> None:
    """A daemon root of this run: its nftables table (named after the root) is this run's."""
    OWN_ROOTS.add(root)


def _own_nft_tables() -> set[str]:
    from pyvirt.network.lifecycle import nft_table_for

    return {f"inet {nft_table_for(root)}" for root in OWN_ROOTS}


def new_objects(before: Snapshot, after: Snapshot, *, ours: Iterable[str] = (),
                alive: Iterable[tuple[str, str]] = ()) -> list[Obj]:
    """What ``after`` has that ``before`` had not, less what other users of the host made.

    A process is this run's when it descends from this process or its command
    line names the run's temp directory (or a path in ``ours``); a link is
    someone else's when it has users and all of them are someone else's; a
    mount or loop device is this run's when its path is in those directories; a
    pyvirt daemon's nft table when the daemon's root is one of this run's. ``alive`` are (kind, key)
    of what the caller knows is meant to run still (the daemon it is asking about).
    """
    expected = set(alive)
    markers = [str(p).rstrip("/") + "/" for p in [*ours, *([RUN_TMP] if RUN_TMP else [])]]
    me = os.getpid()

    def mine(proc: Obj) -> bool:
        return _descends_from(proc.pid, me) or any(m in proc.cmdline + "/" for m in markers)

    def in_our_dirs(path: str) -> bool:
        return any((path + "/").startswith(m) for m in markers)

    processes = [o for o in after.values() if o.pid]
    own_tables = _own_nft_tables()
    found = []
    for key, obj in after.items():
        if key in before or (obj.kind, obj.key) in expected:
            continue
        if obj.pid and not mine(obj):
            continue
        if obj.kind in ("tap", "macvtap", "bridge"):
            users = _users(obj, processes)
            if users and not any(mine(u) for u in users):
                continue
        if obj.kind == "mount" and not in_our_dirs(obj.key):
            continue
        if obj.kind == "loop device" and not in_our_dirs(obj.detail.removeprefix("backing ")):
            continue
        if obj.kind == "nft table" and obj.key.startswith("inet pyvirt") and obj.key not in own_tables:
            continue
        found.append(obj)
    return sorted(found, key=lambda o: (o.kind, o.key))


def lvm_names(devices: Iterable[str]) -> dict[str, str]:
    """The volume group of each device that is an LVM physical volume (asked only for leftovers)."""
    devices = list(devices)
    if not devices:
        return {}
    try:
        done = subprocess.run(["pvs", "--reportformat", "json", "-o", "pv_name,vg_name", *devices],
                              capture_output=True, text=True, timeout=30,
                              env={**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"})
    except FileNotFoundError:
        return {}
    with contextlib.suppress(ValueError, KeyError, IndexError):
        rows = json.loads(done.stdout)["report"][0]["pv"]
        return {r["pv_name"]: r["vg_name"] for r in rows if r.get("vg_name")}
    return {}


def describe(objs: list[Obj]) -> list[str]:
    vgs = lvm_names(o.key for o in objs if o.kind == "loop device")
    return [str(o) + (f", LVM volume group {vgs[o.key]}" if o.key in vgs else "") for o in objs]


def leftovers_since(before: Snapshot, *, ours: Iterable[str] = (), grace: float = 3.0,
                    alive: Iterable[tuple[str, str]] = ()) -> list[str]:
    """What is new on the host since ``before``, after up to ``grace`` seconds for things that
    are on their way out (a process being reaped, a macvtap the daemon is removing)."""
    deadline = time.monotonic() + grace
    while True:
        found = new_objects(before, snapshot(), ours=ours, alive=alive)
        if not found or time.monotonic() >= deadline:
            return describe(found)
        time.sleep(0.1)
