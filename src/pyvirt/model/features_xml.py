"""<features> of libvirt's domain XML <-> ``model.domain.Features``.

Besides the plain flags (acpi, apic, pae) and states (vmport, smm), the parts
virt-install and virt-manager write for Windows guests: <hyperv> with its
enlightenments (mode='custom' or 'passthrough'), <kvm> (hidden, hints),
<pmu>, <vmcoreinfo>, <pvspinlock> and <ioapic driver=...>. Anything else is
refused by name, as everywhere in the codecs.
"""
from __future__ import annotations

from .domain import Features, HyperV, HyperVFeature
from .xml_util import Hint, Node, Reader, node, on_off

# libvirt's <hyperv> children, in the order libvirt writes them
HYPERV_FEATURES = ("relaxed", "vapic", "spinlocks", "vpindex", "runtime", "synic", "stimer", "reset", "vendor_id",
                   "frequencies", "reenlightenment", "tlbflush", "ipi", "evmcs", "avic", "emsr_bitmap", "xmm_input")
KVM_FEATURES = ("hidden", "hint-dedicated", "poll-control", "pv-ipi")
_FEATURE_HINT = Hint("this feature is not supported yet; remove it")


def _state(r: Reader) -> bool:
    r.req_attr("state")
    value = r.bool_attr("state", "on", "off")
    assert value is not None
    return value


def parse_features(r: Reader) -> Features:
    def state(tag: str) -> bool | None:
        f = r.child(tag)
        if f is None:
            return None
        value = f.bool_attr("state", "on", "off")
        f.done()
        return True if value is None else value

    ioapic = None
    if (io := r.child("ioapic")) is not None:
        ioapic = io.req_attr("driver")
        io.done()
    feats = Features(acpi=r.flag("acpi"), apic=r.flag("apic"), pae=r.flag("pae"),
                     vmport=state("vmport"), smm=state("smm"),
                     hyperv=_hyperv(r.child("hyperv")), kvm=_kvm(r.child("kvm")),
                     pmu=state("pmu"), vmcoreinfo=state("vmcoreinfo"), pvspinlock=state("pvspinlock"),
                     ioapic_driver=ioapic)
    r.done({tag.tag: _FEATURE_HINT for _, tag in r.leftover_children()})
    return feats


def _known_children(r: Reader, known: tuple[str, ...]) -> list[Reader]:
    """Readers of ``r``'s children whose tag is in ``known``, in document order (a repeated one is refused);
    the others are left for ``done()`` to refuse by name."""
    seen: list[str] = []
    for child in r.elem:
        tag = child.tag
        if isinstance(tag, str) and tag in known and tag not in seen:
            seen.append(tag)
    readers = []
    for tag in seen:
        f = r.child(tag)
        assert f is not None
        readers.append(f)
    return readers


def _hyperv(r: Reader | None) -> HyperV | None:
    if r is None:
        return None
    out = []
    for f in _known_children(r, HYPERV_FEATURES):
        tag = f.elem.tag
        assert isinstance(tag, str)
        retries = f.int_attr("retries", minimum=0) if tag == "spinlocks" else None
        value = f.attr("value") if tag == "vendor_id" else None
        direct = None
        if tag == "stimer" and (d := f.child("direct")) is not None:
            direct = _state(d)
            d.done()
        out.append(HyperVFeature(tag, _state(f), retries=retries, value=value, direct=direct))
        f.done()
    hv = HyperV(mode=r.attr("mode"), features=tuple(out))
    r.done()  # an enlightenment pyvirt does not know is refused by name
    return hv


def _kvm(r: Reader | None) -> tuple[tuple[str, bool], ...]:
    if r is None:
        return ()
    out = []
    for f in _known_children(r, KVM_FEATURES):
        tag = f.elem.tag
        assert isinstance(tag, str)
        out.append((tag, _state(f)))
        f.done()
    r.done()
    return tuple(out)


def format_features(f: Features) -> Node | None:
    children = [
        node("acpi") if f.acpi else None,
        node("apic") if f.apic else None,
        node("pae") if f.pae else None,
        _fmt_hyperv(f.hyperv),
        node("kvm", children=[node(name, ("state", on_off(state))) for name, state in f.kvm]) if f.kvm else None,
        node("pvspinlock", ("state", on_off(f.pvspinlock))) if f.pvspinlock is not None else None,
        node("pmu", ("state", on_off(f.pmu))) if f.pmu is not None else None,
        node("vmport", ("state", on_off(f.vmport))) if f.vmport is not None else None,
        node("smm", ("state", on_off(f.smm))) if f.smm is not None else None,
        node("ioapic", ("driver", f.ioapic_driver)) if f.ioapic_driver is not None else None,
        node("vmcoreinfo", ("state", on_off(f.vmcoreinfo))) if f.vmcoreinfo is not None else None,
    ]
    if not any(children):
        return None
    return node("features", children=children)


def _fmt_hyperv(hv: HyperV | None) -> Node | None:
    if hv is None:
        return None
    return node("hyperv", ("mode", hv.mode), children=[
        node(x.name, ("state", on_off(x.state)), ("retries", x.retries), ("value", x.value), children=[
            node("direct", ("state", on_off(x.direct))) if x.direct is not None else None,
        ]) for x in hv.features
    ])
