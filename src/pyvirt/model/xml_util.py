"""Generic helpers for libvirt-style XML codecs: strict reading, libvirt-style writing.

Reading goes through ``Reader``, which remembers every attribute, child and
text it handed out; ``Reader.done()`` turns anything left over into an
``UnsupportedConfig`` that names it by path, so no setting is dropped
silently. Writing builds ``Node`` trees rendered as ``virsh dumpxml`` does:
two-space indent, single-quoted attributes, ``<empty/>`` elements.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..errors import InvalidArgument, UnsupportedConfig, XMLSyntaxError

NsMap = dict[ET.Element, list[tuple[str, str]]]

# Bounds on what any codec is asked to read, so hostile input is refused in words, not met with a
# RecursionError (every walk of the tree recurses) or a daemon that builds a gigabyte of elements.
# libxml2 refuses deeper than 256 levels unless told otherwise, and virsh reads at most 10 MiB of XML.
MAX_XML_DEPTH = 256
MAX_XML_CHARS = 10 * 1024 * 1024


# ---------------------------------------------------------------- parsing
class _Target:
    """TreeBuilder that also records which namespaces each element declares."""

    def __init__(self, what: str) -> None:
        self._builder = ET.TreeBuilder()
        self._pending: list[tuple[str, str]] = []
        self.declared: NsMap = {}
        self._what = what
        self._depth = 0

    def start_ns(self, prefix: str, uri: str) -> None:
        self._pending.append((prefix or "", uri))

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        self._depth += 1
        if self._depth > MAX_XML_DEPTH:
            raise InvalidArgument(
                f"{self._what} nests elements more than {MAX_XML_DEPTH} levels deep (at <{split_tag(tag)[1]}>); "
                "no libvirt document comes close: check what produced it"
            )
        elem = self._builder.start(tag, attrs)
        if self._pending:
            self.declared[elem] = self._pending
            self._pending = []
        return elem

    def end(self, tag: str) -> ET.Element:
        self._depth -= 1
        return self._builder.end(tag)

    def data(self, data: str) -> None:
        self._builder.data(data)

    def close(self) -> ET.Element:
        return self._builder.close()


def parse_xml(text: str, what: str = "domain XML") -> tuple[ET.Element, NsMap]:
    """Parse ``text``; a malformed document raises XMLSyntaxError with line and column.

    Returns the root and, per element, the namespaces it declares (prefix, uri),
    so foreign XML such as <metadata> can be written back with its prefixes.
    Columns are reported 1-based, as editors count them. A document over
    ``MAX_XML_CHARS`` characters or ``MAX_XML_DEPTH`` levels deep is refused
    before anything reads it.
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"{what} must be text, not {type(text).__name__}")
    if len(text) > MAX_XML_CHARS:
        raise InvalidArgument(
            f"{what} has {len(text)} characters, more than the {MAX_XML_CHARS} pyvirt reads "
            "(10 MiB, as virsh); check what produced it"
        )
    target = _Target(what)
    parser = ET.XMLParser(target=target)
    try:
        parser.feed(text)
        root = parser.close()
    except ET.ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(": line ", 1)[0]
        hint = f" (check the end of line {line - 1})" if column == 0 and line > 1 else ""
        raise XMLSyntaxError(
            f"{what} is not well-formed: {reason} at line {line}, column {column + 1}{hint}"
        ) from None
    return root, target.declared


def split_tag(tag: str) -> tuple[str | None, str]:
    """'{uri}local' -> (uri, local); 'local' -> (None, local)."""
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return None, tag


class Context:
    """What every Reader of one document shares: the object named in messages, namespaces."""

    def __init__(self, kind: str, declared: NsMap) -> None:
        self.kind = kind  # "domain"
        self.name: str | None = None
        self.root: ET.Element | None = None
        self.declared = declared
        self.prefixes: dict[str, str] = {uri: p for decls in declared.values() for p, uri in decls}

    def who(self) -> str:
        return f"{self.kind} '{self.name}'" if self.name else f"the {self.kind} XML"

    def show_tag(self, tag: str) -> str:
        uri, local = split_tag(tag)
        if uri is None:
            return local
        prefix = self.prefixes.get(uri)
        return f"{prefix}:{local}" if prefix else f"{{{uri}}}{local}"


@dataclass
class Hint:
    """Why an element is unsupported and what to do, for a specific error message."""

    reason: str
    error: type[InvalidArgument] = UnsupportedConfig


