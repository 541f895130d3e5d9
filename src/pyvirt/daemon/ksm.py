"""KSM on this host: what it does now (status), its mode, its settings, and the tuner.

Modes: ``unmanaged`` (the default: pyvirt reads KSM but leaves it as the host
set it), ``off`` (ksmd stopped), ``on`` (ksmd running with the settings as they
are), ``auto`` (the built-in tuner, ksmtuned's algorithm: daemon/ksm_tuner.py)
and, where the kernel has one (/sys/kernel/mm/ksm/advisor_mode, Linux 6.9+),
``advisor`` (the kernel's own scan-time advisor picks pages_to_scan). The mode
and the tuner's settings come from pyvirt.toml's [ksm] table; `pyvirt ksm
mode` and `ksm tune` change them and the change is kept in the daemon's store,
so it outlives a restart. Values written to sysfs with `ksm tune` last until the
host reboots, like a sysctl.
"""
from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Protocol

from ..errors import HostError, InvalidArgument, PyvirtError
from ..host import ksm as sysfs_ksm
from ..host.ksm import PAGE_SIZE, KsmSysfs
from ..host.ksm_policy import MemoryReading, TunerSettings, ksmtuned_name, settings_key
from ..host.node import NodeFs, process_rss_kib
from .ksm_tuner import KsmTuner
from .results import DomainEvent, KsmField, KsmSharer, KsmStatus, KsmTunerSettings

log = logging.getLogger(__name__)

MODES = ("unmanaged", "off", "on", "auto", "advisor")
DEFAULT_MODE = "unmanaged"
STORE_KEY = "ksm"
WARNING = (
    "KSM merges identical pages of every guest, whoever owns them: a guest can time its own memory writes to "
    "learn whether another guest holds the same data (a side channel through copy-on-write). Hosting providers "
    "whose guests belong to different owners turn KSM off for that reason (`pyvirt ksm mode off`), or keep such "
    "guests out with <memoryBacking><nosharepages/></memoryBacking>."
)


class MetaStore(Protocol):
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


def file_config(raw: object) -> tuple[str, TunerSettings, Path]:
    """pyvirt.toml's [ksm] table -> (mode, tuner settings, sysfs directory), checked."""
    if not isinstance(raw, Mapping):
        raise InvalidArgument("'ksm' in pyvirt.toml must be a table: write [ksm] and its keys below it")
    data = dict(raw)
    mode = data.pop("mode", DEFAULT_MODE)
    if mode not in MODES:
        raise InvalidArgument(f"[ksm] mode = {mode!r} in pyvirt.toml is not a KSM mode; use one of {', '.join(MODES)}")
    sysfs = Path(str(data.pop("sysfs", sysfs_ksm.SYSFS)))
    try:
        settings = TunerSettings().replaced(data)
    except InvalidArgument as exc:
        raise InvalidArgument(f"[ksm] in pyvirt.toml: {exc.message}") from exc
    return str(mode), settings, sysfs


