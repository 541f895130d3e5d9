"""KSM sysfs (host/ksm.py): parsing, the field table, and all-or-nothing writes to a directory of our own."""
from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from pyvirt.errors import HostError, InvalidArgument
from pyvirt.host.ksm import (
    BY_NAME,
    FIELDS,
    SYSFS,
    TUNABLE,
    KsmSysfs,
    check_tune,
    parse_choice,
    parse_ksm_stat,
    parse_value,
    process_merging_pages,
)

SAMPLE = {"run": "0", "pages_to_scan": "100", "sleep_millisecs": "20", "merge_across_nodes": "1",
          "use_zero_pages": "0", "max_page_sharing": "256", "pages_shared": "12", "pages_sharing": "340",
          "full_scans": "3", "advisor_mode": "[none] scan-time", "advisor_max_cpu": "70"}


def fake_sysfs(tmp_path: Path, values: dict[str, str] = SAMPLE) -> KsmSysfs:
    root = tmp_path / "ksm"
    root.mkdir()
    for name, text in values.items():
        (root / name).write_text(text + "\n")
    return KsmSysfs(root)


def test_parse_values_and_choices() -> None:
    assert parse_value("1250\n") == 1250
    assert parse_value("[none] scan-time\n") == "none"
    assert parse_value("none [scan-time]") == "scan-time"
    assert parse_choice("[none] scan-time") == ("none", ("none", "scan-time"))
    assert parse_value("weird") == "weird"


def test_parse_ksm_stat() -> None:
    text = ("ksm_rmap_items 120\nksm_zero_pages 0\nksm_merging_pages 96\nksm_process_profit 380000\n"
            "ksm_merge_any: no\nksm_mergeable: yes\n")
    assert parse_ksm_stat(text) == {"ksm_rmap_items": 120, "ksm_zero_pages": 0, "ksm_merging_pages": 96,
                                    "ksm_process_profit": 380000, "ksm_merge_any": "no", "ksm_mergeable": "yes"}


def test_process_merging_pages_reads_ksm_stat_or_the_older_file(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "7/ksm_stat").write_text("ksm_rmap_items 5\nksm_merging_pages 42\n")
    (tmp_path / "8").mkdir()
    (tmp_path / "8/ksm_merging_pages").write_text("17\n")
    assert process_merging_pages(7, tmp_path) == 42
    assert process_merging_pages(8, tmp_path) == 17
    assert process_merging_pages(9, tmp_path) is None


def test_every_field_has_a_meaning_and_the_tunable_ones_exclude_run_and_advisor_mode() -> None:
    assert all(f.meaning for f in FIELDS)
    assert "run" not in TUNABLE and "advisor_mode" not in TUNABLE and "pages_sharing" not in TUNABLE
    assert {"pages_to_scan", "sleep_millisecs", "max_page_sharing", "merge_across_nodes"} <= set(TUNABLE)


@pytest.mark.skipif(not SYSFS.exists(), reason="this kernel has no /sys/kernel/mm/ksm")
def test_the_table_knows_every_field_of_this_kernel() -> None:
    unknown = sorted(p.name for p in SYSFS.iterdir() if p.name not in BY_NAME)
    assert unknown == [], f"fields of this kernel's KSM missing from host/ksm.py FIELDS: {unknown}"


def test_read_all_keeps_the_table_order_and_skips_missing_fields(tmp_path: Path) -> None:
    ksm = fake_sysfs(tmp_path)
    values = ksm.read_all()
    assert list(values) == [f.name for f in FIELDS if f.name in SAMPLE]
    assert values["pages_sharing"] == 340 and values["advisor_mode"] == "none"
    assert ksm.advisor_choices() == ("none", "scan-time")


def test_read_all_without_ksm_is_a_host_error(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="CONFIG_KSM"):
        KsmSysfs(tmp_path / "nothing").read_all()


@pytest.mark.parametrize(("pairs", "words"), [
    ({"frobnicate": 1}, ("'frobnicate'", "pages_to_scan")),
    ({"run": 1}, ("'run'", "ksm start")),
    ({"pages_sharing": 1}, ("'pages_sharing'",)),
    ({"pages_to_scan": "-1"}, ("pages_to_scan=-1", "not be negative")),
    ({"pages_to_scan": "12.5"}, ("pages_to_scan='12.5'", "whole number")),
    ({"pages_to_scan": "lots"}, ("whole number",)),
    ({"merge_across_nodes": 2}, ("between 0 and 1",)),
    ({"max_page_sharing": 1}, ("2 or more",)),
])
def test_check_tune_refuses_bad_keys_and_values(pairs: dict[str, object], words: tuple[str, ...]) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_tune(pairs)
    for w in words:
        assert w in str(err.value)


def test_check_tune_accepts_whole_numbers() -> None:
    assert check_tune({"pages_to_scan": "1000", "sleep_millisecs": 5}) == {"pages_to_scan": 1000,
                                                                           "sleep_millisecs": 5}


def test_write_writes_every_value(tmp_path: Path) -> None:
    ksm = fake_sysfs(tmp_path)
    ksm.write({"pages_to_scan": 1000, "sleep_millisecs": 15})
    assert (ksm.read("pages_to_scan"), ksm.read("sleep_millisecs")) == (1000, 15)


def test_write_of_a_field_this_kernel_lacks_writes_nothing(tmp_path: Path) -> None:
    ksm = fake_sysfs(tmp_path)
    with pytest.raises(HostError, match="no 'smart_scan'"):
        ksm.write({"pages_to_scan": 1000, "smart_scan": 1})
    assert ksm.read("pages_to_scan") == 100


class Refusing(KsmSysfs):
    """The kernel answers EBUSY for one field (max_page_sharing while pages are merged)."""

    def _write_one(self, name: str, value: int | str) -> None:
        if name == "max_page_sharing":
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        super()._write_one(name, value)


def test_a_refusal_half_way_puts_the_earlier_values_back(tmp_path: Path) -> None:
    ksm = Refusing(fake_sysfs(tmp_path).root)
    with pytest.raises(HostError) as err:
        ksm.write({"pages_to_scan": 999, "sleep_millisecs": 30, "max_page_sharing": 300})
    assert "refused KSM max_page_sharing=300" in str(err.value) and "ksm stop --unmerge" in str(err.value)
    assert "nothing was changed" in str(err.value)
    assert (ksm.read("pages_to_scan"), ksm.read("sleep_millisecs")) == (100, 20)


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root")
def test_write_on_a_read_only_sysfs_says_so_and_writes_nothing(tmp_path: Path) -> None:
    ksm = fake_sysfs(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(ksm.root), str(ro)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"this host cannot make a read-only bind mount: {mounted.stderr.decode().strip()}")
    try:
        view = KsmSysfs(ro)
        assert not view.writable()
        with pytest.raises(HostError, match=r"read-only.*nothing was changed"):
            view.write({"pages_to_scan": 1000})
        assert view.read("pages_to_scan") == 100
    finally:
        subprocess.run(["umount", str(ro)], check=True)
