"""Storage pool backends (libvirt's storage driver): one module per pool type.

``backend_for(pool)`` gives the ``PoolBackend`` for a ``model.storage.Pool``.
"""
from __future__ import annotations

from .backends import backend_for
from .base import PoolBackend, ProgressCallback

__all__ = ["PoolBackend", "ProgressCallback", "backend_for"]
