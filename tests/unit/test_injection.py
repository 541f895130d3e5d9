"""Injection (issue 9, item 5): values that reach QEMU's option strings, dnsmasq's files or mount's
argv are plain or refused in words; free text is escaped. Every field of real domains is tried."""
from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pyvirt.errors import InvalidArgument, PyvirtError
from pyvirt.model.domain_xml import parse_domain_xml
from pyvirt.model.network_xml import parse_network_xml
from pyvirt.model.storage_xml import parse_pool_xml
from pyvirt.qemu.argv import build_argv
from pyvirt.qemu.argv_common import NicFds
from tests.unit.argv_cases import base_ctx

DATA = Path(__file__).parent / "data/domain_xml"
HOSTILE = ("a,evil=on", "a\nb", "../../a", "/a/../../b", "a/b", "-a")
# options whose value QEMU splits at single commas into key=value properties
KEYVAL = {"-machine", "-cpu", "-m", "-smp", "-drive", "-chardev", "-device", "-netdev", "-vnc", "-spice", "-rtc",
          "-boot", "-action", "-mon", "-name", "-sandbox", "-msg", "-global", "-add-fd"}
RAW_TEXT = {"-append"}  # the kernel's own command line: QEMU passes it on as given


def ctx():  # type: ignore[no-untyped-def]
    return base_ctx(has_spice=True, nic_fds={i: NicFds((30 + i,)) for i in range(8)})


def domain(xml: str):  # type: ignore[no-untyped-def]
    return parse_domain_xml(xml)


def keyval_keys(value: str) -> tuple[str, ...]:
    """The property names QEMU's keyval parser sees (a doubled comma is a literal comma)."""
    parts, current, i = [], "", 0
    while i < len(value):
        if value[i] == ",":
            if value[i + 1:i + 2] == ",":
                current += ","
                i += 2
                continue
            parts.append(current)
            current = ""
        else:
            current += value[i]
        i += 1
    parts.append(current)
    head = "head" if "=" not in parts[0] else parts[0].split("=")[0]
    return (head, *(p.split("=", 1)[0] for p in parts[1:]))


