"""Managed save images, and a restore's incoming stream (what the domain manager needs of saves).

A managed save image is one per domain, kept by the daemon under
``/var/lib/pyvirt/save/UUID.save``; ``start`` of a domain that has one restores
it instead of booting (and removes it once the guest runs), as libvirt does.
``incoming`` turns any save image into the ``Incoming`` of a start: QEMU waits
with ``-incoming defer``, the daemon opens the image, skips its header and
hands QEMU the descriptor. Kept apart from saves.py (the save and restore
verbs) so the domain manager can use it without depending on that manager.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from ..config import Config
from ..errors import QemuError
from ..model.domain_xml import parse_domain_xml
from ..qemu import statefile
from ..qemu.diagnose import reason
from ..qemu.process import EXIT_GRACE
from .runner import Incoming, Running
from .save_files import SaveImage, drop_cache, open_stream, read_image, remove_partials

log = logging.getLogger(__name__)

RESTORE_FD = "pyvirt-restore"


class SaveImages:
    """The managed save images of this daemon's domains (one directory, files named by uuid)."""

    def __init__(self, config: Config) -> None:
        self.dir = config.paths.lib / "save"

    def path(self, uuid: str) -> Path:
        return self.dir / f"{uuid}.save"

    def exists(self, uuid: str) -> bool:
        return self.path(uuid).is_file()

    def find(self, uuid: str) -> SaveImage | None:
        """The domain's managed image, checked, or None when it has none."""
        path = self.path(uuid)
        return read_image(path) if path.is_file() else None

    def restore_of(self, uuid: str) -> tuple[Incoming, bool] | None:
        """The start that continues the domain's managed image, and whether its guest ran; None: no image."""
        image = self.find(uuid)
        return None if image is None else (incoming(image), image.header.running)

    def remove(self, uuid: str) -> bool:
        """Drop the domain's managed image; False if it had none."""
        try:
            os.unlink(self.path(uuid))
        except FileNotFoundError:
            return False
        log.info("managed save image %s removed", self.path(uuid))
        return True

    def make_dir(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def clean(self) -> int:
        """At the daemon's start: partial managed images a killed daemon left."""
        return remove_partials(self.dir)


def incoming(image: SaveImage, *, xml: str | None = None, bypass_cache: bool = False) -> Incoming:
    """The start that continues the guest saved in ``image`` (launched from ``xml``, else the image's own)."""

    async def receive(running: Running) -> None:
        fd = await asyncio.to_thread(open_stream, image, bypass_cache=bypass_cache)
        try:
            await statefile.load_from_fd(running.monitor, fd, RESTORE_FD)
        except QemuError as exc:
            raise await _load_failed(running, image, exc) from exc
        finally:
            os.close(fd)
        if bypass_cache:
            await asyncio.to_thread(drop_cache, image.path)

    return Incoming(receive, "restored", parse_domain_xml(xml if xml is not None else image.xml))


async def _load_failed(running: Running, image: SaveImage, exc: QemuError) -> QemuError:
    """QEMU gives up on a stream it cannot load and exits, its reason the last thing it printed: quote it."""
    await running.process.wait_exit(EXIT_GRACE)
    tail = running.process.log.tail() if running.process.log is not None else ""
    said = reason(tail) or exc.message
    return QemuError(f"cannot restore domain '{running.live.name}' from {image.path}: QEMU could not load the "
                     f"saved state: {said}; the image is damaged or comes from an incompatible QEMU",
                     detail=tail or exc.detail)
