"""Domain states as virsh prints them, and the one table of legal transitions.

QMP events map to (state, reason) in ``qemu/events.py``; this module guards
the daemon's own moves so a bug shows as an error, not a silent wrong state.
"""
from __future__ import annotations

import enum

from ..errors import InternalError
from ..qemu import events as ev


class State(str, enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    IN_SHUTDOWN = "in shutdown"
    SHUTOFF = "shut off"
    CRASHED = "crashed"
    PMSUSPENDED = "pmsuspended"

    @classmethod
    def from_event_state(cls, name: str) -> "State":
        """qemu/events.py names 'shut off' as 'shutoff'."""
        return cls.SHUTOFF if name == ev.SHUTOFF else cls(name)


_ALIVE = frozenset({State.RUNNING, State.PAUSED, State.IN_SHUTDOWN, State.CRASHED, State.PMSUSPENDED})

# from-state -> the states it may move to. A crashed domain whose QEMU still
# exists (on_crash=preserve) is alive; once QEMU is gone it is shut off.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.SHUTOFF: frozenset({State.RUNNING, State.PAUSED, State.SHUTOFF}),
    **{state: _ALIVE | {State.SHUTOFF} for state in _ALIVE},
}


def check_transition(name: str, old: State, new: State) -> None:
    """Raise InternalError for a transition the table does not allow (a bug, not user error)."""
    if new not in TRANSITIONS[old]:
        raise InternalError(f"domain '{name}': illegal state change {old.value} -> {new.value}")
