"""Statistics as virsh shows them: domstats' field names and order, the --list filters, the host commands'
layouts (compared with virsh's own format strings), and `top`'s rates and frames."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from pyvirt.cli.ksm_cmds import parse_pairs, status_text
from pyvirt.cli.node_cmds import cpu_percent_text, cpustats_text, memstats_text, nodeinfo_text
from pyvirt.cli.stats_cmds import domstats_text
from pyvirt.cli.top_cmds import counters_of, frame, rows
from pyvirt.daemon.stats_fields import GROUPS, flatten, pick
from pyvirt.errors import InvalidArgument
from tests.unit.test_metrics import ksm, sample


def test_flatten_keeps_libvirts_names_and_order() -> None:
    s = sample("web1")
    fields = flatten(s, GROUPS)
    assert list(fields)[:5] == ["state.state", "state.reason", "cpu.time", "cpu.user", "cpu.system"]
    assert fields["state.state"] == 1 and fields["state.reason"] == 1  # running, booted
    assert fields["cpu.time"] == 2_500_000_000
    assert (fields["balloon.current"], fields["balloon.maximum"], fields["balloon.rss"]) == (131072, 131072, 250000)
    assert fields["balloon.unused"] == 1000 and fields["balloon.usable"] == 2000
    assert fields["vcpu.1.time"] == 900_000_000 and fields["vcpu.0.state"] == 1
    assert [k for k in fields if k.startswith("net.0.")] == [
        "net.0.name", "net.0.rx.bytes", "net.0.rx.pkts", "net.0.rx.errs", "net.0.rx.drop", "net.0.tx.bytes",
        "net.0.tx.pkts", "net.0.tx.errs", "net.0.tx.drop"]
    assert [k for k in fields if k.startswith("block.0.")][:3] == ["block.0.name", "block.0.path", "block.0.rd.reqs"]
    assert fields["block.0.capacity"] == 16 << 20
    assert next(iter(flatten(s, ["block"]))) == "block.count"


def test_an_inactive_domain_has_state_and_vcpu_only() -> None:
    off = flatten(sample("idle", running=False), GROUPS)
    assert off == {"state.state": 5, "state.reason": 1, "vcpu.current": 2, "vcpu.maximum": 2}
    assert flatten(replace(sample("x"), state="paused", reason="user"), ["state"]) == {"state.state": 3,
                                                                                      "state.reason": 1}
    assert flatten(replace(sample("x"), reason="something new"), ["state"])["state.reason"] == 0


def test_list_filters_and_order() -> None:
    def e(name: str, id: int | None, state: str, persistent: bool = True) -> SimpleNamespace:
        return SimpleNamespace(name=name, id=id, state=SimpleNamespace(value=state), persistent=persistent)

    entries = [e("c", None, "shut off"), e("b", 2, "paused"), e("a", 1, "running", persistent=False),
               e("d", None, "shut off", persistent=True)]
    assert [x.name for x in pick(entries, [])] == ["a", "b", "c", "d"]
    assert [x.name for x in pick(entries, ["running", "paused"])] == ["a", "b"]
    assert [x.name for x in pick(entries, ["active", "persistent"])] == ["b"]
    assert [x.name for x in pick(entries, ["inactive"])] == ["c", "d"]
    assert [x.name for x in pick(entries, ["transient"])] == ["a"]


def test_domstats_text_is_virshs_layout() -> None:
    records = [{"name": "a", "stats": {"state.state": 1}}, {"name": "b", "stats": {"state.state": 5}}]
    assert domstats_text(records) == "Domain: 'a'\n  state.state=1\n\nDomain: 'b'\n  state.state=5\n"


def test_host_layouts_match_virsh_format_strings() -> None:
    info = {"model": "x86_64", "cpus": 2, "mhz": 2600, "sockets": 1, "cores": 2, "threads": 1, "nodes": 1,
            "memory_kib": 24683664}
    assert nodeinfo_text(info) == (  # vshPrint("%-20s %s\n")
        "CPU model:           x86_64\nCPU(s):              2\nCPU frequency:       2600 MHz\n"
        "CPU socket(s):       1\nCore(s) per socket:  2\nThread(s) per core:  1\nNUMA cell(s):        1\n"
        "Memory size:         24683664 KiB\n")
    assert "CPU frequency" not in nodeinfo_text({**info, "mhz": 0})
    assert memstats_text({"total": 24683664, "free": 5, "buffers": None, "cached": None}) == (  # "%-7s: %20llu KiB"
        "total  :             24683664 KiB\nfree   :                    5 KiB\n")
    assert cpustats_text({"user": 1, "system": 22, "idle": 333, "iowait": 4}) == (  # "%-15s %20llu"
        "user:                              1\nsystem:                           22\n"
        "idle:                            333\niowait:                            4\n")
    text, pct = cpu_percent_text({"user": 0, "system": 0, "idle": 0, "iowait": 0},
                                 {"user": 10, "system": 30, "idle": 60, "iowait": 0})
    assert pct["usage"] == 40.0 and text.splitlines()[0] == "usage:           40.0%"


def test_ksm_status_text_and_pairs() -> None:
    import dataclasses
    import json

    from pyvirt.api.views import dumps

    def to_json(value: object) -> object:
        return json.loads(dumps(value))

    text = status_text(to_json(ksm()))
    assert text.startswith("Mode:            auto (the built-in tuner (ksmtuned's algorithm) runs it)")
    assert "Memory saved:    160.0 KiB (40 pages sharing 10 KSM pages of 4096 bytes)" in text
    assert "Sharing ratio:   4.00 pages per KSM page" in text
    assert "ksmd CPU:        1.5 s since boot; 106.7 KiB saved per ksmd CPU second" in text
    assert "KSM_NPAGES_BOOST=300" in text and "Domains sharing memory:" in text and " web1 " in text
    assert text.endswith("Warning: w\n")
    none = to_json(dataclasses.replace(ksm(), domains=(), writable=False))
    assert "Domains sharing" not in status_text(none) and "Writable:" in status_text(none)
    assert parse_pairs(["a=1", "KSM_NPAGES_MAX=2"]) == {"a": "1", "KSM_NPAGES_MAX": "2"}
    for bad, words in ((["a"], "not KEY=VALUE"), (["=1"], "not KEY=VALUE"), (["a=1", "a=2"], "given twice")):
        with pytest.raises(InvalidArgument, match=words):
            parse_pairs(bad)


def stats(uuid: str, cpu: int | None, rd: int = 0, rx: int = 0, state: int = 1) -> dict:  # type: ignore[type-arg]
    s: dict[str, int | str] = {"state.state": state}
    if cpu is not None:
        s.update({"cpu.time": cpu, "balloon.current": 131072, "block.count": 1, "block.0.rd.reqs": rd,
                  "block.0.wr.reqs": 0, "net.count": 1, "net.0.rx.bytes": rx, "net.0.tx.bytes": 0})
    return {"uuid": uuid, "name": f"vm-{uuid}", "id": int(uuid) if cpu is not None else None, "stats": s}


def test_top_rates_between_two_readings() -> None:
    first = [stats("1", 1_000_000_000, rd=10, rx=1000), stats("2", 0), stats("3", None, state=5)]
    second = [stats("1", 3_000_000_000, rd=30, rx=5000), stats("2", 500_000_000), stats("3", None, state=5)]
    none_yet = rows({}, first, 0.0, host_cpus=2, host_kib=1048576)
    assert [r.cpu for r in none_yet] == [0.0, 0.0, 0.0]  # no earlier reading: no rates
    got = {r.name: r for r in rows(counters_of(first), second, 2.0, host_cpus=2, host_kib=1048576)}
    one = got["vm-1"]
    assert one.cpu == 50.0  # 2 s of CPU over 2 s on a 2-CPU host
    assert (one.rdrq, one.rxby, one.mem) == (10.0, 2000.0, 12.5)
    assert got["vm-2"].cpu == 12.5 and not got["vm-3"].active


def test_top_frame_sorts_and_lists_inactive_last() -> None:
    first = [stats("1", 0), stats("2", 0), stats("3", None, state=5)]
    second = [stats("1", 100_000_000), stats("2", 900_000_000, rd=50), stats("3", None, state=5)]
    node = {"model": "x86_64", "cpus": 2, "mhz": 2600, "memory_kib": 1048576}
    got = rows(counters_of(first), second, 1.0, 2, 1048576)
    lines = frame(got, node=node, sort="cpu", clock="12:00:00")
    assert lines[0] == "pyvirt top 12:00:00 - x86_64 2CPU 2600MHz 1024MB"
    assert lines[1] == "3 domains, 2 active, 2 running, 0 paused, 1 inactive"
    assert lines[4].split()[0] == "ID" and lines[4].endswith("NAME")
    assert [line.split()[-1] for line in lines[5:]] == ["vm-2", "vm-1", "(vm-3)"]
    by_id = frame(got, node=node, sort="id", clock="12:00:00")
    assert [line.split()[-1] for line in by_id[5:7]] == ["vm-1", "vm-2"]
    assert all(len(line) <= 40 for line in frame(got, node=node, sort="cpu", clock="x", width=40))


def test_a_many_option_takes_every_data_argument_left() -> None:
    from pyvirt.cli.spec import UsageError
    from pyvirt.cli.stats_cmds import COMMANDS as STATS

    domstats = next(c for c in STATS if c.name == "domstats")
    a = domstats.parse(["--state", "web1", "db", "--block", "--domain", "x"])
    assert a["domain"] == ["web1", "db", "x"] and a["state"] and a["block"]
    assert domstats.parse([])["domain"] == []
    schedinfo = next(c for c in STATS if c.name == "schedinfo")
    b = schedinfo.parse(["web1", "cpu_shares=2", "--set", "vcpu_quota=-1"])
    assert (b["domain"], b["set"]) == ("web1", ["cpu_shares=2", "vcpu_quota=-1"])
    with pytest.raises(UsageError, match="already seen"):
        domstats.parse(["--state", "--state"])
