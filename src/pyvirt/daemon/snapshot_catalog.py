"""The snapshot metadata of every domain: libvirt's <domainsnapshot> XML, kept in the store.

Each snapshot is a row of the store's objects table, kind
``snapshot:<domain uuid>``, holding libvirt's internal <domainsnapshot> XML
(name, description, parent, creation time, state, the definition at the
time, memory yes/no, current or not). Snapshots form a tree through their
parent names. The domain manager asks how many a domain has (undefine) and
drops them with the domain; the snapshot manager reads and changes them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from ..errors import NotFound, PyvirtError
from ..model.snapshot_xml import DomainSnapshot, format_snapshot_xml, parse_snapshot_xml
from ..state.store import ObjectRow, Store
from .results import SnapshotDiskRow, SnapshotRow

log = logging.getLogger(__name__)


@dataclass
class Stored:
    """One snapshot's metadata and the key of its row in the store."""

    row: str
    snap: DomainSnapshot


class SnapshotCatalog:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, dict[str, Stored]] = {}  # domain uuid -> snapshot name -> metadata

    @staticmethod
    def _kind(uuid: str) -> str:
        return f"snapshot:{uuid}"

    @staticmethod
    def _pending_kind(uuid: str) -> str:
        return f"snapshot-pending:{uuid}"

    # ---------------------------------------------------- snapshots being taken
    def put_pending(self, uuid: str, stored: Stored) -> None:
        """A snapshot about to change images: written first, so a daemon killed before its metadata is
        final finds it at its next start (reconcile) instead of images holding a snapshot nobody lists."""
        snap = stored.snap
        assert snap.name is not None
        self.store.put_object(ObjectRow(self._pending_kind(uuid), stored.row, snap.name,
                                        format_snapshot_xml(snap, internal=True), True, False))

    def drop_pending(self, uuid: str, stored: Stored) -> None:
        self.store.delete_object(self._pending_kind(uuid), stored.row)

    def pending(self) -> list[tuple[str, Stored]]:
        """(domain uuid, snapshot) of every snapshot whose taking did not finish."""
        out = []
        for kind in self.store.object_kinds("snapshot-pending:"):
            uuid = kind.split(":", 1)[1]
            for row in self.store.objects(kind):
                try:
                    out.append((uuid, Stored(row.uuid, parse_snapshot_xml(row.xml, internal=True))))
                except PyvirtError:
                    log.exception("pending snapshot %s of domain %s no longer parses; dropping it", row.name, uuid)
                    self.store.delete_object(kind, row.uuid)
        return out

    def all(self, uuid: str) -> dict[str, Stored]:
        """Every snapshot of a domain by name (read from the store once, then cached)."""
        snaps = self._cache.get(uuid)
        if snaps is None:
            snaps = {}
            for row in self.store.objects(self._kind(uuid)):
                try:
                    snaps[row.name] = Stored(row.uuid, parse_snapshot_xml(row.xml, internal=True))
                except PyvirtError:
                    log.exception("domain %s: stored snapshot %s no longer parses; skipping it", uuid, row.name)
            self._cache[uuid] = snaps
        return snaps

    def count(self, uuid: str) -> int:
        return len(self.all(uuid))

    def put(self, uuid: str, stored: Stored) -> None:
        snap = stored.snap
        assert snap.name is not None
        self.store.put_object(ObjectRow(self._kind(uuid), stored.row, snap.name,
                                        format_snapshot_xml(snap, internal=True), True, False))
        self.all(uuid)[snap.name] = stored

    def drop(self, uuid: str, name: str) -> None:
        stored = self.all(uuid).pop(name, None)
        if stored is not None:
            self.store.delete_object(self._kind(uuid), stored.row)

    def forget(self, uuid: str) -> None:
        """Drop every snapshot's metadata of a domain (the images keep their snapshots)."""
        for kind in (self._kind(uuid), self._pending_kind(uuid)):
            for row in self.store.objects(kind):
                self.store.delete_object(kind, row.uuid)
        self._cache.pop(uuid, None)

    def get(self, uuid: str, domain: str, name: str | None) -> Stored:
        """A snapshot by name; None means the current one."""
        snaps = self.all(uuid)
        if name is None:
            current = next((s for s in snaps.values() if s.snap.current), None)
            if current is None:
                raise NotFound(f"domain '{domain}' has no current snapshot; name one "
                               f"(see `pyvirt snapshot-list {domain}`)")
            return current
        stored = snaps.get(name)
        if stored is None:
            raise NotFound(f"no domain snapshot with matching name '{name}' in domain '{domain}'; "
                           f"see `pyvirt snapshot-list {domain}`")
        return stored

    def current(self, uuid: str) -> str | None:
        return next((n for n, s in self.all(uuid).items() if s.snap.current), None)

    def set_current(self, uuid: str, name: str | None) -> None:
        for stored in list(self.all(uuid).values()):
            want = stored.snap.name == name
            if stored.snap.current != want:
                self.put(uuid, Stored(stored.row, replace(stored.snap, current=want)))

    @staticmethod
    def children(snaps: dict[str, Stored], name: str) -> list[str]:
        return sorted((n for n, s in snaps.items() if s.snap.parent == name), key=str.lower)

    def descendants(self, snaps: dict[str, Stored], name: str) -> list[str]:
        """Every descendant of ``name``, parents before their children."""
        out: list[str] = []
        todo = self.children(snaps, name)
        while todo:
            child = todo.pop(0)
            if child in out:  # a loop in hand-edited metadata must not hang the daemon
                continue
            out.append(child)
            todo += self.children(snaps, child)
        return out

    def row(self, uuid: str, domain: str, name: str) -> SnapshotRow:
        snaps = self.all(uuid)
        s = snaps[name].snap
        assert s.name is not None
        return SnapshotRow(
            name=s.name, domain=domain, description=s.description, state=s.state, parent=s.parent,
            creation_time=s.creation_time, location=s.location, current=s.current, memory=s.memory,
            metadata=True, children=len(self.children(snaps, s.name)),
            descendants=len(self.descendants(snaps, s.name)),
            disks=tuple(SnapshotDiskRow(d.name, d.snapshot) for d in s.disks),
        )
