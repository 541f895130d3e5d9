"""The parts every libvirt document starts with: the root element, <name>, <uuid>.

Shared by the domain, network, pool and volume codecs, so their first lines read
(and fail) the same way.
"""
from __future__ import annotations

from ..errors import InvalidArgument
from .ids import parse_uuid
from .names import check_name
from .xml_util import Context, Reader, parse_xml


def with_path(r: Reader, exc: InvalidArgument) -> InvalidArgument:
    """Put the element path and object in front of an error raised by a value parser."""
    return type(exc)(f"{r.path} in {r.ctx.who()}: {exc.message}")


def open_document(text: str, tag: str, starts_with: str) -> Reader:
    """A Reader on the root of ``text``, which must be <tag> (``starts_with`` shows how one begins)."""
    root, declared = parse_xml(text, what=f"{tag} XML")
    ctx = Context(tag, declared)
    if root.tag != tag:
        raise InvalidArgument(
            f"the root element is <{ctx.show_tag(root.tag)}>, not <{tag}>; a {tag} definition starts with "
            f"{starts_with}"
        )
    return Reader(root, ctx, f"<{tag}>", root=True)


def read_name(r: Reader, kind: str, *, strip: bool = False) -> str:
    """The required <name>, checked by the naming rules; errors after this name the object."""
    name_r = r.child("name")
    if name_r is None:
        raise InvalidArgument(f"the {kind} XML has no <name>; add <name>NAME</name>")
    name = name_r.text().strip() if strip else name_r.text()
    name_r.done()
    check_name(name, kind)
    r.ctx.name = name
    return name


def read_uuid(r: Reader) -> str:
    """The optional <uuid>, normalized; "" when absent (one is generated later)."""
    uuid_r = r.child("uuid")
    if uuid_r is None:
        return ""
    try:
        uuid = parse_uuid(uuid_r.text())
    except InvalidArgument as exc:
        raise with_path(uuid_r, exc) from None
    uuid_r.done()
    return uuid
