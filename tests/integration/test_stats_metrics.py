"""Statistics on real guests: domstats and dommemstat, /metrics on TCP parsed with Prometheus' own text
parser (and a port in use), and `pyvirt top` on a terminal (tmux) and in batch mode."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import PYVIRT, PYVIRTD, DaemonHandle, domain_xml, fails, ok
from .host_helpers import daemon_with

pytestmark = pytest.mark.integration

BALLOON = "<memballoon model='virtio'><stats period='1'/></memballoon>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_guests(d: DaemonHandle, guest, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """st1 (a raw disk, a balloon) and st2 running, st3 defined."""
    disk = tmp_path / "st1.img"
    disk.write_bytes(b"\0" * (8 << 20))
    one = domain_xml("st1", guest, extra_devices=f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                                                  f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>")
    for name, xml in (("st1", one.replace("<memballoon model='none'/>", BALLOON)),
                      ("st2", domain_xml("st2", guest)), ("st3", domain_xml("st3", guest))):
        (tmp_path / f"{name}.xml").write_text(xml)
        ok(d, "define", str(tmp_path / f"{name}.xml"))
    for name in ("st1", "st2"):
        ok(d, "start", name)
    for name in ("st1", "st2"):
        d.wait_serial(name)


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def metrics_daemon(caps_cache: Path, guest, port: int, tmp_path_factory) -> Iterator[DaemonHandle]:  # type: ignore[no-untyped-def]
    with daemon_with(caps_cache, args=("--metrics-listen", f"127.0.0.1:{port}")) as d:
        start_guests(d, guest, tmp_path_factory.mktemp("stats"))
        yield d


def blocks(text: str) -> dict[str, dict[str, str]]:
    """domstats' text: {domain: {field: value}}, checking virsh's layout on the way."""
    assert text.endswith("\n\n")
    out = {}
    for block in text[:-1].split("\n\n"):
        head, *lines = block.strip("\n").split("\n")
        name = re.fullmatch(r"Domain: '(.+)'", head).group(1)  # type: ignore[union-attr]
        assert all(line.startswith("  ") and "=" in line for line in lines), block
        out[name] = dict(line.strip().split("=", 1) for line in lines)
    return out


def test_domstats_groups_fields_and_filters(metrics_daemon: DaemonHandle) -> None:
    d = metrics_daemon
    every = blocks(ok(d, "domstats"))
    assert list(every) == ["st1", "st2", "st3"]  # running ones first, by id; then the others by name
    st1 = every["st1"]
    assert (st1["state.state"], st1["state.reason"]) == ("1", "1")  # running, booted
    assert int(st1["cpu.time"]) == int(st1["cpu.user"]) + int(st1["cpu.system"]) > 0
    assert st1["balloon.maximum"] == str(128 * 1024) and int(st1["balloon.rss"]) > 0
    assert (st1["vcpu.current"], st1["vcpu.maximum"], st1["vcpu.0.state"]) == ("1", "1", "1")
    assert st1["block.count"] == "1" and st1["block.0.name"] == "vda" and int(st1["block.0.rd.reqs"]) > 0
    assert st1["block.0.capacity"] == str(8 << 20) and st1["net.count"] == "0"
    assert list(st1)[:2] == ["state.state", "state.reason"]
    assert every["st3"] == {"state.state": "5", "state.reason": "0", "vcpu.current": "1", "vcpu.maximum": "1"}

    only = blocks(ok(d, "domstats", "--state", "--block", "st2", "st1"))
    assert list(only) == ["st2", "st1"]  # in the order asked, as virsh
    assert {k.split(".")[0] for k in only["st1"]} == {"state", "block"}
    assert list(blocks(ok(d, "domstats", "--state", "--list-shutoff"))) == ["st3"]
    assert list(blocks(ok(d, "domstats", "--state", "--list-active", "--list-persistent"))) == ["st1", "st2"]
    assert "'nope'" in fails(d, "domstats", "nope")
    assert "not both" in fails(d, "domstats", "--list-running", "st1")


def test_dommemstat_with_a_balloon(metrics_daemon: DaemonHandle) -> None:
    d = metrics_daemon
    deadline = time.monotonic() + 20
    stats: dict[str, str] = {}
    while time.monotonic() < deadline:
        stats = dict(line.split() for line in ok(d, "dommemstat", "st1").strip().splitlines())
        if "available" in stats:
            break
        time.sleep(0.5)
    assert stats["actual"] == str(128 * 1024) and int(stats["rss"]) > 0
    assert 0 < int(stats["available"]) <= 128 * 1024 and int(stats["last_update"]) > 0, stats
    plain = dict(line.split() for line in ok(d, "dommemstat", "st2").strip().splitlines())
    assert set(plain) == {"actual", "rss"}  # no balloon: QEMU's figures only
    ok(d, "dommemstat", "st1", "--period", "5", "--live", "--config")
    assert "<stats period='5'/>" in ok(d, "dumpxml", "--inactive", "st1")
    assert "no memory balloon" in fails(d, "dommemstat", "st2", "--period", "5")
    assert "not running" in fails(d, "dommemstat", "st3")


def scrape(port: int) -> tuple[dict[str, list], float]:  # type: ignore[type-arg]
    start = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = resp.read().decode()
    took = time.monotonic() - start
    return {f.name: f.samples for f in text_string_to_metric_families(text)}, took


def value(samples: list, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, samples[:5])
    return float(found[0])


def test_metrics_on_tcp_parse_with_the_prometheus_parser(metrics_daemon: DaemonHandle, port: int) -> None:
    first, _ = scrape(port)
    assert value(first["pyvirt_host_memory_total_bytes"], "pyvirt_host_memory_total_bytes") == \
        int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) * 1024  # type: ignore[union-attr]
    assert value(first["pyvirt_domains"], "pyvirt_domains", state="running") == 2
    assert value(first["pyvirt_domain_state"], "pyvirt_domain_state", domain="st3") == 5
    cpu1 = value(first["pyvirt_domain_cpu_seconds"], "pyvirt_domain_cpu_seconds_total", domain="st1", mode="user")
    assert value(first["pyvirt_domain_block_read_bytes"], "pyvirt_domain_block_read_bytes_total",
                 domain="st1", device="vda") > 0
    assert value(first["pyvirt_domain_memory_maximum_bytes"], "pyvirt_domain_memory_maximum_bytes",
                 domain="st2") == 128 << 20
    assert "pyvirt_ksm_pages_sharing" in first and "pyvirt_ksm_mode" in first
    assert value(first["pyvirt_ksm_mode"], "pyvirt_ksm_mode", mode="unmanaged") == 1
    time.sleep(1.0)
    second, _ = scrape(port)
    assert value(second["pyvirt_domain_cpu_seconds"], "pyvirt_domain_cpu_seconds_total", domain="st1",
                 mode="user") >= cpu1
    # the same page on the daemon's unix socket
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(metrics_daemon.socket))
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 200") and b"pyvirt_domain_state{" in answer
    # the TCP listener serves /metrics and nothing else (read-only)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/domains", timeout=5)
    assert err.value.code == 404


def test_metrics_port_in_use_and_bad_address(caps_cache: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with daemon_with(caps_cache, args=("--metrics-listen", f"127.0.0.1:{taken}")) as d:
            assert "cannot listen on 127.0.0.1:" in d.stderr() and "without its /metrics listener" in d.stderr()
            ok(d, "list")  # the daemon runs without it
    done = subprocess.run([PYVIRTD, "--root", "/nonexistent-pyvirt", "--metrics-listen", "localhost"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "--metrics-listen 'localhost' is not ADDRESS:PORT" in done.stderr


def test_top_batch(metrics_daemon: DaemonHandle) -> None:
    out = ok(metrics_daemon, "top", "--batch", "--iterations", "2", "--delay", "0.5")
    frames = out.rstrip("\n").split("\n\npyvirt top ")
    assert len(frames) == 2 and frames[0].startswith("pyvirt top ")
    lines = frames[1].splitlines()
    assert "3 domains, 2 active, 2 running, 0 paused, 1 inactive" in lines[1]
    assert lines[4].split() == ["ID", "S", "RDRQ", "WRRQ", "RXBY", "TXBY", "%CPU", "%MEM", "TIME", "NAME"]
    rows = {line.split()[-1]: line.split() for line in lines[5:]}
    assert rows["st1"][1] == "R" and float(rows["st1"][6]) >= 0 and rows["(st3)"][0] == "-"
    assert "top needs a terminal" in fails(metrics_daemon, "top")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/setup.sh installs it)")
def test_top_on_a_terminal_under_tmux(metrics_daemon: DaemonHandle) -> None:
    session = f"pvtop{time.monotonic_ns()}"
    command = f"{PYVIRT} -c {metrics_daemon.uri} top --delay 0.3"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "20", command], check=True)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

    def wait_for(text: str) -> str:
        deadline = time.monotonic() + 15
        shown = ""
        while time.monotonic() < deadline:
            shown = screen()
            if text in shown:
                return shown
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared on the screen:\n{shown}")

    try:
        shown = wait_for("(sorted by %CPU)")
        assert re.search(r"^\s+ID S\s+RDRQ\s+WRRQ\s+RXBY\s+TXBY\s+%CPU\s+%MEM\s+TIME\s+NAME", shown, re.M), shown
        assert " st1" in shown and " st2" in shown and "(st3)" in shown
        subprocess.run(["tmux", "send-keys", "-t", session, "M"], check=True)
        wait_for("(sorted by %MEM)")
        subprocess.run(["tmux", "send-keys", "-t", session, "N"], check=True)
        shown = wait_for("(sorted by ID)")
        rows = [line.split()[-1] for line in shown.splitlines() if re.match(r"^\s+\d+ [RP] ", line)]
        assert rows == ["st1", "st2"], shown
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and subprocess.run(["tmux", "has-session", "-t", session],
                                                             capture_output=True).returncode == 0:
            time.sleep(0.1)
        assert subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode != 0, \
            "top did not quit on q"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
