"""Fuzzing every XML codec with hypothesis (issue 9): what the strategies build round-trips exactly,
and mutated or random documents only ever raise pyvirt's own errors (PyvirtError), nothing else.

CI runs a bounded budget (fuzz_strategies.EXAMPLES examples per test, derandomized so a run is
repeatable); run a longer one by hand with PYVIRT_FUZZ_EXAMPLES=2000 (PYVIRT_FUZZ_SEED=1 for new
random draws each run).
"""
from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvirt.errors import PyvirtError
from pyvirt.model.domain_xml import format_domain_xml, parse_disk_xml, parse_domain_xml, parse_interface_xml
from pyvirt.model.network_xml import format_network_xml, parse_network_xml
from pyvirt.model.snapshot_xml import format_snapshot_xml, parse_snapshot_xml
from pyvirt.model.storage_xml import format_pool_xml, format_volume_xml, parse_pool_xml, parse_volume_xml
from tests.unit.fuzz_strategies import FUZZ, WORD, domains, networks, pools, snapshots, volumes

DATA = Path(__file__).parent / "data"

CODECS: dict[str, tuple[Callable[[str], Any], Callable[[Any], str], Any]] = {
    "domain": (parse_domain_xml, format_domain_xml, domains()),
    "network": (parse_network_xml, format_network_xml, networks()),
    "pool": (parse_pool_xml, format_pool_xml, pools()),
    "volume": (parse_volume_xml, format_volume_xml, volumes()),
    "snapshot": (parse_snapshot_xml, format_snapshot_xml, snapshots()),
}
PARSERS: dict[str, Callable[[str], Any]] = {
    **{kind: codec[0] for kind, codec in CODECS.items()},
    "disk": parse_disk_xml,
    "interface": parse_interface_xml,
}
GOLDEN = {
    "domain": sorted((DATA / "domain_xml").glob("*.xml")),
    "network": sorted((DATA / "network").glob("*.xml")),
    "pool": sorted((DATA / "storage").glob("pool_*.xml")),
    "volume": sorted((DATA / "storage").glob("vol*.xml")),
}


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("kind", CODECS)
def test_what_the_strategies_build_round_trips(kind: str) -> None:
    parse, fmt, objects = CODECS[kind]

    @FUZZ
    @given(objects)
    def check(obj: Any) -> None:
        assert parse(fmt(obj)) == obj

    check()


# ---------------------------------------------------------------- mutations
def must_be_ours(parse: Callable[[str], Any], text: str) -> None:
    """Parsing ``text`` succeeds or raises a PyvirtError; anything else escapes and fails the test."""
    with contextlib.suppress(PyvirtError):
        parse(text)


def vocabulary() -> list[str]:
    """Every tag and attribute name of the golden files: mutations that look like real documents."""
    words: set[str] = set()
    for files in GOLDEN.values():
        for path in files:
            for elem in ET.fromstring(path.read_text()).iter():
                if isinstance(elem.tag, str):
                    words.add(elem.tag.split("}")[-1])
                    words.update(k.split("}")[-1] for k in elem.attrib)
    return sorted(words)


WORDS = vocabulary()
values = st.text(WORD + " \n\t/%;[]{}()#!$*~^|\\", max_size=30) | st.sampled_from(
    ["", "-1", "0", "0x10", "99999999999999999999", "1e3", "yes", "no", "on", "off", "nan", "../..", "/dev/null",
     "fe80::1%eth0", "127.0.0.1", "a,b=c", "\u202e", "<", "&amp;", "raw", "qcow2", "virtio", "vnc", "spice"])


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """``text`` with 1-4 edits of its tree (attributes, texts, elements added, removed, duplicated)."""
    root = ET.fromstring(text)
    for _ in range(draw(st.integers(1, 4))):
        elems = list(root.iter())
        elem = draw(st.sampled_from(elems))
        op = draw(st.sampled_from(["attr", "text", "add", "remove", "dup", "drop-attr"]))
        if op == "attr":
            elem.set(draw(st.sampled_from(WORDS) if draw(st.booleans()) else st.sampled_from(list(elem.attrib) or
                                                                                              WORDS)), draw(values))
        elif op == "text":
            elem.text = draw(values)
        elif op == "add":
            child = ET.SubElement(elem, draw(st.sampled_from(WORDS)))
            for _ in range(draw(st.integers(0, 2))):
                child.set(draw(st.sampled_from(WORDS)), draw(values))
        elif op == "remove" and elem is not root:
            parent = next(p for p in elems if elem in list(p))
            parent.remove(elem)
        elif op == "dup" and elem is not root:
            parent = next(p for p in elems if elem in list(p))
            parent.append(ET.fromstring(ET.tostring(elem)))
        elif op == "drop-attr" and elem.attrib:
            del elem.attrib[draw(st.sampled_from(sorted(elem.attrib)))]
    return ET.tostring(root, encoding="unicode")


@pytest.mark.parametrize("kind", CODECS)
def test_mutated_documents_raise_only_pyvirt_errors(kind: str) -> None:
    parse, fmt, objects = CODECS[kind]
    golden = [p.read_text() for p in GOLDEN.get(kind, [])]
    sources = objects.map(fmt) | st.sampled_from(golden) if golden else objects.map(fmt)

    @FUZZ
    @given(st.data())
    def check(data: st.DataObject) -> None:
        must_be_ours(parse, data.draw(sources.flatmap(mutated)))

    check()


@pytest.mark.parametrize("kind", PARSERS)
def test_random_text_and_random_trees_raise_only_pyvirt_errors(kind: str) -> None:
    parse = PARSERS[kind]
    leaf = st.builds(lambda tag, attrs: (tag, attrs, []), st.sampled_from(WORDS),
                     st.dictionaries(st.sampled_from(WORDS), values, max_size=3))
    trees = st.recursive(leaf, lambda kids: st.builds(lambda tag, attrs, children: (tag, attrs, children),
                                                      st.sampled_from(WORDS),
                                                      st.dictionaries(st.sampled_from(WORDS), values, max_size=3),
                                                      st.lists(kids, max_size=4)), max_leaves=12)

    def render(node: tuple[str, dict[str, str], list[Any]], top: str | None = None) -> ET.Element:
        tag, attrs, children = node
        elem = ET.Element(top or tag, attrs)
        elem.extend(render(c) for c in children)
        return elem

    top = {"snapshot": "domainsnapshot"}.get(kind, kind)
    documents = st.text(max_size=200) | trees.map(lambda t: ET.tostring(render(t, top), encoding="unicode"))

    @FUZZ
    @given(documents)
    def check(text: str) -> None:
        must_be_ours(parse, text)

    check()
