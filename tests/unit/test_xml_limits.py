"""Deep or huge XML is refused in words by the one parser every codec uses, never a RecursionError."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from pyvirt.errors import InvalidArgument, PyvirtError, XMLSyntaxError
from pyvirt.model.domain_xml import parse_disk_xml, parse_domain_xml
from pyvirt.model.network_xml import parse_network_xml
from pyvirt.model.snapshot_xml import parse_snapshot_xml
from pyvirt.model.storage_xml import parse_pool_xml, parse_volume_xml
from pyvirt.model.xml_util import MAX_XML_CHARS, MAX_XML_DEPTH, parse_xml

DEEP = 50_000


def nested(n: int, tag: str = "a") -> str:
    return f"<{tag}>" * n + f"</{tag}>" * n


CODECS: dict[str, tuple[Callable[[str], object], str]] = {
    "domain": (parse_domain_xml, ("<domain type='kvm'><name>d</name><memory>1024</memory>"
                                  "<metadata>{}</metadata></domain>")),
    "network": (parse_network_xml, "<network><name>n</name>{}</network>"),
    "pool": (parse_pool_xml, "<pool type='dir'><name>p</name><target><path>/tmp</path></target>{}</pool>"),
    "volume": (parse_volume_xml, "<volume><name>v</name><capacity>1</capacity>{}</volume>"),
    "snapshot": (parse_snapshot_xml, "<domainsnapshot><name>s</name>{}</domainsnapshot>"),
    "disk": (parse_disk_xml, "<disk type='file' device='disk'><target dev='vda'/>{}</disk>"),
}


@pytest.mark.parametrize("kind", CODECS)
def test_fifty_thousand_nested_elements_are_refused_by_every_codec(kind: str) -> None:
    parse, template = CODECS[kind]
    with pytest.raises(InvalidArgument) as info:
        parse(template.format(nested(DEEP)))
    assert f"more than {MAX_XML_DEPTH} levels deep" in info.value.message
    assert info.value.http_status == 400


def test_the_depth_limit_is_exact() -> None:
    root, _ = parse_xml(nested(MAX_XML_DEPTH))  # as deep as allowed: read
    depth = 0
    node = root
    while len(node):
        node, depth = node[0], depth + 1
    assert depth == MAX_XML_DEPTH - 1
    with pytest.raises(InvalidArgument, match="more than 256 levels deep"):
        parse_xml(nested(MAX_XML_DEPTH + 1))


def test_a_document_over_ten_mib_is_refused_before_it_is_read() -> None:
    text = "<domain>" + " " * MAX_XML_CHARS + "</domain>"
    with pytest.raises(InvalidArgument) as info:
        parse_xml(text)
    assert info.value.message == (f"domain XML has {len(text)} characters, more than the {MAX_XML_CHARS} pyvirt "
                                  "reads (10 MiB, as virsh); check what produced it")


def test_entity_expansion_bombs_and_external_entities_are_syntax_errors() -> None:
    doc = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY l0 "lololololololololol">'
    for i in range(1, 10):
        doc += f'<!ENTITY l{i} "' + f"&l{i - 1};" * 10 + '">'
    doc += "]><domain type='kvm'><name>&l9;</name><memory>1</memory></domain>"
    with pytest.raises(XMLSyntaxError, match="amplification"):
        parse_domain_xml(doc)
    external = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/shadow">]>'
                "<domain type='kvm'><name>&x;</name><memory>1</memory></domain>")
    with pytest.raises(PyvirtError, match="undefined entity"):
        parse_domain_xml(external)
