"""A daemon of its own for a benchmark group run alone (`python -m bench.copies`)."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.integration.conftest import DaemonHandle, make_daemon


@contextlib.contextmanager
def daemon_for_bench() -> Iterator[DaemonHandle]:
    """One daemon of its own (host probed first), removed afterwards: for a group run on its own."""
    from pyvirt.config import Config
    from pyvirt.host.probe import load_or_probe

    caps_root = Path(tempfile.mkdtemp(prefix="pvbc"))
    try:
        config = Config.for_root(caps_root)
        config.paths.make_dirs()
        load_or_probe(config.paths, config.settings.qemu_binary, kvm_timeout=config.settings.kvm_probe_timeout)
        d = make_daemon(config.paths.cache / "host-caps.json")
        try:
            yield d
        finally:
            d.cleanup()
    finally:
        shutil.rmtree(caps_root, ignore_errors=True)
