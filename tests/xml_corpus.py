"""The XML corpus and its reviewed refusal list: what virt-install writes (tests/data/virt-install) and what
libvirt 9.0's ``virsh dumpxml`` prints for those guests, inactive, live and --migratable
(tests/data/libvirt-dumpxml). A file's key is DIR/STEM, e.g. ``virt-install/os-win11``.

Shared by the unit test (define/dumpxml round trip, argv golden files) and the
integration test (define and start paused in a real daemon). The corpus is made
by scripts/make-xml-corpus.py; every file either defines (and starts) or is in
refusals.toml with the exact error pyvirt gives and why. An entry whose file
stops failing that way fails the tests, so the list stays true.

Regenerate the refusal list's error texts after an intended change with
``PYVIRT_REGEN=1 pytest tests/unit/test_xml_corpus.py``: entries whose file now
defines are dropped, new failures and changed errors get the reason of
KNOWN_REASONS their error matches, or come in marked UNREVIEWED (which fails
until a person writes why), and the diff is reviewed like any
golden file. Start refusals are rewritten the same way by PYVIRT_REGEN=1 on
tests/integration/test_xml_corpus.py (under the integration lock).
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
CORPUS = DATA / "virt-install"
DUMPXML = DATA / "libvirt-dumpxml"
REFUSALS = CORPUS / "refusals.toml"
# where the generator's command lines and its session daemon put files (scripts/make-xml-corpus.py)
GENERATED = r"/tmp/(?:pyvirt-corpus|pvcs)/[^\"'<>\s]+"
UNREVIEWED = "UNREVIEWED"
XML10F = "xml10f"

# Reviewed reasons by the words of pyvirt's error: PYVIRT_REGEN=1 gives a new refusal the first one whose
# pattern is in its error (owner xml10f: built on that branch, drop the entries when it merges); an error no
# pattern knows comes in UNREVIEWED.
KNOWN_REASONS: tuple[tuple[str, str, str], ...] = (
    ("<master>", ("USB2 companion controllers (ich9-uhci1..3 with <master startport>), as virt-install writes "
     "for pc machines and older OS variants: being built"), XML10F),
    ("tlsPort", "spice tlsPort='-1' with autoport (every spice guest virt-install writes): being built", XML10F),
    ("<hyperv>", "Hyper-V enlightenments (<features><hyperv>, every Windows variant): being built", XML10F),
    ("<ioapic>", "<features><ioapic driver='qemu'/>, which an intel <iommu> needs: being built with <iommu>",
     XML10F),
    ("<iommu>", "virtual IOMMU (<iommu model='intel|virtio'>): being built", XML10F),
    ("<tpm>", "TPM 2.0 through swtpm (<tpm model='tpm-crb|tpm-tis'><backend type='emulator'>): being built",
     XML10F),
    ("<numa>", "NUMA cells (<cpu><numa>): being built", XML10F),
    ("<resource>", "<resource><partition> as a cgroup path: being built", XML10F),
    ("<memoryBacking>/<access>", ("virtiofs <filesystem> needs <memoryBacking><source type='memfd'/><access "
     "mode='shared'/>: being built with filesystem shares"), XML10F),
    ("<filesystem>", "virtiofs/9p <filesystem> shares: being built", XML10F),
    ("<vsock>", "<vsock>: being built", XML10F),
    ("<smartcard>", "smartcard passthrough: refused by design (issue 10 asks for a clear refusal)", XML10F),
    ("<hostdev>", "PCI/USB passthrough: no such device on this host (and not supported)", ""),
    ("bus 'nvme'", ("nvme disks: being built (virt-install 4.1 writes <target bus='nvme'>, which libvirt 9.0 "
     "itself refuses)"), XML10F),
    ("<os>/<bios>", ("<bios useserial='yes' rebootTimeout='0'/> (virt-install --boot useserial=on,"
     "bios.rebootTimeout=0): not handled; nobody is on it (issue 10 does not list it)"), ""),
    ("<os>/<firmware>", ("UEFI firmware auto-selection with features (<os firmware='efi'><firmware><feature/>): "
     "pyvirt wants explicit <loader>/<nvram>; not in issue 10's list"), ""),
    ("detect_zeroes", "<driver detect_zeroes=...>: not handled yet (issue 10's disk options); nobody is on it", ""),
    ("<iotune>", "<iotune> disk throttling: not handled yet (issue 10's disk options); nobody is on it", ""),
    ("removable", ("<target removable='on'> of a USB disk: not handled yet (issue 10's disk options); nobody is on "
     "it"), ""),
    ("'iothread'", ("<driver iothread='N'> (disks on iothreads): not handled yet (issue 10's iothreads); nobody is "
     "on it"), ""),
    ("<smbios>", ("cloud-init: virt-install passes ds=nocloud through <os><smbios mode='sysinfo'/> and <sysinfo "
     "type='smbios'>: not handled yet; nobody is on it"), ""),
    ("floppy", "floppy disks: refused by design (pyvirt says to use a cdrom or a disk)", ""),
    ("<parallel>", "parallel ports: refused by design (pyvirt says to use a serial port)", ""),
    ("<interface>/<mtu>", "<mtu> on a NIC: not handled yet (issue 10's interface options); nobody is on it", ""),
    ("<interface>/<rom>", ("<rom bar='off'> on a NIC: not handled yet (issue 10's interface options); nobody is on "
     "it"), ""),
    ("type 'none'", "<serial type='none'> (virt-install --serial none): not handled yet; nobody is on it", ""),
    ("<clipboard>", "qemu-vdagent channel with clipboard: not handled yet; nobody is on it", ""),
    ("<redirdev>/<source>", "USB redirection over TCP (<redirdev type='tcp'>): not handled yet; nobody is on it",
     ""),
)


def known_reason(error: str) -> tuple[str, str]:
    """(why, owner) of the first reviewed pattern in ``error``; UNREVIEWED when none is."""
    for pattern, why, owner in KNOWN_REASONS:
        if pattern in error:
            return why, owner
    return f"{UNREVIEWED}: say why", ""


@dataclass(frozen=True)
class Refusal:
    """One corpus file pyvirt refuses: at which step, the exact error, why, and who works on it."""

    name: str
    stage: str  # "define" (the XML is refused) or "start" (defines, cannot start here)
    error: str
    why: str
    owner: str = ""  # "xml10f": a feature being built on that branch; drop the entry when it merges


def corpus_files() -> list[Path]:
    return sorted([*CORPUS.glob("*.xml"), *DUMPXML.glob("*.xml")])


def key(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def argv_golden(path: Path) -> Path:
    """Where a corpus file's QEMU argv golden file lives (DIR/argv/STEM.args)."""
    return path.parent / "argv" / f"{path.stem}.args"


