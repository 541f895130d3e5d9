"""Fixtures for integration tests: real pyvirtd daemons in temp roots, the tiny guest.

Each daemon is a real `pyvirtd --root DIR` process (so kill -9 and restarts
are real). Teardown kills whatever QEMU a test left running under that root
and removes the root: a failing test leaks nothing.

Every test, and every module, is checked for what it left on the host, read
from the host itself (tests/integration/leftovers.py): what a test makes must
be gone when its function-scoped fixtures are torn down; what a module-scoped
fixture makes (a shared daemon, its networks and guests) must be gone when the
module's fixtures are. A leftover fails the test (or the module's last test,
at teardown) and is named.

Every exchange with a daemon is checked against the REST contract
(docs/openapi.yaml): PYVIRT_API_TRACE points at a file of each test's own, which
the CLI subprocesses and the in-process clients append to, and the test fails
when a line departs from the document (tests/openapi_check.py).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyvirt.client.transport import TRACE_ENV
from tests.guest.build import READY_MARKER, GuestImage, build
from tests.integration import leftovers
from tests.openapi_check import Contract, Tally, check_trace

leftovers.use_private_tmp()  # before anything makes a temp path: see leftovers.py
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PYVIRT = str(VENV_BIN / "pyvirt")
PYVIRTD = str(VENV_BIN / "pyvirtd")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="integration tests need root (QEMU, taps, the daemon's socket)")
        for item in items:
            if "integration" in str(item.fspath):
                item.add_marker(skip)


TRACED = Tally()  # what the run checked, for the summary line


def check_api_trace(path: Path, who: str) -> None:
    """Fail with every exchange of ``path`` that departs from docs/openapi.yaml, each named."""
    if not path.exists():
        return
    problems = check_trace(path.read_text(encoding="utf-8").splitlines(), TRACED)
    if problems:
        shown = "\n  ".join(problems[:30]) + ("\n  ..." if len(problems) > 30 else "")
        pytest.fail(f"{who}: {len(problems)} exchange(s) with pyvirtd departed from docs/openapi.yaml "
                    f"(trace: {path}):\n  {shown}", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def run_tmp() -> Iterator[Path]:
    """The run's temp directory (TMPDIR) goes when the run ends; what a module left in it was reported."""
    path = leftovers.use_private_tmp()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def api_trace_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Trace the requests made outside any test too (module fixtures), and check them at the end."""
    where = tmp_path_factory.mktemp("api-trace")
    outside = where / "outside-tests.jsonl"
    before = os.environ.get(TRACE_ENV)
    os.environ[TRACE_ENV] = str(outside)
    try:
        yield where
    finally:
        if before is None:
            os.environ.pop(TRACE_ENV, None)
        else:
            os.environ[TRACE_ENV] = before
    check_api_trace(outside, "requests made by fixtures outside the tests")


@pytest.fixture(autouse=True)
def api_trace(request: pytest.FixtureRequest, api_trace_dir: Path) -> Iterator[Path]:
    """Each test's own trace file (os.environ: subprocesses and in-process clients inherit it),
    checked after the test and its other fixtures' teardown."""
    path = api_trace_dir / (re.sub(r"[^\w.-]+", "_", request.node.nodeid)[-150:] + ".jsonl")
    outside = os.environ[TRACE_ENV]
    os.environ[TRACE_ENV] = str(path)
    try:
        yield path
    finally:
        os.environ[TRACE_ENV] = outside
    check_api_trace(path, request.node.nodeid)


def _check_leftovers(before: leftovers.Snapshot, who: str, basetemp: Path) -> None:
    found = leftovers.leftovers_since(before, ours=[str(basetemp)])
    if found:
        pytest.fail(f"{who} left {len(found)} thing(s) on the host:\n  " + "\n  ".join(found), pytrace=False)


