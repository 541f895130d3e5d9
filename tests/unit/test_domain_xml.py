"""Domain XML codec: golden files, round trips, model mapping, normalize.

Golden files live in tests/unit/data/domain_xml: NAME.xml is the input (any
valid style), NAME.expected.xml what format_domain_xml writes for it. Run
with PYVIRT_REGEN=1 to rewrite the expected files, then review the diff.
"""
from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path

import pytest

from pyvirt.model.domain import Address, Domain, Interface
from pyvirt.model.domain_xml import LiveInfo, format_domain_xml, parse_domain_xml
from pyvirt.model.ids import new_mac, new_uuid, normalize
from pyvirt.model.validate import validate_domain

DATA = Path(__file__).parent / "data" / "domain_xml"
INPUTS = sorted(p for p in DATA.glob("*.xml") if not p.name.endswith(".expected.xml"))
REGEN = os.environ.get("PYVIRT_REGEN") == "1"


def _load(name: str) -> Domain:
    return parse_domain_xml((DATA / f"{name}.xml").read_text())


@pytest.mark.parametrize("src", INPUTS, ids=lambda p: p.stem)
def test_golden(src: Path) -> None:
    out = format_domain_xml(parse_domain_xml(src.read_text()))
    expected = src.with_name(src.stem + ".expected.xml")
    if REGEN:
        expected.write_text(out)
    assert expected.exists(), f"{expected} is missing; run with PYVIRT_REGEN=1"
    assert out == expected.read_text()


@pytest.mark.parametrize("src", INPUTS, ids=lambda p: p.stem)
def test_round_trip(src: Path) -> None:
    dom = parse_domain_xml(src.read_text())
    text = format_domain_xml(dom)
    assert parse_domain_xml(text) == dom
    assert format_domain_xml(parse_domain_xml(text)) == text  # formatting is a fixed point


def test_golden_inputs_exist() -> None:
    assert {p.stem for p in INPUTS} >= {"q35_full", "direct_kernel_microvm", "direct_kernel_q35", "pc_ide", "uefi",
                                        "storage_disks"}


def test_q35_full_maps_to_the_model() -> None:
    d = _load("q35_full")
    assert d.name == "web1" and d.type == "kvm"
    assert d.uuid == "c7a5fdbd-edaf-9455-926a-d65c16db1809"  # upper case without dashes, normalized
    assert d.description == "Front end & cache\nsecond line"
    assert d.memory_kib == 2 * 1024 * 1024 and d.current_memory_kib == 1536 * 1024
    assert (d.vcpus, d.vcpu_current, d.vcpu_placement) == (4, 2, "static")
    assert d.os.machine == "pc-q35-7.2" and d.os.boot == ("hd", "cdrom") and d.os.bootmenu is True
    assert d.features.acpi and d.features.apic and d.features.vmport is False and d.features.smm is None
    assert d.cpu is not None and d.cpu.migratable is True and d.cpu.topology is not None
    assert (d.cpu.topology.dies, d.cpu.topology.threads) == (2, 2)
    assert d.clock is not None and [t.name for t in d.clock.timers] == ["rtc", "pit", "hpet"]
    assert d.clock.timers[2].present is False and d.clock.timers[0].tickpolicy == "catchup"
    assert d.on_crash == "restart"
    assert d.pm is not None and d.pm.suspend_to_mem is False
    dv = d.devices
    vda, sda = dv.disks
    assert (vda.format, vda.cache, vda.io, vda.discard, vda.serial) == ("qcow2", "none", "native", "unmap", "WEB1-ROOT")
    assert vda.address == Address("pci", (("domain", "0x0000"), ("bus", "0x04"), ("slot", "0x00"), ("function", "0x0")))
    assert sda.device == "cdrom" and sda.readonly and sda.bus == "sata"
    assert sda.address is not None and sda.address.get("unit") == "0"
    assert [c.index for c in dv.controllers if c.model == "pcie-root-port"] == list(range(1, 9))
    port1 = dv.controllers[2]
    assert (port1.model_name, port1.target_chassis, port1.target_port) == ("pcie-root-port", 1, "0x10")
    assert port1.address is not None and port1.address.get("multifunction") == "on"
    user, net = dv.interfaces
    assert user.mac == "52:54:00:6b:3c:58"  # lower-cased
    assert net.source == (("network", "default"),) and net.link_state == "up"
    assert dv.serials[0].target_model == "isa-serial" and dv.consoles[0].target_type == "serial"
    agent, spice = dv.channels
    assert agent.source_mode == "bind" and agent.target_name == "org.qemu.guest_agent.0"
    assert spice.type == "spicevmc" and spice.address is not None and spice.address.get("port") == "2"
    assert [(i.type, i.bus) for i in dv.inputs] == [("tablet", "usb"), ("mouse", "ps2"), ("keyboard", "ps2")]
    sp, vnc = dv.graphics
    assert (sp.autoport, sp.listen_type, sp.listen_address, sp.image_compression) == (True, "address", None, "off")
    assert (vnc.port, vnc.listen_address, vnc.passwd) == (-1, "127.0.0.1", "s3cret'\"")
    assert dv.sounds[0].model == "ich9" and dv.audios[0].type == "spice"
    assert dv.videos[0].model == "virtio" and dv.videos[0].primary is True
    assert len(dv.redirdevs) == 2
    assert dv.memballoon is not None and dv.memballoon.autodeflate is True and dv.memballoon.stats_period == 10
    assert dv.rngs[0].backend == "/dev/urandom" and dv.rngs[0].rate_bytes == 1024
    assert dv.watchdogs[0].action == "reset"
    assert dv.panics[0].address == Address("isa", (("iobase", "0x505"),))
    assert d.seclabels[0].type == "none"


