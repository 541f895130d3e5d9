"""Real QEMU (TCG, no guest): spawn, QMP, events, exit watching, reattach.

Every QEMU started here is killed in the ``qemus`` fixture's teardown,
whether the test passed or not. Timings are printed (run with -s), and only
asserted with wide margins where the number is the behaviour under test.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.errors import OperationInvalid, QemuError
from pyvirt.qemu import events as ev
from pyvirt.qemu.monitor import Monitor
from pyvirt.qemu.process import QemuProcess, read_pidfile, reattach, spawn

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 not installed"),
]


class Vm:
    """Paths and argv of one throw-away QEMU."""

    def __init__(self, root: Path, machine: str = "q35") -> None:
        self.uuid = str(uuidlib.uuid4())
        self.qmp = root / f"{self.uuid[:8]}.qmp"
        self.pidfile = root / f"{self.uuid[:8]}.pid"
        self.log = root / "log" / f"{self.uuid[:8]}.log"
        self.argv = [
            "qemu-system-x86_64", "-accel", "tcg", "-M", machine, "-m", "64", "-nodefaults",
            "-no-user-config", "-display", "none", "-S", "-name", f"vm-{self.uuid[:8]}",
            "-uuid", self.uuid, "-qmp", f"unix:{self.qmp},server=on,wait=off",
        ]

    async def spawn(self) -> QemuProcess:
        return await spawn(self.argv, log_path=self.log, pidfile=self.pidfile, qmp_socket=self.qmp)


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pv-qemu-"))  # short: unix socket paths are limited
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def qemus() -> Iterator[list[int]]:
    """Pids to SIGKILL at teardown (tests append what they start)."""
    pids: list[int] = []
    try:
        yield pids
    finally:
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            finally:
                os.close(fd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # reap if it is our child


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_lifecycle_and_events(root: Path, qemus: list[int]) -> None:
    async def body() -> None:
        vm = Vm(root)
        t0 = time.perf_counter()
        proc = await vm.spawn()
        qemus.append(proc.pid)
        t1 = time.perf_counter()
        mon = Monitor("lifecycle")
        await mon.connect(vm.qmp)
        running, status = await mon.query_status()
        t2 = time.perf_counter()
        assert (running, status) == (False, "prelaunch")  # -S: paused before the first instruction
        await mon.cont()
        t3 = time.perf_counter()
        print(f"\nspawn {1e3 * (t1 - t0):.1f} ms + QMP handshake {1e3 * (t2 - t1):.1f} ms "
              f"+ cont {1e3 * (t3 - t2):.1f} ms = {1e3 * (t3 - t0):.1f} ms")
        assert await mon.query_status() == (True, "running")
        assert await mon.query_name() == f"vm-{vm.uuid[:8]}"
        assert len(await mon.query_cpus_fast()) == 1
        version = await mon.query_version()
        assert version.major >= 7
        assert (await mon.human_monitor_command("info version")).startswith(str(version))
        await mon.stop()
        assert await mon.query_status() == (False, "paused")
        with pytest.raises(QemuError, match=r"'query-balloon'.*balloon"):
            await mon.query_balloon()  # no balloon device: QEMU's own words come through
        assert proc.alive()
        await mon.quit()
        assert await proc.wait_exit(5)
        assert not proc.alive()
        assert proc.returncode == 0
        names = [e.name async for e in mon.events()]
        assert names[:2] == [ev.RESUME, ev.STOP]
        assert names[-2:] == [ev.SHUTDOWN, ev.MONITOR_CLOSED]
        await mon.close()
        proc.close()
        assert read_pidfile(vm.pidfile) in (proc.pid, None)  # QEMU removes it on a clean exit
        log = vm.log.read_text()
        assert "starting up" in log.splitlines()[0]
        assert f"-uuid {vm.uuid} -qmp unix:{vm.qmp},server=on,wait=off -pidfile {vm.pidfile}" in log

    run(body())


def test_kill_minus_9_seen_at_once(root: Path, qemus: list[int]) -> None:
    async def body() -> None:
        vm = Vm(root)
        proc = await vm.spawn()
        qemus.append(proc.pid)
        mon = Monitor("k9")
        await mon.connect(vm.qmp)
        await mon.cont()
        t0 = time.perf_counter()
        os.kill(proc.pid, signal.SIGKILL)
        assert await proc.wait_exit(5)
        elapsed = time.perf_counter() - t0
        print(f"\nkill -9 -> wait_exit returned after {1e3 * elapsed:.2f} ms")
        assert elapsed < 0.5  # seen through the pidfd, not by polling /proc (speed: bench/)
        assert proc.returncode == -signal.SIGKILL
        await asyncio.wait_for(mon.wait_closed(), 5)
        names = [e.name async for e in mon.events()]
        assert names[-1] == ev.MONITOR_CLOSED
        with pytest.raises(QemuError, match="not connected"):
            await mon.query_status()
        await mon.close()
        proc.close()

    run(body())


def test_terminate_keeps_logging_after_start(root: Path, qemus: list[int]) -> None:
    """QEMU's stderr still reaches the log after start-up (why we do not -daemonize)."""

    async def body() -> None:
        vm = Vm(root)
        proc = await vm.spawn()
        qemus.append(proc.pid)
        mon = Monitor("term")
        await mon.connect(vm.qmp)  # the greeting: QEMU's main loop (and its signal handling) runs
        await proc.terminate(timeout=5)
        await mon.close()
        assert not proc.alive()
        assert proc.returncode == 0
        assert "terminating on signal 15" in vm.log.read_text()
        proc.close()

    run(body())


