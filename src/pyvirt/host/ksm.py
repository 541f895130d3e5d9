"""Kernel samepage merging: the fields of /sys/kernel/mm/ksm, read and written.

KSM lets ksmd merge identical anonymous pages (QEMU marks guest RAM
mergeable unless ``mem-merge=off``); it saves memory at the cost of ksmd's CPU
and of a side channel between the processes that share pages. This module
knows every field of the sysfs directory and what it means (``FIELDS``), parses
what the kernel writes there and in /proc/PID/ksm_stat (pure functions), and
does the I/O through ``KsmSysfs`` over a root path, so tests point it at a
temporary directory instead of the real one.

Writes are all or nothing: every key and value is checked first, every file
must be writable, and a kernel refusal half-way (EINVAL, EBUSY) puts back what
was already written before the error is raised.
"""
from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import HostError, InvalidArgument

SYSFS = Path("/sys/kernel/mm/ksm")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Field:
    """One file of the KSM sysfs directory; ``values`` bounds a writable integer (inclusive)."""

    name: str
    meaning: str
    writable: bool = False
    minimum: int = 0
    maximum: int | None = None


FIELDS: tuple[Field, ...] = (
    Field("run", "0: ksmd stopped (merged pages stay merged), 1: ksmd running, 2: stopped and every page unmerged",
          True, 0, 2),
    Field("pages_to_scan", "pages ksmd scans before it sleeps", True, 0),
    Field("sleep_millisecs", "milliseconds ksmd sleeps between two scans", True, 0),
    Field("merge_across_nodes", "1: pages of different NUMA nodes may merge", True, 0, 1),
    Field("use_zero_pages", "1: empty pages are merged with the kernel's zero page", True, 0, 1),
    Field("max_page_sharing", "most places one KSM page may be shared by", True, 2),
    Field("stable_node_chains_prune_millisecs", "how often stale duplicates of KSM pages are pruned", True, 0),
    Field("smart_scan", "1: skip pages that did not merge in earlier scans", True, 0, 1),
    Field("advisor_mode", "the kernel's own scan-rate advisor: none or scan-time"),
    Field("advisor_max_cpu", "the advisor's ceiling on ksmd's CPU use, percent", True, 1, 100),
    Field("advisor_min_pages_to_scan", "the advisor's lowest pages_to_scan", True, 1),
    Field("advisor_max_pages_to_scan", "the advisor's highest pages_to_scan", True, 1),
    Field("advisor_target_scan_time", "seconds the advisor aims a full scan to take", True, 1),
    Field("pages_shared", "KSM pages in use (each one stands for several identical pages)"),
    Field("pages_sharing", "places that share a KSM page: the pages saved"),
    Field("pages_unshared", "unique pages ksmd keeps checking"),
    Field("pages_volatile", "pages that change too fast to merge"),
    Field("pages_scanned", "pages scanned since boot"),
    Field("pages_skipped", "pages the smart scan skipped"),
    Field("full_scans", "full passes over every mergeable area since boot"),
    Field("general_profit", "bytes saved minus the bytes of ksmd's own bookkeeping"),
    Field("ksm_zero_pages", "empty pages merged with the zero page (use_zero_pages)"),
    Field("stable_node_chains", "KSM pages that reached max_page_sharing"),
    Field("stable_node_dups", "duplicate KSM pages made past max_page_sharing"),
)
BY_NAME: Mapping[str, Field] = {f.name: f for f in FIELDS}
#: Keys `ksm tune` accepts (run and advisor_mode have their own verbs: start/stop, mode).
TUNABLE: tuple[str, ...] = tuple(f.name for f in FIELDS if f.writable and f.name != "run")
ADVISOR_MODES = ("none", "scan-time")


# -- pure parsing ---------------------------------------------------------------------------------


def parse_choice(text: str) -> tuple[str, tuple[str, ...]]:
    """``[none] scan-time`` -> ("none", ("none", "scan-time")): the selected word and every choice."""
    words = text.split()
    selected = next((w[1:-1] for w in words if w.startswith("[") and w.endswith("]")), "")
    return selected, tuple(w.strip("[]") for w in words)


def parse_value(text: str) -> int | str:
    """A field's text: an integer where it is one, else the selected word of a choice, else the text."""
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    selected, _ = parse_choice(stripped)
    return selected or stripped


def parse_ksm_stat(text: str) -> dict[str, int | str]:
    """/proc/PID/ksm_stat (``ksm_merging_pages 12`` and ``ksm_merge_any: no`` lines) as a dict."""
    out: dict[str, int | str] = {}
    for line in text.splitlines():
        key, _, value = line.replace(":", " ", 1).partition(" ")
        if key:
            out[key] = parse_value(value)
    return out


