"""/metrics (api/metrics.py): series names follow Prometheus' conventions, and a snapshot renders to text
that Prometheus' own parser reads back with the values it was made of."""
from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from pyvirt.api.metrics import Snapshot, families, render
from pyvirt.daemon.results import (
    BlockSample,
    GuestSample,
    KsmField,
    KsmSharer,
    KsmStatus,
    KsmTunerSettings,
    NetSample,
    NodeCpu,
    NodeMemory,
    PagePool,
)
from pyvirt.pyvirtd import parse_listen

NAME = re.compile(r"^pyvirt_(host|domain|domains|ksm|scrape)(_[a-z0-9]+)*$")
UNITS = ("bytes", "seconds")


def sample(name: str, running: bool = True) -> GuestSample:
    return GuestSample(
        name=name, uuid=f"00000000-0000-4000-8000-00000000000{len(name)}", id=1 if running else None,
        state="running" if running else "shut off", reason="booted" if running else "shutdown", persistent=True,
        time=0.0, vcpus_max=2, vcpus_current=2, memory_max_kib=131072, balloon_kib=131072 if running else None,
        rss_kib=250000 if running else None, cpu_user_ns=2_000_000_000 if running else None,
        cpu_system_ns=500_000_000 if running else None, vcpu_times_ns=(1_000_000_000, 900_000_000) if running else (),
        guest_memory={"unused": 1000, "usable": 2000} if running else {},
        blocks=(BlockSample("vda", "/img", 3, 12288, 5000, 2, 8192, 4000, 1, 100, 0, 16 << 20, 16 << 20),)
        if running else (),
        nets=(NetSample("vnet0", 100, 2, 0, 0, 200, 3, 0, 0),) if running else ())


def ksm() -> KsmStatus:
    fields = tuple(KsmField(n, v, "", False) for n, v in (("run", 1), ("pages_shared", 10), ("pages_sharing", 40),
                                                          ("pages_to_scan", 1250), ("sleep_millisecs", 10),
                                                          ("full_scans", 3)))
    return KsmStatus(mode="auto", modes=("unmanaged", "off", "on", "auto"), running=True, writable=True,
                     page_size=4096, saved_bytes=40 * 4096, shared_bytes=10 * 4096, sharing_ratio=4.0,
                     profit_bytes=100000, ksmd_cpu_seconds=1.5, saved_per_cpu_second=109226.0, fields=fields,
                     domains=(KsmSharer("web1", 8192),), tuner=KsmTunerSettings(60, 10, 300, -50, 64, 1250, 20, 2048),
                     last_decision=None, warning="w")


SNAP = Snapshot(memory=NodeMemory(1000, 500, 10, 20), cpu=NodeCpu(10**9, 2 * 10**9, 3 * 10**9, 0), cpus=2,
                pools=(PagePool(2048, 4, 3),), domains=(sample("web1"), sample("idle", running=False)), ksm=ksm(),
                seconds=0.01)


def test_every_series_is_named_by_the_conventions() -> None:
    names = [m.name for m in families(SNAP)]
    assert len(names) == len(set(names)), "a family is emitted twice"
    for m in families(SNAP):
        assert NAME.match(m.name), m.name
        assert m.documentation, m.name
        if m.type == "counter":  # prometheus_client writes these with _total
            assert not m.name.endswith("_total"), m.name
        words = m.name.split("_")
        for unit in UNITS:  # a unit appears last, or just before _total
            if unit in words:
                assert words[-1] == unit, m.name
        for s in m.samples:
            assert not any(k.endswith(("_kib", "_ns")) for k in s.labels), m.name


def test_render_parses_back_with_prometheus_parser() -> None:
    text = render(SNAP).decode()
    parsed = {f.name: f for f in text_string_to_metric_families(text)}

    def one(family: str, name: str, **labels: str) -> float:
        [value] = [s.value for s in parsed[family].samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        return float(value)

    assert one("pyvirt_host_memory_total_bytes", "pyvirt_host_memory_total_bytes") == 1000 * 1024
    assert one("pyvirt_host_cpu_seconds", "pyvirt_host_cpu_seconds_total", mode="system") == 2.0
    assert parsed["pyvirt_host_cpu_seconds"].type == "counter"
    assert one("pyvirt_host_hugepages_free", "pyvirt_host_hugepages_free", size_bytes=str(2 << 20)) == 3
    assert one("pyvirt_domains", "pyvirt_domains", state="running") == 1
    assert one("pyvirt_domain_state", "pyvirt_domain_state", domain="idle") == 5
    assert one("pyvirt_domain_cpu_seconds", "pyvirt_domain_cpu_seconds_total", domain="web1", mode="user") == 2.0
    assert one("pyvirt_domain_vcpu_seconds", "pyvirt_domain_vcpu_seconds_total", domain="web1", vcpu="1") == 0.9
    assert one("pyvirt_domain_memory_unused_bytes", "pyvirt_domain_memory_unused_bytes", domain="web1") == 1024000
    assert one("pyvirt_domain_block_read_bytes", "pyvirt_domain_block_read_bytes_total", domain="web1",
               device="vda") == 12288
    assert one("pyvirt_domain_block_write_seconds", "pyvirt_domain_block_write_seconds_total", domain="web1",
               device="vda") == 4e-6
    assert one("pyvirt_domain_net_receive_bytes", "pyvirt_domain_net_receive_bytes_total", domain="web1",
               interface="vnet0") == 100
    assert not [s for s in parsed["pyvirt_domain_cpu_seconds"].samples if s.labels["domain"] == "idle"]
    assert one("pyvirt_ksm_saved_bytes", "pyvirt_ksm_saved_bytes") == 40 * 4096
    assert one("pyvirt_ksm_mode", "pyvirt_ksm_mode", mode="auto") == 1
    assert one("pyvirt_ksm_full_scans", "pyvirt_ksm_full_scans_total") == 3
    assert one("pyvirt_ksm_sleep_seconds", "pyvirt_ksm_sleep_seconds") == 0.01
    assert one("pyvirt_ksm_domain_merged_bytes", "pyvirt_ksm_domain_merged_bytes", domain="web1") == 8192


def test_a_host_without_ksm_has_every_other_series() -> None:
    snap = Snapshot(SNAP.memory, SNAP.cpu, 2, (), SNAP.domains, None, 0.0)
    names = {m.name for m in families(snap)}
    assert not any(n.startswith("pyvirt_ksm_") for n in names) and "pyvirt_domain_state" in names


def test_parse_listen() -> None:
    import pytest

    from pyvirt.errors import PyvirtError

    assert parse_listen("127.0.0.1:9177") == ("127.0.0.1", 9177)
    assert parse_listen("[::1]:9177") == ("::1", 9177)
    assert parse_listen(":9177") == ("0.0.0.0", 9177)
    for bad in ("localhost", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000"):
        with pytest.raises(PyvirtError, match="is not ADDRESS:PORT"):
            parse_listen(bad)
