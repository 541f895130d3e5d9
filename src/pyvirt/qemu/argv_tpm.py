"""<tpm>: a TPM emulated by swtpm, which the daemon starts before QEMU.

The daemon makes a connected socket pair, hands one end to swtpm as its
control channel (``--ctrl type=unixio,clientfd=N``) and the other to QEMU as
the chardev of the TPM backend (``ctx.tpm_fd``): no socket file, nothing QEMU
opens by path. QEMU makes the data channel itself and passes it over that
connection; swtpm ends when QEMU closes it.
"""
from __future__ import annotations

from ..errors import InvalidArgument, UnsupportedConfig
from .argv_common import Build
from .argv_render import Option, kv

TPM_DEVICES = {"tpm-tis": "tpm-tis", "tpm-crb": "tpm-crb"}


def tpm_options(b: Build) -> list[Option]:
    tpms = b.domain.devices.tpms
    if not tpms:
        return []
    if len(tpms) > 1:
        raise InvalidArgument("a domain can have only one TPM")
    tpm = tpms[0]
    if tpm.backend_type != "emulator":
        raise UnsupportedConfig(f"TPM backend '{tpm.backend_type}' is not supported; use type='emulator'")
    if b.microvm:
        raise UnsupportedConfig("machine 'microvm' has no TPM interface; use q35 (or pc)")
    if tpm.model not in TPM_DEVICES:
        raise UnsupportedConfig(f"TPM model '{tpm.model}' is not supported; use tpm-tis or tpm-crb")
    if b.ctx.tpm_fd is None:
        raise InvalidArgument("the TPM needs the control connection of the swtpm the daemon starts; none was given")
    return [
        Option("-chardev", kv("socket", ("id", "chrtpm0"), ("fd", b.ctx.tpm_fd))),
        Option("-tpmdev", kv("emulator", ("id", "tpm-tpm0"), ("chardev", "chrtpm0"))),
        Option("-device", kv(TPM_DEVICES[tpm.model], ("tpmdev", "tpm-tpm0"), ("id", "tpm0"))),
    ]
