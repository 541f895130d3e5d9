"""Unix socket path lengths: the daemon's root and a domain's sockets, checked before anything starts."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.config import UNIX_PATH_MAX, Paths, socket_path_problem
from pyvirt.daemon.prechecks import check_socket_paths
from pyvirt.errors import InvalidArgument
from pyvirt.model.domain import Domain
from pyvirt.model.domain_xml import parse_domain_xml

UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"


def domain(devices: str) -> Domain:
    return parse_domain_xml(f"""<domain type='qemu'><name>d</name><uuid>{UUID}</uuid><memory>65536</memory>
      <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>{devices}</devices></domain>""")


def test_the_limit_is_107_bytes_counted_encoded() -> None:
    assert UNIX_PATH_MAX == 107
    assert socket_path_problem("/" + "a" * 106, "x") is None
    assert socket_path_problem("/" + "a" * 107, "the socket") == (
        f"the socket would be /{'a' * 107} (108 bytes), over the 107 bytes a unix socket path can have")
    assert socket_path_problem("/" + "é" * 54, "x") is not None  # 109 bytes in UTF-8, 55 characters


def test_a_root_that_fits_and_one_that_does_not() -> None:
    Paths(Path("/")).check_socket_lengths()
    fits = Path("/" + "r" * (107 - len("/run/pyvirt/qemu/") - 36 - len("/serial") - 1))
    Paths(fits).check_socket_lengths()
    long = Path(str(fits) + "x")
    with pytest.raises(InvalidArgument) as err:
        Paths(long).check_socket_lengths()
    assert err.value.message.startswith(f"root {long} is too long: a guest's serial socket would be {long}/run/")
    assert err.value.message.endswith(f"(108 bytes), over the 107 bytes a unix socket path can have; "
                                      f"use a --root of at most {len(str(fits))} bytes")


def test_domain_sockets_fit_under_a_short_root() -> None:
    check_socket_paths(domain("<serial type='pty'/><channel type='unix'><target type='virtio' "
                              "name='org.qemu.guest_agent.0'/></channel>"), Paths(Path("/")))


@pytest.mark.parametrize(("devices", "says"), [
    ("<channel type='unix'><target type='virtio' name='org.example." + "x" * 80 + "'/></channel>",
     "the unix socket of channel0 (org.example.xxx"),
    ("<serial type='unix'><source mode='bind' path='/" + "p" * 110 + "'/></serial>",
     "the unix socket of serial0 would be /ppp"),
    ("<graphics type='vnc' socket='/" + "v" * 110 + "'/>", "its vnc socket would be /vvv"),
])
def test_a_long_domain_socket_is_named_with_its_length_and_fix(devices: str, says: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_socket_paths(domain(devices), Paths(Path("/")))
    message = err.value.message
    assert message.startswith(f"cannot start domain 'd': {says}"), message
    assert " bytes), over the 107 bytes" in message
    assert "shorter" in message.rsplit(";", 1)[1]


def test_the_console_socket_follows_a_long_root() -> None:
    root = Path("/" + "r" * 50)
    with pytest.raises(InvalidArgument, match=r"its QMP socket would be .* start pyvirtd with a shorter --root"):
        check_socket_paths(domain("<serial type='pty'/>"), Paths(root))