class Reader:
    """One element being read; tracks what was consumed so leftovers become errors."""

    def __init__(self, elem: ET.Element, ctx: Context, path: str, root: bool = False) -> None:
        self.elem = elem
        self.ctx = ctx
        self.path = path
        self._prefix = "" if root else path + "/"  # children of the root read as "<devices>"
        if root:
            ctx.root = elem
        self._attrs_used: set[str] = set()
        self._children_used: set[int] = set()
        self._text_used = False

    # -- messages
    def error(self, what: str, fix: str, cls: type[InvalidArgument] = InvalidArgument) -> InvalidArgument:
        """An error about this element: '<path> in domain 'x': what; fix'."""
        return cls(f"{self.path} in {self.ctx.who()}: {what}; {fix}")

    def attr_error(self, name: str, value: str, expected: str) -> InvalidArgument:
        return InvalidArgument(
            f"attribute '{name}' on {self.path} in {self.ctx.who()} is '{value}'; {expected}"
        )

    # -- attributes
    def attr(self, name: str) -> str | None:
        self._attrs_used.add(name)
        return self.elem.get(name)

    def req_attr(self, name: str) -> str:
        value = self.attr(name)
        if value is None:
            raise self.error(f"attribute '{name}' is missing", f"add {name}='...'")
        return value

    def ignore_attrs(self, *names: str) -> None:
        """Accept attributes that carry only live information (e.g. a pty's path)."""
        self._attrs_used.update(names)

    def int_attr(self, name: str, minimum: int | None = None) -> int | None:
        value = self.attr(name)
        if value is None:
            return None
        return self._to_int(value, f"attribute '{name}' on {self.path}", minimum, name)

    def bool_attr(self, name: str, true: str = "yes", false: str = "no") -> bool | None:
        value = self.attr(name)
        if value is None:
            return None
        if value == true:
            return True
        if value == false:
            return False
        raise self.attr_error(name, value, f"write '{true}' or '{false}'")

    def all_attrs(self) -> list[tuple[str, str]]:
        """Every attribute in document order (all count as consumed)."""
        self._attrs_used.update(self.elem.keys())
        return list(self.elem.items())

    # -- text
    def text(self) -> str:
        self._text_used = True
        return self.elem.text or ""

    def int_text(self, minimum: int | None = None) -> int:
        return self._to_int(self.text().strip(), f"the value of {self.path}", minimum, None)

    def _to_int(self, value: str, what: str, minimum: int | None, attr: str | None) -> int:
        try:
            number = int(value.strip(), 0) if value.strip().lower().startswith("0x") else int(value.strip())
        except ValueError:
            raise InvalidArgument(
                f"{what} in {self.ctx.who()} is '{value}', not a whole number; write e.g. 1"
            ) from None
        if minimum is not None and number < minimum:
            raise InvalidArgument(f"{what} in {self.ctx.who()} is {number}; it must be at least {minimum}")
        return number

    # -- children
    def _child_path(self, child: ET.Element) -> str:
        return f"{self._prefix}<{self.ctx.show_tag(child.tag)}>"

    def children(self, tag: str) -> list[Reader]:
        found = []
        for i, child in enumerate(self.elem):
            if child.tag == tag:
                self._children_used.add(i)
                found.append(Reader(child, self.ctx, self._child_path(child)))
        return found

    def child(self, tag: str) -> Reader | None:
        found = self.children(tag)
        if len(found) > 1:
            raise self.error(f"element <{tag}> appears {len(found)} times", "keep only one")
        return found[0] if found else None

    def child_text(self, tag: str) -> str | None:
        """Text of a single <tag>text</tag> child that has no attributes."""
        node = self.child(tag)
        if node is None:
            return None
        value = node.text()
        node.done()
        return value

    def flag(self, tag: str) -> bool:
        """An empty marker child such as <readonly/>."""
        node = self.child(tag)
        if node is None:
            return False
        node.done()
        return True

    def ignore_children(self, tag: str) -> None:
        self.children(tag)

    def leftover_children(self) -> Iterator[tuple[int, ET.Element]]:
        for i, child in enumerate(self.elem):
            if i not in self._children_used:
                yield i, child

    def mark_child_used(self, index: int) -> None:
        self._children_used.add(index)

    # -- completeness
    def done(self, hints: dict[str, Hint] | None = None) -> None:
        """Raise for the first attribute, child or text nobody consumed."""
        for name in self.elem.attrib:
            if name not in self._attrs_used:
                raise UnsupportedConfig(
                    f"unsupported attribute '{self.ctx.show_tag(name)}' on {self.path} "
                    f"in {self.ctx.who()}; pyvirt does not handle it, remove it"
                )
        for _, child in self.leftover_children():
            if not isinstance(child.tag, str):  # comments / PIs are not kept by the builder
                continue
            path = self._child_path(child)
            hint = (hints or {}).get(child.tag)
            if hint is not None:
                raise hint.error(f"unsupported element {path} in {self.ctx.who()}: {hint.reason}")
            raise UnsupportedConfig(
                f"unsupported element {path} in {self.ctx.who()}: pyvirt does not handle it; remove it"
            )
        if not self._text_used and (self.elem.text or "").strip():
            raise InvalidArgument(
                f"unexpected text '{(self.elem.text or '').strip()[:40]}' inside {self.path} "
                f"in {self.ctx.who()}; remove it"
            )
        for child in self.elem:
            if (child.tail or "").strip():
                raise InvalidArgument(
                    f"unexpected text '{(child.tail or '').strip()[:40]}' after {self._child_path(child)} "
                    f"in {self.ctx.who()}; remove it"
                )


