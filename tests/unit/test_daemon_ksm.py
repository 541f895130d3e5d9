"""The KSM manager and tuner (daemon/ksm.py, daemon/ksm_tuner.py) over a KSM directory of our own: modes,
tune, what is kept in the store, the tuner's writes, and its wake-up on guest starts and stops."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pyvirt.daemon.eventbus import EventBus
from pyvirt.daemon.ksm import KsmManager, file_config
from pyvirt.daemon.results import DomainEvent
from pyvirt.errors import HostError, InvalidArgument
from pyvirt.host.node import NodeFs
from pyvirt.state.store import Store

GIB = 1024 * 1024
KSM_FILES = {"run": "0", "pages_to_scan": "100", "sleep_millisecs": "20", "pages_shared": "0",
             "pages_sharing": "0", "max_page_sharing": "256", "advisor_mode": "[none] scan-time", "full_scans": "0"}


def ksm_dir(tmp_path: Path, advisor: bool = True) -> Path:
    where = tmp_path / "ksm"
    where.mkdir()
    for name, text in KSM_FILES.items():
        if name != "advisor_mode" or advisor:
            (where / name).write_text(text + "\n")
    return where


def node(tmp_path: Path, total: int = 16 * GIB, free: int = 15 * GIB) -> NodeFs:
    (tmp_path / "proc").mkdir(exist_ok=True)
    (tmp_path / "proc/meminfo").write_text(f"MemTotal: {total} kB\nMemFree: {free} kB\nBuffers: 0 kB\nCached: 0 kB\n")
    return NodeFs(tmp_path)


def read(where: Path, name: str) -> str:
    return (where / name).read_text().strip()


class Kernel:
    """What the real sysfs does that a plain file does not: advisor_mode shows its choices with one selected."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def settle(self) -> None:
        path = self.where / "advisor_mode"
        if path.exists():
            word = path.read_text().strip().strip("[]").split()[0]
            path.write_text(" ".join(f"[{w}]" if w == word else w for w in ("none", "scan-time")) + "\n")


def manager(tmp_path: Path, config: dict[str, object], store: Store | None = None,
            events: object = None) -> tuple[KsmManager, Store]:
    store = store or Store(tmp_path / "db.sqlite")
    bus = EventBus(store)
    m = KsmManager(store, config, guests=list, node=node(tmp_path), events=events or bus.subscribe)  # type: ignore[arg-type]
    return m, store


def test_file_config_checks_every_key(tmp_path: Path) -> None:
    mode, settings, path = file_config({"mode": "auto", "npages_max": 5000, "sysfs": str(tmp_path)})
    assert (mode, settings.npages_max, path) == ("auto", 5000, tmp_path)
    assert file_config({})[0] == "unmanaged"
    for raw, words in (({"mode": "sometimes"}, "[ksm] mode = 'sometimes'"), ({"frob": 1}, "[ksm] in pyvirt.toml"),
                       ({"npages_boost": -1}, "KSM_NPAGES_BOOST=-1"), (5, "must be a table")):
        with pytest.raises(InvalidArgument, match=words.replace("[", r"\[").replace("]", r"\]")):
            file_config(raw)


def test_unmanaged_writes_nothing_and_status_reads_everything(tmp_path: Path) -> None:
    where = ksm_dir(tmp_path)
    before = {p.name: p.read_text() for p in where.iterdir()}

    async def run() -> None:
        m, _ = manager(tmp_path, {"sysfs": str(where)})
        await m.start()
        s = m.status()
        assert s.mode == "unmanaged" and s.modes == ("unmanaged", "off", "on", "auto", "advisor")
        assert [f.name for f in s.fields][:3] == ["run", "pages_to_scan", "sleep_millisecs"]
        assert s.sharing_ratio is None and s.saved_bytes == 0 and "side channel" in s.warning
        await m.close()

    asyncio.run(run())
    assert {p.name: p.read_text() for p in where.iterdir()} == before


