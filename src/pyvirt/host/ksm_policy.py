"""ksmtuned's algorithm as a pure function: settings + memory readings -> what KSM should do.

ksmtuned (Fedora/RHEL's KSM tuning service) wakes every KSM_MONITOR_INTERVAL
seconds and decides from three numbers: the host's RAM, its free memory (page
cache counted as free) and the memory committed to guests (the resident size of
the QEMU processes). Its threshold is KSM_THRES_COEF percent of RAM, but at least
KSM_THRES_CONST kB. When the guests plus the threshold fit in RAM and free memory
is above the threshold, KSM stops (it would cost CPU for nothing); otherwise it
runs, scanning KSM_NPAGES_BOOST more pages per wake-up while free memory is under
the threshold and KSM_NPAGES_DECAY fewer (the decay is negative) once it is not,
always within KSM_NPAGES_MIN..KSM_NPAGES_MAX. ksmd sleeps KSM_SLEEP_MSEC between
scans on a 16 GiB host, scaled by 16 GiB / RAM, never under 10 ms.

``decide`` is that decision, with no I/O: the daemon's tuner (daemon/ksm_tuner.py)
reads the inputs, calls it, logs the decision with its inputs and writes sysfs.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from ..errors import InvalidArgument

SIXTEEN_GIB_KIB = 16 * 1024 * 1024
MIN_SLEEP_MS = 10


@dataclass(frozen=True)
class TunerSettings:
    """ksmtuned's parameters under their ksmtuned defaults (ksmtuned.conf's names, lower case, no KSM_)."""

    monitor_interval: int = 60  # seconds between two decisions
    sleep_msec: int = 10  # ksmd's sleep on a 16 GiB host
    npages_boost: int = 300
    npages_decay: int = -50
    npages_min: int = 64
    npages_max: int = 1250
    thres_coef: int = 20  # percent of RAM
    thres_const: int = 2048  # kB

    def replaced(self, pairs: Mapping[str, object]) -> TunerSettings:
        """A copy with ``pairs`` (keys in any of settings_key's spellings) checked and applied."""
        changes: dict[str, int] = {}
        for raw_key, raw in pairs.items():
            key = settings_key(raw_key)
            if key is None:
                raise InvalidArgument(f"'{raw_key}' is not a KSM tuner setting; use one of "
                                      f"{', '.join(ksmtuned_name(k) for k in SETTING_KEYS)}")
            changes[key] = _integer(ksmtuned_name(key), raw)
        out = replace(self, **changes)
        out.check()
        return out

    def check(self) -> None:
        """InvalidArgument naming the first setting out of its range."""
        rules = (
            ("monitor_interval", self.monitor_interval >= 1, "must be 1 second or more"),
            ("sleep_msec", self.sleep_msec >= 0, "must not be negative"),
            ("npages_boost", self.npages_boost >= 0, "must not be negative"),
            ("npages_decay", self.npages_decay <= 0, "must be 0 or negative (it is added to pages_to_scan)"),
            ("npages_min", self.npages_min >= 0, "must not be negative"),
            ("npages_max", self.npages_max >= self.npages_min, f"must be at least KSM_NPAGES_MIN ({self.npages_min})"),
            ("thres_coef", 0 <= self.thres_coef <= 100, "must be a percentage, 0 to 100"),
            ("thres_const", self.thres_const >= 0, "must not be negative"),
        )
        for key, ok, why in rules:
            if not ok:
                raise InvalidArgument(f"{ksmtuned_name(key)}={getattr(self, key)}: the value {why}")

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


SETTING_KEYS: tuple[str, ...] = tuple(f.name for f in fields(TunerSettings))


def ksmtuned_name(key: str) -> str:
    """monitor_interval -> KSM_MONITOR_INTERVAL (the name ksmtuned.conf uses)."""
    return f"KSM_{key.upper()}"


def settings_key(name: str) -> str | None:
    """KSM_NPAGES_BOOST, ksm_npages_boost or npages_boost -> npages_boost; None for anything else."""
    key = name.strip().lower()
    if key.startswith("ksm_"):
        key = key[4:]
    return key if key in SETTING_KEYS else None


def _integer(name: str, raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
        return int(raw.strip())
    raise InvalidArgument(f"{name}={raw!r}: the value must be a whole number")


@dataclass(frozen=True)
class MemoryReading:
    """The host's memory as ksmtuned reads it, in kB: MemTotal, and MemFree + Buffers + Cached."""

    total_kib: int
    free_kib: int

    @classmethod
    def from_meminfo(cls, meminfo: Mapping[str, int]) -> MemoryReading:
        free = sum(meminfo.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
        return cls(meminfo["MemTotal"], free)


@dataclass(frozen=True)
class Decision:
    """What KSM should do now, and the numbers that decided it (logged with every decision)."""

    action: str  # "stop" | "boost" | "decay"
    run: bool
    pages_to_scan: int
    sleep_millisecs: int
    threshold_kib: int
    total_kib: int
    free_kib: int
    committed_kib: int
    previous_pages_to_scan: int

    def describe(self) -> str:
        inputs = (f"total {self.total_kib} kB, free {self.free_kib} kB, committed {self.committed_kib} kB, "
                  f"threshold {self.threshold_kib} kB")
        if not self.run:
            return (f"{inputs}: committed + threshold < total and free > threshold, so KSM stops "
                    f"(pages_to_scan stays {self.pages_to_scan})")
        why = "free < threshold, boost" if self.action == "boost" else "free >= threshold, decay"
        fits = "fits" if self.committed_kib + self.threshold_kib < self.total_kib else "does not fit"
        return (f"{inputs}: committed + threshold {fits} in RAM; {why}: pages_to_scan "
                f"{self.previous_pages_to_scan} -> {self.pages_to_scan}, sleep_millisecs {self.sleep_millisecs}")


def threshold_kib(settings: TunerSettings, total_kib: int) -> int:
    """KSM_THRES_COEF percent of RAM, but at least KSM_THRES_CONST kB."""
    return max(total_kib * settings.thres_coef // 100, settings.thres_const)


def sleep_millisecs(settings: TunerSettings, total_kib: int) -> int:
    """KSM_SLEEP_MSEC scaled by 16 GiB / RAM, never under 10 ms."""
    scaled = settings.sleep_msec * SIXTEEN_GIB_KIB // max(total_kib, 1)
    return max(scaled, MIN_SLEEP_MS)


def decide(settings: TunerSettings, memory: MemoryReading, committed_kib: int, pages_to_scan: int) -> Decision:
    """ksmtuned's adjust(): stop KSM, or run it with pages_to_scan boosted or decayed (clamped to MIN..MAX)."""
    total, free = memory.total_kib, memory.free_kib
    thres = threshold_kib(settings, total)
    sleep = sleep_millisecs(settings, total)
    common = {"sleep_millisecs": sleep, "threshold_kib": thres, "total_kib": total, "free_kib": free,
              "committed_kib": committed_kib, "previous_pages_to_scan": pages_to_scan}
    if committed_kib + thres < total and free > thres:
        return Decision(action="stop", run=False, pages_to_scan=pages_to_scan, **common)
    if free < thres:
        action, delta = "boost", settings.npages_boost
    else:
        action, delta = "decay", settings.npages_decay
    npages = min(max(pages_to_scan + delta, settings.npages_min), settings.npages_max)
    return Decision(action=action, run=True, pages_to_scan=npages, **common)
