"""The only module that touches pyvirtd's SQLite database.

One writer (the daemon's event loop), WAL journal so readers never block it.
Definitions are kept as the XML text the user defined (normalized), runtime
records as the launch facts of a running QEMU (pid, id, argv, live XML) so a
restarted daemon can find and reattach its guests.

The recorded image formats of file volumes (``volume_formats``) are the one
exception to "one writer": the pool backends record a volume from the worker
thread that makes it, before the file appears under its name. They go through
a second connection of their own, serialized by a lock; WAL keeps each
connection's transactions whole for the other.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1
RUNTIME_VERSION = 1
MAX_EVENTS = 10000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domains (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    xml TEXT NOT NULL,
    persistent INTEGER NOT NULL,
    autostart INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runtime (
    uuid TEXT PRIMARY KEY REFERENCES domains(uuid) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    uuid TEXT NOT NULL,
    name TEXT NOT NULL,
    xml TEXT NOT NULL,
    persistent INTEGER NOT NULL,
    autostart INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    PRIMARY KEY (kind, uuid),
    UNIQUE (kind, name)
);
CREATE TABLE IF NOT EXISTS object_runtime (
    kind TEXT NOT NULL,
    uuid TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, uuid)
);
CREATE TABLE IF NOT EXISTS volume_formats (
    path TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    backing TEXT,
    backing_format TEXT,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    hash TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    uuid TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class DomainRow:
    uuid: str
    name: str
    xml: str
    persistent: bool
    autostart: bool


@dataclass(frozen=True)
class ObjectRow:
    """A stored definition of a network or storage pool (``kind``), kept as its XML."""

    kind: str  # "network" | "pool"
    uuid: str
    name: str
    xml: str
    persistent: bool
    autostart: bool


@dataclass(frozen=True)
class FormatRow:
    """The recorded format of the image at ``path`` (a file volume), and its backing file if any."""

    path: str
    format: str
    backing: str | None = None
    backing_format: str | None = None


@dataclass(frozen=True)
class TokenRow:
    """An API token for TCP clients: only the SHA-256 of its secret is kept."""

    id: str
    name: str
    scope: str
    hash: str
    created: float


@dataclass(frozen=True)
class RuntimeRecord:
    """What a running QEMU was launched with; versioned so it can be upgraded on load."""

    pid: int
    id: int
    started: float
    live_xml: str
    argv: list[str]
    accel: str
    state: str = "running"
    reason: str = "booted"

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str, version: int) -> RuntimeRecord:
        data = json.loads(text)
        # version 1 is the only one so far; upgrades go here.
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        self._side = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._side.execute("PRAGMA synchronous=NORMAL")
        self._side_lock = threading.Lock()

    def close(self) -> None:
        self._side.close()
        self._db.close()

    # --- definitions -------------------------------------------------------
    def domains(self) -> list[DomainRow]:
        rows = self._db.execute("SELECT uuid, name, xml, persistent, autostart FROM domains")
        return [DomainRow(u, n, x, bool(p), bool(a)) for u, n, x, p, a in rows]

    def put_domain(self, row: DomainRow) -> None:
        """Insert or replace one definition in a single transaction (never half-written)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO domains (uuid, name, xml, persistent, autostart, updated) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT(uuid) DO UPDATE SET name=excluded.name, xml=excluded.xml,"
                " persistent=excluded.persistent, autostart=excluded.autostart, updated=excluded.updated",
                (row.uuid, row.name, row.xml, int(row.persistent), int(row.autostart), time.time()),
            )

    def delete_domain(self, uuid: str) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM runtime WHERE uuid=?", (uuid,))
            self._db.execute("DELETE FROM domains WHERE uuid=?", (uuid,))

    # --- runtime records ---------------------------------------------------
    def runtimes(self) -> dict[str, RuntimeRecord]:
        rows = self._db.execute("SELECT uuid, version, data FROM runtime")
        return {u: RuntimeRecord.from_json(d, v) for u, v, d in rows}

    def put_runtime(self, uuid: str, record: RuntimeRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO runtime (uuid, version, data) VALUES (?,?,?)",
            (uuid, RUNTIME_VERSION, record.to_json()),
        )

    def delete_runtime(self, uuid: str) -> None:
        self._db.execute("DELETE FROM runtime WHERE uuid=?", (uuid,))

    # --- networks and pools -----------------------------------------------
    def objects(self, kind: str) -> list[ObjectRow]:
        rows = self._db.execute(
            "SELECT uuid, name, xml, persistent, autostart FROM objects WHERE kind=?", (kind,))
        return [ObjectRow(kind, u, n, x, bool(p), bool(a)) for u, n, x, p, a in rows]

    def object_kinds(self, prefix: str) -> list[str]:
        """The kinds of stored objects that start with ``prefix`` (e.g. every domain's pending snapshots)."""
        rows = self._db.execute("SELECT DISTINCT kind FROM objects WHERE kind LIKE ? ESCAPE '\\'",
                                (prefix.replace("%", "\\%").replace("_", "\\_") + "%",))
        return [kind for (kind,) in rows]

    def put_object(self, row: ObjectRow) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO objects (kind, uuid, name, xml, persistent, autostart, updated)"
                " VALUES (?,?,?,?,?,?,?) ON CONFLICT(kind, uuid) DO UPDATE SET name=excluded.name,"
                " xml=excluded.xml, persistent=excluded.persistent, autostart=excluded.autostart,"
                " updated=excluded.updated",
                (row.kind, row.uuid, row.name, row.xml, int(row.persistent), int(row.autostart), time.time()),
            )

    def delete_object(self, kind: str, uuid: str) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM object_runtime WHERE kind=? AND uuid=?", (kind, uuid))
            self._db.execute("DELETE FROM objects WHERE kind=? AND uuid=?", (kind, uuid))

    def object_runtimes(self, kind: str) -> dict[str, dict[str, object]]:
        rows = self._db.execute("SELECT uuid, data FROM object_runtime WHERE kind=?", (kind,))
        return {u: json.loads(d) for u, d in rows}

    def put_object_runtime(self, kind: str, uuid: str, data: dict[str, object]) -> None:
        self._db.execute("INSERT OR REPLACE INTO object_runtime (kind, uuid, data) VALUES (?,?,?)",
                         (kind, uuid, json.dumps(data)))

    def delete_object_runtime(self, kind: str, uuid: str) -> None:
        self._db.execute("DELETE FROM object_runtime WHERE kind=? AND uuid=?", (kind, uuid))

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- recorded image formats (any thread) ---------------------------------
    def volume_format(self, path: str) -> FormatRow | None:
        with self._side_lock:
            row = self._side.execute("SELECT path, format, backing, backing_format FROM volume_formats WHERE path=?",
                                     (path,)).fetchone()
        return None if row is None else FormatRow(*row)

    def volume_formats_in(self, directory: str) -> list[FormatRow]:
        """The rows of files directly inside ``directory`` (no trailing slash)."""
        prefix = directory.rstrip("/") + "/"
        with self._side_lock:
            rows = self._side.execute(
                "SELECT path, format, backing, backing_format FROM volume_formats WHERE substr(path, 1, ?) = ?",
                (len(prefix), prefix)).fetchall()
        return [FormatRow(*r) for r in rows if "/" not in r[0][len(prefix):]]

    def put_volume_format(self, row: FormatRow) -> None:
        with self._side_lock:
            self._side.execute(
                "INSERT OR REPLACE INTO volume_formats (path, format, backing, backing_format, updated)"
                " VALUES (?,?,?,?,?)", (row.path, row.format, row.backing, row.backing_format, time.time()))

    def delete_volume_format(self, path: str) -> None:
        with self._side_lock:
            self._side.execute("DELETE FROM volume_formats WHERE path=?", (path,))

    # --- API tokens (remote access) -----------------------------------------
    def tokens(self) -> list[TokenRow]:
        rows = self._db.execute("SELECT id, name, scope, hash, created FROM tokens ORDER BY created, name")
        return [TokenRow(*row) for row in rows]

    def put_token(self, row: TokenRow) -> None:
        """Insert a new token; sqlite3.IntegrityError when its id or name is taken."""
        self._db.execute("INSERT INTO tokens (id, name, scope, hash, created) VALUES (?,?,?,?,?)",
                         (row.id, row.name, row.scope, row.hash, row.created))

    def delete_token(self, token_id: str) -> None:
        self._db.execute("DELETE FROM tokens WHERE id=?", (token_id,))

    # --- counters ----------------------------------------------------------
    def next_domain_id(self) -> int:
        """Domain ids grow for the life of the host, as libvirt's do."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT value FROM meta WHERE key='next_id'").fetchone()
            value = int(row[0]) if row else 1
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('next_id', ?)", (str(value + 1),))
        return value

    # --- events ------------------------------------------------------------
    def add_event(self, event: dict[str, object]) -> None:
        self._db.execute(
            "INSERT INTO events (time, uuid, name, data) VALUES (?,?,?,?)",
            (event["time"], event["uuid"], event["domain"], json.dumps(event)),
        )
        seq = self._db.execute("SELECT last_insert_rowid()").fetchone()[0]
        if seq % 1000 == 0:
            self._db.execute("DELETE FROM events WHERE seq <= ?", (seq - MAX_EVENTS,))

    def events(self, name: str | None = None, limit: int = 1000) -> list[dict[str, object]]:
        if name is None:
            rows = self._db.execute("SELECT data FROM events ORDER BY seq DESC LIMIT ?", (limit,))
        else:
            rows = self._db.execute(
                "SELECT data FROM events WHERE name=? ORDER BY seq DESC LIMIT ?", (name, limit)
            )
        return [json.loads(d) for (d,) in reversed(list(rows))]
