"""Small domain documents for the feature tests (spice TLS, USB companions, hyperv, TPM, NUMA, ...):
a tiny valid <domain> with the given parts, and its argv under a base launch context."""
from __future__ import annotations

from pyvirt.model.domain import Domain
from pyvirt.model.domain_xml import format_domain_xml, parse_domain_xml
from pyvirt.qemu.argv import QemuCommand, build_argv
from tests.unit.argv_cases import UUID, base_ctx


def doc(devices: str = "", *, top: str = "", features: str = "", machine: str = "q35", dom_type: str = "qemu",
        memory: str = "<memory unit='MiB'>128</memory>", cpu: str = "", clock: str = "") -> str:
    return (f"<domain type='{dom_type}'><name>f1</name><uuid>{UUID}</uuid>{top}{memory}"
            f"<os><type arch='x86_64' machine='{machine}'>hvm</type></os>"
            f"<features><acpi/>{features}</features>{cpu}{clock}<devices>{devices}</devices></domain>")


def parse(devices: str = "", **kw: str) -> Domain:
    return parse_domain_xml(doc(devices, **kw))


def round_trip(d: Domain) -> Domain:
    """dumpxml of ``d`` defines again to the same thing (and formatting is a fixed point)."""
    text = format_domain_xml(d)
    again = parse_domain_xml(text)
    assert again == d
    assert format_domain_xml(again) == text
    return again


def build(d: Domain, **ctx: object) -> QemuCommand:
    return build_argv(d, base_ctx(**ctx))


def values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]
