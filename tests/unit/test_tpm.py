"""<tpm> through swtpm: the XML, the QEMU options on the daemon's socket pair, the swtpm process."""
from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from pyvirt.config import Config, Paths, Settings
from pyvirt.daemon import swtpm
from pyvirt.errors import HostError, InvalidArgument, UnsupportedConfig
from tests.unit.feature_xml import build, parse, round_trip, values

CRB = "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"


def test_virt_install_tpm_round_trips_and_uses_the_daemons_socket() -> None:
    d = round_trip(parse(CRB))
    (tpm,) = d.devices.tpms
    assert (tpm.model, tpm.backend_type, tpm.backend_version) == ("tpm-crb", "emulator", "2.0")
    args = build(d, tpm_fd=17).argv
    assert values(args, "-chardev")[-1] == "socket,id=chrtpm0,fd=17"
    assert values(args, "-tpmdev") == ["emulator,id=tpm-tpm0,chardev=chrtpm0"]
    assert "tpm-crb,tpmdev=tpm-tpm0,id=tpm0" in values(args, "-device")
    assert not [a for a in args if "swtpm" in a or (".sock" in a and "tpm" in a)]  # nothing QEMU opens by path


def test_default_model_is_tis_and_live_alias_is_accepted() -> None:
    d = round_trip(parse("<tpm><backend type='emulator'/><alias name='tpm0'/></tpm>", machine="pc"))
    assert d.devices.tpms[0].model == "tpm-tis"
    assert "tpm-tis,tpmdev=tpm-tpm0,id=tpm0" in values(build(d, tpm_fd=5).argv, "-device")


@pytest.mark.parametrize(("xml", "needle"), [
    ("<tpm model='tpm-spapr'><backend type='emulator'/></tpm>", "model 'tpm-spapr'"),
    ("<tpm model='tpm-crb'><backend type='emulator' version='1.2'/></tpm>", "2.0 only"),
    ("<tpm><backend type='emulator' version='3.0'/></tpm>", "version '3.0'"),
    (CRB + CRB, "2 TPMs"),
    ("<tpm><backend type='emulator' persistent_state='yes'/></tpm>", "persistent_state"),
    ("<tpm><backend type='emulator'/><address type='isa' iobase='0x100'/></tpm>", "<address>"),
])
def test_bad_tpms_are_refused(xml: str, needle: str) -> None:
    with pytest.raises((InvalidArgument, UnsupportedConfig), match=needle):
        parse(xml)


def test_build_needs_the_socket_and_refuses_microvm() -> None:
    with pytest.raises(InvalidArgument, match="swtpm"):
        build(parse(CRB))
    with pytest.raises(UnsupportedConfig, match="microvm"):
        build(parse(CRB, machine="microvm"), tpm_fd=3)


def _config(tmp_path: Path, binary: str) -> Config:
    return Config(Paths(tmp_path), Settings(swtpm_binary=binary))


def test_missing_swtpm_names_the_package_and_makes_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path, str(tmp_path / "no-swtpm"))
    with pytest.raises(HostError, match=r"Debian package swtpm \(apt-get install swtpm\)"):
        swtpm.Swtpm.prepare(config, parse(CRB))  # refused before the socket pair is made
    assert not list(tmp_path.iterdir())
    assert swtpm.Swtpm.prepare(config, parse("")) is None  # no TPM: no swtpm needed


def test_socket_pair_is_closed_once(tmp_path: Path) -> None:
    config = _config(tmp_path, "/bin/true")
    tpm = swtpm.Swtpm.prepare(config, parse(CRB))
    assert tpm is not None
    a, b = tpm.qemu_fd, tpm.swtpm_fd
    assert socket.socket(fileno=os.dup(a)).getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
    tpm.close()
    tpm.close()
    for fd in (a, b):
        with pytest.raises(OSError):
            os.fstat(fd)


def test_stop_without_a_pidfile_and_with_a_recycled_pid_does_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path, "/bin/true")
    swtpm.stop(config, "u1")  # nothing recorded
    pidfile = config.paths.swtpm_pidfile("u1")
    pidfile.parent.mkdir(parents=True)
    pidfile.write_text(f"{os.getpid()} not-my-start-time\n")
    swtpm.stop(config, "u1")  # our own pid with another start time: never signalled
    assert not pidfile.exists()


def test_forget_removes_the_state(tmp_path: Path) -> None:
    config = _config(tmp_path, "/bin/true")
    state = config.paths.swtpm_state("u2")
    state.mkdir(parents=True)
    (state / "tpm2-00.permall").write_text("x")
    swtpm.forget(config, "u2")
    assert not state.exists()
    assert replace(config.settings) == config.settings