SPAWNER = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from pyvirt.qemu.process import spawn

    async def main():
        argv, log, pidfile, qmp = json.loads(sys.argv[1])
        proc = await spawn(argv, log_path=Path(log), pidfile=Path(pidfile), qmp_socket=Path(qmp))
        print(proc.pid, flush=True)

    asyncio.run(main())
    """
)


def test_outlives_spawner_and_reattaches(root: Path, qemus: list[int]) -> None:
    """A daemon that started QEMU exits; a new one finds QEMU running and takes it over."""
    vm = Vm(root)
    arg = json.dumps([vm.argv, str(vm.log), str(vm.pidfile), str(vm.qmp)])
    out = subprocess.run([sys.executable, "-c", SPAWNER, arg], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.strip())
    qemus.append(pid)

    async def body() -> None:
        assert read_pidfile(vm.pidfile) == pid
        assert reattach(pid, str(uuidlib.uuid4())) is None  # another VM's uuid: not ours
        assert reattach(2**22 + 12345, vm.uuid) is None  # no such process
        proc = reattach(pid, vm.uuid.upper())
        assert proc is not None and proc.alive()
        assert proc.returncode is None  # not our child any more
        mon = Monitor("reattached")
        await mon.connect(vm.qmp)
        assert await mon.query_status() == (False, "prelaunch")  # still there, untouched
        await mon.cont()
        assert (await mon.query_status())[0]
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        assert await proc.wait_exit(5)
        elapsed = time.perf_counter() - t0
        print(f"\nkill -9 of a reattached (orphan) QEMU seen after {1e3 * elapsed:.2f} ms")
        assert elapsed < 0.5  # PID 1 reaps orphans ~1 s late: this must not wait for it
        assert not proc.alive()
        assert reattach(pid, vm.uuid) is None  # a zombie (or gone) is not running
        await mon.close()
        proc.close()

    run(body())


def test_bad_machine_type_reports_qemu_message(root: Path, qemus: list[int]) -> None:
    async def body() -> None:
        vm = Vm(root, machine="no-such-machine")
        with pytest.raises(QemuError) as err:
            await vm.spawn()
        print(f"\n{err.value}")
        assert "QEMU failed to start (exit status 1)" in err.value.message
        assert str(vm.log) in err.value.message
        assert err.value.detail is not None
        assert "unsupported machine type" in err.value.detail or "no-such-machine" in err.value.detail
        assert "starting up" not in err.value.detail  # QEMU's words only, not our header
        assert not vm.qmp.exists()

    run(body())


def test_bad_binary(root: Path) -> None:
    async def body() -> None:
        vm = Vm(root)
        vm.argv[0] = str(root / "no-qemu-here")
        with pytest.raises(QemuError, match="cannot run QEMU binary"):
            await vm.spawn()

    run(body())


def test_second_start_on_a_live_socket_is_refused(root: Path, qemus: list[int]) -> None:
    async def body() -> None:
        vm = Vm(root)
        proc = await vm.spawn()
        qemus.append(proc.pid)
        with pytest.raises(OperationInvalid, match="already listening"):
            await vm.spawn()
        assert proc.alive()
        await proc.terminate(5)
        proc.close()

    run(body())


def test_start_times_out_without_qmp(root: Path, qemus: list[int]) -> None:
    """An argv whose QMP socket is elsewhere: spawn gives up and leaves nothing running."""

    async def body() -> None:
        vm = Vm(root)
        elsewhere = root / "other.qmp"
        argv = [a.replace(str(vm.qmp), str(elsewhere)) for a in vm.argv]
        t0 = time.perf_counter()
        with pytest.raises(QemuError, match="did not open its QMP socket"):
            await spawn(argv, log_path=vm.log, pidfile=vm.pidfile, qmp_socket=vm.qmp, timeout=0.5)
        assert time.perf_counter() - t0 < 5
        pid = read_pidfile(vm.pidfile)
        if pid is not None:
            qemus.append(pid)
            assert reattach(pid, vm.uuid) is None  # it was killed

    run(body())
