"""The real daemon's refusals outside its routes are in the API's error shape; the trace fixture checks
each exchange against docs/openapi.yaml (x-unrouted, the 413 and the console's 400)."""
from __future__ import annotations

import pytest

from pyvirt import errors
from pyvirt.client.transport import UnixHTTP

from .conftest import DaemonHandle

pytestmark = pytest.mark.integration


def refusal(d: DaemonHandle, method: str, target: str, payload: object = None) -> errors.PyvirtError:
    http = UnixHTTP(str(d.socket))
    try:
        with pytest.raises(errors.PyvirtError) as err:
            http.request_json(method, target, payload)
        assert http.request_json("GET", "/v1/version")["hypervisor"] == "QEMU"  # the connection still serves
    finally:
        http.close()
    return err.value


def test_unknown_route_wrong_method_big_body_and_plain_console(daemon: DaemonHandle) -> None:
    err = refusal(daemon, "GET", "/v1/no/such/route")
    assert type(err) is errors.NotFound
    assert err.message == "no such API route: GET /v1/no/such/route; the routes are listed in GET /openapi.json"
    err = refusal(daemon, "DELETE", "/v1/version")
    assert type(err) is errors.MethodNotAllowed
    assert err.message == "DELETE is not allowed on /v1/version; it takes GET, HEAD"
    err = refusal(daemon, "POST", "/v1/domains", {"xml": "x" * (17 * 1024 * 1024)})
    assert type(err) is errors.RequestTooLarge and "over the daemon's limit of 16777216 bytes" in err.message
    err = refusal(daemon, "GET", "/v1/domains/anything/console")
    assert type(err) is errors.InvalidArgument and "is a WebSocket" in err.message
