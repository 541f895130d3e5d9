"""Remote daemons: `pyvirt list` from host a to host b over pyvirt+tls:// and pyvirt+ssh://, beside
`pyvirt list` on a's own unix socket; and one request on an open connection (keep-alive) over each.

Two hosts in network namespaces joined by a veth pair (tests/integration/two_hosts.py), a real sshd
in b's. `python -m bench.run --only remote`.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

from tests.integration.two_hosts import two_hosts

Row = dict[str, object]
REQUESTS = 200

PER_REQUEST = """
import json, sys, time
import pyvirt
with pyvirt.connect(sys.argv[1]) as conn:
    conn.list_domains()
    t0 = time.perf_counter()
    for _ in range(int(sys.argv[2])):
        conn.list_domains()
    print(json.dumps((time.perf_counter() - t0) * 1000 / int(sys.argv[2])))
"""


def bench_remote(caps: Path, rows: list[Row], runs: int) -> None:
    with two_hosts(caps, ssh=True) as hosts:
        a, b = hosts.a, hosts.b
        assert a.daemon is not None
        uris = {"unix socket (a's own daemon)": a.daemon.uri, "pyvirt+tls:// (a -> b)": b.tls_uri,
                "pyvirt+ssh:// (a -> b)": b.ssh_uri}
        for what, uri in uris.items():
            times = []
            for _ in range(max(runs, 10)):
                times.append(_elapsed(hosts, a, uri))
            rows.append({"what": f"pyvirt list, {what}", "ms": round(statistics.median(times), 1)})
        ssh = hosts.workdir / "ssh"
        bare = ["ssh", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={ssh / 'known_hosts'}", "-i",
                str(ssh / "client_key"), "-p", "2222", f"root@{b.address}", "true"]
        times = [_timed(hosts, a, bare) for _ in range(max(runs, 10))]
        rows.append({"what": "for scale: bare `ssh root@b true` (OpenSSH's own handshake)",
                     "ms": round(statistics.median(times), 1)})
        for what, uri in uris.items():
            r = subprocess.run(["ip", "netns", "exec", a.netns, sys.executable, "-c", PER_REQUEST, uri, str(REQUESTS)],
                               capture_output=True, text=True, env={**hosts.env, "PATH": "/usr/bin:/bin"}, check=True)
            rows.append({"what": f"one GET /v1/domains on an open connection, {what}",
                         "ms": round(json.loads(r.stdout), 3)})


def _elapsed(hosts, host, uri: str) -> float:  # type: ignore[no-untyped-def]
    """Wall time of one `pyvirt -c URI list --all` in ``host``'s namespace."""
    from tests.integration.conftest import PYVIRT

    return _timed(hosts, host, [PYVIRT, "-c", uri, "list", "--all"])


def _timed(hosts, host, command: list[str]) -> float:  # type: ignore[no-untyped-def]
    """Wall time of ``command`` in ``host``'s namespace, without `ip netns exec`'s own cost."""
    script = ("import subprocess, sys, time; t0 = time.perf_counter(); "
              "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
              "print((time.perf_counter() - t0) * 1000)")
    argv = ["ip", "netns", "exec", host.netns, sys.executable, "-c", script, *command]
    r = subprocess.run(argv, capture_output=True, text=True, env={**hosts.env, "PATH": "/usr/bin:/bin"}, check=True)
    return float(r.stdout)
