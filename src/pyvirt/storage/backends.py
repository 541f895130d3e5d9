"""``backend_for(pool)``: the one place that knows every pool type's backend.

It sits above the backend modules (they all build on storage/base.py and never
import this one), so adding a pool type means one module and one line here.
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidArgument
from ..model.storage import Pool
from .base import FormatBook, PoolBackend
from .dir import DirBackend
from .disk import DiskBackend
from .fs import FsBackend
from .iscsi import make_iscsi_backend
from .logical import LogicalBackend
from .netfs import NetfsBackend

BackendMaker = Callable[[Pool, str | None, FormatBook | None], PoolBackend]

MAKERS: dict[str, BackendMaker] = {
    "dir": DirBackend,
    "fs": FsBackend,
    "netfs": NetfsBackend,
    "logical": LogicalBackend,
    "disk": DiskBackend,
    "iscsi": make_iscsi_backend,
}


def backend_for(pool: Pool, qemu_img: str | None = None, book: FormatBook | None = None) -> PoolBackend:
    """The backend for ``pool.type``; ``qemu_img`` is the qemu-img binary (Config.settings.qemu_img), ``book``
    where file volumes' formats are recorded (the daemon's store; None: in memory, for this backend only)."""
    maker = MAKERS.get(pool.type)
    if maker is None:
        raise InvalidArgument(f"pool '{pool.name}' has type '{pool.type}', which pyvirt has no backend for; "
                              f"use one of {', '.join(MAKERS)}")
    return maker(pool, qemu_img, book)
