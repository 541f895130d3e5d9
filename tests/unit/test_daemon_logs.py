"""What keeps a guest from filling the host's disk: serial log rotation and the event rate limit."""
from __future__ import annotations

from pathlib import Path

from pyvirt.daemon.eventbus import EventBus
from pyvirt.daemon.serial_logs import rotate
from pyvirt.state.store import Store


def test_serial_log_rotates_past_its_size_keeping_its_backups(tmp_path: Path) -> None:
    log = tmp_path / "g.serial.log"
    assert not rotate(log, 100, 2)  # no log yet: nothing to do
    for n in range(1, 5):
        log.write_bytes(bytes([n]) * 150)
        assert rotate(log, 100, 2)
    assert log.stat().st_size == 0  # the file QEMU appends to stays, empty
    assert (tmp_path / "g.serial.log.1").read_bytes() == b"\x04" * 150
    assert (tmp_path / "g.serial.log.2").read_bytes() == b"\x03" * 150
    assert not (tmp_path / "g.serial.log.3").exists()  # two backups kept, older ones gone
    assert (tmp_path / "g.serial.log.1").stat().st_mode & 0o777 == 0o600
    log.write_bytes(b"x" * 100)
    assert not rotate(log, 100, 2)  # at the limit, not past it


def test_events_past_the_rate_are_not_stored_but_streamed(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    bus = EventBus(store, per_second=1.0)  # a burst of 10, then one a second
    follower = bus.subscribe()
    for n in range(25):
        bus.emit(domain="loop", uuid="u1", event="rebooted", detail=f"reset {n}", state="running",
                 reason="booted")
    bus.emit(domain="calm", uuid="u2", event="started", detail="booted", state="running", reason="booted")
    stored = store.events()
    assert [e["detail"] for e in stored if e["domain"] == "loop"] == [f"reset {n}" for n in range(10)]
    assert [e["domain"] for e in stored].count("calm") == 1  # another domain is not held back
    assert follower is not None  # subscribers are fed from the same emit (their queues are bounded)
