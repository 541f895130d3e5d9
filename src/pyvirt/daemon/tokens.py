"""API tokens: who may use pyvirtd over TCP (pyvirt+tls://), and with which scope.

A token is ``pvt_ID_SECRET``: ID (8 hex digits) names it in lists and logs,
SECRET (256 random bits) proves it. Only SHA-256(SECRET) is stored: the
secret is printed once, at creation, and a stolen database gives no usable
token. A plain hash is enough because the secret is random, not a password
(nothing to brute-force); the comparison is constant-time. Scopes:
``read-only`` (GET only, no console, no secrets in XML) and ``admin``.
The unix socket needs no token: its 0600 mode already says root.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Protocol

from ..errors import AlreadyExists, InvalidArgument, NotFound
from ..state.store import TokenRow

SCOPES = ("read-only", "admin")
PREFIX = "pvt"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class TokenStore(Protocol):
    def tokens(self) -> list[TokenRow]: ...
    def put_token(self, row: TokenRow) -> None: ...
    def delete_token(self, token_id: str) -> None: ...


@dataclass(frozen=True)
class TokenInfo:
    """What a token list shows: never the secret nor its hash."""

    id: str
    name: str
    scope: str
    created: float


@dataclass(frozen=True)
class NewToken:
    """A token just made: the only time its secret is seen."""

    id: str
    name: str
    scope: str
    created: float
    token: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: TokenRow) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.scope, row.created)


class TokenManager:
    """Create, list, revoke and check tokens; the rows are kept in memory for the per-request check."""

    def __init__(self, store: TokenStore) -> None:
        self._store = store
        self._rows = {row.id: row for row in store.tokens()}

    def create(self, name: str, scope: str) -> NewToken:
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidArgument(f"token name {name!r} is not valid: 1 to 64 letters, digits, '.', '_', '@' or '-', "
                                  "starting with a letter or digit")
        if scope not in SCOPES:
            raise InvalidArgument(f"token scope {scope!r} is not one of {', '.join(SCOPES)}")
        if any(row.name == name for row in self._rows.values()):
            raise AlreadyExists(f"a token named '{name}' exists; revoke it first (`pyvirt token-revoke {name}`) "
                                "or pick another name")
        token_id = secrets.token_hex(4)
        while token_id in self._rows:
            token_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        row = TokenRow(token_id, name, scope, _digest(secret), round(time.time(), 3))
        try:
            self._store.put_token(row)
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"a token named '{name}' exists") from exc
        self._rows[token_id] = row
        return NewToken(row.id, row.name, row.scope, row.created, f"{PREFIX}_{token_id}_{secret}")

    def list(self) -> list[TokenInfo]:
        return [_info(row) for row in sorted(self._rows.values(), key=lambda r: (r.created, r.name))]

    def revoke(self, ref: str) -> TokenInfo:
        """By name or id; at once: the next request with it is a 401."""
        row = self._rows.get(ref) or next((r for r in self._rows.values() if r.name == ref), None)
        if row is None:
            raise NotFound(f"no token with name or id '{ref}' (see `pyvirt token-list`)")
        self._store.delete_token(row.id)
        del self._rows[row.id]
        return _info(row)

    def verify(self, token: str) -> TokenInfo | None:
        """The token's record when ``token`` is one of ours, else None."""
        prefix, _, rest = token.partition("_")
        token_id, _, secret = rest.partition("_")
        row = self._rows.get(token_id) if prefix == PREFIX else None
        if row is None or not secret:
            return None
        return _info(row) if hmac.compare_digest(_digest(secret), row.hash) else None