def check_tune(pairs: Mapping[str, object]) -> dict[str, int]:
    """Check sysfs keys and values for a write; the clean integers, or InvalidArgument naming the first fault."""
    out: dict[str, int] = {}
    for key, raw in pairs.items():
        field = BY_NAME.get(key)
        if field is None or key not in TUNABLE:
            raise InvalidArgument(f"'{key}' is not a KSM setting pyvirt can tune; use one of {', '.join(TUNABLE)}"
                                  " (run: `pyvirt ksm start|stop`, advisor_mode: `pyvirt ksm mode advisor`)")
        out[key] = whole_number(key, raw, field.minimum, field.maximum)
    return out


def whole_number(key: str, raw: object, minimum: int, maximum: int | None = None) -> int:
    """``raw`` (an int or its decimal text) as an int in [minimum, maximum], or InvalidArgument saying why."""
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
        value = int(raw.strip())
    if value is None:
        raise InvalidArgument(f"{key}={raw!r}: the value must be a whole number")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"be between {minimum} and {maximum}" if maximum is not None else f"be {minimum} or more"
        what = "not be negative" if value < 0 and minimum == 0 else bound
        raise InvalidArgument(f"{key}={value}: the value must {what}")
    return value


# -- I/O --------------------------------------------------------------------------------------------


class KsmSysfs:
    """Reads and writes one KSM sysfs directory (the real one, or a test's copy)."""

    def __init__(self, root: Path = SYSFS) -> None:
        self.root = Path(root)

    @property
    def present(self) -> bool:
        return (self.root / "run").exists()

    def require(self) -> None:
        if not self.present:
            raise HostError(f"this kernel has no KSM ({self.root} is missing); it needs CONFIG_KSM")

    def read(self, name: str) -> int | str:
        return parse_value((self.root / name).read_text())

    def read_int(self, name: str, default: int = 0) -> int:
        try:
            value = self.read(name)
        except OSError:
            return default
        return value if isinstance(value, int) else default

    def read_all(self) -> dict[str, int | str]:
        """Every known field this kernel has, in ``FIELDS`` order (older kernels lack some)."""
        self.require()
        out: dict[str, int | str] = {}
        for field in FIELDS:
            with contextlib.suppress(FileNotFoundError):
                out[field.name] = self.read(field.name)
        return out

    def advisor_choices(self) -> tuple[str, ...]:
        """The advisor modes this kernel offers; () where it has no advisor."""
        try:
            return parse_choice((self.root / "advisor_mode").read_text())[1]
        except OSError:
            return ()

    def writable(self) -> bool:
        """False on a read-only sysfs (a container) or a directory we may not write."""
        return self.present and os.access(self.root / "run", os.W_OK)

    def write(self, values: Mapping[str, int | str]) -> None:
        """Write ``values`` (checked by the caller) in order, all or nothing: nothing is written unless every
        file is writable, and a refusal part-way puts the earlier values back."""
        self.require()
        for name in values:
            path = self.root / name
            if not path.exists():
                raise HostError(f"this kernel's KSM has no '{name}' ({path} is missing); nothing was changed")
            if not os.access(path, os.W_OK):
                raise HostError(f"cannot change KSM settings: {path} is read-only (a read-only /sys, as in a "
                                "container, or not root); nothing was changed")
        before = {name: (self.root / name).read_text().strip() for name in values}
        done: list[str] = []
        for name, value in values.items():
            try:
                self._write_one(name, value)
            except OSError as exc:
                for undo in reversed(done):
                    with contextlib.suppress(OSError):
                        self._write_one(undo, _restorable(before[undo]))
                raise HostError(f"the kernel refused KSM {name}={value}: {_why(name, exc)}; "
                                "nothing was changed") from exc
            done.append(name)

    def _write_one(self, name: str, value: int | str) -> None:
        with open(self.root / name, "w") as f:
            f.write(f"{value}\n")


def _restorable(text: str) -> int | str:
    """What to write back for a field's previous text (a choice's selected word)."""
    return parse_value(text)


def _why(name: str, exc: OSError) -> str:
    if exc.errno == errno.EBUSY:
        return f"{name} can only change while no pages are merged (stop KSM with `pyvirt ksm stop --unmerge` first)"
    if exc.errno == errno.EROFS:
        return "/sys is read-only here"
    return exc.strerror or str(exc)


# -- processes ----------------------------------------------------------------------------------------


def process_merging_pages(pid: int, proc: Path = Path("/proc")) -> int | None:
    """Pages of process ``pid`` merged by KSM (/proc/PID/ksm_stat, Linux 6.1+); None where unknown."""
    try:
        stat = parse_ksm_stat((proc / str(pid) / "ksm_stat").read_text())
    except OSError:
        try:
            return int((proc / str(pid) / "ksm_merging_pages").read_text())
        except (OSError, ValueError):
            return None
    value = stat.get("ksm_merging_pages")
    return value if isinstance(value, int) else None


def find_ksmd(proc: Path = Path("/proc")) -> int | None:
    """The pid of the ksmd kernel thread (a child of kthreadd, pid 2), or None."""
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "ksmd":
                return int(entry.name)
        except OSError:
            continue
    return None


def cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float | None:
    """utime + stime of ``pid`` in seconds (/proc/PID/stat), None if it is gone."""
    try:
        fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
