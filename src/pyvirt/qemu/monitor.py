"""A typed QMP monitor on top of ``qemu.qmp``'s asyncio ``QMPClient``.

One method per QMP command pyvirt uses, each returning a typed result;
``execute`` is the escape hatch. Every failure of the library (connect,
command error, lost connection) becomes a ``QemuError`` that names the
command and carries QEMU's own description.

Events: the monitor listens from the moment it connects, so nothing QEMU
says is lost between ``connect`` and the first reader. ``events()`` yields
them in order and ends after a final ``MONITOR_CLOSED`` event when the
connection drops (QEMU exited or closed the socket); ``on_event(cb)``
registers callbacks that see the same stream.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qemu.qmp import ConnectError, EventListener, ExecInterruptedError, ExecuteError, QMPClient, QMPError, Runstate
from qemu.qmp.message import Message

from ..errors import QemuError
from . import events as ev

log = logging.getLogger(__name__)

EventCallback = Callable[["QmpEvent"], None]


@dataclass(frozen=True)
class QmpEvent:
    """One event from QEMU; ``timestamp`` is QEMU's, in seconds since the epoch."""

    name: str
    data: Mapping[str, Any] = field(default_factory=dict)
    timestamp: float = 0.0

    @classmethod
    def from_message(cls, msg: Message) -> QmpEvent:
        stamp, data = msg.get("timestamp"), msg.get("data")  # a Message's values are typed as object
        seconds = 0.0
        if isinstance(stamp, dict):
            seconds = float(stamp.get("seconds", 0)) + float(stamp.get("microseconds", 0)) / 1e6
        return cls(str(msg["event"]), dict(data) if isinstance(data, dict) else {}, seconds)


@dataclass(frozen=True)
class QemuVersion:
    major: int
    minor: int
    micro: int
    package: str

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.micro}"


@dataclass(frozen=True)
class BalloonGuestStats:
    """The virtio balloon's guest-stats: QEMU's ``stat-*`` names (bytes or counts; absent when -1)."""

    stats: Mapping[str, int]
    last_update: int  # seconds since the epoch of the guest's last report; 0: none yet


# -- vCPUs (vcpu11) --------------------------------------------------------------------------------------
TOPOLOGY_KEYS = ("drawer-id", "book-id", "socket-id", "die-id", "cluster-id", "core-id", "thread-id")


@dataclass(frozen=True)
class HotpluggableCpu:
    """One CPU slot of query-hotpluggable-cpus: the device type and topology properties device_add takes,
    and the QOM path of the CPU in it (None: empty)."""

    type: str
    vcpus_count: int
    props: Mapping[str, int]
    qom_path: str | None

    @property
    def order(self) -> tuple[int, ...]:
        """Where the slot sits in the topology: QEMU counts CPU indexes socket first, thread last."""
        return tuple(int(self.props.get(k, 0)) for k in TOPOLOGY_KEYS)


@dataclass(frozen=True)
class VcpuThread:
    """One present vCPU of query-cpus-fast: its index, host thread and QOM path."""

    index: int
    thread_id: int
    qom_path: str


# -- end vCPUs (vcpu11) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationInfo:
    """query-migrate: ``status`` (none, setup, active, completed, failed, cancelled, ...) and RAM figures."""

    status: str
    transferred: int = 0  # RAM bytes sent so far
    remaining: int = 0
    total: int = 0
    total_time_ms: int | None = None
    downtime_ms: int | None = None
    error: str | None = None

    @classmethod
    def from_reply(cls, ret: Mapping[str, Any]) -> MigrationInfo:
        ram = ret.get("ram") or {}
        return cls(str(ret.get("status", "none")), int(ram.get("transferred", 0)), int(ram.get("remaining", 0)),
                   int(ram.get("total", 0)), ret.get("total-time"), ret.get("downtime"), ret.get("error-desc"))


