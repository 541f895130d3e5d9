"""Windows guests as virt-install and virt-manager write them: <hyperv> enlightenments, <kvm><hidden>,
hypervclock, vmport/smm/pmu; on KVM they are CPU properties, under TCG they are left off with a note."""
from __future__ import annotations

import pytest

from pyvirt.errors import InvalidArgument, UnsupportedConfig
from tests.unit.feature_xml import build, parse, round_trip, values

VIRT_INSTALL = ("<hyperv><relaxed state='on'/><vapic state='on'/><spinlocks state='on' retries='8191'/></hyperv>"
                "<vmport state='off'/>")
VIRT_MANAGER = ("<hyperv mode='custom'><relaxed state='on'/><vapic state='on'/>"
                "<spinlocks state='on' retries='8191'/><vpindex state='on'/><runtime state='on'/>"
                "<synic state='on'/><stimer state='on'><direct state='on'/></stimer><reset state='off'/>"
                "<vendor_id state='on' value='KVM Hv'/><frequencies state='on'/><reenlightenment state='off'/>"
                "<tlbflush state='on'/><ipi state='on'/><evmcs state='off'/></hyperv>"
                "<kvm><hidden state='on'/></kvm><pmu state='off'/><vmport state='off'/><smm state='on'/>"
                "<ioapic driver='kvm'/><vmcoreinfo state='on'/>")
CLOCK = ("<clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/><timer name='pit' tickpolicy='delay'/>"
         "<timer name='hpet' present='no'/><timer name='hypervclock' present='yes'/></clock>")


def test_virt_install_windows_features_on_kvm_become_hv_properties() -> None:
    d = round_trip(parse(features=VIRT_INSTALL, clock=CLOCK, dom_type="kvm"))
    assert d.features.hyperv is not None and [x.name for x in d.features.hyperv.features] == [
        "relaxed", "vapic", "spinlocks"]
    cmd = build(d, accel="kvm")
    (cpu,) = values(cmd.argv, "-cpu")
    assert cpu == "qemu64,hv-relaxed=on,hv-vapic=on,hv-spinlocks=0x1fff,hv-time=on"
    assert "vmport=off" in values(cmd.argv, "-machine")[0]
    assert not any("Hyper-V" in n for n in cmd.notes)


def test_virt_manager_custom_mode_full_set_on_kvm() -> None:
    d = round_trip(parse(features=VIRT_MANAGER, clock=CLOCK, dom_type="kvm",
                         cpu="<cpu mode='host-passthrough'/>"))
    (cpu,) = values(build(d, accel="kvm").argv, "-cpu")
    assert cpu.startswith("host,hv-relaxed=on,hv-vapic=on,hv-spinlocks=0x1fff,hv-vpindex=on,hv-runtime=on,")
    for prop in ("hv-synic=on", "hv-stimer=on", "hv-stimer-direct=on", "hv-reset=off", "hv-vendor-id=KVM Hv",
                 "hv-frequencies=on", "hv-reenlightenment=off", "hv-tlbflush=on", "hv-ipi=on", "hv-evmcs=off",
                 "hv-time=on", "kvm=off", "pmu=off"):
        assert prop in cpu.split(","), (prop, cpu)
    args = build(d, accel="kvm").argv
    assert "kernel-irqchip=on" in values(args, "-machine")[0] and "smm=on" in values(args, "-machine")[0]
    assert "vmcoreinfo" in values(args, "-device")


def test_under_tcg_the_enlightenments_are_dropped_and_said_aloud() -> None:
    d = parse(features=VIRT_MANAGER, clock=CLOCK, dom_type="kvm")
    cmd = build(d, accel="tcg")
    (cpu,) = values(cmd.argv, "-cpu")
    assert cpu == "qemu64,pmu=off"  # the PMU setting is TCG's too
    assert not any(a.startswith("hv-") or ",hv-" in a for a in cmd.argv)
    note = next(n for n in cmd.notes if "Hyper-V enlightenments" in n)
    assert "relaxed" in note and "hypervclock" in note and "hidden" in note and "only KVM" in note
    assert "kernel-irqchip" not in values(cmd.argv, "-machine")[0]


def test_passthrough_mode() -> None:
    d = round_trip(parse(features="<hyperv mode='passthrough'/>", dom_type="kvm"))
    assert values(build(d, accel="kvm").argv, "-cpu") == ["qemu64,hv-passthrough=on"]


@pytest.mark.parametrize(("features", "needle"), [
    ("<hyperv><spinlocks state='on' retries='100'/></hyperv>", "4095"),
    ("<hyperv><vendor_id state='on' value='far-too-long-vendor'/></hyperv>", "vendor id"),
    ("<hyperv mode='sometimes'/>", "mode 'sometimes'"),
    ("<hyperv><relaxed/></hyperv>", "'state' is missing"),
    ("<hyperv><relaxed state='yes'/></hyperv>", "'on' or 'off'"),
    ("<hyperv><relaxed state='on'/><relaxed state='off'/></hyperv>", "appears 2 times"),
    ("<hyperv><stimer state='on'><indirect/></stimer></hyperv>", "<indirect>"),
    ("<kvm><hidden state='on'/><invisible state='on'/></kvm>", "<invisible>"),
    ("<ioapic driver='xen'/>", "driver 'xen'"),
])
def test_bad_features_are_refused_by_name(features: str, needle: str) -> None:
    with pytest.raises((InvalidArgument, UnsupportedConfig), match=needle):
        parse(features=features)


def test_ioapic_needs_q35() -> None:
    with pytest.raises(UnsupportedConfig, match="q35"):
        build(parse(features="<ioapic driver='qemu'/>", machine="pc"), accel="kvm")


def test_cpu_cache_modes() -> None:
    d = round_trip(parse(cpu="<cpu mode='host-passthrough'><cache mode='passthrough'/></cpu>", dom_type="kvm"))
    assert values(build(d, accel="kvm").argv, "-cpu") == ["host,host-cache-info=on"]
    cmd = build(d, accel="tcg")
    assert values(cmd.argv, "-cpu") == ["max"] and any("cache mode='passthrough'" in n for n in cmd.notes)
    emu = round_trip(parse(cpu="<cpu mode='custom'><model>qemu64</model><cache level='3' mode='emulate'/></cpu>"))
    assert values(build(emu).argv, "-cpu") == ["qemu64,l3-cache=on"]
    with pytest.raises(InvalidArgument, match="host-passthrough"):
        parse(cpu="<cpu mode='custom'><model>qemu64</model><cache mode='passthrough'/></cpu>")