def test_metadata_keeps_namespaces() -> None:
    d = _load("q35_full")
    assert d.metadata_xml is not None
    assert d.metadata_xml.startswith(
        '<libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">'
    )
    assert '<libosinfo:os id="http://debian.org/debian/12"/>' in d.metadata_xml
    assert '<my:app xmlns:my="urn:example:my" my:owner="ops">tier &lt;1&gt;</my:app>' in d.metadata_xml


def test_metadata_namespace_declared_on_an_ancestor_moves_to_the_child() -> None:
    d = _load("uefi")  # xmlns:ex sits on <metadata>
    assert d.metadata_xml == (
        '<ex:tags xmlns:ex="urn:example:meta"><ex:tag>blue</ex:tag><ex:tag>green</ex:tag></ex:tags>'
    )
    xml = (DATA / "uefi.xml").read_text().replace(
        "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>",
        "<domain type='kvm' xmlns:ex='urn:example:meta'>",
    ).replace("<metadata xmlns:ex='urn:example:meta'>", "<metadata>")
    assert parse_domain_xml(xml).metadata_xml == d.metadata_xml


def test_direct_kernel_and_uefi_fields() -> None:
    k = _load("direct_kernel_q35")
    assert k.memory_kib == 256000  # 262144 KB (powers of 1000) in KiB
    assert k.os.cmdline == 'console=ttyS0 panic=-1 msg="a <b> & c"' and k.os.arch == "x86_64"
    assert k.cpu is not None and k.cpu.model == "Skylake-Client" and k.cpu.model_fallback == "allow"
    assert k.cpu.topology is not None and k.cpu.topology.dies == 1
    assert [(f.name, f.policy) for f in k.cpu.features] == [("pcid", "require"), ("hle", "disable")]
    assert k.devices.consoles[0].source_path is None  # a pty's path is live-only
    assert k.devices.consoles[0].log_append is True
    g = k.devices.graphics[0]
    assert (g.listen_type, g.socket) == ("socket", "/run/pyvirt/q35kernel.vnc")
    assert k.devices.rngs[0].backend_model == "builtin"
    u = _load("uefi")
    assert u.os.firmware == "efi" and u.os.loader is not None
    assert (u.os.loader.secure, u.os.loader.readonly, u.os.loader.type) == (True, True, "pflash")
    assert u.os.loader.nvram == "/var/lib/pyvirt/nvram/uefi-vm_VARS.fd"
    assert u.os.loader.nvram_template == "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
    assert (u.max_memory_kib, u.max_memory_slots, u.memory_kib) == (4 * 1024 * 1024, 4, 1024 * 1024)
    assert u.features.smm is True
    assert [x.boot_order for x in (*u.devices.disks, *u.devices.interfaces)] == [1, None, 2]


def test_pc_ide_defaults_and_live_only_parts() -> None:
    d = _load("pc_ide")
    hdc = d.devices.disks[1]
    assert hdc.bus == "ide" and hdc.source is None and hdc.shareable  # bus derived from 'hd'
    assert [(c.type, c.index) for c in d.devices.controllers] == [("usb", 0), ("pci", 0), ("ide", 0)]
    assert d.devices.inputs[1].bus == "ps2"  # a mouse defaults to ps2
    assert d.devices.interfaces[1].source == (("dev", "eth0"), ("mode", "bridge"))
    assert d.devices.interfaces[1].driver_queues == 2
    assert d.devices.panics[0].model is None
    assert d.seclabels[0].label == "+64055:+64055"


