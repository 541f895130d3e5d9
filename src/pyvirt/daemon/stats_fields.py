"""A statistics sample as virsh domstats prints it: libvirt's groups, field names and state codes.

Pure functions of a ``GuestSample``; the order of the fields is libvirt's
(virConnectGetAllDomainStats), so scripts written against virsh read ours.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .results import GuestSample

GROUPS = ("state", "cpu-total", "balloon", "vcpu", "interface", "block")
# libvirt's virDomainState numbers
STATE_CODES = {"running": 1, "blocked": 2, "paused": 3, "in shutdown": 4, "shut off": 5, "crashed": 6,
               "pmsuspended": 7}
# libvirt's reason numbers per state (virDomainRunningReason, ...); a reason we do not know is 0 (unknown)
REASON_CODES: dict[str, dict[str, int]] = {
    "running": {"booted": 1, "migrated": 2, "restored": 3, "from snapshot": 4, "unpaused": 5,
                "migration canceled": 6, "save canceled": 7, "wakeup": 8, "crashed": 9, "post-copy": 10},
    "paused": {"user": 1, "migrating": 2, "saving": 3, "dumping": 4, "I/O error": 5, "watchdog": 6,
               "from snapshot": 7, "shutting down": 8, "snapshot": 9, "crashed": 10, "starting up": 11,
               "post-copy": 12, "post-copy failed": 13},
    "in shutdown": {"user": 1},
    "shut off": {"shutdown": 1, "destroyed": 2, "crashed": 3, "migrated": 4, "saved": 5, "failed": 6,
                 "from snapshot": 7, "daemon": 8},
    "crashed": {"panicked": 1},
}
_ACTIVE = frozenset({"running", "paused", "in shutdown", "crashed", "pmsuspended", "blocked"})
# virsh domstats --list-* filters (virConnectGetAllDomainStats' flags): families are AND'ed, members OR'ed
LISTS: dict[str, Callable[[Any], bool]] = {
    "active": lambda e: e.state.value in _ACTIVE,
    "inactive": lambda e: e.state.value not in _ACTIVE,
    "persistent": lambda e: e.persistent,
    "transient": lambda e: not e.persistent,
    "running": lambda e: e.state.value == "running",
    "paused": lambda e: e.state.value == "paused",
    "shutoff": lambda e: e.state.value == "shut off",
    "other": lambda e: e.state.value not in ("running", "paused", "shut off"),
}
_FAMILIES = (("active", "inactive"), ("persistent", "transient"), ("running", "paused", "shutoff", "other"))


def pick(entries: list[Any], lists: Iterable[str]) -> list[Any]:
    """The entries the --list-* filters keep, active ones first by id, then inactive ones by name."""
    chosen = set(lists)
    for family in _FAMILIES:
        tests = [LISTS[f] for f in family if f in chosen]
        if tests:
            entries = [e for e in entries if any(t(e) for t in tests)]
    active = sorted((e for e in entries if e.id is not None), key=lambda e: e.id)
    return active + sorted((e for e in entries if e.id is None), key=lambda e: e.name)


def flatten(s: GuestSample, groups: Iterable[str]) -> dict[str, int | str]:
    """The sample's fields of ``groups`` under virsh's names, in libvirt's order."""
    wanted = set(groups)
    out: dict[str, int | str] = {}
    if "state" in wanted:
        out["state.state"] = STATE_CODES.get(s.state, 0)
        out["state.reason"] = REASON_CODES.get(s.state, {}).get(s.reason, 0)
    running = s.id is not None
    if "cpu-total" in wanted and s.cpu_user_ns is not None and s.cpu_system_ns is not None:
        out["cpu.time"] = s.cpu_user_ns + s.cpu_system_ns
        out["cpu.user"] = s.cpu_user_ns
        out["cpu.system"] = s.cpu_system_ns
    if "balloon" in wanted and running:
        out["balloon.current"] = s.balloon_kib if s.balloon_kib is not None else s.memory_max_kib
        out["balloon.maximum"] = s.memory_max_kib
        for name in ("swap_in", "swap_out", "major_fault", "minor_fault", "unused", "available", "usable"):
            if name in s.guest_memory:
                out[f"balloon.{name}"] = s.guest_memory[name]
        if s.rss_kib is not None:
            out["balloon.rss"] = s.rss_kib
        for name, field in (("last_update", "last-update"), ("disk_caches", "disk_caches"),
                            ("hugetlb_pgalloc", "hugetlb_pgalloc"), ("hugetlb_pgfail", "hugetlb_pgfail")):
            if name in s.guest_memory:
                out[f"balloon.{field}"] = s.guest_memory[name]
    if "vcpu" in wanted:
        out["vcpu.current"] = s.vcpus_current
        out["vcpu.maximum"] = s.vcpus_max
        for i, ns in enumerate(s.vcpu_times_ns):
            out[f"vcpu.{i}.state"] = s.vcpu_states[i] if i < len(s.vcpu_states) else 1  # VIR_VCPU_RUNNING
            out[f"vcpu.{i}.time"] = ns
            if i < len(s.vcpu_waits_ns):
                out[f"vcpu.{i}.wait"] = s.vcpu_waits_ns[i]
            if i < len(s.vcpu_delays_ns):
                out[f"vcpu.{i}.delay"] = s.vcpu_delays_ns[i]
    if "interface" in wanted and running:
        out["net.count"] = len(s.nets)
        for i, n in enumerate(s.nets):
            out[f"net.{i}.name"] = n.name
            for field in ("rx.bytes", "rx.pkts", "rx.errs", "rx.drop", "tx.bytes", "tx.pkts", "tx.errs", "tx.drop"):
                out[f"net.{i}.{field}"] = getattr(n, field.replace(".", "_"))
    if "block" in wanted and running:
        out["block.count"] = len(s.blocks)
        for i, b in enumerate(s.blocks):
            out[f"block.{i}.name"] = b.name
            if b.path is not None:
                out[f"block.{i}.path"] = b.path
            for field in ("rd.reqs", "rd.bytes", "rd.times", "wr.reqs", "wr.bytes", "wr.times", "fl.reqs",
                          "fl.times"):
                out[f"block.{i}.{field}"] = getattr(b, field.replace(".", "_"))
            for field in ("allocation", "capacity", "physical"):
                value = getattr(b, field)
                if value is not None:
                    out[f"block.{i}.{field}"] = value
    return out
