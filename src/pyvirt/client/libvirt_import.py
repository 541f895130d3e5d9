"""import-libvirt: libvirt's persistent domains, networks and storage pools, defined in pyvirt.

libvirt keeps each persistent object as one XML file in its configuration
directory, and autostart as a symlink beside it::

    DIR/qemu/NAME.xml                  domains     DIR/qemu/autostart/NAME.xml
    DIR/qemu/networks/NAME.xml         networks    DIR/qemu/networks/autostart/NAME.xml
    DIR/storage/NAME.xml               pools       DIR/storage/autostart/NAME.xml

The files are read, never written. Each object is defined in pyvirt from its
XML as is, so names, uuids and MACs are kept; autostart is set when libvirt's
link is there. Networks and pools go first (domains use them). An object pyvirt
already has, or whose XML it refuses, is reported and left out; the others are
still imported.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import Connection

KINDS = ("network", "pool", "domain")  # the order of the import
LAYOUT = {"network": ("qemu/networks", "qemu/networks/autostart"), "pool": ("storage", "storage/autostart"),
          "domain": ("qemu", "qemu/autostart")}


@dataclass(frozen=True)
class Found:
    """One persistent object in libvirt's directory."""

    kind: str  # network | pool | domain
    name: str  # the file's stem: libvirt names each file after its object
    path: Path
    autostart: bool


@dataclass(frozen=True)
class Outcome:
    kind: str
    name: str
    result: str  # imported | would import | refused
    reason: str = ""
    autostart: bool = False


def scan(root: Path) -> list[Found]:
    """Every persistent object under ``root`` (libvirt's /etc/libvirt), networks, pools, then domains."""
    if not root.is_dir():
        raise FileNotFoundError(f"no libvirt configuration directory at {root}; give the right one with --dir")
    found: list[Found] = []
    for kind in KINDS:
        sub, auto = (root / part for part in LAYOUT[kind])
        if not sub.is_dir():
            continue
        for path in sorted(sub.glob("*.xml")):
            if path.is_file():
                found.append(Found(kind, path.stem, path, os.path.lexists(auto / path.name)))
    return found


def _check_locally(found: Found, text: str) -> None:
    """--dry-run: the codec's own checks (what define would refuse in the XML itself)."""
    if found.kind == "domain":
        from ..model.domain_xml import parse_domain_xml

        parse_domain_xml(text)
    elif found.kind == "network":
        from ..model.network_xml import parse_network_xml

        parse_network_xml(text)
    else:
        from ..model.storage_xml import parse_pool_xml

        parse_pool_xml(text)


def _existing(conn: Connection) -> dict[str, set[str]]:
    return {"domain": {d.name for d in conn.list_domains()},
            "network": {str(n["name"]) for n in conn.list_networks()},
            "pool": {str(p["name"]) for p in conn.list_pools()}}


def import_one(conn: Connection, found: Found, text: str) -> None:
    """Define ``found`` from its XML and copy its autostart."""
    if found.kind == "domain":
        dom = conn.define_xml(text)
        if found.autostart:
            dom.set_autostart(True)
    elif found.kind == "network":
        net = conn.define_network(text)
        if found.autostart:
            net.set_autostart(True)
    else:
        pool = conn.define_pool(text)
        if found.autostart:
            pool.set_autostart(True)


def run_import(conn: Connection, root: Path, *, dry_run: bool = False) -> list[Outcome]:
    """Import every object of ``root``; one outcome per file, refusals with pyvirt's reason."""
    from ..errors import PyvirtError

    objects = scan(root)  # a wrong --dir fails before the daemon is asked for its objects
    existing = _existing(conn)
    out: list[Outcome] = []
    for found in objects:
        try:
            text = found.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            out.append(Outcome(found.kind, found.name, "refused", f"cannot read {found.path}: {exc}"))
            continue
        if found.name in existing[found.kind]:
            out.append(Outcome(found.kind, found.name, "refused",
                               f"pyvirt already has a {found.kind} named '{found.name}'; it was left as it is"))
            continue
        try:
            if dry_run:
                _check_locally(found, text)
            else:
                import_one(conn, found, text)
        except PyvirtError as exc:
            out.append(Outcome(found.kind, found.name, "refused", str(exc)))
            continue
        existing[found.kind].add(found.name)
        out.append(Outcome(found.kind, found.name, "would import" if dry_run else "imported",
                           autostart=found.autostart))
    return out
