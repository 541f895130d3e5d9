"""The daemon's view of its host: capabilities probed once per boot, in the background.

The probe (QEMU queries + a KVM test boot with a timeout) can take seconds on
the first start after a boot; the daemon answers `list` meanwhile and only
`start`-like calls wait for it. The KVM boot keeps its files in the daemon's
run directory (Paths.probe_run), emptied before the probe: a daemon killed
mid-probe leaves them, and its probe QEMU dies with it (children.py).
"""
from __future__ import annotations

import asyncio
import logging
import shutil

from .. import __version__
from ..config import Config
from ..errors import HostError
from ..host.caps import HostCapabilities
from ..host.probe import load_or_probe
from ..host.validate import host_validate
from ..model.domain import Domain
from .results import HostCheck, HostInfo, VersionInfo

log = logging.getLogger(__name__)


class HostService:
    def __init__(self, config: Config, uri: str) -> None:
        self.config = config
        self.uri = uri
        self._caps: asyncio.Task[HostCapabilities] | None = None

    def start_probe(self) -> None:
        if self._caps is None:
            self._caps = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> HostCapabilities:
        caps = await asyncio.to_thread(self._clean_and_probe)
        log.info(
            "host: QEMU %s, accel %s (KVM usable: %s%s)", caps.qemu_version, caps.accel, caps.kvm_usable,
            f"; {caps.kvm.reason}" if caps.kvm.reason else "",
        )
        return caps

    def _clean_and_probe(self) -> HostCapabilities:
        """Once per daemon start (one daemon per root): drop what a killed daemon's probe left, then probe."""
        paths, settings = self.config.paths, self.config.settings
        shutil.rmtree(paths.probe_run, ignore_errors=True)
        return load_or_probe(paths, settings.qemu_binary, kvm_timeout=settings.kvm_probe_timeout)

    async def capabilities(self) -> HostCapabilities:
        self.start_probe()
        assert self._caps is not None
        return await asyncio.shield(self._caps)

    async def version(self) -> VersionInfo:
        caps = await self.capabilities()
        return VersionInfo(__version__, __version__, "QEMU", caps.qemu_version, 1)

    async def info(self) -> HostInfo:
        caps = await self.capabilities()
        return HostInfo(caps.hostname, self.uri, caps.accel, caps.kvm_usable, caps.kvm.reason, caps.cpu_count,
                        caps.memory_kib, caps.cpu_model_name)

    async def validate(self) -> list[HostCheck]:
        return [HostCheck(c.name, c.status, c.detail) for c in host_validate(await self.capabilities())]

    @staticmethod
    def machine_names(caps: HostCapabilities) -> set[str]:
        names = {m.name for m in caps.machine_types}
        return names | {m.alias for m in caps.machine_types if m.alias}

    @staticmethod
    def accel_for(domain: Domain, caps: HostCapabilities, *, check: bool) -> str:
        """type='kvm' needs a KVM that really runs guests; type='qemu' is TCG."""
        if domain.type == "qemu":
            return "tcg"
        if caps.kvm_usable:
            return "kvm"
        if check:
            raise HostError(
                f"cannot start domain '{domain.name}': it has <domain type='kvm'> but KVM is not usable on this "
                f"host ({caps.kvm.reason}); set <domain type='qemu'> with `pyvirt edit {domain.name}` to run it "
                "with TCG emulation (slower, but it works everywhere)"
            )
        return "tcg"
