"""Who QEMU runs as: a dedicated unprivileged user, created on first use, never root.

QEMU runs guests' untrusted devices; if it is broken into, the attacker should
hold as little as possible. pyvirt spawns it with this user's uid, its own
group and the group kvm (for /dev/kvm), and gives it every file it needs as
an open file descriptor, so the user needs no access to any of the host's
files and no owner or mode of a user's file is ever changed.
"""
from __future__ import annotations

import grp
import logging
import pwd
import subprocess
from dataclasses import dataclass

from ..errors import HostError, InvalidArgument

log = logging.getLogger(__name__)

KVM_GROUP = "kvm"


@dataclass(frozen=True)
class QemuIdentity:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups (kvm where the host has it)


def qemu_identity(name: str, *, create: bool = True) -> QemuIdentity:
    """The user QEMU runs as; created (a system user with its own group, member of kvm) if missing."""
    if name in ("", "root") or (name.isdigit() and int(name) == 0):
        raise InvalidArgument(f"qemu_user = '{name}' in the settings would run QEMU as root, which pyvirt never "
                              "does; set it to an unprivileged user (the default is pyvirt-qemu)")
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        if not create:
            raise HostError(f"the QEMU user '{name}' does not exist; create it (`useradd --system "
                            f"--user-group {name}`) or let pyvirtd create it at its start") from None
        _create(name)
        user = pwd.getpwnam(name)
    if user.pw_uid == 0:
        raise InvalidArgument(f"the QEMU user '{name}' has uid 0 (root); pyvirt never runs QEMU as root: "
                              "give qemu_user an unprivileged user")
    groups = []
    try:
        groups.append(grp.getgrnam(KVM_GROUP).gr_gid)
    except KeyError:
        log.info("this host has no group %s; QEMU runs without it (no /dev/kvm access)", KVM_GROUP)
    return QemuIdentity(name, user.pw_uid, user.pw_gid, tuple(g for g in groups if g != user.pw_gid))


def _create(name: str) -> None:
    """useradd a system user with its own group, no home and no login (as Debian's libvirt-qemu)."""
    argv = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
            "--shell", "/usr/sbin/nologin", "--comment", "pyvirt QEMU guests", name]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise HostError(f"cannot create the QEMU user '{name}': {exc.strerror} running useradd "
                        "(Debian package passwd)") from exc
    if done.returncode not in (0, 9):  # 9: created meanwhile by someone else
        raise HostError(f"cannot create the QEMU user '{name}': useradd said: {done.stderr.strip()}")
    log.info("created the QEMU user %s", name)
