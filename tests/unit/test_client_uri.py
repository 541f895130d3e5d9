"""Connection URIs -> socket paths (pyvirt.client.uri)."""
from __future__ import annotations

import pytest

from pyvirt import config
from pyvirt.client import uri as U
from pyvirt.errors import InvalidArgument


def test_constants_match_config():
    assert U.SYSTEM_SOCKET == config.SYSTEM_SOCKET
    assert U.SYSTEM_URI == config.DEFAULT_URI
    assert str(config.Paths().socket) == U.SYSTEM_SOCKET


@pytest.mark.parametrize("uri, path", [
    ("qemu:///system", "/run/pyvirt/pyvirtd.sock"),
    ("qemu+unix:///system", "/run/pyvirt/pyvirtd.sock"),
    ("qemu+unix:///system?socket=/tmp/x/pyvirtd.sock", "/tmp/x/pyvirtd.sock"),
    ("qemu+unix:///system?socket=/tmp/with%20space.sock", "/tmp/with space.sock"),
    ("unix:///srv/pv/run/pyvirt/pyvirtd.sock", "/srv/pv/run/pyvirt/pyvirtd.sock"),
])
def test_socket_path(uri, path):
    assert U.socket_path(uri) == path


@pytest.mark.parametrize("uri, words", [
    ("qemu:///session", "only serves the system instance"),
    ("unix://relative.sock", "absolute socket path"),
    ("http://host/", "unsupported scheme 'http'"),
    ("nonsense", "has no scheme"),
    ("qemu:///system?socket=/x", "unsupported parameter(s) socket"),
    ("qemu+unix:///system?foo=1", "unsupported parameter(s) foo"),
    ("qemu+unix:///system?socket=rel", "absolute path"),
])
def test_bad_uris_say_what_to_use(uri, words):
    with pytest.raises(InvalidArgument) as info:
        U.socket_path(uri)
    assert words in str(info.value)
    assert uri in str(info.value)


def test_default_uri_from_environment():
    assert U.default_uri({}) == "qemu:///system"
    assert U.default_uri({"PYVIRT_DEFAULT_URI": "unix:///tmp/a.sock"}) == "unix:///tmp/a.sock"


def test_is_system_and_quote():
    assert U.is_system("qemu+unix:///system")
    assert not U.is_system("unix:///tmp/a.sock")
    assert not U.is_system("bogus")
    assert U.quote("my vm/1%") == "my%20vm%2F1%25"
    assert U.unquote(U.quote("ünï code")) == "ünï code"
