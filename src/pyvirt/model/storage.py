"""Storage pools and volumes: frozen dataclasses for libvirt's <pool> and <volume> XML.

Shared by the XML codec (``storage_xml``), the pool backends (``pyvirt.storage``)
and the daemon. Sizes are bytes throughout; the codec converts units.
"""
from __future__ import annotations

from dataclasses import dataclass

from .formats import COW_FORMATS as COW_FORMATS  # re-exported: the storage model's names
from .formats import JSON_FILENAME_HINT as JSON_FILENAME_HINT
from .formats import VOLUME_FORMATS as VOLUME_FORMATS
from .formats import is_json_filename as is_json_filename

POOL_TYPES = ("dir", "fs", "netfs", "logical", "disk", "iscsi")


@dataclass(frozen=True)
class Permissions:
    """<permissions><mode>0711</mode><owner>0</owner><group>0</group></permissions>."""

    mode: str | None = None  # octal text, e.g. "0711"
    owner: int | None = None
    group: int | None = None


@dataclass(frozen=True)
class PoolSource:
    """<source>: where a pool's storage comes from (unused parts stay None/empty)."""

    devices: tuple[str, ...] = ()  # <device path=/>: fs, logical (PVs), disk
    host: str | None = None  # <host name=/>: netfs, iscsi
    port: int | None = None
    dir: str | None = None  # <dir path=/>: netfs export path
    name: str | None = None  # <name>: logical VG name (defaults to the pool name)
    # <format type=/>: fs (ext4, xfs, auto), netfs (nfs, cifs), logical (lvm2), disk (dos, gpt)
    format: str | None = None
    iqn: str | None = None  # <device path='iqn...'/> for iscsi is in devices; initiator iqn here


@dataclass(frozen=True)
class PoolTarget:
    path: str
    permissions: Permissions | None = None


@dataclass(frozen=True)
class Pool:
    name: str
    type: str  # one of POOL_TYPES
    target: PoolTarget
    uuid: str = ""  # generated when missing
    source: PoolSource = PoolSource()


@dataclass(frozen=True)
class PoolInfo:
    """What pool-info shows: state and sizes in bytes (live only)."""

    capacity: int
    allocation: int
    available: int


@dataclass(frozen=True)
class BackingStore:
    path: str
    format: str | None = None


@dataclass(frozen=True)
class FormatRecord:
    """What pyvirt recorded about a volume's image when it made or imported it.

    The record, never the image's content, says how the image is opened: a
    guest owns every byte of a raw disk and could make it look like a qcow2
    image whose backing file is any host file (CVE-2010-2237).
    """

    format: str  # raw | qcow2
    backing: BackingStore | None = None  # a qcow2 overlay's backing file, its format always set


@dataclass(frozen=True)
class ImageLayer:
    """One image of a chain as it is to be opened: its path, its recorded format, file or block device."""

    path: str
    format: str
    block: bool = False


@dataclass(frozen=True)
class Volume:
    name: str
    capacity: int  # bytes; 0 only with a backing store: take the backing image's size
    allocation: int | None = None  # bytes to preallocate (None: sparse / format default)
    format: str | None = None  # raw | qcow2 (dir/fs/netfs pools); None for logical/disk (raw)
    backing: BackingStore | None = None
    permissions: Permissions | None = None
    # Live facts filled by the pool backend (key/path); ignored when defining.
    key: str | None = None
    path: str | None = None
    type: str = "file"  # file | block
    physical: int | None = None  # bytes the file takes on the host (live, display only)
