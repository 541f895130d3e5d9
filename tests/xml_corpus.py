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
defines are dropped, new failures and changed errors come in marked UNREVIEWED
(which fails until a person writes why), and the diff is reviewed like any
golden file. Start refusals are the integration test's: it prints what to write.
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
