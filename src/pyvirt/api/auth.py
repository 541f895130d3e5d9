"""Who may do what over TCP: tokens, their scopes, and a bound on failed attempts.

The unix socket is root-only (0600), so a request that came over it is let
through as it is. Anything else (the TLS listener) needs ``Authorization:
Bearer TOKEN`` (daemon/tokens.py): none is a 401, an unknown or revoked one a
401 that counts as a failure of its peer. A peer with ``MAX_FAILURES`` failures
in ``WINDOW`` seconds is refused with 429 (and Retry-After) until the oldest
leaves the window, whatever token it then sends. A ``read-only`` token may
read: GET only, and not the console (it types into the guest), not XML with
secrets (``security_info``, as libvirt's read-only connections), not volume
data nor the token list; the rest is a 403.
"""
from __future__ import annotations

import collections
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from ..daemon.tokens import TokenInfo
from ..errors import Forbidden, PyvirtError, RateLimited, Unauthorized
from .http import query_flag

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_FAILURES = 10
WINDOW = 60.0
MAX_PEERS = 4096  # peers remembered at once; the oldest are forgotten first
READ_METHODS = frozenset({"GET", "HEAD"})
# Where a TCP request keeps the token it was let in with (aiohttp >= 3.12 wants typed keys).
TOKEN_KEY: Any = web.RequestKey("pyvirt.token", TokenInfo) if hasattr(web, "RequestKey") else "pyvirt.token"


class TokenChecker(Protocol):
    def verify(self, token: str) -> TokenInfo | None: ...


class FailureLimiter:
    """Failed authentications per peer address in a sliding window (memory bounded by MAX_PEERS)."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._seen: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def wait(self, peer: str) -> float:
        """Seconds until ``peer`` may try again (0: now)."""
        times = self._seen.get(peer)
        if not times:
            return 0.0
        now = self._clock()
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.max_failures:
            return 0.0
        return times[0] + self.window - now

    def failed(self, peer: str) -> None:
        times = self._seen.pop(peer, None) or collections.deque(maxlen=self.max_failures)
        times.append(self._clock())
        self._seen[peer] = times  # most recent last
        while len(self._seen) > MAX_PEERS:
            self._seen.popitem(last=False)


def over_unix_socket(request: web.Request) -> bool:
    transport = request.transport
    sock: Any = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX


def needs_admin(request: web.Request) -> str | None:
    """Why a read-only token may not make this request (None: it may)."""
    path = request.path
    if request.method not in READ_METHODS:
        return f"{request.method} changes things"
    if path.startswith("/v1/domains/") and path.endswith("/console"):
        return "the console types into the guest"
    if path.startswith("/v1/domains/") and path.endswith("/xml") and query_flag(request, "security_info"):
        return "security_info shows the guest's secrets"
    if path.startswith("/v1/pools/") and path.endswith("/data"):
        return "volume data is the guests' disks"
    if path == "/v1/tokens" or path.startswith("/v1/tokens/"):
        return "tokens are the daemon's keys"
    if path == "/v1/save-image/xml":
        return "a save image is any file on the daemon's host"
    return None


def _refuse(err: PyvirtError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": err.to_dict()}, status=err.http_status, headers=headers)


def token_of(request: web.Request) -> TokenInfo | None:
    """The token a TCP request was let in with (None over the unix socket)."""
    info = request.get(TOKEN_KEY)
    return info if isinstance(info, TokenInfo) else None


def auth_middleware(tokens: TokenChecker, limiter: FailureLimiter | None = None) -> Any:
    limits = limiter or FailureLimiter()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if over_unix_socket(request):
            return await handler(request)
        peer = request.remote or "?"
        wait = limits.wait(peer)
        if wait > 0:
            return _refuse(RateLimited(f"too many failed authentications from {peer} ({limits.max_failures} in "
                                       f"{limits.window:.0f} s); try again in {wait:.0f} s"),
                           {"Retry-After": str(max(1, round(wait)))})
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _refuse(Unauthorized(
                "this daemon needs a token over TCP: create one on its host with `pyvirt token-create NAME` "
                "(add --read-only for a token that may only read), then pass it in $PYVIRT_TOKEN or in a file "
                "named by the URI's token_file=PATH"))
        info = tokens.verify(token.strip())
        if info is None:
            limits.failed(peer)
            return _refuse(Unauthorized("the token was refused: no such token (mistyped, or revoked); "
                                        "`pyvirt token-list` on the daemon's host lists the valid ones"))
        request[TOKEN_KEY] = info
        why = needs_admin(request) if info.scope != "admin" else None
        if why is not None:
            return _refuse(Forbidden(f"token '{info.name}' is read-only and {request.method} {request.path} needs an "
                                     f"admin token ({why}); create one with `pyvirt token-create NAME --scope admin`"))
        return await handler(request)

    return middleware
