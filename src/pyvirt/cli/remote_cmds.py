"""Remote access: API tokens for pyvirt+tls:// clients, and trusting a daemon's TLS certificate.

    token-create NAME [--read-only | --scope read-only|admin]   prints the token (shown once)
    token-list                                                 id, name, scope, created
    token-revoke TOKEN                                         by name or id
    tls-fingerprint        the daemon's TCP listener and its certificate's SHA-256 (run it on that host)
    tls-trust FINGERPRINT  pin -c pyvirt+tls://HOST/'s certificate in ~/.config/pyvirt/known_daemons
"""
from __future__ import annotations

import time

from ..errors import ConnectionFailed, InvalidArgument
from .spec import BOOL, STRING, Command, Opt
from .table import render, render_keyvalue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .context import Ctx


def cmd_token_create(ctx: Ctx, a: dict[str, Any]) -> None:
    scope = a["scope"] or ("read-only" if a["read_only"] else "admin")
    if a["read_only"] and scope != "read-only":
        raise InvalidArgument(f"--read-only and --scope {scope} disagree; give one of them")
    data = ctx.conn.create_token(a["name"], scope)
    ctx.out.text(data["token"], data)  # alone on its line: TOKEN=$(pyvirt token-create ci) works


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def cmd_token_list(ctx: Ctx, a: dict[str, Any]) -> None:
    tokens = ctx.conn.list_tokens()
    rows = [[t["id"], t["name"], t["scope"], _when(t["created"])] for t in tokens]
    ctx.out.text(render(["Id", "Name", "Scope", "Created"], rows).rstrip("\n") + "\n", tokens)


def cmd_token_revoke(ctx: Ctx, a: dict[str, Any]) -> None:
    data = ctx.conn.revoke_token(a["token"])
    ctx.out.text(f"Token '{data['name']}' ({data['id']}) revoked", data)


def cmd_tls_fingerprint(ctx: Ctx, a: dict[str, Any]) -> None:
    info = ctx.conn.remote_info()
    if info["listen"] is None:
        text = "Listen:         off (start pyvirtd with --listen ADDR:PORT, or set listen in pyvirt.toml)\n"
    else:
        text = render_keyvalue([("Listen:", info["listen"]), ("Fingerprint:", f"SHA256 {info['fingerprint']}")])
    ctx.out.text(text.rstrip("\n"), info)


def cmd_tls_trust(ctx: Ctx, a: dict[str, Any]) -> None:
    """Pin the certificate the daemon presents, if it is the one the user read on the daemon's host."""
    from ..client.tls import KnownDaemons, TLSEndpoint, normalize_fingerprint
    from ..client.uri import default_uri, remote

    uri = ctx.uri or default_uri()
    far = remote(uri)
    if far is None or far.kind != "tls":
        raise InvalidArgument(f"tls-trust pins a pyvirt+tls:// daemon's certificate; '{uri}' is not one "
                              "(use -c pyvirt+tls://HOST[:PORT]/)")
    wanted = normalize_fingerprint(a["fingerprint"])
    pins = KnownDaemons()
    got = TLSEndpoint(far, None, pins).presented(timeout=10.0)
    if got != wanted:
        raise ConnectionFailed(f"the daemon at {far.hostport} presents a certificate with SHA-256 fingerprint {got}, "
                               f"not the {wanted} you gave: nothing was trusted")
    pins.pin(far.hostport, got)
    ctx.out.text(f"Trusted the daemon at {far.hostport} (SHA-256 fingerprint {got}) in {pins.path}",
                 {"host": far.hostport, "fingerprint": got, "file": pins.path})


COMMANDS = (
    Command("token-create", "pyvirt", "create an API token for pyvirt+tls:// clients", cmd_token_create,
            (Opt("name", STRING, "token name", required=True, positional=True),
             Opt("read-only", BOOL, "the token may only read (GET); the same as --scope read-only"),
             Opt("scope", STRING, "read-only or admin (default admin)")),
            "Creates a token and prints it; it is not shown again (the daemon keeps only its hash). "
            "Pass it to clients in $PYVIRT_TOKEN or a file named by the URI's token_file=PATH."),
    Command("token-list", "pyvirt", "list the API tokens", cmd_token_list, (),
            "Lists the daemon's API tokens: id, name, scope and creation time (never the secrets)."),
    Command("token-revoke", "pyvirt", "revoke an API token", cmd_token_revoke,
            (Opt("token", STRING, "token name or id", required=True, positional=True),),
            "Revokes a token at once: its next request is refused with 401."),
    Command("tls-fingerprint", "pyvirt", "show the daemon's TLS listener and certificate fingerprint",
            cmd_tls_fingerprint, (),
            "Prints where the daemon listens for pyvirt+tls:// clients and the SHA-256 fingerprint of its "
            "certificate; compare it with what a client shows before trusting it with tls-trust."),
    Command("tls-trust", "pyvirt", "trust a pyvirt+tls:// daemon's certificate", cmd_tls_trust,
            (Opt("fingerprint", STRING, "the SHA-256 fingerprint tls-fingerprint printed on the daemon's host",
                 required=True, positional=True),),
            "Connects to the daemon named by -c pyvirt+tls://HOST[:PORT]/ and, when the certificate it presents "
            "has this fingerprint, pins it in ~/.config/pyvirt/known_daemons.", needs_conn=False),
)