def test_storage_disks_map_to_the_model() -> None:
    d = _load("storage_disks")
    vda, vdb, sdb, sda, sdc, sdd = d.devices.disks
    assert (vda.source_type, vda.source_pool, vda.source_volume, vda.source, vda.source_index) == (
        "volume", "default", "stor1-root.qcow2", None, 3)
    assert (vdb.source_type, vdb.source, vdb.source_index, vdb.shareable) == ("block", "/dev/vg0/stor1-data", 1, True)
    assert (sdb.source_type, sdb.bus, sdb.io) == ("file", "scsi", "threads")
    assert (sda.source_type, sda.device, sda.source) == ("block", "cdrom", "/dev/sr0")
    assert (sdc.source_pool, sdc.source_volume, sdc.boot_order) == ("isos", "debian-12.iso", 2)
    assert (sdd.source_type, sdd.source_pool, sdd.source) == ("volume", None, None)  # an empty volume cdrom
    assert all(x.volume_type is None for x in d.devices.disks)


def test_a_resolved_volume_path_stays_out_of_the_xml() -> None:
    d = _load("storage_disks")
    live = replace(d.devices.disks[0], source="/var/lib/pyvirt/images/stor1-root.qcow2", volume_type="file")
    text = format_domain_xml(replace(d, devices=replace(d.devices, disks=(live, *d.devices.disks[1:]))))
    assert "stor1-root.qcow2' index='3'/>" in text and "/var/lib/pyvirt/images/stor1-root" not in text
    validate_domain(replace(d, devices=replace(d.devices, disks=(live,))))


def test_xml_declaration_and_non_ascii_text() -> None:
    xml = '<?xml version="1.0" encoding="UTF-8"?>\n' + (DATA / "pc_ide.xml").read_text().replace(
        "<uuid>", "<title>Büro-PC ☃</title><uuid>")
    d = parse_domain_xml(xml)
    assert d.title == "Büro-PC ☃"
    assert "<title>Büro-PC ☃</title>" in format_domain_xml(d)


def test_validate_rejects_what_the_parser_would_drop() -> None:
    from pyvirt.errors import InvalidArgument
    from pyvirt.model.domain import CharDev

    base = _load("pc_ide")
    pty = CharDev(kind="serial", type="pty", source_path="/dev/pts/1")
    with pytest.raises(InvalidArgument, match="takes no path"):
        validate_domain(replace(base, devices=replace(base.devices, serials=(pty,))))
    bad_addr = replace(base.devices.panics[0], address=Address("isa", (("type", "isa"),)))
    with pytest.raises(InvalidArgument, match="'type' does not belong"):
        validate_domain(replace(base, devices=replace(base.devices, panics=(bad_addr,))))
    with pytest.raises(InvalidArgument, match="not in normal form"):
        validate_domain(replace(base, uuid="C7A5FDBD-EDAF-9455-926A-D65C16DB1809"))


def test_live_info_adds_the_id() -> None:
    d = _load("pc_ide")
    text = format_domain_xml(d, live=LiveInfo(id=7))
    assert text.startswith("<domain type='kvm' id='7'>\n")
    assert parse_domain_xml(text) == d
    assert format_domain_xml(d, live=LiveInfo()).startswith("<domain type='kvm'>\n")


def test_missing_uuid_parses_empty_and_is_not_written() -> None:
    d = _load("direct_kernel_microvm")
    assert d.uuid == "" and d.devices.interfaces[0].mac is None
    assert "<uuid>" not in format_domain_xml(d)


def test_controller_index_defaults_to_lowest_free() -> None:
    xml = (DATA / "direct_kernel_microvm.xml").read_text().replace(
        "<memballoon model='none'/>",
        "<controller type='usb' index='1'/><controller type='usb'/><controller type='usb'/>"
        "<controller type='sata'/><memballoon model='none'/>",
    )
    d = parse_domain_xml(xml)
    assert [(c.type, c.index) for c in d.devices.controllers] == [("usb", 1), ("usb", 0), ("usb", 2), ("sata", 0)]


