"""GET /metrics: the host, its domains and KSM in Prometheus' text format, made with prometheus_client.

Read-only and off the TCP network by default: the daemon's unix socket always
answers it, and ``pyvirtd --metrics-listen ADDR:PORT`` serves the same page on
TCP (9177, the port of the common libvirt exporter). A scrape gathers one
snapshot (every running domain sampled side by side, one QMP round trip each)
and turns it into metric families; nothing is cached between scrapes.

Names follow Prometheus' conventions: a ``pyvirt_`` prefix, base units in the
name (``_bytes``, ``_seconds``), ``_total`` on counters (prometheus_client adds
it), one label per dimension (``domain``, ``device``, ``interface``, ``mode``).
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from ..daemon.results import GuestSample, KsmStatus, NodeCpu, NodeMemory, PagePool
from ..daemon.services import Services
from ..daemon.stats_fields import STATE_CODES
from ..errors import PyvirtError

NS = 1e9  # nanoseconds per second: divide (multiplying by 1e-9 rounds 0.3 to 0.30000000000000004)
KIB = 1024


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape reports, read before any metric is made."""

    memory: NodeMemory
    cpu: NodeCpu
    cpus: int
    pools: tuple[PagePool, ...]
    domains: tuple[GuestSample, ...]
    ksm: KsmStatus | None
    seconds: float  # how long gathering took


async def snapshot(s: Services) -> Snapshot:
    start = time.monotonic()
    samples = await s.stats.every_sample()
    try:
        ksm: KsmStatus | None = s.ksm.status()
    except (PyvirtError, OSError):  # a host without KSM still has every other series
        ksm = None
    return Snapshot(s.node.memory(), s.node.cpu(), s.node.cpu_count(), s.node.pools(), tuple(samples), ksm,
                    time.monotonic() - start)


def families(snap: Snapshot) -> Iterator[Metric]:
    """The snapshot as metric families (host, domains, KSM), in a fixed order."""
    yield from _host(snap)
    yield from _domains(snap.domains)
    if snap.ksm is not None:
        yield from _ksm(snap.ksm)
    yield GaugeMetricFamily("pyvirt_scrape_collect_seconds", "Time pyvirtd took to gather this scrape's figures.",
                            value=snap.seconds)


def _host(snap: Snapshot) -> Iterator[Metric]:
    m = snap.memory
    yield GaugeMetricFamily("pyvirt_host_memory_total_bytes", "Host RAM.", value=m.total * KIB)
    yield GaugeMetricFamily("pyvirt_host_memory_free_bytes", "Host RAM unused (MemFree).", value=m.free * KIB)
    yield GaugeMetricFamily("pyvirt_host_memory_buffers_bytes", "Host RAM in block device buffers.",
                            value=(m.buffers or 0) * KIB)
    yield GaugeMetricFamily("pyvirt_host_memory_cached_bytes", "Host RAM in the page cache.",
                            value=(m.cached or 0) * KIB)
    yield GaugeMetricFamily("pyvirt_host_cpus", "Host CPUs.", value=snap.cpus)
    cpu = CounterMetricFamily("pyvirt_host_cpu_seconds", "Host CPU time since boot, by mode.", labels=["mode"])
    for mode in ("user", "system", "idle", "iowait"):
        cpu.add_metric([mode], getattr(snap.cpu, mode) / NS)
    yield cpu
    total = GaugeMetricFamily("pyvirt_host_hugepages", "Huge pages reserved, by page size.", labels=["size_bytes"])
    free = GaugeMetricFamily("pyvirt_host_hugepages_free", "Huge pages free, by page size.", labels=["size_bytes"])
    for p in snap.pools:
        total.add_metric([str(p.size_kib * KIB)], p.total)
        free.add_metric([str(p.size_kib * KIB)], p.free)
    yield total
    yield free
    states = GaugeMetricFamily("pyvirt_domains", "Domains by state.", labels=["state"])
    for state in STATE_CODES:
        n = sum(1 for d in snap.domains if d.state == state)
        if n or state in ("running", "shut off"):
            states.add_metric([state], n)
    yield states


