"""Monitor against a tiny fake QMP server: typed results, error mapping, events.

The fake speaks QMP's wire format (greeting, qmp_capabilities, replies with
the client's id, events) over a real unix socket; no QEMU needed.
"""
from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pyvirt.errors import QemuError
from pyvirt.qemu import events as ev
from pyvirt.qemu.monitor import Monitor, QmpEvent

pytestmark = pytest.mark.timeout(20)

GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 9}, "package": "Debian 1:7.2"},
                    "capabilities": ["oob"]}}

Reply = dict[str, Any] | Callable[["FakeQmp", dict[str, Any]], Awaitable[dict[str, Any] | None]]


class FakeQmp:
    """Answers commands from ``replies`` (name -> {"return": ...} / {"error": ...} / coroutine)."""

    def __init__(self, path: Path, replies: dict[str, Reply], greet: bool = True) -> None:
        self.path = path
        self.replies = replies
        self.greet = greet
        self.received: list[dict[str, Any]] = []
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> FakeQmp:
        self.server = await asyncio.start_unix_server(self._serve, str(self.path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hangup()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def send(self, obj: dict[str, Any]) -> None:
        assert self.writer is not None
        self.writer.write(json.dumps(obj).encode() + b"\r\n")

    def event(self, name: str, data: dict[str, Any] | None = None, seconds: int = 1700000000,
              micro: int = 250000) -> None:
        msg: dict[str, Any] = {"event": name, "timestamp": {"seconds": seconds, "microseconds": micro}}
        if data is not None:
            msg["data"] = data
        self.send(msg)

    async def hangup(self) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.close()
            await self.writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.connected.set()
        if not self.greet:
            await reader.read()  # say nothing until the client leaves
            return
        self.send(GREETING)
        async for msg in _json_stream(reader):
            self.received.append(msg)
            name = msg["execute"]
            if name == "qmp_capabilities":
                reply: dict[str, Any] | None = {"return": {}}
            else:
                entry = self.replies.get(name, {"error": {"class": "CommandNotFound",
                                                          "desc": f"The command {name} has not been found"}})
                reply = await entry(self, msg) if callable(entry) else entry
            if reply is None:
                continue
            if "id" in msg:
                reply = {**reply, "id": msg["id"]}
            self.send(reply)
            await writer.drain()

    def args_of(self, command: str) -> dict[str, Any] | None:
        for msg in self.received:
            if msg["execute"] == command:
                return msg.get("arguments")
        raise AssertionError(f"{command} was never sent")


async def _json_stream(reader: asyncio.StreamReader):  # type: ignore[no-untyped-def]
    """QMP clients send JSON objects back to back, not necessarily one per line."""
    decoder = json.JSONDecoder()
    buf = ""
    while chunk := await reader.read(65536):
        buf += chunk.decode()
        while buf.strip():
            try:
                obj, end = decoder.raw_decode(buf.lstrip())
            except json.JSONDecodeError:
                break  # incomplete: read more
            buf = buf.lstrip()[end:]
            yield obj


def run(test: Callable[[Path], Awaitable[None]]) -> None:
    with tempfile.TemporaryDirectory(prefix="pyvirt-qmp-") as tmp:
        asyncio.run(asyncio.wait_for(test(Path(tmp) / "qmp.sock"), 15))


async def connected(fake: FakeQmp, name: str = "web1") -> Monitor:
    mon = Monitor(name)
    await mon.connect(fake.path, timeout=5)
    return mon


def test_typed_commands() -> None:
    replies: dict[str, Reply] = {
        "query-status": {"return": {"running": False, "singlestep": False, "status": "prelaunch"}},
        "query-cpus-fast": {"return": [
            {"cpu-index": 1, "thread-id": 4002, "qom-path": "/machine/unattached/device[1]", "target": "x86_64"},
            {"cpu-index": 0, "thread-id": 4001, "qom-path": "/machine/unattached/device[0]", "target": "x86_64"},
        ]},
        "query-balloon": {"return": {"actual": 536870912}},
        "balloon": {"return": {}},
        "query-version": {"return": GREETING["QMP"]["version"]},
        "query-name": {"return": {"name": "web1"}},
        "human-monitor-command": {"return": "QEMU 7.2.9 monitor\r\n"},
        "cont": {"return": {}},
        "stop": {"return": {}},
        "system_powerdown": {"return": {}},
        "system_reset": {"return": {}},
    }

    async def body(path: Path) -> None:
        async with FakeQmp(path, replies) as fake:
            mon = await connected(fake)
            try:
                assert await mon.query_status() == (False, "prelaunch")
                assert await mon.query_cpus_fast() == [4001, 4002]
                assert await mon.query_balloon() == 536870912
                await mon.balloon(256 << 20)
                assert fake.args_of("balloon") == {"value": 268435456}
                version = await mon.query_version()
                assert (version.major, version.minor, version.micro, str(version)) == (7, 2, 9, "7.2.9")
                assert version.package == "Debian 1:7.2"
                assert await mon.query_name() == "web1"
                assert await mon.human_monitor_command("info version") == "QEMU 7.2.9 monitor\r\n"
                assert fake.args_of("human-monitor-command") == {"command-line": "info version"}
                await mon.cont()
                await mon.stop()
                await mon.system_powerdown()
                await mon.system_reset()
                assert await mon.execute("query-status") == replies["query-status"]["return"]  # type: ignore[index]
                sent = [m["execute"] for m in fake.received]
                assert sent[0] == "qmp_capabilities"
                assert sent[-5:] == ["cont", "stop", "system_powerdown", "system_reset", "query-status"]
            finally:
                await mon.close()

    run(body)


def test_command_error_names_command_and_qemu_words() -> None:
    replies: dict[str, Reply] = {
        "query-balloon": {"error": {"class": "DeviceNotActive", "desc": "No balloon device has been activated"}},
    }

    async def body(path: Path) -> None:
        async with FakeQmp(path, replies) as fake:
            mon = await connected(fake)
            try:
                with pytest.raises(QemuError) as err:
                    await mon.query_balloon()
                assert "'query-balloon'" in err.value.message
                assert "web1" in err.value.message
                assert "No balloon device has been activated" in err.value.message
                assert err.value.detail == "QMP error class DeviceNotActive"
                with pytest.raises(QemuError, match=r"'no-such-cmd'.*has not been found"):
                    await mon.execute("no-such-cmd")
                assert mon.connected  # a failed command does not end the session
            finally:
                await mon.close()

    run(body)


def test_connect_to_missing_socket() -> None:
    async def body(path: Path) -> None:
        mon = Monitor("web1")
        with pytest.raises(QemuError) as err:
            await mon.connect(path, timeout=2)
        assert str(path) in err.value.message
        assert "does not exist" in err.value.message

    run(body)


def test_connect_times_out_without_greeting() -> None:
    async def body(path: Path) -> None:
        async with FakeQmp(path, {}, greet=False):
            mon = Monitor("web1")
            with pytest.raises(QemuError, match=r"no QMP greeting within 0\.3 s"):
                await mon.connect(path, timeout=0.3)

    run(body)


def test_events_in_order_then_end_marker() -> None:
    async def body(path: Path) -> None:
        async with FakeQmp(path, {}) as fake:
            mon = await connected(fake)
            seen: list[str] = []
            mon.on_event(lambda e: seen.append(e.name))
            mon.on_event(lambda e: 1 / 0)  # a broken subscriber must not stop delivery
            fake.event(ev.STOP)
            fake.event(ev.SHUTDOWN, {"guest": True, "reason": "guest-shutdown"}, seconds=1700000001, micro=5)
            await fake.writer.drain()  # type: ignore[union-attr]
            await fake.hangup()  # QEMU exits
            got: list[QmpEvent] = [e async for e in mon.events()]
            assert [e.name for e in got] == [ev.STOP, ev.SHUTDOWN, ev.MONITOR_CLOSED]
            assert got[0].timestamp == pytest.approx(1700000000.25)
            assert got[1].data == {"guest": True, "reason": "guest-shutdown"}
            assert got[1].timestamp == pytest.approx(1700000001.000005)
            assert got[2].data["requested"] is False
            assert seen == [e.name for e in got]
            assert not mon.connected
            with pytest.raises(QemuError, match=r"'query-status'.*not connected"):
                await mon.query_status()
            await mon.close()  # idempotent after EOF

    run(body)


def test_events_before_reader_are_kept() -> None:
    async def body(path: Path) -> None:
        async with FakeQmp(path, {"query-status": {"return": {"running": True, "status": "running"}}}) as fake:
            mon = await connected(fake)
            fake.event(ev.RESUME)
            await mon.query_status()  # the event was sent before this reply, so it has arrived
            await mon.close()
            got = [e async for e in mon.events()]
            assert [e.name for e in got] == [ev.RESUME, ev.MONITOR_CLOSED]
            assert got[-1].data["requested"] is True

    run(body)


def test_connection_lost_during_command() -> None:
    async def hang_up(fake: FakeQmp, msg: dict[str, Any]) -> None:
        await fake.hangup()
        return None

    async def body(path: Path) -> None:
        async with FakeQmp(path, {"query-status": hang_up}) as fake:
            mon = await connected(fake)
            with pytest.raises(QemuError, match=r"'query-status'.*connection to QEMU was lost"):
                await mon.query_status()
            await asyncio.wait_for(mon.wait_closed(), 5)
            await mon.close()

    run(body)


def test_quit_without_reply_is_not_an_error() -> None:
    async def hang_up(fake: FakeQmp, msg: dict[str, Any]) -> None:
        await fake.hangup()  # QEMU may exit before its reply to quit gets out
        return None

    async def body(path: Path) -> None:
        async with FakeQmp(path, {"quit": hang_up}) as fake:
            mon = await connected(fake)
            await mon.quit()
            names = [e.name async for e in mon.events()]
            assert names == [ev.MONITOR_CLOSED]

    run(body)


def test_command_timeout() -> None:
    async def never(fake: FakeQmp, msg: dict[str, Any]) -> None:
        return None

    async def body(path: Path) -> None:
        async with FakeQmp(path, {"query-status": never}) as fake:
            mon = await connected(fake)
            try:
                with pytest.raises(QemuError, match=r"'query-status'.*no answer within 0\.2 s"):
                    await mon.execute("query-status", timeout=0.2)
            finally:
                await mon.close()

    run(body)


def test_second_events_reader_is_refused() -> None:
    async def body(path: Path) -> None:
        async with FakeQmp(path, {}) as fake:
            mon = await connected(fake)
            first = mon.events()
            reader = asyncio.ensure_future(first.__anext__())
            await asyncio.sleep(0)
            with pytest.raises(QemuError, match="already being read"):
                await mon.events().__anext__()
            await mon.close()
            assert (await reader).name == ev.MONITOR_CLOSED
            await first.aclose()

    run(body)


def test_vcpu_commands_are_typed_and_in_topology_order() -> None:
    """QEMU lists hot-pluggable CPU slots highest first; the monitor gives them socket, core, thread order."""
    slot = {"type": "qemu64-x86_64-cpu", "vcpus-count": 1}
    replies: dict[str, Reply] = {
        "query-hotpluggable-cpus": {"return": [
            {**slot, "props": {"core-id": 0, "thread-id": 0, "socket-id": 1}},
            {**slot, "props": {"core-id": 1, "thread-id": 0, "socket-id": 0}},
            {**slot, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0},
             "qom-path": "/machine/unattached/device[0]"},
        ]},
        "query-cpus-fast": {"return": [
            {"thread-id": 4002, "cpu-index": 1, "qom-path": "/machine/peripheral/vcpu1", "props": {}},
            {"thread-id": 4001, "cpu-index": 0, "qom-path": "/machine/unattached/device[0]", "props": {}},
        ]},
    }

    async def body(path: Path) -> None:
        async with FakeQmp(path, replies) as fake:
            mon = await connected(fake)
            try:
                slots = await mon.query_hotpluggable_cpus()
                assert [(s.props["socket-id"], s.props["core-id"]) for s in slots] == [(0, 0), (0, 1), (1, 0)]
                assert [s.qom_path for s in slots] == ["/machine/unattached/device[0]", None, None]
                assert slots[1].type == "qemu64-x86_64-cpu" and slots[1].vcpus_count == 1
                vcpus = await mon.query_vcpus()
                assert [(v.index, v.thread_id, v.qom_path) for v in vcpus] == [
                    (0, 4001, "/machine/unattached/device[0]"), (1, 4002, "/machine/peripheral/vcpu1")]
            finally:
                await mon.close()

    run(body)
