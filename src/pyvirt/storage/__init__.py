"""Storage pool backends (libvirt's storage driver): one module per pool type.

``backend_for(pool)`` gives the ``PoolBackend`` for a ``model.storage.Pool``.
"""
from __future__ import annotations

from . import base
from .backends import backend_for
from .base import PoolBackend, ProgressCallback

__all__ = ["PoolBackend", "ProgressCallback", "backend_for"]

# Transition: daemon/pools.py still imports backend_for from storage.base, where it used to live.
# Importing pyvirt.storage.base always runs this package first, so the name is there; remove this
# line (and the declaration at the end of base.py) once daemon/pools.py imports it from pyvirt.storage.
base.backend_for = backend_for