class KsmManager:
    def __init__(self, store: MetaStore, file_settings: object, *, guests: Callable[[], list[tuple[str, int]]],
                 node: NodeFs, events: Callable[[], AsyncIterator[DomainEvent]]) -> None:
        """``guests``: (name, QEMU pid) of every running domain; ``events``: a subscription to the bus."""
        mode, settings, path = file_config(file_settings)
        self.store = store
        self.sysfs = KsmSysfs(path)
        self.node = node
        self._guests = guests
        saved = self._saved()
        self.mode = str(saved.get("mode", mode)) if saved.get("mode") in MODES else mode
        try:
            kept = saved.get("settings")
            self.settings = settings.replaced(kept if isinstance(kept, dict) else {})
        except InvalidArgument as exc:
            log.error("ksm: ignoring the tuner settings kept in the store: %s", exc)
            self.settings = settings
        self.tuner = KsmTuner(self.sysfs, settings=lambda: self.settings, memory=self._memory,
                              committed_kib=self._committed_kib, events=events)
        self._ksmd: int | None = None

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Daemon start: put KSM in the configured mode (a failure is logged; the daemon starts anyway)."""
        if not self.sysfs.present:
            if self.mode != "unmanaged":
                log.error("ksm: mode %s is configured but this kernel has no KSM (%s)", self.mode, self.sysfs.root)
            return
        try:
            await self._apply(self.mode)
        except PyvirtError as exc:
            log.error("ksm: cannot put KSM in mode %s: %s", self.mode, exc)

    async def close(self) -> None:
        await self.tuner.stop()

    def guest_changed(self) -> None:
        self.tuner.wake()

    # ------------------------------------------------------------- queries
    def status(self, notes: tuple[str, ...] = ()) -> KsmStatus:
        values = self.sysfs.read_all()
        number = {k: v for k, v in values.items() if isinstance(v, int)}
        sharing, shared = number.get("pages_sharing", 0), number.get("pages_shared", 0)
        saved = sharing * PAGE_SIZE
        cpu = self._ksmd_cpu()
        fields = tuple(KsmField(name, value, sysfs_ksm.BY_NAME[name].meaning, sysfs_ksm.BY_NAME[name].writable)
                       for name, value in values.items())
        sharers = []
        for name, pid in self._guests():
            pages = sysfs_ksm.process_merging_pages(pid)
            if pages:
                sharers.append(KsmSharer(name, pages * PAGE_SIZE))
        sharers.sort(key=lambda s: (-s.merged_bytes, s.domain))
        return KsmStatus(
            mode=self.mode, modes=self.modes(), running=number.get("run") == 1, writable=self.sysfs.writable(),
            page_size=PAGE_SIZE, saved_bytes=saved, shared_bytes=shared * PAGE_SIZE,
            sharing_ratio=round(sharing / shared, 2) if shared else None,
            profit_bytes=number.get("general_profit"), ksmd_cpu_seconds=cpu,
            saved_per_cpu_second=round(saved / cpu) if cpu else None,
            fields=fields, domains=tuple(sharers), tuner=KsmTunerSettings(**self.settings.as_dict()),
            last_decision=self.tuner.last, warning=WARNING, notes=notes,
        )

    def modes(self) -> tuple[str, ...]:
        advisor = "scan-time" in self.sysfs.advisor_choices()
        return tuple(m for m in MODES if m != "advisor" or advisor)

    # ------------------------------------------------------------- changes
    async def set_mode(self, mode: str) -> KsmStatus:
        if mode not in MODES:
            raise InvalidArgument(f"'{mode}' is not a KSM mode; use one of {', '.join(self.modes())}")
        await self._apply(mode)
        self.mode = mode
        self._save()
        return self.status(self._mode_notes(mode))

    async def start_ksm(self) -> KsmStatus:
        """ksmd runs with the settings as they are (mode on: the tuner no longer changes them)."""
        return await self.set_mode("on")

    async def stop_ksm(self, unmerge: bool = False) -> KsmStatus:
        """ksmd stops (mode off); ``unmerge`` also splits every merged page again (run=2)."""
        await self._apply("off", run=2 if unmerge else 0)
        self.mode = "off"
        self._save()
        return self.status(("every merged page was split again (run=2)",) if unmerge else ())

    async def tune(self, pairs: Mapping[str, object]) -> KsmStatus:
        """Change sysfs fields and tuner settings together: everything is checked before anything changes."""
        if not pairs:
            raise InvalidArgument("give at least one KEY=VALUE: a KSM sysfs field "
                                  f"({', '.join(sysfs_ksm.TUNABLE)}) or a tuner setting "
                                  f"({', '.join(ksmtuned_name(k) for k in TunerSettings().as_dict())})")
        tuner_pairs = {k: v for k, v in pairs.items() if settings_key(k) is not None}
        sysfs_pairs = {k: v for k, v in pairs.items() if settings_key(k) is None}
        unknown = [k for k in sysfs_pairs if k not in sysfs_ksm.BY_NAME]
        if unknown:
            raise InvalidArgument(
                f"'{unknown[0]}' is neither a KSM sysfs field nor a tuner setting; use one of "
                f"{', '.join(sysfs_ksm.TUNABLE)}, or {', '.join(ksmtuned_name(k) for k in TunerSettings().as_dict())}")
        values = sysfs_ksm.check_tune(sysfs_pairs)
        settings = self.settings.replaced(tuner_pairs)
        if values:
            self.sysfs.require()
            self.sysfs.write(values)  # all or nothing; a read-only /sys is refused before any write
        notes = []
        if tuner_pairs:
            self.settings = settings
            self._save()
            if self.mode == "auto":
                self.tuner.wake()
            else:
                notes.append(f"the tuner's settings take effect in mode auto (the mode is {self.mode})")
        if self.mode == "auto" and {"pages_to_scan", "sleep_millisecs"} & set(values):
            notes.append("the mode is auto: the tuner sets pages_to_scan and sleep_millisecs again at its next "
                         "decision (`pyvirt ksm mode on` keeps yours)")
        log.info("ksm: tuned %s", ", ".join(f"{k}={v}" for k, v in pairs.items()))
        return self.status(tuple(notes))

    # ------------------------------------------------------------- helpers
    async def _apply(self, mode: str, run: int | None = None) -> None:
        if mode == "unmanaged":
            await self.tuner.stop()
            return
        self.sysfs.require()
        if not self.sysfs.writable():
            raise HostError(f"cannot put KSM in mode {mode}: {self.sysfs.root} is read-only here (a read-only /sys, "
                            "as in a container); nothing was changed")
        advisor = self.sysfs.advisor_choices()
        if mode == "advisor" and "scan-time" not in advisor:
            raise HostError("this kernel has no KSM advisor (/sys/kernel/mm/ksm/advisor_mode comes with Linux 6.9); "
                            "use mode auto, pyvirt's own tuner; nothing was changed")
        writes: dict[str, int | str] = {}
        if advisor and mode != "advisor" and self.sysfs.read("advisor_mode") != "none":
            writes["advisor_mode"] = "none"
        if mode == "advisor":
            writes["advisor_mode"] = "scan-time"
        if mode in ("off", "on", "advisor"):
            await self.tuner.stop()
            writes["run"] = run if run is not None else (0 if mode == "off" else 1)
        if writes:
            self.sysfs.write(writes)
        if mode == "auto":
            self.tuner.start()
            self.tuner.wake()
        log.info("ksm: mode %s", mode)

    @staticmethod
    def _mode_notes(mode: str) -> tuple[str, ...]:
        return {
            "auto": (("the tuner decides now and every KSM_MONITOR_INTERVAL seconds, and at once when a guest starts "
                     "or stops"),),
            "advisor": ("the kernel's advisor now sets pages_to_scan to reach advisor_target_scan_time",),
            "unmanaged": ("pyvirt no longer changes KSM; it stays as it is now",),
        }.get(mode, ())

    def _saved(self) -> dict[str, object]:
        text = self.store.get_meta(STORE_KEY)
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self) -> None:
        changed = {k: v for k, v in self.settings.as_dict().items() if v != getattr(TunerSettings(), k)}
        self.store.set_meta(STORE_KEY, json.dumps({"mode": self.mode, "settings": changed}))

    def _memory(self) -> MemoryReading:
        return MemoryReading.from_meminfo(self.node.meminfo())

    def _committed_kib(self) -> int:
        return sum(process_rss_kib(pid) for _, pid in self._guests())

    def _ksmd_cpu(self) -> float | None:
        if self._ksmd is None:
            self._ksmd = sysfs_ksm.find_ksmd()
        if self._ksmd is None:
            return None
        seconds = sysfs_ksm.cpu_seconds(self._ksmd)
        if seconds is None:
            self._ksmd = None
        return seconds