# ------------------------------------------------------------------ normalize
def test_normalize_fills_uuid_mac_memory_placement_deterministically() -> None:
    d = _load("direct_kernel_microvm")
    a = normalize(d, rng=random.Random(7))
    b = normalize(d, rng=random.Random(7))
    assert a == b
    assert len(a.uuid) == 36 and a.uuid[14] == "4"  # version 4
    mac = a.devices.interfaces[0].mac
    assert mac is not None and mac.startswith("52:54:00:")
    assert a.current_memory_kib == a.memory_kib == 131072
    assert a.vcpu_placement == "static"
    assert a.os.machine == "microvm"
    assert normalize(a, rng=random.Random(1)) == a  # idempotent
    # the normalized domain formats and parses back unchanged
    assert parse_domain_xml(format_domain_xml(a)) == a


def test_normalize_keeps_given_values() -> None:
    d = _load("q35_full")
    assert normalize(d, rng=random.Random(0)) == d


def test_normalize_avoids_taken_and_own_macs() -> None:
    rng_probe = random.Random(3)
    first = new_mac((), rng_probe)
    base = _load("direct_kernel_microvm")
    two = replace(base, devices=replace(base.devices, interfaces=(Interface("user"), Interface("user"))))
    out = normalize(two, taken_macs={first.upper()}, rng=random.Random(3))
    macs = [i.mac for i in out.devices.interfaces]
    assert first not in macs and len(set(macs)) == 2
    own = replace(base, devices=replace(base.devices, interfaces=(Interface("user", mac=first), Interface("user"))))
    assert normalize(own, rng=random.Random(3)).devices.interfaces[1].mac != first


def test_new_uuid_without_rng_is_random() -> None:
    assert new_uuid() != new_uuid()
    assert new_uuid(random.Random(5)) == new_uuid(random.Random(5))


# ------------------------------------------------------------------ argv cases
def test_argv_golden_domains_round_trip() -> None:
    """The domains the argv builder's golden tests use survive format -> parse."""
    from tests.unit.argv_cases import CASES, golden_img

    def fix(dom: Domain) -> Domain:
        # q35_full's panic address carries ("type", "isa") in attrs, which the model
        # says holds the *other* attributes; drop it (reported to the argv owner).
        panics = tuple(
            replace(p, address=Address(p.address.type, tuple(kv for kv in p.address.attrs if kv[0] != "type")))
            if p.address is not None else p
            for p in dom.devices.panics
        )
        # a volume disk's resolved path and type, and any disk's resolved backing chain, are live state
        # the XML does not carry
        disks = tuple(replace(d, source=None, volume_type=None, backing_chain=()) if d.source_type == "volume"
                      else replace(d, backing_chain=()) for d in dom.devices.disks)
        return replace(dom, devices=replace(dom.devices, panics=panics, disks=disks))

    for name, case in CASES.items():
        dom = fix(case(golden_img)[0])
        validate_domain(dom)
        assert parse_domain_xml(format_domain_xml(dom)) == dom, name


# ------------------------------------------------------------------ meta
# Fields whose only valid value today is the default, so no golden can differ from it.
ONLY_DEFAULT = {("Disk", "driver_name"), ("OS", "type"), ("OS", "arch"), ("TPM", "backend_type"),
                ("Filesystem", "type")}
# Live state the XML never carries (set by the daemon at start), so no golden can set it.
NOT_IN_XML = {("Disk", "volume_type"), ("Disk", "backing_chain"), ("ImageLayer", "path"), ("ImageLayer", "format"),
              ("ImageLayer", "block")}


def _non_default_fields(obj: object, seen: set[tuple[str, str]]) -> None:
    """Record (class, field) for every field holding something other than None, () or its default."""
    import dataclasses

    if isinstance(obj, tuple):
        for item in obj:
            _non_default_fields(item, seen)
        return
    if not dataclasses.is_dataclass(obj):
        return
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None  # required field
        if value not in (None, ()) and value != default:
            seen.add((type(obj).__name__, f.name))
        _non_default_fields(value, seen)


def test_every_model_field_is_exercised_by_a_golden() -> None:
    """A field no golden file sets is a field whose XML mapping nobody checks."""
    import dataclasses

    import pyvirt.model.domain as model

    seen: set[tuple[str, str]] = set()
    for src in INPUTS:
        _non_default_fields(parse_domain_xml(src.read_text()), seen)
    every = {
        (cls.__name__, f.name)
        for cls in vars(model).values()
        if isinstance(cls, type) and dataclasses.is_dataclass(cls)
        for f in dataclasses.fields(cls)
    }
    missing = every - seen - ONLY_DEFAULT - NOT_IN_XML
    assert not missing, f"no golden file sets: {sorted(missing)}"
