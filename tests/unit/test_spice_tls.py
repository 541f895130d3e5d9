"""SPICE as virt-install writes it: port/tlsPort -1 with autoport, listen forms, <image>, <gl>."""
from __future__ import annotations

from dataclasses import replace

import pytest

from pyvirt.daemon.displays import live_displays, spice_ports, tls_problem, tls_wanted
from pyvirt.errors import UnsupportedConfig
from pyvirt.model.domain_xml import format_domain_xml
from tests.unit.argv_cases import base_ctx
from tests.unit.feature_xml import build, parse, round_trip, values

VIRT_INSTALL = ("<graphics type='spice' port='-1' tlsPort='-1' autoport='yes'>"
                "<image compression='off'/></graphics>")


def test_virt_install_spice_defines_round_trips_and_says_why_no_tls_port() -> None:
    d = round_trip(parse(VIRT_INSTALL))
    g = d.devices.graphics[0]
    assert (g.port, g.tls_port, g.autoport, g.image_compression) == (-1, -1, True, "off")
    assert "tlsPort='-1'" in format_domain_xml(d)
    cmd = build(d, has_spice=True)
    (spice,) = values(cmd.argv, "-spice")
    assert spice.startswith("unix=on,addr=") and "tls-port" not in spice and "image-compression=off" in spice
    assert any("no TLS port" in n and "unix socket" in n for n in cmd.notes), cmd.notes


def test_tcp_display_without_certificates_keeps_minus_one_and_names_the_setting() -> None:
    d = parse("<graphics type='spice' port='-1' tlsPort='-1' autoport='yes' listen='0.0.0.0'/>")
    cmd = build(d, has_spice=True, spice_port=5905)
    (spice,) = values(cmd.argv, "-spice")
    assert spice.startswith("port=5905,addr=0.0.0.0,") and "tls-port" not in spice
    assert any("spice_tls_x509_cert_dir" in n for n in cmd.notes), cmd.notes


def test_tcp_display_with_certificates_gets_a_tls_port() -> None:
    d = parse("<graphics type='spice' port='-1' tlsPort='-1' autoport='yes' listen='127.0.0.1'/>")
    cmd = build(d, has_spice=True, spice_port=5905, spice_tls_port=5906, spice_tls_dir="/run/x/spice-tls")
    (spice,) = values(cmd.argv, "-spice")
    assert "port=5905" in spice and "tls-port=5906" in spice and "x509-dir=/run/x/spice-tls" in spice
    assert not any("TLS" in n for n in cmd.notes)


def test_fixed_tls_port_without_certificates_is_refused_with_the_way_out() -> None:
    d = round_trip(parse("<graphics type='spice' port='5901' tlsPort='5902'/>"))
    with pytest.raises(UnsupportedConfig, match=r"spice_tls_x509_cert_dir.*tlsPort='-1'"):
        build(d, has_spice=True)
    cmd = build(d, has_spice=True, spice_tls_dir="/run/x/spice-tls")
    (spice,) = values(cmd.argv, "-spice")
    assert "port=5901" in spice and "tls-port=5902" in spice


@pytest.mark.parametrize("listen", ["none", "socket"])
def test_listen_none_and_socket_forms(listen: str) -> None:
    d = round_trip(parse(f"<graphics type='spice'><image compression='off'/><listen type='{listen}'/></graphics>"))
    assert d.devices.graphics[0].listen_type == listen
    (spice,) = values(build(d, has_spice=True).argv, "-spice")
    assert spice.startswith("unix=on,")


def test_listen_address_element_without_address_is_kept() -> None:
    d = round_trip(parse("<graphics type='spice' autoport='yes'><listen type='address'/></graphics>"))
    assert d.devices.graphics[0].listen_type == "address"


def test_gl_is_kept_and_refused_at_start_when_enabled() -> None:
    on = round_trip(parse("<graphics type='spice'><gl enable='yes'/><listen type='none'/></graphics>"))
    assert on.devices.graphics[0].gl is True
    with pytest.raises(UnsupportedConfig, match="render node"):
        build(on, has_spice=True)
    off = round_trip(parse("<graphics type='spice'><gl enable='no'/></graphics>"))
    assert values(build(off, has_spice=True).argv, "-spice")


def test_vnc_has_no_tls_port_and_bad_ports_are_refused() -> None:
    with pytest.raises(UnsupportedConfig, match="tlsPort"):
        parse("<graphics type='vnc' port='-1' tlsPort='-1' autoport='yes'/>")
    with pytest.raises(Exception, match="tlsPort 70000"):
        parse("<graphics type='spice' tlsPort='70000'/>")
    with pytest.raises(Exception, match="port and tlsPort are both 5901"):
        parse("<graphics type='spice' port='5901' tlsPort='5901'/>")


def test_ports_picked_and_shown_live() -> None:
    d = parse("<graphics type='spice' port='-1' tlsPort='-1' autoport='yes' listen='127.0.0.1'/>")
    assert tls_wanted(d)
    plain, tls = spice_ports(d, tls_configured=False)
    assert plain and tls is None
    plain, tls = spice_ports(d, tls_configured=True)
    assert plain and tls and plain != tls
    live = live_displays(d, base_ctx(spice_port=plain, spice_tls_port=tls, spice_tls_dir="/x"))
    assert (live.devices.graphics[0].port, live.devices.graphics[0].tls_port) == (plain, tls)
    assert live.devices.graphics[0].autoport is True
    no_tls = live_displays(d, base_ctx(spice_port=plain))
    assert (no_tls.devices.graphics[0].port, no_tls.devices.graphics[0].tls_port) == (plain, -1)
    unix = parse(VIRT_INSTALL)
    assert not tls_wanted(unix) and live_displays(unix, base_ctx()) is unix
    assert replace(unix) == unix


def test_certificate_directory_is_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    problem = tls_problem(str(tmp_path))
    assert problem is not None and "server-key.pem" in problem
    for name in ("ca-cert.pem", "server-cert.pem", "server-key.pem"):
        (tmp_path / name).write_text("x")
    assert tls_problem(str(tmp_path)) is None


def test_video_acceleration_is_kept_and_3d_refused_at_start() -> None:
    on = round_trip(parse("<graphics type='spice'><gl enable='no'/></graphics>"
                          "<video><model type='virtio'><acceleration accel3d='yes'/></model></video>"))
    assert on.devices.videos[0].accel3d is True
    with pytest.raises(UnsupportedConfig, match="render node"):
        build(on, has_spice=True)
    off = round_trip(parse("<video><model type='virtio'><acceleration accel3d='no'/></model></video>"))
    assert "virtio-vga,id=video0" in values(build(off).argv, "-device")