def shape(argv: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """What a command line does, without the values: each flag and the names of its properties."""
    out = []
    args = argv[1:]
    i = 0
    while i < len(args):
        flag = args[i]
        has_value = (i + 1 < len(args) and not args[i + 1].startswith("-")) or flag == "-append"
        value = args[i + 1] if has_value else None
        if value is None:
            out.append((flag, ()))
            i += 1
            continue
        if flag in KEYVAL:
            out.append((flag, keyval_keys(value)))
        elif value.startswith("{"):
            out.append((flag, tuple(json.loads(value))))
        else:
            out.append((flag, ("value",)))
        i += 2
    return out


def positions(root: ET.Element) -> list[tuple[ET.Element, str | None]]:
    """Every attribute (element, name) and every element text (element, None) of a document."""
    found: list[tuple[ET.Element, str | None]] = []
    for elem in root.iter():
        found += [(elem, name) for name in elem.attrib]
        if (elem.text or "").strip() and len(elem) == 0:
            found.append((elem, None))
    return found


BASES = ("q35_full.xml", "direct_kernel_q35.xml", "uefi.xml")


@pytest.mark.parametrize("base", BASES)
def test_a_hostile_value_in_any_field_is_refused_or_changes_no_option(base: str) -> None:
    """Each attribute and text of a real domain, set to each hostile value: pyvirt refuses it with its
    own error, or QEMU gets a command line with the same options and property names as before
    (the value escaped), and no control character anywhere but in the kernel's command line."""
    text = (DATA / base).read_text()
    baseline = shape(build_argv(domain(text), ctx()).argv)
    tree = ET.fromstring(text)
    accepted = refused = 0
    for index in range(len(positions(tree))):
        for hostile in HOSTILE:
            root = ET.fromstring(text)
            elem, attr = positions(root)[index]
            if attr is None:
                elem.text = hostile
            else:
                elem.set(attr, hostile)
            where = f"{elem.tag}/@{attr}" if attr else f"{elem.tag} text"
            try:
                argv = build_argv(domain(ET.tostring(root, encoding="unicode")), ctx()).argv
            except PyvirtError:
                refused += 1
                continue
            accepted += 1
            assert shape(argv) == baseline, f"{where} = {hostile!r} changed the command line: {argv}"
            for flag, value in itertools.pairwise(argv):
                if flag not in RAW_TEXT:
                    assert "\n" not in value, f"{where} = {hostile!r} put a newline into {flag} {value!r}"
    assert refused and accepted  # both sides were really exercised


@pytest.mark.parametrize(("xml", "message"), [
    ("<cpu mode='custom'><model>qemu64,pmu=on</model></cpu>",
     "<cpu>/<model> in domain 'd': CPU model 'qemu64,pmu=on' is not a QEMU name"),
    ("<cpu mode='custom'><model>qemu64</model><feature policy='require' name='avx,pmu=on'/></cpu>",
     "<cpu>/<feature> in domain 'd': feature name 'avx,pmu=on' is not a QEMU name"),
    ("<cpu mode='custom'><model>qemu64</model><feature policy='require' name='avx&#10;x'/></cpu>",
     "feature name 'avx\\nx' is not a QEMU name"),
])
def test_cpu_model_and_feature_names_are_qemu_names(xml: str, message: str) -> None:
    doc = f"<domain type='qemu'><name>d</name><memory>65536</memory>{xml}</domain>"
    with pytest.raises(InvalidArgument) as info:
        parse_domain_xml(doc)
    assert message in info.value.message
    assert "write e.g." in info.value.message


def test_the_cpu_names_qemu_uses_are_accepted() -> None:
    doc = ("<domain type='qemu'><name>d</name><memory>65536</memory><cpu mode='custom'>"
           "<model>Cascadelake-Server-noTSX</model><feature policy='require' name='sse4.2'/>"
           "<feature policy='disable' name='kvm_pv_eoi'/></cpu></domain>")
    argv = build_argv(parse_domain_xml(doc), ctx()).argv
    assert argv[argv.index("-cpu") + 1] == "Cascadelake-Server-noTSX,+sse4.2,-kvm_pv_eoi"


def graphics(listen: str, kind: str = "vnc") -> str:
    return (f"<domain type='qemu'><name>g</name><memory>65536</memory><devices>"
            f"<graphics type='{kind}' autoport='yes' listen='{listen}'/></devices></domain>")


@pytest.mark.parametrize("listen", ["127.0.0.1,to=99,password=off", "127.0.0.1&#10;x", "localhost",
                                    "fe80::1%eth0", "0.0.0.0 "])
@pytest.mark.parametrize("kind", ["vnc", "spice"])
def test_a_listen_address_must_be_an_ip_address(listen: str, kind: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_domain_xml(graphics(listen, kind))
    assert f"<devices>/<graphics type='{kind}'>/<listen> in domain 'g': listen address" in info.value.message
    assert "give an IP address such as 127.0.0.1 or ::1" in info.value.message


def test_an_ipv6_listen_address_reaches_vnc_in_brackets() -> None:
    argv = build_argv(parse_domain_xml(graphics("::1")), ctx()).argv
    assert argv[argv.index("-vnc") + 1] == "[::1]:0,to=99"


def test_paths_with_control_characters_are_refused() -> None:
    doc = (DATA / "direct_kernel_q35.xml").read_text()
    kernel = ET.fromstring(doc).find("os/kernel")
    assert kernel is not None and kernel.text
    with pytest.raises(InvalidArgument, match=r"kernel '/boot/x\\ny' contains the control character '\\n'"):
        parse_domain_xml(doc.replace(kernel.text, "/boot/x&#10;y"))


@pytest.mark.parametrize(("iface", "message"), [
    ("<interface type='bridge'><source bridge='br0'/><target dev='../../x'/></interface>",
     "target dev '../../x' is not a valid interface name: it contains '/'"),
    ("<interface type='bridge'><source bridge='br 0'/></interface>",
     "source bridge 'br 0' is not a valid interface name: it contains white space"),
    ("<interface type='direct'><source dev='eth0&#10;x' mode='bridge'/></interface>",
     "source dev 'eth0\\nx' is not a valid interface name"),
    ("<interface type='network'><source network='a/b'/></interface>",
     "network name 'a/b' is invalid: it contains '/'"),
])
def test_interface_link_and_network_names(iface: str, message: str) -> None:
    doc = f"<domain type='qemu'><name>n</name><memory>65536</memory><devices>{iface}</devices></domain>"
    with pytest.raises(InvalidArgument) as info:
        parse_domain_xml(doc)
    assert message in info.value.message


def network(ip: str) -> str:
    return f"<network><name>n</name><bridge name='pvbr9'/>{ip}</network>"


SCOPED = "fe80::1%eth0&#10;dhcp-host=evil"


@pytest.mark.parametrize(("xml", "where"), [
    (f"<ip family='ipv6' address='{SCOPED}' prefix='64'/>", "<ip address="),
    (("<ip family='ipv6' address='2001:db8::1' prefix='64'><dhcp>"
      f"<range start='{SCOPED}' end='2001:db8::ff'/></dhcp></ip>"), "/<dhcp>/<range"),
    (("<ip family='ipv6' address='2001:db8::1' prefix='64'><dhcp>"
      f"<host name='web' ip='{SCOPED}'/></dhcp></ip>"), "/<dhcp>/<host"),
    ((f"<dns><host ip='{SCOPED}'><hostname>web</hostname></host></dns>"
      "<ip family='ipv6' address='2001:db8::1' prefix='64'/>"), "<dns>/<host"),
])
def test_ipv6_scope_ids_never_reach_dnsmasq(xml: str, where: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_network_xml(network(xml))
    assert where in info.value.message
    assert "carries an IPv6 scope id ('eth0\\ndhcp-host=evil')" in info.value.message
    assert "remove the '%...' part" in info.value.message


def pool(source: str, ptype: str = "netfs", target: str = "/mnt/p") -> str:
    return f"<pool type='{ptype}'><name>p</name><source>{source}</source><target><path>{target}</path></target></pool>"


@pytest.mark.parametrize(("xml", "message"), [
    (pool("<host name='-oremount'/><dir path='/export'/>"),
     "source host '-oremount' is refused: it starts with '-', so mount and iscsiadm would read it as an option"),
    (pool("<host name='nfs example'/><dir path='/export'/>"), "is neither an IP address nor a DNS name"),
    (pool("<host name='fe80::1%eth0'/><dir path='/export'/>"), "carries an IPv6 scope id"),
    (pool("<host name='-x'/><device path='iqn.2024-01.org.example:t'/>", "iscsi"),
     "source host '-x' is refused"),
    (pool("<host name='nfs'/><dir path='export'/>"), "source directory 'export' is not an absolute path"),
    (pool("<device path='--bind'/>", "fs"), "source device '--bind' is not an absolute path"),
    (pool("<device path='/dev/sdb&#10;x'/>", "disk", "/dev"), "contains the control character '\\n'"),
    (pool("", "dir", "/var/lib/a&#10;b"), "the target path '/var/lib/a\\nb' contains the control character"),
])
def test_pool_sources_reach_mount_and_lvm_plain(xml: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_pool_xml(xml)
    assert message in info.value.message


def test_a_plain_netfs_and_iscsi_source_are_accepted() -> None:
    assert parse_pool_xml(pool("<host name='nfs.example.com'/><dir path='/export'/>")).source.host == "nfs.example.com"
    assert parse_pool_xml(pool("<host name='2001:db8::5'/><dir path='/export'/>")).source.host == "2001:db8::5"
    iscsi = pool("<host name='10.0.0.5'/><device path='iqn.2024-01.org.example:t'/>", "iscsi", "/dev")
    assert parse_pool_xml(iscsi).source.devices == ("iqn.2024-01.org.example:t",)


NETWORKS = Path(__file__).parent / "data/network"


def host_files(xml: str) -> list[tuple[str, int]]:
    """What a network becomes for dnsmasq and nftables, as (file, number of lines) pairs."""
    from pyvirt.network import dnsmasq, firewall

    net = parse_network_xml(xml)
    bridge = net.bridge.name if net.bridge and net.bridge.name else "virbr9"
    files = {
        "conf": dnsmasq.dnsmasq_config(net, bridge, leasefile=Path("/l"), hostsfile=Path("/h"), pidfile=Path("/p")),
        "hosts": dnsmasq.hostsfile_text(net),
        "addn-hosts": dnsmasq.addn_hosts_text(net),
        "nft": firewall.ruleset([(net, bridge)]),
    }
    return [(name, len(text.splitlines())) for name, text in files.items()]


@pytest.mark.parametrize("base", ["full.xml", "routed_ipv6.xml"])
def test_a_hostile_value_in_any_network_field_adds_no_line_to_dnsmasq_or_nft(base: str) -> None:
    """Every attribute and text of a network, set to each hostile value (and to an address with a
    scope id that hides a newline): refused, or dnsmasq's files and the nft ruleset keep their lines."""
    text = (NETWORKS / base).read_text()
    baseline = host_files(text)
    refused = accepted = 0
    for index in range(len(positions(ET.fromstring(text)))):
        for hostile in (*HOSTILE, "fe80::1%x\ndhcp-host=evil", "10.0.0.1\nserver=1.2.3.4"):
            root = ET.fromstring(text)
            elem, attr = positions(root)[index]
            if attr is None:
                elem.text = hostile
            else:
                elem.set(attr, hostile)
            try:
                got = host_files(ET.tostring(root, encoding="unicode"))
            except PyvirtError:
                refused += 1
                continue
            accepted += 1
            where = f"{elem.tag}/@{attr}" if attr else f"{elem.tag} text"
            assert got == baseline, f"{where} = {hostile!r} changed the files' lines: {got} != {baseline}"
    assert refused and accepted