def _gauge(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float]]) -> Metric:
    g = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        g.add_metric(values, value)
    return g


def _counter(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float]]) -> Metric:
    c = CounterMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        c.add_metric(values, value)
    return c


def _domains(domains: tuple[GuestSample, ...]) -> Iterator[Metric]:
    dl = ["domain", "uuid"]
    running = [d for d in domains if d.id is not None]
    yield _gauge("pyvirt_domain_state", "Domain state (libvirt's numbers: 1 running, 3 paused, 5 shut off, ...).",
                 dl, (([d.name, d.uuid], STATE_CODES.get(d.state, 0)) for d in domains))
    yield _gauge("pyvirt_domain_vcpus", "Virtual CPUs in use.", dl,
                 (([d.name, d.uuid], d.vcpus_current) for d in domains))
    yield _gauge("pyvirt_domain_memory_maximum_bytes", "Guest memory as defined (<memory>).", dl,
                 (([d.name, d.uuid], d.memory_max_kib * KIB) for d in domains))
    yield _counter("pyvirt_domain_cpu_seconds", "CPU time of the guest's QEMU process, by mode.", [*dl, "mode"],
                   (row for d in running if d.cpu_user_ns is not None and d.cpu_system_ns is not None
                    for row in (([d.name, d.uuid, "user"], d.cpu_user_ns / NS),
                                ([d.name, d.uuid, "system"], d.cpu_system_ns / NS))))
    yield _counter("pyvirt_domain_vcpu_seconds", "CPU time of each vCPU thread.", [*dl, "vcpu"],
                   (([d.name, d.uuid, str(i)], ns / NS) for d in running for i, ns in enumerate(d.vcpu_times_ns)))
    yield _gauge("pyvirt_domain_memory_balloon_bytes", "Guest memory the balloon leaves the guest.", dl,
                 (([d.name, d.uuid], d.balloon_kib * KIB) for d in running if d.balloon_kib is not None))
    yield _gauge("pyvirt_domain_memory_rss_bytes", "Resident memory of the guest's QEMU process.", dl,
                 (([d.name, d.uuid], d.rss_kib * KIB) for d in running if d.rss_kib is not None))
    for key, name, doc in (("unused", "unused_bytes", "Memory the guest leaves unused (its balloon driver says)."),
                           ("usable", "usable_bytes", "Memory the guest could use without swapping."),
                           ("available", "available_bytes", "Memory the guest sees in all."),
                           ("disk_caches", "disk_caches_bytes", "Guest memory in its page cache.")):
        yield _gauge(f"pyvirt_domain_memory_{name}", doc, dl,
                     (([d.name, d.uuid], d.guest_memory[key] * KIB) for d in running if key in d.guest_memory))
    bl = [*dl, "device"]
    for field, name, doc, per in (
            ("rd_bytes", "read_bytes", "Bytes read from the disk.", 1.0),
            ("rd_reqs", "read_requests", "Read requests to the disk.", 1.0),
            ("rd_times", "read_seconds", "Time spent on reads.", NS),
            ("wr_bytes", "write_bytes", "Bytes written to the disk.", 1.0),
            ("wr_reqs", "write_requests", "Write requests to the disk.", 1.0),
            ("wr_times", "write_seconds", "Time spent on writes.", NS),
            ("fl_reqs", "flush_requests", "Flush requests to the disk.", 1.0),
            ("fl_times", "flush_seconds", "Time spent on flushes.", NS)):
        yield _counter(f"pyvirt_domain_block_{name}", doc, bl,
                       (([d.name, d.uuid, b.name], getattr(b, field) / per) for d in running for b in d.blocks))
    yield _gauge("pyvirt_domain_block_capacity_bytes", "Disk size as the guest sees it.", bl,
                 (([d.name, d.uuid, b.name], b.capacity) for d in running for b in d.blocks if b.capacity is not None))
    yield _gauge("pyvirt_domain_block_allocation_bytes", "Host bytes the disk's image takes.", bl,
                 (([d.name, d.uuid, b.name], b.allocation) for d in running for b in d.blocks
                  if b.allocation is not None))
    nl = [*dl, "interface"]
    for field, name, doc in (
            ("rx_bytes", "receive_bytes", "Bytes the guest received."),
            ("rx_pkts", "receive_packets", "Packets the guest received."),
            ("rx_errs", "receive_errors", "Receive errors."),
            ("rx_drop", "receive_drops", "Received packets dropped."),
            ("tx_bytes", "transmit_bytes", "Bytes the guest sent."),
            ("tx_pkts", "transmit_packets", "Packets the guest sent."),
            ("tx_errs", "transmit_errors", "Transmit errors."),
            ("tx_drop", "transmit_drops", "Sent packets dropped.")):
        yield _counter(f"pyvirt_domain_net_{name}", doc, nl,
                       (([d.name, d.uuid, n.name], getattr(n, field)) for d in running for n in d.nets))


