"""Helpers of the host tests (KSM, statistics, metrics): daemons with settings or options of their own,
and the host's KSM settings saved and put back."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .conftest import DaemonHandle

KSM = Path("/sys/kernel/mm/ksm")
# what a test may change; put back in this order (run last, so ksmd restarts with the old settings)
KSM_SETTINGS = ("advisor_mode", "pages_to_scan", "sleep_millisecs", "max_page_sharing", "merge_across_nodes",
                "use_zero_pages", "smart_scan", "run")


class ArgsDaemon(DaemonHandle):
    """A pyvirtd started with extra command-line options (--metrics-listen ...)."""

    def __init__(self, root: Path, args: tuple[str, ...]) -> None:
        super().__init__(root)
        self.args = args


@contextlib.contextmanager
def daemon_with(caps_cache: Path, toml: str = "", args: tuple[str, ...] = ()) -> Iterator[DaemonHandle]:
    """A daemon of its own whose pyvirt.toml also holds ``toml`` (e.g. a [ksm] table); cleaned up after."""
    root = Path(tempfile.mkdtemp(prefix="pv", dir="/tmp"))
    root.chmod(0o755)
    (root / "var/lib/pyvirt/cache").mkdir(parents=True)
    shutil.copy(caps_cache, root / "var/lib/pyvirt/cache/host-caps.json")
    (root / "etc/pyvirt").mkdir(parents=True)
    (root / "etc/pyvirt/pyvirt.toml").write_text("default_network = false\n" + toml)
    handle = ArgsDaemon(root, args)
    try:
        handle.start()
        yield handle
    finally:
        handle.cleanup()


def ksm_values() -> dict[str, str]:
    """The host's KSM settings now (the selected word of advisor_mode)."""
    out = {}
    for name in KSM_SETTINGS:
        path = KSM / name
        if path.exists():
            text = path.read_text().strip()
            out[name] = next((w[1:-1] for w in text.split() if w.startswith("[")), text)
    return out


@contextlib.contextmanager
def ksm_restored() -> Iterator[dict[str, str]]:
    """Save the host's KSM settings, and write them back afterwards whatever the test did."""
    before = ksm_values()
    try:
        yield before
    finally:
        for name, value in before.items():
            if name in ("max_page_sharing", "merge_across_nodes") and (KSM / name).read_text().strip() == value:
                continue  # these refuse a write while pages are merged, even of the same value
            with contextlib.suppress(OSError):
                (KSM / name).write_text(value + "\n")
        after = ksm_values()
        assert after == before, f"KSM settings not restored: {before} -> {after}"


def fake_ksm(where: Path) -> Path:
    """A copy of this kernel's KSM directory (or a minimal one) for a daemon to write instead of the real one."""
    where.mkdir(parents=True)
    if KSM.exists():
        for path in KSM.iterdir():
            with contextlib.suppress(OSError):
                (where / path.name).write_text(path.read_text())
    else:
        for name, value in (("run", "0"), ("pages_to_scan", "100"), ("sleep_millisecs", "20"),
                            ("pages_shared", "0"), ("pages_sharing", "0"), ("max_page_sharing", "256")):
            (where / name).write_text(value + "\n")
    return where
