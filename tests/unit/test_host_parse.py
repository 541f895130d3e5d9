"""Parsers of QEMU's help texts, fed excerpts captured from qemu-system-x86_64 7.2.22 (Debian 12)."""
from __future__ import annotations

import pytest

from pyvirt.host.probe import (
    format_uuid,
    parse_accel_help,
    parse_cpu_help,
    parse_cpuinfo,
    parse_device_help,
    parse_machine_help,
    parse_meminfo_total,
    parse_sandbox_help,
    parse_spice_help,
    parse_version,
)

MACHINE_HELP = """\
Supported machines are:
microvm              microvm (i386)
pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)
pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)
pc-i440fx-7.1        Standard PC (i440FX + PIIX, 1996)
pc-i440fx-1.4        Standard PC (i440FX + PIIX, 1996) (deprecated)
q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)
pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)
pc-q35-4.0.1         Standard PC (Q35 + ICH9, 2009)
isapc                ISA-only PC
none                 empty machine
x-remote             Experimental remote machine
"""

ACCEL_HELP = """\
Accelerators supported in QEMU binary:
tcg
kvm
"""

CPU_HELP = (
    "Available CPUs:\n"
    "x86 486                   (alias configured by machine type)\n"
    "x86 486-v1                \n"
    "x86 EPYC                  (alias configured by machine type)\n"
    "x86 EPYC-IBPB             (alias of EPYC-v2)\n"
    "x86 EPYC-v1               AMD EPYC Processor\n"
    "x86 qemu64                (alias configured by machine type)\n"
    "x86 qemu64-v1             QEMU Virtual CPU version 2.5+\n"
    "x86 base                  base CPU model type with no features enabled\n"
    "x86 host                  processor with all supported host features \n"
    "x86 max                   Enables all features supported by the accelerator in the current host\n"
    "\n"
    "Recognized CPUID flags:\n"
    "  3dnow 3dnowext 3dnowprefetch abm ace2 ace2-en acpi adx aes amd-no-ssb\n"
    "  x86 notamodel\n"
)

DEVICE_HELP = """\
Controller/Bridge/Hub devices:
name "pcie-root-port", bus PCI, desc "PCI Express Root Port"

USB devices:
name "qemu-xhci", bus PCI

Storage devices:
name "ich9-ahci", bus PCI, alias "ahci"

Network devices:
name "e1000", bus PCI, alias "e1000-82540em", desc "Intel Gigabit Ethernet"
name "virtio-net-pci", bus PCI, alias "virtio-net"

Display devices:
name "qxl", bus PCI, desc "Spice QXL GPU (secondary)"

Sound devices:
name "ich9-intel-hda", bus PCI, desc "Intel HD Audio Controller (ich9)"

Uncategorized devices:
"""

CPUINFO = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
physical id\t: 0
siblings\t: 2
core id\t\t: 0
cpu cores\t: 2
flags\t\t: fpu vme de pse tsc msr pae svm lm hypervisor

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
physical id\t: 0
siblings\t: 2
core id\t\t: 1
cpu cores\t: 2
flags\t\t: fpu vme de pse tsc msr pae svm lm hypervisor
"""


def test_machine_help_folds_aliases_and_flags() -> None:
    machines = parse_machine_help(MACHINE_HELP)
    names = [m.name for m in machines]
    assert names == [
        "microvm", "pc-i440fx-7.2", "pc-i440fx-7.1", "pc-i440fx-1.4", "pc-q35-7.2",
        "pc-q35-4.0.1", "isapc", "none", "x-remote",
    ]
    by_name = {m.name: m for m in machines}
    i440 = by_name["pc-i440fx-7.2"]
    assert (i440.alias, i440.is_default, i440.deprecated) == ("pc", True, False)
    assert i440.description == "Standard PC (i440FX + PIIX, 1996)"
    assert by_name["pc-q35-7.2"].alias == "q35"
    assert not by_name["pc-q35-7.2"].is_default
    assert by_name["pc-i440fx-1.4"].deprecated
    assert by_name["pc-i440fx-1.4"].description == "Standard PC (i440FX + PIIX, 1996)"
    assert by_name["microvm"].alias is None
    assert [m.name for m in machines if m.is_default] == ["pc-i440fx-7.2"]


def test_accel_help() -> None:
    assert parse_accel_help(ACCEL_HELP) == ("tcg", "kvm")
    assert parse_accel_help("Accelerators supported in QEMU binary:\ntcg\n") == ("tcg",)


def test_cpu_help_names_only_models_not_flags() -> None:
    models = parse_cpu_help(CPU_HELP)
    assert models == ("486", "486-v1", "EPYC", "EPYC-IBPB", "EPYC-v1", "qemu64", "qemu64-v1", "base", "host", "max")
    assert "notamodel" not in models


def test_device_help() -> None:
    devices = parse_device_help(DEVICE_HELP)
    assert devices == {"pcie-root-port", "qemu-xhci", "ich9-ahci", "e1000", "virtio-net-pci", "qxl", "ich9-intel-hda"}
    assert "virtio-net" not in devices  # aliases are not device names


def test_version() -> None:
    assert parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright ...") == (
        "7.2.22", (7, 2, 22))
    assert parse_version("QEMU emulator version 8.1 (x)") == ("8.1.0", (8, 1, 0))
    with pytest.raises(ValueError):
        parse_version("not qemu at all")


def test_spice_and_sandbox_answers() -> None:
    assert parse_spice_help("spice options:\n  addr=<str>\n")
    assert not parse_spice_help("")
    assert parse_sandbox_help("qemu-system-x86_64: -sandbox help: Parameter 'enable' expects 'on' or 'off'\n")
    assert not parse_sandbox_help("qemu-system-x86_64: -sandbox support is not enabled in this QEMU binary\n")


def test_cpuinfo_meminfo_uuid() -> None:
    info = parse_cpuinfo(CPUINFO, cpu_count=2)
    assert (info.model_name, info.vendor, info.flags_virt) == ("AMD EPYC", "AMD", "svm")
    assert (info.topology.sockets, info.topology.cores, info.topology.threads) == (1, 2, 1)
    no_virt = parse_cpuinfo(CPUINFO.replace(" svm", ""), cpu_count=2)
    assert no_virt.flags_virt is None
    assert parse_meminfo_total("MemTotal:       24684092 kB\nMemFree: 1 kB\n") == 24684092
    with pytest.raises(ValueError):
        parse_meminfo_total("MemFree: 1 kB\n")
    assert format_uuid("3d1219c7c4c5404aaa1f6d2a48adfda4\n") == "3d1219c7-c4c5-404a-aa1f-6d2a48adfda4"
    assert format_uuid("4C4C4544-0042-3510-8052-B4C04F4A4B32") == "4c4c4544-0042-3510-8052-b4c04f4a4b32"