class Monitor:
    """One QMP connection to one QEMU process."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or "qemu"
        self._client = QMPClient(name)
        # The library's default listener keeps every event forever (queue and
        # history): a leak over a VM's lifetime. Forward events ourselves instead.
        with contextlib.suppress(ValueError):
            self._client._listeners.remove(self._client.events)  # noqa: SLF001 - no public way to drop the default
        self._client.register_listener(_Forwarder(self._deliver))
        self._queue: asyncio.Queue[QmpEvent] = asyncio.Queue()
        self._callbacks: list[EventCallback] = []
        self._pump: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._iterating = False
        self._closing = False
        self.close_error: BaseException | None = None

    # -- connection ---------------------------------------------------------

    async def connect(self, socket_path: Path | str | socket.socket, timeout: float = 5.0) -> None:
        """Connect, read the greeting and negotiate capabilities."""
        where = socket_path if not isinstance(socket_path, socket.socket) else "an open socket"
        address: str | socket.socket = socket_path if isinstance(socket_path, socket.socket) else str(socket_path)
        try:
            await asyncio.wait_for(self._client.connect(address), timeout)
        except TimeoutError as exc:
            raise QemuError(
                f"cannot connect to the QEMU monitor of {self.name} at {where}: no QMP greeting within "
                f"{timeout:g} s; QEMU may be hung (check its log) or another client holds the monitor"
            ) from exc
        except ConnectError as exc:
            raise QemuError(
                f"cannot connect to the QEMU monitor of {self.name} at {where}: {_describe(exc.exc)}; "
                "is QEMU running? (check its log)"
            ) from exc
        except QMPError as exc:
            raise QemuError(f"cannot connect to the QEMU monitor of {self.name} at {where}: {exc}") from exc
        self._pump = asyncio.create_task(self._watch_connection(), name=f"qmp-watch-{self.name}")

    async def close(self) -> None:
        """Disconnect (QEMU keeps running); idempotent."""
        if self._pump is None:
            return
        if self._client.runstate == Runstate.RUNNING:
            self._closing = True
            with contextlib.suppress(Exception):  # EOFError etc.: we are leaving anyway
                await self._client.disconnect()
        # Otherwise the watcher is already finishing an end of file.
        await self._pump

    @property
    def connected(self) -> bool:
        return self._client.runstate == Runstate.RUNNING

    async def wait_closed(self) -> None:
        """Return once the connection is gone (QEMU exited, closed, or close())."""
        await self._closed.wait()

    # -- events -------------------------------------------------------------

    def on_event(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns an unregister function."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    async def events(self) -> AsyncIterator[QmpEvent]:
        """Every event since connect, in order; ends after MONITOR_CLOSED.

        One reader at a time: the queue is the monitor's, so a second
        concurrent iterator would steal events from the first.
        """
        if self._iterating:
            raise QemuError(f"events() of the monitor of {self.name} is already being read by another task")
        self._iterating = True
        try:
            while True:
                event = await self._queue.get()
                yield event
                if event.name == ev.MONITOR_CLOSED:
                    return
        finally:
            self._iterating = False

    async def _watch_connection(self) -> None:
        """Deliver MONITOR_CLOSED once the connection ends, after every event before it."""
        client = self._client
        while client.runstate == Runstate.RUNNING:
            await client.runstate_changed()
        if client.runstate == Runstate.DISCONNECTING and not self._closing:
            # The reader hit end of file (QEMU went away): finish the disconnect.
            try:
                await client.disconnect()
            except Exception as exc:  # noqa: BLE001 - EOFError/OSError: why it ended
                self.close_error = exc
        reason = "closed by pyvirt" if self._closing else "QEMU closed the monitor (exited?)"
        self._deliver(QmpEvent(ev.MONITOR_CLOSED, {"reason": reason, "requested": self._closing}))
        self._closed.set()

    def _deliver(self, event: QmpEvent) -> None:
        self._queue.put_nowait(event)
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:  # a broken subscriber must not stop the stream
                log.exception("QMP event callback %r failed on %s", callback, event.name)

    # -- commands -----------------------------------------------------------

    async def execute(self, command: str, arguments: Mapping[str, Any] | None = None,
                      *, timeout: float | None = None) -> Any:
        """Run any QMP command; errors become QemuError naming the command."""
        if self._client.runstate != Runstate.RUNNING:
            raise QemuError(
                f"QMP command '{command}' to {self.name} failed: the monitor is not connected "
                "(QEMU exited or the monitor was closed)"
            )
        try:
            coro = self._client.execute(command, dict(arguments) if arguments else None)
            return await (asyncio.wait_for(coro, timeout) if timeout else coro)
        except ExecuteError as exc:
            raise QemuError(
                f"QMP command '{command}' to {self.name} failed: {exc.error.error.desc}",
                detail=f"QMP error class {exc.error_class}",
            ) from exc
        except ExecInterruptedError as exc:
            raise QemuError(
                f"QMP command '{command}' to {self.name} failed: the connection to QEMU was lost before it "
                "answered (QEMU exited or closed the monitor)"
            ) from exc
        except TimeoutError as exc:
            raise QemuError(
                f"QMP command '{command}' to {self.name} got no answer within {timeout:g} s; QEMU may be hung"
            ) from exc
        except QMPError as exc:
            raise QemuError(f"QMP command '{command}' to {self.name} failed: {exc}") from exc

    async def query_status(self) -> tuple[bool, str]:
        """(running, QEMU run state such as 'running', 'paused', 'prelaunch', 'shutdown')."""
        ret = await self.execute("query-status")
        return bool(ret["running"]), str(ret["status"])

    async def cont(self) -> None:
        await self.execute("cont")

    async def stop(self) -> None:
        await self.execute("stop")

    async def system_powerdown(self) -> None:
        """Press the ACPI power button; the guest decides what to do."""
        await self.execute("system_powerdown")

    async def system_reset(self) -> None:
        await self.execute("system_reset")

    async def quit(self) -> None:
        """Ask QEMU to exit now; the connection then ends with MONITOR_CLOSED."""
        try:
            await self.execute("quit")
        except QemuError as exc:
            # QEMU may close the socket before its reply gets through: it did quit.
            if not isinstance(exc.__cause__, ExecInterruptedError):
                raise

    async def query_name(self) -> str | None:
        ret = await self.execute("query-name")
        name: str | None = ret.get("name")  # absent when the VM has no -name
        return name

    async def query_cpus_fast(self) -> list[int]:
        """Host thread id of each vCPU, in CPU index order (for pinning)."""
        ret = await self.execute("query-cpus-fast")
        return [int(cpu["thread-id"]) for cpu in sorted(ret, key=lambda c: c.get("cpu-index", 0))]

    # -- vCPUs (vcpu11) -----------------------------------------------------

    async def query_vcpus(self) -> list[VcpuThread]:
        """Every present vCPU with its host thread, in CPU index order (query-cpus-fast)."""
        ret = await self.execute("query-cpus-fast")
        return sorted((VcpuThread(int(c.get("cpu-index", 0)), int(c["thread-id"]), str(c.get("qom-path", "")))
                       for c in ret), key=lambda v: v.index)

    async def query_hotpluggable_cpus(self) -> list[HotpluggableCpu]:
        """Every CPU slot of the machine, filled or not, in topology order; QemuError on a machine without
        CPU hot-plug (microvm)."""
        ret = await self.execute("query-hotpluggable-cpus")
        slots = [HotpluggableCpu(str(c["type"]), int(c.get("vcpus-count", 1)),
                                 {str(k): int(v) for k, v in (c.get("props") or {}).items()},
                                 str(c["qom-path"]) if c.get("qom-path") else None) for c in ret]
        return sorted(slots, key=lambda c: c.order)

    # -- end vCPUs (vcpu11) -------------------------------------------------

    async def query_balloon(self) -> int:
        """Guest memory as the balloon sees it now, in bytes."""
        ret = await self.execute("query-balloon")
        return int(ret["actual"])

    async def balloon_guest_stats(self, device_path: str) -> BalloonGuestStats:
        """The guest's own memory figures from the virtio balloon (qom-get guest-stats); zero last_update
        while polling is off (see ``set_balloon_stats_period``)."""
        ret = await self.execute("qom-get", {"path": device_path, "property": "guest-stats"})
        stats = ret.get("stats") or {}
        return BalloonGuestStats({str(k): int(v) for k, v in stats.items() if int(v) >= 0},
                                 int(ret.get("last-update", 0)))

    async def set_balloon_stats_period(self, device_path: str, seconds: int) -> None:
        """How often the guest's balloon driver reports its memory figures (0: never)."""
        await self.execute("qom-set", {"path": device_path, "property": "guest-stats-polling-interval",
                                       "value": int(seconds)})

    async def balloon(self, size_bytes: int) -> None:
        """Ask the guest's balloon driver to make its memory ``size_bytes``."""
        await self.execute("balloon", {"value": int(size_bytes)})

    async def query_version(self) -> QemuVersion:
        ret = await self.execute("query-version")
        q = ret["qemu"]
        return QemuVersion(int(q["major"]), int(q["minor"]), int(q["micro"]), str(ret.get("package", "")).strip())

    async def human_monitor_command(self, command_line: str) -> str:
        """Run an HMP command (for what QMP lacks); returns its text output."""
        return str(await self.execute("human-monitor-command", {"command-line": command_line}))

    async def set_password(self, protocol: str, password: str) -> None:
        """The password of the VNC or SPICE display (``protocol`` 'vnc' or 'spice').

        QEMU started with ``password=on`` (VNC) or without ``disable-ticketing``
        (SPICE) refuses every client until this is set. The password never
        appears in an error: QEMU's reply names only the protocol.
        """
        await self.execute("set_password", {"protocol": protocol, "password": password})

    # -- devices (hot-plug) -------------------------------------------------

    async def set_link(self, name: str, up: bool) -> None:
        """Carrier of a NIC (by device id, e.g. net0) as the guest sees it."""
        await self.execute("set_link", {"name": name, "up": up})

    async def send_fd(self, fd: int, fdname: str) -> None:
        """Pass an open descriptor to QEMU (SCM_RIGHTS + getfd), for netdev_add fd=NAME."""
        try:
            self._client.send_fd_scm(fd)
        except (OSError, QMPError) as exc:
            raise QemuError(f"cannot pass a file descriptor to {self.name}: {exc}") from exc
        await self.execute("getfd", {"fdname": fdname})

    async def add_fd(self, fd: int, fdset_id: int, opaque: str) -> None:
        """Put an open descriptor into fd set ``fdset_id`` (SCM_RIGHTS + add-fd); QEMU opens /dev/fdset/N."""
        try:
            self._client.send_fd_scm(fd)
        except (OSError, QMPError) as exc:
            raise QemuError(f"cannot pass a file descriptor to {self.name}: {exc}") from exc
        await self.execute("add-fd", {"fdset-id": fdset_id, "opaque": opaque})

    async def remove_fd(self, fdset_id: int) -> None:
        """Drop fd set ``fdset_id``; QEMU closes its fds once nothing it opened from them is in use."""
        await self.execute("remove-fd", {"fdset-id": fdset_id})

    async def close_fd(self, fdname: str) -> None:
        await self.execute("closefd", {"fdname": fdname})

    async def netdev_add(self, **props: Any) -> None:
        await self.execute("netdev_add", props)

    async def netdev_del(self, netdev_id: str) -> None:
        await self.execute("netdev_del", {"id": netdev_id})

    async def device_add(self, **props: Any) -> None:
        await self.execute("device_add", props)

    # -- xml10f: memory backends of hot-plugged DIMMs
    async def object_add(self, props: Mapping[str, Any]) -> None:
        await self.execute("object-add", dict(props))

    async def object_del(self, object_id: str) -> None:
        await self.execute("object-del", {"id": object_id})

    async def device_del(self, device_id: str) -> None:
        """Ask the guest to release a device; DEVICE_DELETED says when it is gone."""
        await self.execute("device_del", {"id": device_id})

    async def unplug(self, device_id: str, timeout: float) -> bool:
        """device_del, then wait for its DEVICE_DELETED; False if the guest did not let go in time."""
        gone: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def on_event(event: QmpEvent) -> None:
            if event.name == "DEVICE_DELETED" and event.data.get("device") == device_id and not gone.done():
                gone.set_result(True)

        unregister = self.on_event(on_event)
        try:
            await self.device_del(device_id)
            await asyncio.wait_for(gone, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            unregister()

    async def qom_list(self, path: str) -> list[dict[str, Any]]:
        return list(await self.execute("qom-list", {"path": path}))

    # -- block devices ------------------------------------------------------

    async def blockdev_add(self, props: Mapping[str, Any]) -> None:
        """Open one block node (the same JSON as -blockdev)."""
        await self.execute("blockdev-add", props)

    async def blockdev_del(self, node_name: str) -> None:
        """Close a node no device or other node uses any more."""
        await self.execute("blockdev-del", {"node-name": node_name})

    async def query_block(self) -> list[dict[str, Any]]:
        """Every block backend: qdev (device id or QOM path), tray_open, inserted {node-name, file, image}."""
        return list(await self.execute("query-block"))

    async def query_blockstats(self) -> list[dict[str, Any]]:
        """I/O counters per block backend (qdev, node-name, stats {rd_bytes, rd_operations, ...})."""
        return list(await self.execute("query-blockstats"))

    async def block_resize(self, node_name: str, size: int) -> None:
        """Grow (or shrink) the image under ``node_name`` to ``size`` bytes; the guest sees a capacity change."""
        await self.execute("block_resize", {"node-name": node_name, "size": int(size)})

    async def blockdev_open_tray(self, device_id: str, force: bool = True) -> None:
        """Open a removable drive's tray (``force``: even when the guest has locked it)."""
        await self.execute("blockdev-open-tray", {"id": device_id, "force": force})

    async def blockdev_close_tray(self, device_id: str) -> None:
        await self.execute("blockdev-close-tray", {"id": device_id})

    async def blockdev_remove_medium(self, device_id: str) -> None:
        """Take the medium out of a drive whose tray is open (its nodes stay until blockdev-del)."""
        await self.execute("blockdev-remove-medium", {"id": device_id})

    async def blockdev_insert_medium(self, device_id: str, node_name: str) -> None:
        """Put node ``node_name`` into an empty drive whose tray is open."""
        await self.execute("blockdev-insert-medium", {"id": device_id, "node-name": node_name})

    async def query_named_block_nodes(self) -> list[dict[str, Any]]:
        """Every block node, flat (node-name, image {snapshots, ...})."""
        return list(await self.execute("query-named-block-nodes", {"flat": True}))

    # -- jobs ---------------------------------------------------------------

    async def query_jobs(self) -> list[dict[str, Any]]:
        """Every job QEMU knows (id, type, status, error)."""
        return list(await self.execute("query-jobs"))

    async def job_dismiss(self, job_id: str) -> None:
        """Forget a concluded job."""
        await self.execute("job-dismiss", {"id": job_id})

    async def snapshot_save(self, job_id: str, tag: str, vmstate: str, devices: list[str]) -> None:
        """Start a job saving an internal snapshot of ``devices`` with the VM state in node ``vmstate``."""
        await self.execute("snapshot-save", {"job-id": job_id, "tag": tag, "vmstate": vmstate, "devices": devices})

    async def snapshot_load(self, job_id: str, tag: str, vmstate: str, devices: list[str]) -> None:
        """Start a job loading internal snapshot ``tag`` (disks and VM state) into a stopped VM."""
        await self.execute("snapshot-load", {"job-id": job_id, "tag": tag, "vmstate": vmstate, "devices": devices})

    async def snapshot_delete(self, job_id: str, tag: str, devices: list[str]) -> None:
        """Start a job deleting internal snapshot ``tag`` from ``devices``."""
        await self.execute("snapshot-delete", {"job-id": job_id, "tag": tag, "devices": devices})

    # -- migration (save/restore; a live migration's source and destination) --

    async def migrate_set_capabilities(self, capabilities: Mapping[str, bool]) -> None:
        """Turn migration capabilities on or off (e.g. ``events``: MIGRATION events on each status change)."""
        await self.execute("migrate-set-capabilities", {"capabilities": [
            {"capability": name, "state": state} for name, state in capabilities.items()]})

    async def migrate_set_parameters(self, **params: Any) -> None:
        """Set migration parameters by QMP name with ``_`` for ``-`` (``max_bandwidth`` in bytes/s, ...)."""
        await self.execute("migrate-set-parameters", {k.replace("_", "-"): v for k, v in params.items()})

    async def migrate(self, uri: str) -> None:
        """Start sending the VM's state to ``uri`` (``fd:NAME`` of an fd passed with ``send_fd``); returns at once."""
        await self.execute("migrate", {"uri": uri})

    async def migrate_incoming(self, uri: str) -> None:
        """Start receiving the state of a QEMU started with ``-incoming defer`` from ``uri``; returns at once."""
        await self.execute("migrate-incoming", {"uri": uri})

    async def migrate_cancel(self) -> None:
        await self.execute("migrate_cancel")

    async def query_migrate(self) -> MigrationInfo:
        """Where the outgoing (or incoming) migration stands."""
        return MigrationInfo.from_reply(await self.execute("query-migrate"))

    async def __aenter__(self) -> Monitor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Forwarder(EventListener):
    """Hands each event to the monitor as it arrives, keeping no history."""

    def __init__(self, sink: Callable[[QmpEvent], None]) -> None:
        super().__init__()
        self._sink = sink

    async def put(self, event: Message) -> None:
        self._sink(QmpEvent.from_message(event))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "the socket does not exist"
    if isinstance(exc, ConnectionRefusedError):
        return "nothing is listening on the socket"
    if isinstance(exc, EOFError):
        return "QEMU hung up before the QMP handshake finished"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
