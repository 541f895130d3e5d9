"""The KSM tuner's decision (host/ksm_policy.py) against ksmtuned's algorithm, branch by branch.

Readings are simulated: a 16 GiB host unless a test says otherwise, so the
default threshold is 20% of RAM = 3355443 kB and the sleep is KSM_SLEEP_MSEC.
"""
from __future__ import annotations

import pytest

from pyvirt.errors import InvalidArgument
from pyvirt.host.ksm_policy import (
    MemoryReading,
    TunerSettings,
    decide,
    ksmtuned_name,
    settings_key,
    sleep_millisecs,
    threshold_kib,
)

GIB = 1024 * 1024  # kB
TOTAL = 16 * GIB
DEFAULT = TunerSettings()
THRES = TOTAL * 20 // 100


def test_defaults_are_ksmtuned_defaults() -> None:
    assert DEFAULT.as_dict() == {"monitor_interval": 60, "sleep_msec": 10, "npages_boost": 300,
                                 "npages_decay": -50, "npages_min": 64, "npages_max": 1250, "thres_coef": 20,
                                 "thres_const": 2048}


def test_threshold_is_coef_percent_of_ram_but_at_least_const() -> None:
    assert threshold_kib(DEFAULT, TOTAL) == THRES
    assert threshold_kib(DEFAULT, 8000) == 2048  # 20% of 8000 kB is 1600: the constant wins
    assert threshold_kib(TunerSettings(thres_coef=0, thres_const=5), TOTAL) == 5


@pytest.mark.parametrize(("sleep_msec", "total", "expected"), [
    (10, 16 * GIB, 10),  # a 16 GiB host sleeps KSM_SLEEP_MSEC
    (20, 8 * GIB, 40),  # half the RAM, twice the sleep
    (10, 64 * GIB, 10),  # 2.5 ms scaled, but never under 10 ms
    (50, 32 * GIB, 25),
    (0, 16 * GIB, 10),
])
def test_sleep_is_scaled_by_16_gib_over_ram_never_under_10_ms(sleep_msec: int, total: int, expected: int) -> None:
    assert sleep_millisecs(TunerSettings(sleep_msec=sleep_msec), total) == expected


def test_stop_when_guests_and_threshold_fit_and_free_is_above_threshold() -> None:
    d = decide(DEFAULT, MemoryReading(TOTAL, free_kib=THRES + 1), committed_kib=GIB, pages_to_scan=500)
    assert (d.action, d.run, d.pages_to_scan) == ("stop", False, 500)  # pages_to_scan is left alone
    assert d.threshold_kib == THRES and d.previous_pages_to_scan == 500
    assert "KSM stops" in d.describe() and f"threshold {THRES} kB" in d.describe()


def test_runs_and_boosts_when_free_memory_is_under_the_threshold() -> None:
    d = decide(DEFAULT, MemoryReading(TOTAL, free_kib=THRES - 1), committed_kib=GIB, pages_to_scan=500)
    assert (d.action, d.run, d.pages_to_scan, d.sleep_millisecs) == ("boost", True, 800, 10)
    assert "boost" in d.describe() and "500 -> 800" in d.describe()


def test_runs_and_decays_when_guests_do_not_fit_but_free_memory_is_plenty() -> None:
    committed = TOTAL - THRES  # committed + threshold == total: not "< total"
    d = decide(DEFAULT, MemoryReading(TOTAL, free_kib=THRES + GIB), committed_kib=committed, pages_to_scan=500)
    assert (d.action, d.run, d.pages_to_scan) == ("decay", True, 450)
    assert "does not fit" in d.describe()


def test_free_equal_to_threshold_neither_stops_nor_boosts() -> None:
    """ksmtuned compares strictly: free > thres to stop, free < thres to boost."""
    d = decide(DEFAULT, MemoryReading(TOTAL, free_kib=THRES), committed_kib=0, pages_to_scan=500)
    assert (d.action, d.pages_to_scan) == ("decay", 450)


