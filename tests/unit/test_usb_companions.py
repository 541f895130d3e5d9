"""USB controllers as virt-install writes them: the ich9 EHCI + UHCI companion set, xhci, none."""
from __future__ import annotations

import pytest

from pyvirt.errors import InvalidArgument, UnsupportedConfig
from tests.unit.feature_xml import build, parse, round_trip, values

COMPANIONS = """
<controller type="usb" model="ich9-ehci1"/>
<controller type="usb" model="ich9-uhci1"><master startport="0"/></controller>
<controller type="usb" model="ich9-uhci2"><master startport="2"/></controller>
<controller type="usb" model="ich9-uhci3"><master startport="4"/></controller>
<input type="tablet" bus="usb"/>
"""


@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_companion_set_shares_the_masters_index_and_becomes_masterbus_firstport(machine: str) -> None:
    d = round_trip(parse(COMPANIONS, machine=machine))
    ctrls = d.devices.controllers
    assert [(c.model, c.index, c.master_startport) for c in ctrls] == [
        ("ich9-ehci1", 0, None), ("ich9-uhci1", 0, 0), ("ich9-uhci2", 0, 2), ("ich9-uhci3", 0, 4)]
    devs = values(build(d).argv, "-device")
    usb = [x for x in devs if "usb" in x.split(",")[0]]
    assert usb[:4] == ["ich9-usb-ehci1,id=usb", "ich9-usb-uhci1,masterbus=usb.0,firstport=0",
                       "ich9-usb-uhci2,masterbus=usb.0,firstport=2", "ich9-usb-uhci3,masterbus=usb.0,firstport=4"]
    assert "usb-tablet,id=input0,bus=usb.0,port=1" in devs


def test_companions_come_after_their_master_whatever_the_order_and_keep_addresses() -> None:
    xml = ("<controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/>"
           "<address type='pci' domain='0x0000' bus='0x00' slot='0x1d' function='0x0' multifunction='on'/>"
           "</controller><controller type='usb' index='0' model='ich9-ehci1'>"
           "<address type='pci' domain='0x0000' bus='0x00' slot='0x1d' function='0x7'/></controller>")
    d = round_trip(parse(xml))
    devs = values(build(d).argv, "-device")
    assert devs.index("ich9-usb-ehci1,id=usb,bus=pcie.0,addr=0x1d.0x7") < devs.index(
        "ich9-usb-uhci1,masterbus=usb.0,firstport=0,bus=pcie.0,addr=0x1d,multifunction=on")


@pytest.mark.parametrize(("xml", "needle"), [
    ("<controller type='usb' model='ich9-uhci1'><master startport='0'/></controller>", "ich9-ehci1"),
    (("<controller type='usb' model='qemu-xhci'/><controller type='usb' model='ich9-uhci1'>"
      "<master startport='0'/></controller>"), "USB2 controller"),
    (("<controller type='usb' model='ich9-ehci1'/><controller type='usb' model='ich9-uhci1'><master startport='0'/>"
      "</controller><controller type='usb' model='ich9-uhci2'><master startport='0'/></controller>"), "startport"),
    (("<controller type='usb' model='ich9-ehci1'/><controller type='usb' model='qemu-xhci'>"
      "<master startport='0'/></controller>"), "companion model"),
    ("<controller type='sata' index='1'><master startport='0'/></controller>", "only a USB controller"),
    ("<controller type='usb' model='ich9-ehci1'/><controller type='usb' model='ich9-uhci1'><master/></controller>",
     "startport"),
    ("<controller type='usb' model='vt82c686b-uhci'/>", "model 'vt82c686b-uhci' is not supported"),
])
def test_bad_companions_are_refused_by_name(xml: str, needle: str) -> None:
    with pytest.raises((InvalidArgument, UnsupportedConfig), match=needle):
        parse(xml)


@pytest.mark.parametrize(("model", "driver"), [("qemu-xhci", "qemu-xhci"), ("nec-xhci", "nec-usb-xhci"),
                                                ("piix3-uhci", "piix3-usb-uhci"), ("ehci", "usb-ehci")])
def test_single_controllers(model: str, driver: str) -> None:
    d = round_trip(parse(f"<controller type='usb' index='0' model='{model}' ports='8'/>"
                         "<input type='tablet' bus='usb'/>"))
    devs = values(build(d).argv, "-device")
    assert devs[0].startswith(f"{driver},") and "id=usb" in devs[0]
    assert ("p2=8" in devs[0]) == model.endswith("xhci")


def test_model_none_has_no_controller_and_refuses_usb_devices() -> None:
    d = round_trip(parse("<controller type='usb' model='none'/>"))
    assert not [x for x in values(build(d).argv, "-device") if "usb" in x]
    with pytest.raises(UnsupportedConfig, match="model 'none'"):
        build(parse("<controller type='usb' model='none'/><input type='tablet' bus='usb'/>"))