def test_modes_write_run_and_the_advisor(tmp_path: Path) -> None:
    where = ksm_dir(tmp_path)
    kernel = Kernel(where)

    async def run() -> None:
        m, store = manager(tmp_path, {"sysfs": str(where)})
        await m.set_mode("on")
        assert read(where, "run") == "1"
        await m.set_mode("advisor")
        kernel.settle()
        assert (read(where, "advisor_mode"), read(where, "run")) == ("none [scan-time]", "1")
        await m.set_mode("off")
        kernel.settle()
        assert (read(where, "advisor_mode"), read(where, "run")) == ("[none] scan-time", "0")
        s = await m.stop_ksm(unmerge=True)
        assert read(where, "run") == "2" and s.notes
        with pytest.raises(InvalidArgument, match="'never' is not a KSM mode"):
            await m.set_mode("never")
        assert '"mode": "off"' in (store.get_meta("ksm") or "")
        await m.close()

    asyncio.run(run())


def test_advisor_mode_needs_a_kernel_with_one(tmp_path: Path) -> None:
    where = ksm_dir(tmp_path, advisor=False)

    async def run() -> None:
        m, _ = manager(tmp_path, {"sysfs": str(where)})
        assert "advisor" not in m.modes()
        with pytest.raises(HostError, match="no KSM advisor"):
            await m.set_mode("advisor")
        assert read(where, "run") == "0"

    asyncio.run(run())


def test_tune_applies_sysfs_and_tuner_settings_and_keeps_them(tmp_path: Path) -> None:
    where = ksm_dir(tmp_path)

    async def run() -> None:
        m, store = manager(tmp_path, {"sysfs": str(where)})
        s = await m.tune({"pages_to_scan": "1000", "KSM_NPAGES_MAX": "3000"})
        assert read(where, "pages_to_scan") == "1000" and s.tuner.npages_max == 3000
        assert s.notes == ("the tuner's settings take effect in mode auto (the mode is unmanaged)",)
        with pytest.raises(InvalidArgument, match="'frob' is neither"):
            await m.tune({"pages_to_scan": "5", "frob": "1"})
        with pytest.raises(InvalidArgument, match="KSM_NPAGES_MIN"):
            await m.tune({"pages_to_scan": "5", "npages_max": "1"})
        assert read(where, "pages_to_scan") == "1000"  # refused as a whole
        again, _ = manager(tmp_path, {"sysfs": str(where), "npages_boost": 10}, store=store)
        assert again.settings.npages_max == 3000 and again.settings.npages_boost == 10
        await m.close()

    asyncio.run(run())


def test_tuner_decides_at_start_and_when_a_guest_starts(tmp_path: Path) -> None:
    where = ksm_dir(tmp_path)

    async def run() -> None:
        queue: asyncio.Queue[DomainEvent] = asyncio.Queue()

        async def events() -> AsyncIterator[DomainEvent]:
            while True:
                yield await queue.get()

        # a threshold of all RAM, an hour between decisions: only starts and guest events make decisions
        m, _ = manager(tmp_path, {"sysfs": str(where), "mode": "auto", "thres_coef": 100, "monitor_interval": 3600},
                       events=events)
        await m.start()
        for _ in range(50):
            if m.tuner.decisions:
                break
            await asyncio.sleep(0.01)
        assert m.tuner.decisions == 1 and m.tuner.last is not None and m.tuner.last.action == "boost"
        assert (read(where, "run"), read(where, "pages_to_scan"), read(where, "sleep_millisecs")) == ("1", "400", "10")
        queue.put_nowait(DomainEvent(0, "g", "u", "resumed", "", "running", "unpaused"))  # not a start or stop
        queue.put_nowait(DomainEvent(0, "g", "u", "started", "booted", "running", "booted"))
        for _ in range(50):
            if m.tuner.decisions == 2:
                break
            await asyncio.sleep(0.01)
        assert m.tuner.decisions == 2 and read(where, "pages_to_scan") == "700"
        s = await m.set_mode("on")  # the tuner stops; ksmd keeps running
        assert not m.tuner.running and s.last_decision is not None
        queue.put_nowait(DomainEvent(0, "g", "u", "stopped", "", "shut off", "destroyed"))
        await asyncio.sleep(0.05)
        assert m.tuner.decisions == 2
        await m.close()

    asyncio.run(run())


def test_the_tuner_stops_ksm_when_guests_fit(tmp_path: Path) -> None:
    where = ksm_dir(tmp_path)
    (where / "run").write_text("1\n")

    async def run() -> None:
        m, _ = manager(tmp_path, {"sysfs": str(where), "mode": "auto"})
        decision = m.tuner.step()  # 16 GiB, 15 GiB free, no guests: plenty
        assert decision.action == "stop" and read(where, "run") == "0"
        assert read(where, "pages_to_scan") == "100"

    asyncio.run(run())
