"""pyvirtd: the daemon's process. Owns the host's state, supervises QEMU, serves the API.

This is the composition root: it parses the command line, builds the
managers (daemon/services.py) and the API over them (api/), and runs both; it
sits above daemon/ and api/, and nothing imports it.

`pyvirtd --root DIR` keeps every file under DIR (tests run several side by
side); without it, the system paths. It stays in the foreground unless
`--detach`. Guests outlive it: stopping the daemon never stops a guest.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import logging.handlers
import os
import signal
import ssl
import sys
from pathlib import Path

from aiohttp import web

from . import __version__
from .api.remote_routes import RemoteInfo
from .api.server import Api
from .config import Config
from .daemon import services
from .errors import PyvirtError

log = logging.getLogger("pyvirtd")


def parse_listen(text: str, option: str = "--metrics-listen", example: str = "127.0.0.1:9177") -> tuple[str, int]:
    """``127.0.0.1:9177``, ``[::1]:9177`` or ``:9177`` (every address) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise PyvirtError(f"{option} {text!r} is not ADDRESS:PORT; write e.g. {example}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "0.0.0.0", int(port)  # an empty address: every one


class Daemon:
    def __init__(self, config: Config, metrics_listen: tuple[str, int] | None = None,
                 listen: tuple[str, int] | None = None) -> None:
        self.config = config
        self.metrics_listen = metrics_listen
        self.listen = listen
        uri = "qemu:///system" if config.paths.root == Path("/") else f"unix://{config.paths.socket}"
        self.services = services.build(config, uri)

    async def _start_metrics(self) -> web.AppRunner | None:
        """The read-only Prometheus listener; a port in use is logged and the daemon goes on without it."""
        if self.metrics_listen is None:
            return None
        from .api.metrics import metrics_app

        host, port = self.metrics_listen
        runner = web.AppRunner(metrics_app(self.services), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            log.error("metrics: cannot listen on %s:%d: %s; pyvirtd runs without its /metrics listener (pick "
                      "another port with --metrics-listen, or stop what holds this one)", host, port,
                      exc.strerror or exc)
            return None
        log.info("metrics: Prometheus metrics on http://%s:%d/metrics", host, port)
        return runner

    def _remote(self) -> tuple[RemoteInfo | None, ssl.SSLContext | None]:
        """The TLS listener's identity and context (its certificate made at the first start), or none."""
        if self.listen is None:
            return None, None
        from .daemon.tlscert import server_certificate, server_context

        host, port = self.listen
        cert = server_certificate(self.config, host)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        log.info("remote: TLS certificate %s (%s), SHA-256 fingerprint %s", cert.cert,
                 "made now" if cert.made else "as it was", cert.fingerprint)
        return RemoteInfo(listen=where, fingerprint=cert.fingerprint), server_context(cert)

    async def _start_listener(self, runner: web.AppRunner, ctx: ssl.SSLContext | None) -> None:
        """The TCP+TLS site beside the unix socket; a port that cannot be had stops the daemon (it was asked for)."""
        if self.listen is None:
            return
        host, port = self.listen
        try:
            await web.TCPSite(runner, host, port, ssl_context=ctx, backlog=128).start()
        except OSError as exc:
            raise PyvirtError(f"cannot listen on {host}:{port} for pyvirt+tls:// clients: {exc.strerror or exc}; "
                              "pick another --listen address, or stop what holds this one") from exc
        log.info("remote: listening for pyvirt+tls:// clients on %s:%d (tokens required)", host, port)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        s = self.services
        remote, tls = self._remote()  # a bad certificate setting stops the daemon before anything starts
        await asyncio.to_thread(s.launcher.identity)  # the QEMU user exists (created at the first start)
        s.host.start_probe()
        await s.load()
        await s.snapshots.reconcile()
        # Networks and pools come up before the socket opens (about 0.1 s each), so a client's
        # first `start` never races their autostart; domains start in the background.
        await s.networks.autostart()
        await s.pools.autostart()
        s.serial_logs.start()
        await s.start()
        app = Api(s, remote).app()
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await self._start_listener(runner, tls)
        except PyvirtError:
            await runner.cleanup()
            await s.close()
            raise
        sock_path = self.config.paths.socket
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()
        old_umask = os.umask(0o177)
        try:
            site = web.UnixSite(runner, str(sock_path))
            await site.start()
        finally:
            os.umask(old_umask)
        os.chmod(sock_path, 0o600)
        log.info("pyvirtd %s listening on %s", __version__, sock_path)
        metrics = await self._start_metrics()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        autostart = loop.create_task(s.domains.autostart())  # networks and pools are already up
        try:
            await stop.wait()
        finally:
            log.info("pyvirtd stopping; guests keep running")
            autostart.cancel()
            if metrics is not None:
                await metrics.cleanup()
            await runner.cleanup()
            await s.close()
            with contextlib.suppress(FileNotFoundError):
                sock_path.unlink()


def _lock_pidfile(path: Path) -> int:
    """One daemon per root: hold an flock on the pidfile for our whole life."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 32).decode().strip() or "?"
        os.close(fd)
        raise PyvirtError(f"another pyvirtd (pid {other}) already runs with this root ({path}); "
                          "stop it first") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _setup_logging(config: Config, verbose: bool, foreground: bool) -> None:
    """The daemon's log: a rotating file (it must not fill the disk), or the journal under systemd."""
    level = logging.DEBUG if verbose else getattr(logging, config.settings.log_level.upper(), logging.INFO)
    handlers: list[logging.Handler] = []
    under_journald = foreground and "JOURNAL_STREAM" in os.environ  # systemd connected stderr to the journal
    if not under_journald:
        settings = config.settings
        handlers.append(logging.handlers.RotatingFileHandler(
            config.paths.daemon_log, maxBytes=settings.log_max_bytes, backupCount=settings.log_backups))
    if foreground:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=level, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("qemu.qmp").setLevel(logging.WARNING)
    logging.getLogger("pyvirt.audit").setLevel(logging.INFO)  # every change is logged, whatever log_level says


def _detach() -> None:
    """Classic double fork; the parent returns once the child runs."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyvirtd", description="pyvirt daemon: manages QEMU/KVM guests")
    parser.add_argument("--root", default="/",
                        help="keep every file (settings, database, run, log) under this directory")
    parser.add_argument("-d", "--detach", action="store_true", help="run in the background")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--metrics-listen", metavar="ADDR:PORT",
                        help="serve Prometheus metrics (read-only) on this TCP address, e.g. 127.0.0.1:9177")
    parser.add_argument("--listen", metavar="ADDR:PORT",
                        help="also serve the API over TLS on this TCP address for pyvirt+tls:// clients, with tokens "
                             "(e.g. 0.0.0.0:16514; default: the `listen` setting, else off)")
    parser.add_argument("--version", action="version", version=f"pyvirtd {__version__}")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("error: pyvirtd must run as root (it manages QEMU processes, taps and bridges)", file=sys.stderr)
        return 1
    os.umask(0o077)  # every file the daemon writes is private unless it says otherwise
    try:
        metrics = parse_listen(args.metrics_listen) if args.metrics_listen else None
        config = Config.for_root(args.root)
        listen_text = args.listen or config.settings.listen
        listen = parse_listen(listen_text, "--listen" if args.listen else "listen (pyvirt.toml)",
                              "0.0.0.0:16514") if listen_text else None
        config.paths.check_socket_lengths()  # before anything is made under the root
        config.paths.make_dirs()
        if args.detach:
            _detach()
        lock_fd = _lock_pidfile(config.paths.pidfile)
    except PyvirtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _setup_logging(config, args.verbose, foreground=not args.detach)
    try:
        asyncio.run(Daemon(config, metrics, listen).run())
    except PyvirtError as exc:
        log.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        os.close(lock_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
