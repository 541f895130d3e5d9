"""What QEMU said when it failed to start, and what to do about it.

QEMU states its reason in one line on stderr (which pyvirt appends to the
domain's log) and exits with status 1. ``reason`` picks that line out of the
log's tail; ``hint`` turns the reasons pyvirt recognises into what to change,
naming the disk or CPU feature of the domain when the line allows it. Both are
pure functions of QEMU's text (and the domain), so each known message is a
table row with a unit test, and an unknown one is still shown word for word.
"""
from __future__ import annotations

import re
import signal
from collections.abc import Callable
from typing import Final

from ..errors import QemuError
from ..model.domain import Domain
from .argv_disks import disk_names

#: ``-msg timestamp=on`` puts this in front of every line QEMU prints.
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?\s+")
_WARNING = re.compile(r"^\S+: warning: ")

Rule = Callable[[re.Match[str], Domain | None], str]


def reason(tail: str) -> str:
    """QEMU's own words for why it stopped: its last line that is not a warning (timestamp dropped)."""
    lines = [_STAMP.sub("", line).strip() for line in tail.splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if not _WARNING.match(line)]
    return (errors or lines or [""])[-1]


def _format_mismatch(m: re.Match[str], domain: Domain | None) -> str:
    wanted = m.group("fmt")
    node = m.group("node")
    disk = None
    if domain is not None and node:
        for d, names in zip(domain.devices.disks, disk_names(domain), strict=True):
            if names.format_node == node:
                disk = d
    if disk is None or not disk.source:
        return (f"a disk's <driver type='{wanted}'/> does not match its file; set the type the file really has "
                "(`qemu-img info FILE` names it; a plain image is <driver type='raw'/>)")
    other = "raw" if wanted != "raw" else "qcow2"
    return (f"disk {disk.target_dev}: {disk.source} is not a {wanted} image, as its <driver type='{wanted}'/> says; "
            f"if the file is {other}, set <driver type='{other}'/> (`qemu-img info {disk.source}` names its format)")


def _cpu_feature(m: re.Match[str], domain: Domain | None) -> str:
    flag = m.group("flag")
    return (f"this QEMU's CPU model {m.group('model')} has no feature '{flag}'; fix the spelling or remove "
            f"<feature name='{flag}'/> from <cpu> (`qemu-system-x86_64 -cpu help` lists the features)")


def _socket_too_long(m: re.Match[str], domain: Domain | None) -> str:
    return ("a unix socket path may be at most 107 bytes; give the daemon a shorter --root, or the channel a "
            "shorter name or <source path=.../>")


def _image_locked(m: re.Match[str], domain: Domain | None) -> str:
    return ("another process (another guest?) has the image open; stop it, or mark the disk <shareable/> "
            "(both writers) or <readonly/> if it is meant to be shared")


def _cannot_open(m: re.Match[str], domain: Domain | None) -> str:
    return f"QEMU cannot open {m.group('path')}; check that it exists and that its permissions let QEMU read it"


def _memory(m: re.Match[str], domain: Domain | None) -> str:
    return "the host could not give the guest its memory; lower <memory>, or stop other guests"


def _kvm(m: re.Match[str], domain: Domain | None) -> str:
    return "KVM is not usable here; set <domain type='qemu'> to run the guest with TCG emulation"


_RULES: Final[tuple[tuple[re.Pattern[str], Rule], ...]] = (
    (re.compile(r'(?:"node-name":"(?P<node>[^"]+)".*)?Image is not in (?P<fmt>\w+) format'), _format_mismatch),
    (re.compile(r"Property '(?P<model>\S+?)-x86_64-cpu\.(?P<flag>[^']+)' not found"), _cpu_feature),
    (re.compile(r"UNIX socket path '[^']*' is too long"), _socket_too_long),
    (re.compile(r'Failed to get "(?:write|consistent read)" lock'), _image_locked),
    (re.compile(r"Could not open '(?P<path>[^']+)': (?:Permission denied|No such file)"), _cannot_open),
    (re.compile(r"cannot set up guest memory|Cannot allocate memory"), _memory),
    (re.compile(r"Could not access KVM kernel module|failed to initialize kvm"), _kvm),
)


def hint(tail: str, domain: Domain | None = None) -> str | None:
    """What to do about the failure QEMU reports in ``tail``; None when pyvirt cannot tell."""
    for pattern, rule in _RULES:
        m = pattern.search(tail)
        if m is not None:
            return rule(m, domain)
    return None


def exit_text(status: int | None) -> str:
    """``exit status 1`` / ``killed by SIGKILL`` / ``exit status unknown`` (not our child)."""
    if status is None:
        return "exit status unknown"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def start_error(*, when: str, tail: str, log_path: str, domain: Domain | None = None, exited: bool = True,
                status: int | None = None, cause: str | None = None) -> QemuError:
    """The one error of a failed QEMU start: which step, QEMU's reason, what to do, its last lines.

    ``exited``: QEMU ended by itself (its reason is the last thing it printed); otherwise ``cause``
    says what pyvirt saw (a timeout, a monitor that hung up on a QEMU still there) and pyvirt
    killed it. ``tail`` is QEMU's output of this start (the detail), ``log_path`` where it all is.
    """
    said = reason(tail)
    who = f"cannot start domain '{domain.name}': " if domain is not None else ""
    if exited:
        message = f"{who}QEMU failed to start ({exit_text(status)}) {when}: {said or 'it printed nothing'}"
    else:
        message = f"{who}QEMU failed to start {when}: {cause or 'it did not answer'}; it was killed"
    todo = hint(tail, domain)
    if todo:
        message += f"; {todo}"
    message += f" (QEMU's output is below and in {log_path})" if tail else f" (see {log_path})"
    return QemuError(message, detail=tail or None)
