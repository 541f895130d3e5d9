"""Display passwords (issue 9, item 6): set over QMP before the guest runs, never on QEMU's command line;
SPICE listens on a unix socket in the guest's directory unless an address or port is asked for."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pyvirt.errors import QemuError
from pyvirt.model.domain import Devices, Domain, Graphics
from pyvirt.qemu.argv import build_argv
from pyvirt.qemu.graphics import apply_passwords
from tests.unit.argv_cases import UUID, base_ctx
from tests.unit.test_qemu_monitor_fake import FakeQmp, connected, run

SECRET = "s3cr,et=on"


def guest(*graphics: Graphics) -> Domain:
    return Domain(name="g", uuid=UUID, memory_kib=65536, devices=Devices(graphics=graphics))


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def set_password(self, protocol: str, password: str) -> None:
        self.calls.append((protocol, password))


def test_each_display_with_a_password_gets_it_and_no_other() -> None:
    import asyncio

    rec = Recorder()
    d = guest(Graphics("vnc", passwd=SECRET), Graphics("spice", passwd="sp1"))
    assert asyncio.run(apply_passwords(rec, d)) == 2
    assert rec.calls == [("vnc", SECRET), ("spice", "sp1")]
    rec.calls.clear()
    assert asyncio.run(apply_passwords(rec, guest(Graphics("vnc")))) == 0
    assert rec.calls == []


def test_set_password_is_one_qmp_command_and_its_error_never_holds_the_password() -> None:
    async def body(path: Path) -> None:
        refused = {"error": {"class": "GenericError", "desc": "Could not set password"}}
        async with FakeQmp(path, {"set_password": {"return": {}}}) as fake:
            mon = await connected(fake)
            await mon.set_password("vnc", SECRET)
            assert fake.args_of("set_password") == {"protocol": "vnc", "password": SECRET}
            fake.replies["set_password"] = refused
            with pytest.raises(QemuError) as info:
                await mon.set_password("spice", SECRET)
            assert SECRET not in str(info.value)
            assert "set_password" in info.value.message and "Could not set password" in info.value.message
            await mon.close()

    run(body)


def argv_of(g: Graphics, **ctx: object) -> list[str]:
    return build_argv(guest(g), base_ctx(has_spice=True, **ctx)).argv


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_the_password_never_reaches_the_command_line() -> None:
    for g in (Graphics("vnc", passwd=SECRET), Graphics("spice", passwd=SECRET, listen_address="127.0.0.1")):
        argv = argv_of(g, spice_port=5901)
        assert not any("s3cr" in arg for arg in argv), argv
    assert option(argv_of(Graphics("vnc", passwd=SECRET)), "-vnc").endswith(",password=on")
    spice = option(argv_of(Graphics("spice", passwd=SECRET, listen_address="127.0.0.1"), spice_port=5901), "-spice")
    assert "disable-ticketing" not in spice  # locked until set_password


@pytest.mark.parametrize("g", [Graphics("spice"), Graphics("spice", autoport=True, port=-1),
                               Graphics("spice", listen_type="socket")])
def test_spice_listens_on_a_unix_socket_in_the_guests_directory_by_default(g: Graphics) -> None:
    ctx = base_ctx()
    spice = option(argv_of(g, spice_port=5901), "-spice")
    assert spice == f"unix=on,addr={ctx.channel_dir}/spice.sock,disable-ticketing=on,seamless-migration=on"


def test_spice_uses_tcp_only_when_an_address_or_port_is_asked_for() -> None:
    listen = Graphics("spice", autoport=True, port=-1, listen_type="address", listen_address="::1")
    assert option(argv_of(listen, spice_port=5933), "-spice").startswith("port=5933,addr=::1,")
    fixed = replace(Graphics("spice", port=5907, autoport=False))
    assert option(argv_of(fixed, spice_port=None), "-spice").startswith("port=5907,addr=127.0.0.1,")
