"""The states of domains, networks and pools, and the one table of legal moves for each.

QMP events map to (state, reason) in ``qemu/events.py``; this module guards
the daemon's own moves so a bug shows as an error, not a silent wrong state.
Every move goes through ``Machine.move``, which checks the table and logs it.
"""
from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Generic, Protocol, TypeVar

from ..errors import InternalError
from ..qemu import events as ev

log = logging.getLogger(__name__)


class State(enum.StrEnum):
    """A domain's state, as virsh prints it."""

    RUNNING = "running"
    PAUSED = "paused"
    IN_SHUTDOWN = "in shutdown"
    SHUTOFF = "shut off"
    CRASHED = "crashed"
    PMSUSPENDED = "pmsuspended"

    @classmethod
    def from_event_state(cls, name: str) -> State:
        """qemu/events.py names 'shut off' as 'shutoff'."""
        return cls.SHUTOFF if name == ev.SHUTOFF else cls(name)


class NetState(enum.StrEnum):
    INACTIVE = "inactive"
    ACTIVE = "active"


class PoolState(enum.StrEnum):
    INACTIVE = "inactive"
    RUNNING = "running"


S = TypeVar("S", bound=enum.Enum)


class Stateful(Protocol[S]):
    name: str
    state: S


_ALIVE = frozenset({State.RUNNING, State.PAUSED, State.IN_SHUTDOWN, State.CRASHED, State.PMSUSPENDED})

# from-state -> the states it may move to. A crashed domain whose QEMU still
# exists (on_crash=preserve) is alive; once QEMU is gone it is shut off.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.SHUTOFF: frozenset({State.RUNNING, State.PAUSED, State.SHUTOFF}),
    **{state: _ALIVE | {State.SHUTOFF} for state in _ALIVE},
}

NET_TRANSITIONS: dict[NetState, frozenset[NetState]] = {
    NetState.INACTIVE: frozenset({NetState.ACTIVE}),
    NetState.ACTIVE: frozenset({NetState.INACTIVE}),
}

POOL_TRANSITIONS: dict[PoolState, frozenset[PoolState]] = {
    PoolState.INACTIVE: frozenset({PoolState.RUNNING}),
    PoolState.RUNNING: frozenset({PoolState.INACTIVE}),
}


class Machine(Generic[S]):
    """The legal moves of one kind of object; ``move`` checks, sets and logs."""

    def __init__(self, kind: str, table: Mapping[S, frozenset[S]]) -> None:
        self.kind = kind
        self.table: Mapping[S, frozenset[S]] = table

    def check(self, name: str, old: S, new: S) -> None:
        """Raise InternalError for a move the table does not allow (a bug, not user error)."""
        if new not in self.table[old]:
            raise InternalError(f"{self.kind} '{name}': illegal state change {old.value} -> {new.value}")

    def move(self, obj: Stateful[S], new: S, why: str) -> None:
        self.check(obj.name, obj.state, new)
        log.info("%s %s: %s -> %s (%s)", self.kind, obj.name, obj.state.value, new.value, why)
        obj.state = new


DOMAIN_STATES: Machine[State] = Machine("domain", TRANSITIONS)
NETWORK_STATES: Machine[NetState] = Machine("network", NET_TRANSITIONS)
POOL_STATES: Machine[PoolState] = Machine("pool", POOL_TRANSITIONS)


def check_transition(name: str, old: State, new: State) -> None:
    """A domain move the table does not allow raises InternalError."""
    DOMAIN_STATES.check(name, old, new)
