"""A real pyvirtd API (the real managers over a temporary root, no QEMU started) served on a unix socket,
for tests of the REST layer's rules: what a request may hold, what the audit log says."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from pyvirt.api.server import Api
from pyvirt.config import Config
from pyvirt.daemon import services


@contextlib.asynccontextmanager
async def api_session(root: Path) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session to the API of a daemon whose files live under ``root`` (sockets, store)."""
    (root / "etc/pyvirt").mkdir(parents=True, exist_ok=True)
    (root / "etc/pyvirt/pyvirt.toml").write_text("default_network = false\n")
    config = Config.for_root(root)
    config.paths.make_dirs()
    s = services.build(config, f"unix://{config.paths.socket}")
    await s.load()
    runner = web.AppRunner(Api(s).app(), access_log=None, handle_signals=False)
    await runner.setup()
    sock = str(root / "api.sock")
    await web.UnixSite(runner, sock).start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock),
                                         base_url="http://localhost") as session:
            yield session
    finally:
        await runner.cleanup()
        await s.close()
