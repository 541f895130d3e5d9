"""KSM: bad input against a copy of sysfs (nothing is ever half-written), and the built-in tuner merging four
identical guests on the real /sys/kernel/mm/ksm (put back as it was afterwards), where <nosharepages/> keeps
guests out of it."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import DaemonHandle, domain_xml, fails, ok
from .host_helpers import KSM, daemon_with, fake_ksm, ksm_restored

pytestmark = pytest.mark.integration

GUESTS = 4
MERGED_MIB = 8  # each guest must have at least this much merged (they run the same kernel and initramfs)


def files(where: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(where.iterdir())}


def status(d: DaemonHandle) -> dict:  # type: ignore[type-arg]
    return json.loads(ok(d, "--json", "ksm", "status"))


def test_ksm_tune_refuses_bad_input_and_writes_nothing(caps_cache: Path, tmp_path: Path) -> None:
    fake = fake_ksm(tmp_path / "ksm")
    with daemon_with(caps_cache, f'[ksm]\nsysfs = "{fake}"\n') as d:
        before = files(fake)
        for args, words in (
                (("tune", "frobnicate=1"), ("'frobnicate'", "neither a KSM sysfs field nor a tuner setting",
                                            "pages_to_scan", "KSM_NPAGES_BOOST")),
                (("tune", "pages_to_scan=-5"), ("pages_to_scan=-5", "must not be negative")),
                (("tune", "pages_to_scan=12.5"), ("pages_to_scan='12.5'", "whole number")),
                (("tune", "pages_to_scan=1000", "KSM_NPAGES_BOOST=lots"), ("KSM_NPAGES_BOOST='lots'", "whole number")),
                (("tune", "KSM_NPAGES_DECAY=10"), ("KSM_NPAGES_DECAY=10", "0 or negative")),
                (("tune", "run=1"), ("'run'", "ksm start|stop")),
                (("tune", "pages_to_scan"), ("'pages_to_scan' is not KEY=VALUE",)),
                (("tune",), ("at least one KEY=VALUE",)),
                (("mode", "sometimes"), ("'sometimes' is not a KSM mode", "auto")),
                (("frobnicate",), ("unknown ksm action 'frobnicate'",))):
            err = fails(d, "ksm", *args)
            for w in words:
                assert w in err, (args, err)
        assert files(fake) == before, "a refused `ksm tune` changed sysfs"
        # a good one writes sysfs and keeps the tuner's settings across a daemon restart
        assert "KSM settings changed" in ok(d, "ksm", "tune", "pages_to_scan=1000", "KSM_NPAGES_MAX=3000")
        assert (fake / "pages_to_scan").read_text() == "1000\n"
        assert "KSM stopped (mode off); every merged page was split again" in ok(d, "ksm", "stop", "--unmerge")
        assert (fake / "run").read_text() == "2\n"
        assert "--unmerge goes with `ksm stop`" in fails(d, "ksm", "start", "--unmerge")
        assert "KSM started (mode on" in ok(d, "ksm", "start") and (fake / "run").read_text() == "1\n"
        d.stop()
        d.start()
        assert status(d)["tuner"]["npages_max"] == 3000

        if subprocess.run(["mount", "--bind", "-o", "ro", str(fake), str(fake)], capture_output=True).returncode:
            pytest.skip("this host cannot make a read-only bind mount (the read-only /sys case)")
        try:
            before = files(fake)
            for args in (("tune", "pages_to_scan=500"), ("mode", "on"), ("start",)):
                err = fails(d, "ksm", *args)
                assert "read-only" in err and "nothing was changed" in err, err
            assert files(fake) == before
            shown = ok(d, "ksm", "status")
            assert "Writable:        no (/sys is read-only here: status only)" in shown
        finally:
            subprocess.run(["umount", str(fake)], check=True)


def _start_guests(d: DaemonHandle, guest, tmp_path: Path, prefix: str, backing: str = "") -> list[str]:  # type: ignore[no-untyped-def]
    names = [f"{prefix}{i}" for i in range(GUESTS)]
    for name in names:
        xml = domain_xml(name, guest, memory_mib=128)
        if backing:
            xml = xml.replace("<vcpu>", f"<memoryBacking>{backing}</memoryBacking><vcpu>", 1)
        (tmp_path / f"{name}.xml").write_text(xml)
        ok(d, "define", str(tmp_path / f"{name}.xml"))
        ok(d, "start", name)
    for name in names:
        d.wait_serial(name)
    return names


def _merged(d: DaemonHandle, names: list[str]) -> dict[str, int]:
    sharers = {s["domain"]: s["merged_bytes"] for s in status(d)["domains"]}
    return {n: sharers.get(n, 0) for n in names}


@pytest.mark.skipif(not (KSM / "run").exists(), reason="this kernel has no KSM (/sys/kernel/mm/ksm)")
@pytest.mark.skipif((KSM / "run").exists() and not os.access(KSM / "run", os.W_OK),
                    reason="/sys/kernel/mm/ksm is read-only here")
def test_tuner_merges_identical_guests_and_nosharepages_keeps_them_out(caps_cache: Path, guest,  # type: ignore[no-untyped-def]
                                                                       tmp_path: Path) -> None:
    # A threshold of all RAM (KSM_THRES_COEF=100): on this roomy host the tuner runs KSM and boosts it. The
    # interval is an hour, so every decision after the first comes from a guest starting or stopping.
    toml = ("[ksm]\nmode = 'auto'\nmonitor_interval = 3600\nthres_coef = 100\nnpages_boost = 2000\n"
            "npages_max = 4000\n")
    with ksm_restored(), daemon_with(caps_cache, toml) as d:
        first = status(d)
        assert first["mode"] == "auto" and first["running"]
        assert first["last_decision"]["action"] == "boost"
        started = time.time()
        names = _start_guests(d, guest, tmp_path, "ksm")
        woke = status(d)["last_decision"]
        assert woke["time"] > started, "a guest start did not wake the tuner"
        assert woke["pages_to_scan"] == 4000 and woke["committed_kib"] > 0

        deadline = time.monotonic() + 60
        merged = _merged(d, names)
        while time.monotonic() < deadline and min(merged.values()) < MERGED_MIB << 20:
            time.sleep(1)
            merged = _merged(d, names)
        took = 60 - (deadline - time.monotonic())
        assert min(merged.values()) >= MERGED_MIB << 20, f"KSM merged too little after {took:.0f} s: {merged}"
        shown = ok(d, "ksm", "status")
        assert "Domains sharing memory:" in shown and all(n in shown for n in names)
        saved = status(d)["saved_bytes"]
        assert saved >= min(merged.values()), shown
        assert "side channel" in shown
        for name in names:
            ok(d, "destroy", name)

        apart = _start_guests(d, guest, tmp_path, "apart", "<nosharepages/>")
        time.sleep(max(took, 5))  # as long as the mergeable guests needed, and then some
        assert _merged(d, apart) == dict.fromkeys(apart, 0), "guests with <nosharepages/> were merged"
        for name in apart:
            ok(d, "destroy", name)