@pytest.fixture(scope="module", autouse=True)
def leftovers_of_module(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The module's shared fixtures (daemons, networks, guests) leave nothing once torn down.

    Autouse, so set up before the module's other fixtures and torn down after them."""
    if os.geteuid() != 0:
        yield
        return
    before = leftovers.snapshot()
    yield
    _check_leftovers(before, f"module {request.module.__name__}", tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def leftovers_of_test(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The test and its function-scoped fixtures leave nothing; module fixtures it uses are set up
    before this snapshot (higher scopes come first), so their objects are judged at the module's end."""
    if os.geteuid() != 0:
        yield
        return
    before = leftovers.snapshot()
    yield
    _check_leftovers(before, request.node.nodeid, tmp_path_factory.getbasetemp())


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not (TRACED.exchanges or TRACED.records):
        return
    documented = {f"{op.method} {op.template}" for op in Contract.load().operations()}
    terminalreporter.write_line(
        f"openapi: {TRACED.exchanges} requests and {TRACED.records} event-stream records checked against "
        f"docs/openapi.yaml; {len(TRACED.routes & documented)} of {len(documented)} documented operations exercised")
    if TRACED.refused:
        terminalreporter.write_line(f"openapi: {len(TRACED.refused)} requests outside the document were refused "
                                    "with a documented 4xx, e.g.: " + "; ".join(TRACED.refused[:3]))
    unexercised = sorted(documented - TRACED.routes)
    if unexercised and len(unexercised) <= 20:
        terminalreporter.write_line("openapi: never exercised: " + ", ".join(unexercised))


@pytest.fixture(scope="session")
def guest() -> GuestImage:
    return build()


@pytest.fixture(scope="session")
def caps_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Probe the host once per session (the KVM probe takes up to its timeout) and share it."""
    root = Path(tempfile.mkdtemp(prefix="pvcaps"))
    try:
        from pyvirt.config import Config
        from pyvirt.host.probe import load_or_probe

        config = Config.for_root(root)
        config.paths.make_dirs()
        load_or_probe(config.paths, config.settings.qemu_binary, kvm_timeout=config.settings.kvm_probe_timeout)
        cached = tmp_path_factory.mktemp("caps") / "host-caps.json"
        shutil.copy(config.paths.cache / "host-caps.json", cached)
        return cached
    finally:
        shutil.rmtree(root, ignore_errors=True)


def pids_under(root: Path, program: bytes) -> list[int]:
    """Processes whose program name contains ``program`` and whose command line mentions ``root``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if program in cmdline.split(b"\0")[0] and str(root).encode() in cmdline:
            pids.append(int(entry))
    return pids


def qemu_pids_under(root: Path) -> list[int]:
    """QEMU processes of this daemon root (their sockets live there)."""
    return pids_under(root, b"qemu-system")


def _network_runtimes(root: Path) -> list[dict[str, object]]:
    import sqlite3

    db = root / "var/lib/pyvirt/pyvirt.db"
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            rows = conn.execute("SELECT data FROM object_runtime WHERE kind='network'").fetchall()
        except sqlite3.OperationalError:
            return []
    return [json.loads(d) for (d,) in rows]


def _nft_table(root: Path) -> str:
    from pyvirt.network.lifecycle import nft_table_for

    return nft_table_for(root)


def remove_network_leftovers(root: Path) -> None:
    for rt in _network_runtimes(root):
        bridge = rt.get("bridge")
        if bridge and Path(f"/sys/class/net/{bridge}").exists():
            subprocess.run(["ip", "link", "del", str(bridge)], capture_output=True)
    subprocess.run(["nft", "delete", "table", "inet", _nft_table(root)], capture_output=True)


class DaemonHandle:
    """One pyvirtd process and helpers to talk to it."""

    def __init__(self, root: Path, netns: str | None = None) -> None:
        self.root = root
        self.netns = netns  # run in this network namespace (tests/integration/two_hosts.py)
        self.baseline = leftovers.snapshot()  # the host before this daemon ran: see host_leftovers()
        leftovers.register_root(root)
        self.socket = root / "run/pyvirt/pyvirtd.sock"
        self.uri = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.args: tuple[str, ...] = ()  # extra pyvirtd options (--metrics-listen ...)

    def start(self, timeout: float = 20.0, env: dict[str, str] | None = None) -> None:
        """``env``: extra environment for the daemon (e.g. a fault point, see pyvirt/faults.py)."""
        with open(self.root / "pyvirtd.stderr", "ab") as log:  # the daemon keeps its own copy of the fd
            prefix = ["ip", "netns", "exec", self.netns] if self.netns else []  # ip execs pyvirtd: same pid
            self.proc = subprocess.Popen([*prefix, PYVIRTD, "--root", str(self.root), *self.args], stdout=log,
                                         stderr=log, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"pyvirtd exited with {self.proc.returncode}: {self.stderr()}")
            time.sleep(0.01)
        raise RuntimeError(f"pyvirtd did not open {self.socket} within {timeout} s: {self.stderr()}")

    def answers(self) -> bool:
        """True once the daemon accepts on its socket (a killed daemon leaves a stale file)."""
        import socket

        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(self.socket))
            except OSError:
                return False
        return True

    def stderr(self) -> str:
        return (self.root / "pyvirtd.stderr").read_text(errors="replace")[-3000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def connect(self):  # type: ignore[no-untyped-def]
        import pyvirt

        return pyvirt.connect(self.uri)

    def cli(self, *args: str, input: str | None = None, check: bool = False,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run the real `pyvirt` command against this daemon."""
        result = subprocess.run([PYVIRT, "-c", self.uri, *args], capture_output=True, text=True,
                                input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"pyvirt {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def serial_log(self, name: str) -> Path:
        return self.root / f"var/log/pyvirt/qemu/{name}.serial.log"

    def wait_serial(self, name: str, marker: str = READY_MARKER, timeout: float = 60.0, start: int = 0) -> str:
        """Wait until the guest's serial log holds ``marker`` (after byte ``start``)."""
        path = self.serial_log(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                text = path.read_bytes()[start:].decode(errors="replace")
                if marker in text:
                    return text
            time.sleep(0.05)
        text = path.read_text(errors="replace") if path.exists() else "<no serial log>"
        raise AssertionError(f"guest {name} did not print {marker!r} within {timeout} s; serial log:\n{text[-2000:]}")

    def cleanup(self) -> None:
        self.stop(signal.SIGKILL)
        for pid in qemu_pids_under(self.root) + pids_under(self.root, b"dnsmasq"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while qemu_pids_under(self.root) and time.monotonic() < deadline:
            time.sleep(0.05)
        remove_network_leftovers(self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    def host_leftovers(self) -> list[str]:
        """What is on the host now that was not before this daemon started (links, namespaces, loop
        devices, nft tables, mounts, QEMU and dnsmasq processes, temp dirs), read from the host itself:
        a record the daemon forgot cannot hide what it named. This daemon itself, while it runs, is not one."""
        running = self.proc is not None and self.proc.poll() is None
        return leftovers.leftovers_since(self.baseline, alive=[("pyvirtd", str(self.root))] if running else [])

    def guest_poweroff(self, name: str, after: float = 0) -> int:
        """Have the guest power itself off (``poweroff -f`` from its console shell) ``after`` seconds
        from now, printing "PYVIRT-GUEST-POWEROFF console" first; returns the serial log's size
        before, for ``wait_serial(start=...)``. The daemon may be gone by the time it happens."""
        start = self.serial_log(name).stat().st_size
        # POWER""OFF: the shell's echo of the typed line must not match the marker
        self.guest_run(name, f'(sleep {after}; echo PYVIRT-GUEST-POWER""OFF console; poweroff -f) '
                             ">/dev/console 2>&1 & true")
        return start

    def guest_run(self, name: str, command: str, timeout: float = 30.0) -> tuple[int, str]:
        """Type ``command`` on the guest's serial shell; wait for it to finish.

        Returns (exit status, output). The end marker is echoed as `E""ND` so the
        typed command line itself (echoed back by the shell) never matches it.
        """
        tag = f"T{time.monotonic_ns()}"
        start = self.serial_log(name).stat().st_size if self.serial_log(name).exists() else 0
        with self.connect() as conn:
            stream = conn.domain(name).console(force=True)
            try:
                stream.write(f'{command}; echo "{tag}=$?=E""ND"\n'.encode())
                text = self.wait_serial(name, "=END", timeout=timeout, start=start)
                deadline = time.monotonic() + timeout
                while not re.search(rf"{tag}=\d+=END", text) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    text = self.serial_log(name).read_bytes()[start:].decode(errors="replace")
            finally:
                stream.close()
        match = re.search(rf"{tag}=(\d+)=END", text)
        if match is None:
            raise AssertionError(f"guest {name}: `{command}` did not finish within {timeout} s:\n{text[-2000:]}")
        body = text[:match.start()]
        body = body.split("\n", 1)[1] if "\n" in body else ""  # drop the echoed command line
        return int(match.group(1)), body


def ok(d: DaemonHandle, *args: str) -> str:
    """Run `pyvirt ARGS`; it must succeed without a word on stderr. Returns stdout."""
    r = d.cli(*args)
    assert r.returncode == 0, f"pyvirt {' '.join(args)} failed: {r.stderr}"
    assert r.stderr == "", r.stderr
    return r.stdout


def fails(d: DaemonHandle, *args: str) -> str:
    """Run `pyvirt ARGS`; it must fail with exit 1, an `error:` line and nothing on stdout. Returns stderr."""
    r = d.cli(*args)
    assert r.returncode == 1, f"pyvirt {' '.join(args)} should fail: {r.stdout}"
    assert r.stderr.startswith("error: ") and not r.stdout.strip(), (r.stdout, r.stderr)
    return r.stderr


def make_daemon(caps_cache: Path, default_network: bool = False, *, netns: str | None = None, settings: str = "",
                env: dict[str, str] | None = None) -> DaemonHandle:
    """A started daemon in a fresh root; ``settings``: more lines of its pyvirt.toml; ``netns``: its
    network namespace; ``env``: more of its environment."""
    # Short root (in the run's short temp dir): unix socket paths (QMP, serial) must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="pv"))
    root.chmod(0o755)  # dnsmasq reads its hosts files as `nobody`
    cache = root / "var/lib/pyvirt/cache"
    cache.mkdir(parents=True)
    shutil.copy(caps_cache, cache / "host-caps.json")
    etc = root / "etc/pyvirt"
    etc.mkdir(parents=True)
    # Every test daemon would otherwise bring up its own `default` network (virbr0): tests
    # that want networks define their own, on bridges and subnets of their own.
    (etc / "pyvirt.toml").write_text(f"default_network = {'true' if default_network else 'false'}\n{settings}")
    handle = DaemonHandle(root, netns)
    try:
        handle.start(env=env)
    except BaseException:
        handle.cleanup()
        raise
    return handle


@pytest.fixture(scope="module")
def daemon(caps_cache: Path) -> Iterator[DaemonHandle]:
    """A daemon shared by the tests of one module (each test uses its own domain names)."""
    handle = make_daemon(caps_cache)
    try:
        yield handle
    finally:
        handle.cleanup()


@pytest.fixture()
def fresh_daemon(caps_cache: Path) -> Iterator[DaemonHandle]:
    """A daemon of the test's own, for tests that kill or restart it."""
    handle = make_daemon(caps_cache)
    try:
        yield handle
    finally:
        handle.cleanup()


def domain_xml(name: str, guest: GuestImage, *, machine: str = "microvm", memory_mib: int = 128,
               acpi: bool = True, extra_devices: str = "", cmdline: str | None = None,
               on_crash: str = "destroy", dom_type: str = "qemu", uuid: str | None = None) -> str:
    """A domain of the tiny guest; microvm boots fastest under TCG."""
    features = "<features><acpi/></features>" if acpi else ""
    uuid_el = f"<uuid>{uuid}</uuid>" if uuid else ""
    return f"""<domain type='{dom_type}'>
  <name>{name}</name>{uuid_el}
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
    <kernel>{guest.kernel}</kernel>
    <initrd>{guest.initrd}</initrd>
    <cmdline>{cmdline or guest.cmdline}</cmdline>
  </os>
  {features}
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>{on_crash}</on_crash>
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
    {extra_devices}
  </devices>
</domain>
"""
