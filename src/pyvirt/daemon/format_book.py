"""The daemon's FormatBook: the recorded format of every file volume, kept in the store.

The pool backends write it from the worker threads that make volumes (before
a new file is renamed onto its name) and read it on every use of a volume;
the disk manager reads it to give QEMU the backing chain of a qcow2 disk.
Keys are real paths (``storage.base.record_key``).
"""
from __future__ import annotations

from ..model.storage import BackingStore, FormatRecord
from ..state.store import FormatRow, Store
from ..storage.base import record_key


class StoreFormatBook:
    """storage.base.FormatBook over state.store (table volume_formats)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, path: str) -> FormatRecord | None:
        row = self.store.volume_format(record_key(path))
        if row is None:
            return None
        backing = BackingStore(row.backing, row.backing_format or "raw") if row.backing else None
        return FormatRecord(row.format, backing)

    def put(self, path: str, record: FormatRecord) -> None:
        backing = record.backing
        self.store.put_volume_format(FormatRow(record_key(path), record.format, backing.path if backing else None,
                                               (backing.format or "raw") if backing else None))

    def drop(self, path: str) -> None:
        self.store.delete_volume_format(record_key(path))

    def under(self, directory: str) -> list[str]:
        return [row.path for row in self.store.volume_formats_in(record_key(directory))]
