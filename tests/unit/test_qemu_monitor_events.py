"""The QMP event -> domain state table (pure)."""
from __future__ import annotations

import pytest

from pyvirt.qemu import events as ev
from pyvirt.qemu.events import Transition, domain_transition, exit_transition

# (event, data, state before, expected "state (reason)" or None)
CASES = [
    (ev.STOP, {}, "running", "paused (user)"),
    (ev.RESUME, {}, "paused", "running (unpaused)"),
    (ev.SHUTDOWN, {"guest": True, "reason": "guest-shutdown"}, "running", "in shutdown (user)"),
    (ev.SHUTDOWN, {"guest": False, "reason": "host-qmp-quit"}, "running", "in shutdown (unknown)"),
    (ev.SHUTDOWN, {"guest": True, "reason": "guest-shutdown"}, "paused", "in shutdown (user)"),
    (ev.SHUTDOWN, {"guest": True, "reason": "guest-panic"}, "running", "crashed (panicked)"),
    (ev.GUEST_PANICKED, {"action": "pause"}, "running", "crashed (panicked)"),
    (ev.GUEST_PANICKED, {"action": "poweroff"}, "paused", "crashed (panicked)"),
    (ev.GUEST_CRASHLOADED, {"action": "run"}, "running", "running (crashed)"),
    (ev.RESUME, {}, "crashed", "running (unpaused)"),
    (ev.SUSPEND, {}, "running", "pmsuspended (unknown)"),
    (ev.SUSPEND_DISK, {}, "running", "pmsuspended (unknown)"),
    (ev.WAKEUP, {}, "pmsuspended", "running (event wakeup)"),
    (ev.WATCHDOG, {"action": "pause"}, "running", "paused (watchdog)"),
    (ev.WATCHDOG, {"action": "reset"}, "running", None),
    (ev.BLOCK_IO_ERROR, {"action": "stop", "operation": "write"}, "running", "paused (I/O error)"),
    (ev.BLOCK_IO_ERROR, {"action": "report"}, "running", None),
    # QEMU run with -no-shutdown sends STOP after SHUTDOWN: still "in shutdown".
    (ev.STOP, {}, "in shutdown", None),
    (ev.STOP, {}, "paused", None),
    (ev.RESUME, {}, "running", None),
    (ev.RESUME, {}, "in shutdown", None),
    (ev.SHUTDOWN, {"guest": True}, "in shutdown", None),
    (ev.GUEST_PANICKED, {}, "crashed", None),
    (ev.POWERDOWN, {}, "running", None),
    (ev.RESET, {"guest": True, "reason": "guest-reset"}, "running", None),
    (ev.BALLOON_CHANGE, {"actual": 1 << 26}, "running", None),
    (ev.MONITOR_CLOSED, {}, "running", None),
    ("SOME_FUTURE_EVENT", {}, "running", None),
]


@pytest.mark.parametrize("name,data,current,expected", CASES)
def test_transition_table(name: str, data: dict, current: str, expected: str | None) -> None:
    got = domain_transition(name, data, current)
    assert (str(got) if got else None) == expected


def test_without_current_state_the_rule_applies() -> None:
    assert domain_transition(ev.STOP) == Transition("paused", "user")
    assert domain_transition(ev.SHUTDOWN, {"guest": True, "reason": "guest-shutdown"}) == Transition(
        "in shutdown", "user", "guest-shutdown"
    )


def test_every_event_constant_is_in_the_table() -> None:
    names = {v for k, v in vars(ev).items() if k.isupper() and isinstance(v, str) and v.isupper()}
    assert names - set(ev.TRANSITIONS) == set()


def test_every_transition_lands_in_a_known_state() -> None:
    for name, (states, rule) in ev.TRANSITIONS.items():
        assert states <= ev.STATES, name
        for data in ({}, {"guest": True}, {"action": "pause"}, {"action": "stop"}, {"reason": "guest-panic"}):
            got = rule(data)
            assert got is None or got.state in ev.STATES, (name, data)


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({"shutdown_seen": True}, "shut off (shutdown)"),
        ({"shutdown_seen": False}, "shut off (crashed)"),
        ({"shutdown_seen": True, "destroyed": True}, "shut off (destroyed)"),
        ({"shutdown_seen": False, "destroyed": True}, "shut off (destroyed)"),
        ({"shutdown_seen": True, "panicked": True}, "shut off (crashed)"),
    ],
)
def test_exit_transition(kwargs: dict, expected: str) -> None:
    got = exit_transition(**kwargs)
    assert got.state == ev.SHUTOFF
    assert str(got) == expected


def test_fixed_transitions() -> None:
    assert str(ev.BOOTED) == "running (booted)"
    assert str(ev.START_FAILED) == "shut off (failed)"