# ---------------------------------------------------------------- foreign XML (metadata)
def _xml_escape_attr_dq(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
        .replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    )


def _xml_escape_text_plain(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def serialize_foreign(elem: ET.Element, declared: NsMap, in_scope: dict[str, str]) -> str:
    """Write an element of a foreign namespace back as XML with its prefixes.

    ``in_scope`` maps uri -> prefix for declarations made on ancestors; the
    ones this subtree uses are declared again on ``elem`` so the result stands
    alone (as libvirt writes <metadata> children).
    """
    used: set[str] = set()
    for node in elem.iter():
        uri, _ = split_tag(node.tag)
        if uri is not None:
            used.add(uri)
        for key in node.attrib:
            kuri, _ = split_tag(key)
            if kuri is not None:
                used.add(kuri)
    own = {uri for _, uri in declared.get(elem, [])}
    extra = [(p, uri) for uri, p in in_scope.items() if uri in used and uri not in own]
    return _serialize(elem, declared, dict(in_scope), extra)


def _serialize(elem: ET.Element, declared: NsMap, scope: dict[str, str], extra: list[tuple[str, str]]) -> str:
    decls = extra + list(declared.get(elem, []))
    scope = dict(scope)
    for prefix, uri in decls:
        scope[uri] = prefix

    def qname(tag: str, is_attr: bool) -> str:
        uri, local = split_tag(tag)
        if uri is None:
            return local
        if uri == "http://www.w3.org/XML/1998/namespace":
            return f"xml:{local}"
        prefix = scope.get(uri)
        if prefix is None or (is_attr and prefix == ""):
            raise InvalidArgument(f"namespace '{uri}' in <metadata> has no prefix; declare one with xmlns:PREFIX")
        return f"{prefix}:{local}" if prefix else local

    parts = [f"<{qname(elem.tag, False)}"]
    for prefix, uri in decls:
        name = f"xmlns:{prefix}" if prefix else "xmlns"
        parts.append(f' {name}="{_xml_escape_attr_dq(uri)}"')
    for key, value in elem.items():
        parts.append(f' {qname(key, True)}="{_xml_escape_attr_dq(value)}"')
    if len(elem) == 0 and not elem.text:
        parts.append("/>")
    else:
        parts.append(">")
        parts.append(_xml_escape_text_plain(elem.text or ""))
        for child in elem:
            parts.append(_serialize(child, declared, scope, []))
            parts.append(_xml_escape_text_plain(child.tail or ""))
        parts.append(f"</{qname(elem.tag, False)}>")
    return "".join(parts)


# ---------------------------------------------------------------- writing
def escape(value: str) -> str:
    """Escape text and single-quoted attribute values as libvirt does."""
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace("'", "&apos;").replace('"', "&quot;")
    )


@dataclass
class Node:
    """An element to write; attributes whose value is None are left out."""

    tag: str
    attrs: list[tuple[str, str | None]] = field(default_factory=list)
    text: str | None = None
    children: list[Node] = field(default_factory=list)
    raw: str | None = None  # pre-rendered inner XML (metadata), indented by the renderer
    expand: bool = False  # when empty, written as an open and a close tag on two lines (as libvirt writes some)

    def add(self, child: Node | None) -> Node | None:
        if child is not None:
            self.children.append(child)
        return child


def node(tag: str, *attrs: tuple[str, str | int | None], text: str | None = None,
         children: Iterable[Node | None] = (), expand: bool = False) -> Node:
    """Shorthand: node('target', ('dev', 'vda'), ('bus', 'virtio'))."""
    return Node(
        tag,
        [(k, None if v is None else str(v)) for k, v in attrs],
        text,
        [c for c in children if c is not None],
        expand=expand,
    )


def yes_no(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


def on_off(value: bool | None) -> str | None:
    return None if value is None else ("on" if value else "off")


def render(root: Node) -> str:
    lines: list[str] = []
    _render(root, 0, lines)
    return "\n".join(lines) + "\n"


def _render(n: Node, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    attrs = "".join(f" {k}='{escape(v)}'" for k, v in n.attrs if v is not None)
    if n.raw is not None:
        inner_pad = "  " * (depth + 1)
        lines.append(f"{pad}<{n.tag}{attrs}>")
        lines.append(inner_pad + n.raw)
        lines.append(f"{pad}</{n.tag}>")
    elif n.children:
        lines.append(f"{pad}<{n.tag}{attrs}>")
        for child in n.children:
            _render(child, depth + 1, lines)
        lines.append(f"{pad}</{n.tag}>")
    elif n.text is not None:
        lines.append(f"{pad}<{n.tag}{attrs}>{escape(n.text)}</{n.tag}>")
    elif n.expand:
        lines.append(f"{pad}<{n.tag}{attrs}>")
        lines.append(f"{pad}</{n.tag}>")
    else:
        lines.append(f"{pad}<{n.tag}{attrs}/>")
