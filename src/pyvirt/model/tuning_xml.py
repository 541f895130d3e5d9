"""<memoryBacking>, <cputune>, <memtune> and <blkiotune>: their XML, ranges and XML again.

The subset pyvirt applies: huge pages and nosharepages (QEMU's memory backend
and mem-merge), CPU shares/period/quota, vCPU and emulator pinning (thread
affinity, daemon/vcpus.py), memory hard/soft limits and the block I/O weight
(cgroup v2 files, host/cgroup.py). Anything else inside these
elements is refused by name, as everywhere in the codec. Ranges are libvirt's.
"""
from __future__ import annotations

from ..errors import InvalidArgument
from .cpuset import format_cpuset, parse_cpuset
from .domain import BlkioTune, CpuTune, MemoryBacking, MemTune, VcpuPin
from .units import parse_xml_size_kib
from .xml_doc import with_path
from .xml_util import Hint, Node, Reader, node

SHARES = (2, 262144)
PERIOD = (1000, 1000000)
QUOTA = (1000, 17592186044415)
BLKIO_WEIGHT = (100, 1000)
_MEMTUNE_LATER = Hint("only <hard_limit> and <soft_limit> are supported in <memtune>; remove it")
_BACKING_LATER = Hint("only <hugepages/> and <nosharepages/> are supported in <memoryBacking>; remove it")
_CPUTUNE_LATER = Hint("only <shares>, <period>, <quota>, <vcpupin> and <emulatorpin> are supported in <cputune>; "
                      "remove it")
_BLKIO_LATER = Hint("only <weight> is supported in <blkiotune>; remove it")


def _ranged(r: Reader, tag: str, bounds: tuple[int, int], allow: tuple[int, ...] = ()) -> int | None:
    child = r.child(tag)
    if child is None:
        return None
    value = child.int_text()
    child.done()
    lo, hi = bounds
    if value not in allow and not lo <= value <= hi:
        also = f" (or {', '.join(map(str, allow))})" if allow else ""
        raise child.error(f"{value} is out of range", f"give a value from {lo} to {hi}{also}")
    return value


def parse_memory_backing(r: Reader) -> MemoryBacking:
    huge = r.child("hugepages")
    size = None
    if huge is not None:
        page = huge.child("page")
        if page is not None:
            raw = page.req_attr("size")
            try:
                size = parse_xml_size_kib(raw, page.attr("unit") or "KiB")
            except InvalidArgument as exc:
                raise with_path(page, exc) from None
            page.done()
        huge.done()
    source = access = None
    if (s := r.child("source")) is not None:
        source = s.req_attr("type")
        s.done()
    if (a := r.child("access")) is not None:
        access = a.req_attr("mode")
        a.done()
    backing = MemoryBacking(hugepages=huge is not None, hugepage_size_kib=size, nosharepages=r.flag("nosharepages"),
                            source_type=source, access_mode=access)
    r.done({"locked": _BACKING_LATER, "allocation": _BACKING_LATER, "discard": _BACKING_LATER})
    return backing


def _cpuset(r: Reader) -> tuple[int, ...]:
    try:
        return parse_cpuset(r.req_attr("cpuset"), what="cpuset")
    except InvalidArgument as exc:
        raise with_path(r, exc) from None


def _vcpupin(r: Reader) -> VcpuPin:
    vcpu = r.int_attr("vcpu", minimum=0)
    if vcpu is None:
        raise r.error("<vcpupin> names no vCPU", "give vcpu='N' (counting from 0)")
    pin = VcpuPin(vcpu, _cpuset(r))
    r.done()
    return pin


def _emulatorpin(r: Reader) -> tuple[int, ...]:
    cpus = _cpuset(r)
    r.done()
    return cpus


def parse_cputune(r: Reader) -> CpuTune:
    pins = tuple(_vcpupin(c) for c in r.children("vcpupin"))
    emulator = r.children("emulatorpin")
    if len(emulator) > 1:
        raise emulator[1].error("<cputune> has more than one <emulatorpin>", "keep one")
    tune = CpuTune(shares=_ranged(r, "shares", SHARES), period=_ranged(r, "period", PERIOD),
                   quota=_ranged(r, "quota", QUOTA, allow=(-1,)), vcpupins=pins,
                   emulatorpin=_emulatorpin(emulator[0]) if emulator else None)
    r.done({tag: _CPUTUNE_LATER for tag in ("iothreadpin", "global_period", "global_quota", "emulator_period",
                                            "emulator_quota", "vcpusched", "emulatorsched", "iothreadsched",
                                            "cachetune", "memorytune", "iothread_period", "iothread_quota")})
    return tune


def _limit(r: Reader, tag: str) -> int | None:
    child = r.child(tag)
    if child is None:
        return None
    try:
        kib = parse_xml_size_kib(child.text(), child.attr("unit") or "KiB")
    except InvalidArgument as exc:
        raise with_path(child, exc) from None
    child.done()
    return kib


def parse_memtune(r: Reader) -> MemTune:
    tune = MemTune(hard_limit_kib=_limit(r, "hard_limit"), soft_limit_kib=_limit(r, "soft_limit"))
    r.done({"swap_hard_limit": _MEMTUNE_LATER, "min_guarantee": _MEMTUNE_LATER})
    if tune.hard_limit_kib is not None and tune.soft_limit_kib is not None and \
            tune.soft_limit_kib > tune.hard_limit_kib:
        raise r.error(f"<soft_limit> {tune.soft_limit_kib} KiB is above <hard_limit> {tune.hard_limit_kib} KiB",
                      "make the soft limit at most the hard limit")
    return tune


def parse_blkiotune(r: Reader) -> BlkioTune:
    tune = BlkioTune(weight=_ranged(r, "weight", BLKIO_WEIGHT))
    r.done({"device": _BLKIO_LATER})
    return tune


# -- format -----------------------------------------------------------------------------------------


def format_blkiotune(t: BlkioTune | None) -> Node | None:
    if t is None:
        return None
    return node("blkiotune", children=[node("weight", text=str(t.weight)) if t.weight is not None else None])


def format_memtune(t: MemTune | None) -> Node | None:
    if t is None:
        return None
    return node("memtune", children=[
        node("hard_limit", ("unit", "KiB"), text=str(t.hard_limit_kib)) if t.hard_limit_kib is not None else None,
        node("soft_limit", ("unit", "KiB"), text=str(t.soft_limit_kib)) if t.soft_limit_kib is not None else None,
    ])


def format_memory_backing(b: MemoryBacking | None) -> Node | None:
    if b is None:
        return None
    huge = None
    if b.hugepages:
        page = node("page", ("size", b.hugepage_size_kib), ("unit", "KiB")) if b.hugepage_size_kib else None
        huge = node("hugepages", children=[page])
    return node("memoryBacking", children=[
        huge, node("nosharepages") if b.nosharepages else None,
        node("source", ("type", b.source_type)) if b.source_type is not None else None,
        node("access", ("mode", b.access_mode)) if b.access_mode is not None else None,
    ])


def format_cputune(t: CpuTune | None) -> Node | None:
    if t is None:
        return None
    values = [node(tag, text=str(value)) for tag, value in (("shares", t.shares), ("period", t.period),
                                                             ("quota", t.quota)) if value is not None]
    pins = [node("vcpupin", ("vcpu", p.vcpu), ("cpuset", format_cpuset(p.cpuset))) for p in t.vcpupins]
    emulator = node("emulatorpin", ("cpuset", format_cpuset(t.emulatorpin))) if t.emulatorpin else None
    return node("cputune", children=[*values, *pins, emulator])
