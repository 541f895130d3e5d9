"""The SQLite store: definitions, runtime records, ids and events survive a reopen."""
from __future__ import annotations

from pathlib import Path

from pyvirt.state.store import DomainRow, RuntimeRecord, Store


def test_definitions_round_trip_and_survive_reopen(tmp_path: Path) -> None:
    db = tmp_path / "pyvirt.db"
    store = Store(db)
    store.put_domain(DomainRow("u1", "one", "<domain/>", True, False))
    store.put_domain(DomainRow("u1", "one", "<domain type='qemu'/>", True, True))  # redefine
    store.put_domain(DomainRow("u2", "two", "<domain/>", False, False))
    store.close()
    store = Store(db)
    rows = {r.uuid: r for r in store.domains()}
    assert rows["u1"] == DomainRow("u1", "one", "<domain type='qemu'/>", True, True)
    assert rows["u2"].persistent is False
    store.delete_domain("u2")
    assert [r.uuid for r in store.domains()] == ["u1"]


def test_runtime_records_and_cascade(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.put_domain(DomainRow("u1", "one", "<domain/>", True, False))
    rec = RuntimeRecord(pid=42, id=3, started=1.5, live_xml="<domain/>", argv=["qemu", "-S"], accel="tcg",
                        state="paused", reason="user")
    store.put_runtime("u1", rec)
    assert store.runtimes() == {"u1": rec}
    store.delete_domain("u1")
    assert store.runtimes() == {}


def test_domain_ids_keep_growing(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    assert [store.next_domain_id() for _ in range(3)] == [1, 2, 3]
    store.close()
    assert Store(tmp_path / "db").next_domain_id() == 4


def test_events_filtered_and_ordered(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    for i, name in enumerate(["a", "b", "a"]):
        store.add_event({"time": float(i), "uuid": name, "domain": name, "event": f"e{i}"})
    assert [e["event"] for e in store.events()] == ["e0", "e1", "e2"]
    assert [e["event"] for e in store.events("a")] == ["e0", "e2"]
    assert [e["event"] for e in store.events(limit=1)] == ["e2"]