def load_refusals() -> dict[str, Refusal]:
    raw = tomllib.loads(REFUSALS.read_text()) if REFUSALS.exists() else {}
    return {name: Refusal(name, **fields) for name, fields in raw.items()}


def write_refusals(refusals: dict[str, Refusal]) -> None:
    """The list in a fixed order (TOML basic strings are JSON strings)."""
    lines = ["# Corpus files pyvirt refuses, reviewed: see tests/xml_corpus.py.",
             "# stage = define | start; error = pyvirt's exact message; owner = xml10f: being built there.", ""]
    for name in sorted(refusals):
        r = refusals[name]
        lines.append(f"[{json.dumps(name)}]")
        lines.append(f"stage = {json.dumps(r.stage)}")
        lines.append(f"error = {json.dumps(r.error)}")
        lines.append(f"why = {json.dumps(r.why)}")
        if r.owner:
            lines.append(f"owner = {json.dumps(r.owner)}")
        lines.append("")
    REFUSALS.write_text("\n".join(lines))


def scratch_files(xml: str) -> list[str]:
    """The paths under the generator's directory a corpus file names (disks, kernels, logs, shares)."""
    return sorted(set(re.findall(GENERATED, xml)))


def pointed(xml: str, scratch: Path, kernel: str = "", initrd: str = "") -> str:
    """The file with its paths moved into ``scratch`` by base name, short for unix sockets (kernel and initrd
    to the test guest's when given)."""
    def repl(m: re.Match[str]) -> str:
        path = m.group(0)
        base = path.rsplit("/", 1)[-1]
        if kernel and base.endswith("vmlinuz"):
            return kernel
        if initrd and base.endswith("initrd.img"):
            return initrd
        return str(scratch / base)
    return re.sub(GENERATED, repl, xml)
