"""The virt-install corpus (tests/data/virt-install), daemon-free part: every file defines and its dumpxml
defines again to the same thing, or it is on the reviewed refusal list with the exact error; every file that
defines has a golden QEMU argv (tests/data/virt-install/argv/NAME.args, as domxml-to-native prints it).

Rewrite the refusal list's error texts and the argv golden files after an intended change with
``PYVIRT_REGEN=1 pytest tests/unit/test_xml_corpus.py`` and review the diff (tests/xml_corpus.py says how).
tests/integration/test_xml_corpus.py starts every file that defines.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from pyvirt.daemon.native import SPICE_PORT, with_planned_files
from pyvirt.errors import PyvirtError
from pyvirt.model.domain import Domain
from pyvirt.model.domain_xml import format_domain_xml, parse_domain_xml
from pyvirt.model.ids import normalize
from pyvirt.qemu.argv import build_argv
from tests.unit.argv_cases import base_ctx
from tests.xml_corpus import (
    CORPUS,
    UNREVIEWED,
    Refusal,
    argv_golden,
    corpus_files,
    key,
    known_reason,
    load_refusals,
    write_refusals,
)

REGEN = os.environ.get("PYVIRT_REGEN") == "1"
FILES = corpus_files()
MADE = [p for p in FILES if p.parent == CORPUS]  # by virt-install; the others by virsh dumpxml


def define(xml: str) -> Domain:
    """What the daemon's define does to the XML itself (its host checks are the integration test's)."""
    return normalize(parse_domain_xml(xml))


def define_error(path: Path) -> str | None:
    try:
        define(path.read_text())
    except PyvirtError as exc:
        return str(exc)
    return None


def test_corpus_is_made_by_virt_install() -> None:
    """At least 80 command lines, each stored beside its output."""
    assert len(MADE) >= 80
    for path in MADE:
        cmd = path.with_suffix(".cmd")
        assert cmd.exists(), f"{cmd} is missing: the corpus stores each file's command line"
        words = shlex.split(cmd.read_text())
        assert words[0] == "virt-install" and "--print-xml" in words and path.stem in words


@pytest.mark.parametrize("path", FILES, ids=key)
def test_defines_or_is_refused(path: Path) -> None:
    refusal = load_refusals().get(key(path))
    error = define_error(path)
    if error is None:
        assert refusal is None or refusal.stage != "define", (
            f"{path.name} defines now: drop it from {CORPUS.name}/refusals.toml (PYVIRT_REGEN=1 does)")
        return
    assert refusal is not None and refusal.stage == "define", (
        f"{path.name} is refused at define and not on the refusal list: {error}")
    assert refusal.error == error, f"{path.name}: the refusal's text changed; PYVIRT_REGEN=1 rewrites it"


@pytest.mark.parametrize("path", FILES, ids=key)
def test_dumpxml_defines_to_the_same(path: Path) -> None:
    if define_error(path) is not None:
        pytest.skip(f"{key(path)} is on the refusal list (test_defines_or_is_refused checks why)")
    domain = define(path.read_text())
    dumped = format_domain_xml(domain)
    again = define(dumped)
    assert again == domain
    assert format_domain_xml(again) == dumped


def test_refusal_list_is_reviewed() -> None:
    """Every entry names a corpus file, a step, the error and why (a person wrote it)."""
    refusals = load_refusals()
    keys = {key(p) for p in FILES}
    for name, r in refusals.items():
        assert name in keys, f"refusals.toml names {name}, which is not in the corpus"
        assert r.stage in ("define", "start"), f"{name}: stage must be define or start, not {r.stage!r}"
        assert r.error and r.why and UNREVIEWED not in r.why, f"{name}: write why it is refused"


def golden_argv(domain: Domain) -> str:
    from pyvirt.cli.libvirt_cmds import argv_lines

    try:  # a QEMU with SPICE, as Debian's; what the builder refuses is golden too (the start refuses it)
        ctx = base_ctx(has_spice=True, spice_port=SPICE_PORT)  # the port a start picks for a listening SPICE
        command = build_argv(domain, with_planned_files(ctx, domain))
    except PyvirtError as exc:
        return f"# refused: {exc}\n"
    return argv_lines({}, command.argv) + "".join(f"# note: {n}\n" for n in command.notes)


def defining() -> list[Path]:
    return [p for p in FILES if define_error(p) is None]


@pytest.mark.parametrize("path", defining(), ids=key)
def test_argv_golden(path: Path) -> None:
    text = golden_argv(define(path.read_text()))
    golden = argv_golden(path)
    if REGEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden argv {golden}; run with PYVIRT_REGEN=1 to create it"
    assert text == golden.read_text(), f"argv of {key(path)} changed; if intended, regenerate with PYVIRT_REGEN=1"


def test_no_stale_argv_golden_files() -> None:
    present = {p for d in {f.parent / "argv" for f in FILES} for p in d.glob("*.args")}
    wanted = {argv_golden(p) for p in defining()}
    if REGEN:
        for stale in present - wanted:
            stale.unlink()
        present &= wanted
    assert sorted(present) == sorted(wanted)


def test_define_rate(record_property: pytest.RecordProperty) -> None:
    """Prints (and records) define%; with PYVIRT_REGEN=1 rewrites the refusal list's define entries."""
    refusals = load_refusals()
    errors = {key(p): define_error(p) for p in FILES}
    if REGEN:
        kept = {n: r for n, r in refusals.items() if r.stage != "define"}
        for name, error in errors.items():
            if error is None:
                continue
            old = refusals.get(name)
            if old is not None and old.stage == "define" and old.error == error:
                kept[name] = old
            else:  # a new refusal, or another error than the reviewed one: a known reason, or a person says why
                kept[name] = Refusal(name, "define", error, *known_reason(error))
        write_refusals(kept)
    ok = sum(1 for e in errors.values() if e is None)
    rate = 100.0 * ok / len(FILES)
    record_property("define_percent", round(rate, 1))
    made = sum(1 for p in MADE if errors[key(p)] is None)
    print(f"\nXML corpus: {ok} of {len(FILES)} define ({rate:.1f}%); virt-install's {made} of {len(MADE)}")
    assert ok == len(FILES) - sum(1 for r in load_refusals().values() if r.stage == "define")