def test_boost_is_clamped_to_npages_max() -> None:
    d = decide(DEFAULT, MemoryReading(TOTAL, free_kib=0), committed_kib=TOTAL, pages_to_scan=1200)
    assert (d.action, d.pages_to_scan) == ("boost", 1250)
    d = decide(DEFAULT, MemoryReading(TOTAL, free_kib=0), committed_kib=TOTAL, pages_to_scan=5000)
    assert d.pages_to_scan == 1250  # a value set by hand above MAX comes back into range


def test_decay_is_clamped_to_npages_min() -> None:
    d = decide(DEFAULT, MemoryReading(TOTAL, free_kib=TOTAL), committed_kib=TOTAL, pages_to_scan=100)
    assert (d.action, d.pages_to_scan) == ("decay", 64)
    d = decide(DEFAULT, MemoryReading(TOTAL, free_kib=TOTAL), committed_kib=TOTAL, pages_to_scan=0)
    assert d.pages_to_scan == 64  # the kernel's pages_to_scan may start under MIN


def test_repeated_boosts_climb_to_max_then_decays_fall_to_min() -> None:
    npages, seen = 100, []
    for _ in range(6):
        npages = decide(DEFAULT, MemoryReading(TOTAL, 0), TOTAL, npages).pages_to_scan
        seen.append(npages)
    assert seen == [400, 700, 1000, 1250, 1250, 1250]
    for _ in range(30):
        npages = decide(DEFAULT, MemoryReading(TOTAL, TOTAL), TOTAL, npages).pages_to_scan
    assert npages == 64


def test_custom_settings_drive_the_same_branches() -> None:
    s = TunerSettings(npages_boost=1000, npages_decay=-10, npages_min=10, npages_max=20000, thres_coef=100)
    # a threshold of all RAM: KSM always runs, and boosts while free < total
    d = decide(s, MemoryReading(TOTAL, TOTAL - 1), committed_kib=0, pages_to_scan=100)
    assert (d.action, d.pages_to_scan) == ("boost", 1100)


def test_memory_reading_counts_page_cache_as_free() -> None:
    m = MemoryReading.from_meminfo({"MemTotal": 1000, "MemFree": 100, "Buffers": 20, "Cached": 300,
                                    "MemAvailable": 900})
    assert (m.total_kib, m.free_kib) == (1000, 420)


def test_setting_names_take_ksmtuned_spellings() -> None:
    assert settings_key("KSM_NPAGES_BOOST") == settings_key("ksm_npages_boost") == "npages_boost"
    assert settings_key("monitor_interval") == "monitor_interval"
    assert settings_key("pages_to_scan") is None and settings_key("KSM_FOO") is None
    assert ksmtuned_name("thres_const") == "KSM_THRES_CONST"


def test_replaced_checks_and_applies() -> None:
    s = DEFAULT.replaced({"KSM_NPAGES_MAX": "3000", "thres_coef": 50})
    assert (s.npages_max, s.thres_coef) == (3000, 50)


@pytest.mark.parametrize(("pairs", "words"), [
    ({"KSM_FROB": 1}, ("'KSM_FROB'", "KSM_MONITOR_INTERVAL")),
    ({"npages_boost": "-5"}, ("KSM_NPAGES_BOOST=-5", "negative")),
    ({"npages_boost": "1.5"}, ("KSM_NPAGES_BOOST='1.5'", "whole number")),
    ({"npages_boost": True}, ("whole number",)),
    ({"npages_decay": 10}, ("KSM_NPAGES_DECAY=10", "0 or negative")),
    ({"npages_max": 10}, ("KSM_NPAGES_MAX=10", "KSM_NPAGES_MIN (64)")),
    ({"thres_coef": 101}, ("KSM_THRES_COEF=101", "percentage")),
    ({"monitor_interval": 0}, ("KSM_MONITOR_INTERVAL=0", "1 second")),
])
def test_replaced_refuses_bad_settings(pairs: dict[str, object], words: tuple[str, ...]) -> None:
    with pytest.raises(InvalidArgument) as err:
        DEFAULT.replaced(pairs)
    for w in words:
        assert w in str(err.value)
