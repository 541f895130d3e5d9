"""QMP event names and the one table that turns them into domain states.

Pure: no I/O. The daemon feeds every event the monitor delivers through
``domain_transition`` and the process exit through ``exit_transition``; the
states and reasons are the words ``virsh domstate --reason`` prints, e.g.
``paused (user)`` or ``shut off (shutdown)``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Lifecycle events QEMU 7.2 sends (qapi/run-state.json and friends).
SHUTDOWN = "SHUTDOWN"
POWERDOWN = "POWERDOWN"
RESET = "RESET"
STOP = "STOP"
RESUME = "RESUME"
SUSPEND = "SUSPEND"
SUSPEND_DISK = "SUSPEND_DISK"
WAKEUP = "WAKEUP"
GUEST_PANICKED = "GUEST_PANICKED"
GUEST_CRASHLOADED = "GUEST_CRASHLOADED"
WATCHDOG = "WATCHDOG"
BLOCK_IO_ERROR = "BLOCK_IO_ERROR"
# Events that never change the domain's state (kept here so the table is exhaustive).
BALLOON_CHANGE = "BALLOON_CHANGE"
DEVICE_DELETED = "DEVICE_DELETED"
RTC_CHANGE = "RTC_CHANGE"
MIGRATION = "MIGRATION"
MIGRATION_PASS = "MIGRATION_PASS"
NIC_RX_FILTER_CHANGED = "NIC_RX_FILTER_CHANGED"
JOB_STATUS_CHANGE = "JOB_STATUS_CHANGE"
BLOCK_JOB_COMPLETED = "BLOCK_JOB_COMPLETED"
BLOCK_JOB_READY = "BLOCK_JOB_READY"
BLOCK_JOB_ERROR = "BLOCK_JOB_ERROR"
BLOCK_JOB_CANCELLED = "BLOCK_JOB_CANCELLED"
VSERPORT_CHANGE = "VSERPORT_CHANGE"
MEMORY_DEVICE_SIZE_CHANGE = "MEMORY_DEVICE_SIZE_CHANGE"

#: Synthetic last event a Monitor delivers when the QMP connection ends
#: (QEMU exited, or closed the socket). Not a QEMU event.
MONITOR_CLOSED = "PYVIRT_MONITOR_CLOSED"

RUNNING = "running"
PAUSED = "paused"
SHUTOFF = "shutoff"
CRASHED = "crashed"
IN_SHUTDOWN = "in shutdown"
PMSUSPENDED = "pmsuspended"

#: Every state a domain can be in.
STATES = frozenset({RUNNING, PAUSED, SHUTOFF, CRASHED, IN_SHUTDOWN, PMSUSPENDED})
#: How virsh prints a state where it differs from the key above.
VIRSH_STATE_NAMES = {SHUTOFF: "shut off"}


@dataclass(frozen=True)
class Transition:
    """A domain state and the reason for it, e.g. ``paused (user)``.

    ``cause`` keeps QEMU's own word for it when QEMU gave one (the SHUTDOWN
    event's ``reason``, e.g. ``guest-shutdown``) for logs and events.
    """

    state: str
    reason: str
    cause: str | None = None

    def __str__(self) -> str:
        return f"{VIRSH_STATE_NAMES.get(self.state, self.state)} ({self.reason})"


#: What the daemon records once ``cont`` after spawn succeeded.
BOOTED = Transition(RUNNING, "booted")
#: What the daemon records when spawn failed.
START_FAILED = Transition(SHUTOFF, "failed")

_Rule = Callable[[Mapping[str, Any]], "Transition | None"]
_ALIVE = frozenset({RUNNING, PAUSED, PMSUSPENDED, IN_SHUTDOWN, CRASHED})


def _shutdown(data: Mapping[str, Any]) -> Transition:
    cause = data.get("reason")
    if cause == "guest-panic":  # QEMU's panic action was poweroff
        return Transition(CRASHED, "panicked", cause)
    return Transition(IN_SHUTDOWN, "user" if data.get("guest") else "unknown", cause)


def _when(key: str, value: str, then: Transition) -> _Rule:
    return lambda data: then if data.get(key) == value else None


def _always(then: Transition) -> _Rule:
    return lambda data: then


def _never(data: Mapping[str, Any]) -> None:
    return None


#: event -> (states it applies in, rule). An event in a state outside its set
#: changes nothing (e.g. QEMU's STOP that follows SHUTDOWN with -no-shutdown
#: must not turn "in shutdown" into "paused").
TRANSITIONS: dict[str, tuple[frozenset[str], _Rule]] = {
    SHUTDOWN: (frozenset({RUNNING, PAUSED, PMSUSPENDED}), _shutdown),
    STOP: (frozenset({RUNNING}), _always(Transition(PAUSED, "user"))),
    RESUME: (frozenset({PAUSED, CRASHED, PMSUSPENDED}), _always(Transition(RUNNING, "unpaused"))),
    SUSPEND: (frozenset({RUNNING}), _always(Transition(PMSUSPENDED, "unknown"))),
    SUSPEND_DISK: (frozenset({RUNNING}), _always(Transition(PMSUSPENDED, "unknown"))),
    WAKEUP: (frozenset({PMSUSPENDED}), _always(Transition(RUNNING, "event wakeup"))),
    GUEST_PANICKED: (_ALIVE - {CRASHED}, _always(Transition(CRASHED, "panicked"))),
    GUEST_CRASHLOADED: (frozenset({RUNNING, PAUSED}), _always(Transition(RUNNING, "crashed"))),
    WATCHDOG: (frozenset({RUNNING}), _when("action", "pause", Transition(PAUSED, "watchdog"))),
    BLOCK_IO_ERROR: (frozenset({RUNNING}), _when("action", "stop", Transition(PAUSED, "I/O error"))),
    # The guest keeps running through these; the daemon may act on them
    # (on_reboot, balloon stats, hot-unplug) but the state does not change.
    POWERDOWN: (_ALIVE, _never),
    RESET: (_ALIVE, _never),
    BALLOON_CHANGE: (_ALIVE, _never),
    DEVICE_DELETED: (_ALIVE, _never),
    RTC_CHANGE: (_ALIVE, _never),
    MIGRATION: (_ALIVE, _never),
    MIGRATION_PASS: (_ALIVE, _never),
    NIC_RX_FILTER_CHANGED: (_ALIVE, _never),
    JOB_STATUS_CHANGE: (_ALIVE, _never),
    BLOCK_JOB_COMPLETED: (_ALIVE, _never),
    BLOCK_JOB_READY: (_ALIVE, _never),
    BLOCK_JOB_ERROR: (_ALIVE, _never),
    BLOCK_JOB_CANCELLED: (_ALIVE, _never),
    VSERPORT_CHANGE: (_ALIVE, _never),
    MEMORY_DEVICE_SIZE_CHANGE: (_ALIVE, _never),
    # The end of the connection alone does not say why; see exit_transition.
    MONITOR_CLOSED: (_ALIVE, _never),
}


def domain_transition(
    event_name: str, data: Mapping[str, Any] | None = None, current: str | None = None
) -> Transition | None:
    """The state a QMP event moves a domain to, or None if it stays put.

    ``current`` is the domain's state before the event; when given, an event
    that does not apply in that state (see ``TRANSITIONS``) yields None.
    Unknown events yield None: QEMU adds events over time.
    """
    entry = TRANSITIONS.get(event_name)
    if entry is None:
        return None
    states, rule = entry
    if current is not None and current not in states:
        return None
    return rule(data or {})


def exit_transition(*, shutdown_seen: bool, destroyed: bool = False, panicked: bool = False) -> Transition:
    """The state after the QEMU process is gone.

    ``destroyed``: we killed it (virsh destroy). ``shutdown_seen``: QEMU sent
    SHUTDOWN first, so it exited on purpose. ``panicked``: GUEST_PANICKED came
    first. Otherwise QEMU died on its own: libvirt calls that ``crashed``.
    """
    if destroyed:
        return Transition(SHUTOFF, "destroyed")
    if panicked:
        return Transition(SHUTOFF, "crashed")
    if shutdown_seen:
        return Transition(SHUTOFF, "shutdown")
    return Transition(SHUTOFF, "crashed")
