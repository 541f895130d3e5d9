"""The daemon's state table: legal moves pass, illegal ones are bugs that raise."""
from __future__ import annotations

import pytest

from pyvirt.daemon.states import State, check_transition
from pyvirt.errors import InternalError


@pytest.mark.parametrize("old,new", [
    (State.SHUTOFF, State.RUNNING), (State.SHUTOFF, State.PAUSED), (State.RUNNING, State.PAUSED),
    (State.PAUSED, State.RUNNING), (State.RUNNING, State.IN_SHUTDOWN), (State.IN_SHUTDOWN, State.SHUTOFF),
    (State.RUNNING, State.CRASHED), (State.CRASHED, State.SHUTOFF), (State.RUNNING, State.SHUTOFF),
])
def test_legal(old: State, new: State) -> None:
    check_transition("d", old, new)


@pytest.mark.parametrize("new", [State.IN_SHUTDOWN, State.CRASHED, State.PMSUSPENDED])
def test_a_stopped_domain_cannot_jump(new: State) -> None:
    with pytest.raises(InternalError, match="shut off -> "):
        check_transition("d", State.SHUTOFF, new)


def test_event_state_names() -> None:
    assert State.from_event_state("shutoff") is State.SHUTOFF
    assert State.from_event_state("in shutdown") is State.IN_SHUTDOWN