def _ksm(k: KsmStatus) -> Iterator[Metric]:
    values = {f.name: f.value for f in k.fields}

    def number(name: str) -> float:
        value = values.get(name, 0)
        return float(value) if isinstance(value, int) else 0.0

    yield GaugeMetricFamily("pyvirt_ksm_running", "1 while ksmd runs.", value=1.0 if k.running else 0.0)
    mode = GaugeMetricFamily("pyvirt_ksm_mode", "The KSM mode pyvirtd keeps (1 on the one in force).",
                             labels=["mode"])
    for m in k.modes:
        mode.add_metric([m], 1.0 if m == k.mode else 0.0)
    yield mode
    for name, doc in (("pages_shared", "KSM pages in use."), ("pages_sharing", "Places sharing a KSM page."),
                      ("pages_unshared", "Unique pages ksmd keeps checking."),
                      ("pages_volatile", "Pages changing too fast to merge."),
                      ("pages_to_scan", "Pages ksmd scans per wake-up.")):
        yield GaugeMetricFamily(f"pyvirt_ksm_{name}", doc, value=number(name))
    yield GaugeMetricFamily("pyvirt_ksm_sleep_seconds", "ksmd's sleep between scans.",
                            value=number("sleep_millisecs") / 1000)
    yield CounterMetricFamily("pyvirt_ksm_full_scans", "Full scans of the mergeable memory.",
                              value=number("full_scans"))
    yield GaugeMetricFamily("pyvirt_ksm_saved_bytes", "Memory KSM saves (pages_sharing x page size).",
                            value=k.saved_bytes)
    if k.profit_bytes is not None:
        yield GaugeMetricFamily("pyvirt_ksm_profit_bytes", "Saved memory less ksmd's bookkeeping (general_profit).",
                                value=k.profit_bytes)
    if k.ksmd_cpu_seconds is not None:
        yield CounterMetricFamily("pyvirt_ksm_ksmd_cpu_seconds", "CPU time ksmd used since boot.",
                                  value=k.ksmd_cpu_seconds)
    yield _gauge("pyvirt_ksm_domain_merged_bytes", "A domain's memory that KSM merged.", ["domain"],
                 (([s.domain], s.merged_bytes) for s in k.domains))


class _Once(Collector):
    """A collector over one snapshot: prometheus_client calls collect() once per generate_latest."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        return families(self.snap)


def render(snap: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Once(snap))
    return generate_latest(registry)


class MetricsRoute:
    def __init__(self, services: Services) -> None:
        self.s = services

    async def handle(self, request: web.Request) -> web.Response:
        body = render(await snapshot(self.s))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_app(services: Services) -> web.Application:
    """The TCP listener's whole application: GET /metrics and nothing else."""
    app = web.Application()
    app.router.add_get("/metrics", MetricsRoute(services).handle)
    return app
