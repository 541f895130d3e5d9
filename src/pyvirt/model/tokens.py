"""What a value that reaches a command line or a config file may look like.

QEMU reads ``-cpu`` and ``-vnc`` as one comma-separated option string, and
dnsmasq reads its hosts files line by line: a value with a comma or a newline
would add a property or a line of its own. Values that have a plain form are
held to it here (one rule each, shared by every validator that needs it);
free text that QEMU reads as a key=value value is escaped by
``qemu.argv_render`` instead.
"""
from __future__ import annotations

import ipaddress
import re

IFNAMSIZ = 16  # the kernel's limit includes the terminating NUL: 15 characters
MAX_HOSTNAME = 253
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})$")
MAX_QEMU_NAME = 128
_QEMU_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def control_char(text: str) -> str | None:
    """The first control character (newline, NUL, escape, DEL, ...) in ``text``, or None."""
    return next((ch for ch in text if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0), None)


def qemu_name_problem(name: str) -> str | None:
    """Why ``name`` is no QEMU model, feature or device name (letters, digits, '-', '_', '.'), or None."""
    if not name:
        return "it is empty"
    if len(name) > MAX_QEMU_NAME:
        return f"it has {len(name)} characters, more than {MAX_QEMU_NAME}"
    if not _QEMU_NAME.match(name):
        return "QEMU names hold only letters, digits, '-', '_' and '.', and start with a letter or digit"
    return None


def parse_ip(text: str) -> IPAddress | None:
    """The IP address ``text`` names, or None; an IPv6 scope id ('%eth0') makes it None too.

    Python's ``ipaddress`` takes any text after '%' as a scope, a newline
    included, and writes it back out: such an address must never reach a
    file that another program reads line by line.
    """
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def ip_problem(text: str) -> str | None:
    """Why ``text`` is not a plain IP address, or None when it is one."""
    if "%" in text:
        scope = text.split("%", 1)[1]
        return f"it carries an IPv6 scope id ({scope!r}), which pyvirt does not take; write the address alone"
    if parse_ip(text) is None:
        return "it is not an IP address"
    return None


def hostname_problem(name: str) -> str | None:
    """Why ``name`` is no DNS name dnsmasq can serve (letters, digits, '-', '_', dots), or None.

    The names end up in dnsmasq's config and hosts files, one per line or
    comma separated, so anything else could break (or inject into) them.
    """
    if not name:
        return "it is empty"
    if len(name) > MAX_HOSTNAME:
        return f"it has {len(name)} characters, more than {MAX_HOSTNAME}"
    for label in name.split("."):
        if not _LABEL.match(label):
            return ("each dot-separated part must be 1-63 letters, digits, '-' or '_', "
                    "starting with a letter or digit")
    return None


def source_host_problem(host: str) -> str | None:
    """Why ``host`` cannot name a server for mount or iscsiadm (an option, a scope id, no DNS name), or None."""
    if host.startswith("-"):
        return "it starts with '-', so mount and iscsiadm would read it as an option"
    if ":" in host or "%" in host or parse_ip(host) is not None:
        return ip_problem(host)
    problem = hostname_problem(host)
    return None if problem is None else f"it is neither an IP address nor a DNS name ({problem})"


def ifname_problem(name: str) -> str | None:
    """Why the kernel would refuse ``name`` as a link name (dev_valid_name), or None."""
    if not name:
        return "it is empty"
    if len(name) >= IFNAMSIZ:
        return f"it has {len(name)} characters, more than {IFNAMSIZ - 1}"
    if name in (".", ".."):
        return f"it is '{name}'"
    for ch in name:
        if ch in "/:":
            return f"it contains '{ch}'"
        if ch.isspace():
            return "it contains white space"
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return f"it contains the control character {ch!r}"
    return None
