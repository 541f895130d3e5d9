"""A guest that prints without end does not fill the host's disk: its serial log rotates by size."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.guest.build import GuestImage
from tests.integration.conftest import domain_xml, make_daemon, ok

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024
BACKUPS = 2


def test_a_chatty_guest_keeps_its_serial_log_bounded(caps_cache: Path, guest: GuestImage, tmp_path: Path) -> None:
    d = make_daemon(caps_cache)
    try:
        settings = d.root / "etc/pyvirt/pyvirt.toml"
        settings.write_text(settings.read_text() + f"serial_log_max_bytes = {LIMIT}\nserial_log_backups = {BACKUPS}\n")
        d.stop()
        d.start()
        (tmp_path / "chatty.xml").write_text(domain_xml("chatty", guest))
        ok(d, "define", str(tmp_path / "chatty.xml"))
        ok(d, "start", "chatty")
        d.wait_serial("chatty")
        line = "0123456789" * 10
        with d.connect() as conn:
            console = conn.domain("chatty").console(force=True)
            try:  # about 3 MB of output, far past the limit and its backups
                console.write(f"i=0; while [ $i -lt 30000 ]; do echo {line}; i=$((i+1)); done; echo CHATTY-DONE\n"
                              .encode())
                deadline = time.monotonic() + 120
                seen = b""
                while b"CHATTY-DONE\r\n" not in seen[-200:] and time.monotonic() < deadline:
                    try:
                        seen = (seen + console.read(timeout=1.0))[-400:]
                    except TimeoutError:
                        continue
            finally:
                console.close()
        assert b"CHATTY-DONE" in seen, "the guest did not finish printing"
        time.sleep(1.5)  # the daemon's next check
        log = d.serial_log("chatty")
        files = [log, *(log.with_name(f"{log.name}.{n}") for n in range(1, BACKUPS + 2))]
        sizes = {f.name: f.stat().st_size for f in files if f.exists()}
        assert f"{log.name}.{BACKUPS + 1}" not in sizes  # no more backups than asked
        assert f"{log.name}.1" in sizes  # it did rotate
        # every file is at most the limit plus what a second of output adds before the daemon looks
        assert sum(sizes.values()) < (BACKUPS + 1) * LIMIT + 400_000, sizes
        ok(d, "destroy", "chatty")
    finally:
        d.cleanup()
