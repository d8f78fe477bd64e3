"""Which actions each machine state allows, and Fly's refusal when it does not."""

from __future__ import annotations

import pytest

from aerodrome.core import Action, FailedPreconditionError, MachineState, check_action
from aerodrome.core.states import ALLOWED_FROM

S = MachineState


def test_settled_states_are_the_ones_wait_settled_returns_on() -> None:
    settled = {s for s in MachineState if s.is_settled}
    assert settled == {S.CREATED, S.STARTED, S.STOPPED, S.SUSPENDED, S.FAILED, S.DESTROYED}


def test_states_are_fly_strings() -> None:
    assert S("launch_failed") is S.LAUNCH_FAILED and S.STARTED == "started"
    assert {a.value for a in Action} == {"start", "stop", "suspend", "restart", "update", "destroy", "signal", "exec"}


@pytest.mark.parametrize("action", list(Action))
def test_every_action_begins_only_from_its_states(action: Action) -> None:
    for state in MachineState:
        if state in ALLOWED_FROM[action]:
            check_action(action, state)
        else:
            with pytest.raises(FailedPreconditionError, match=rf"\(current state: {state.value}\)$"):
                check_action(action, state)


@pytest.mark.parametrize(
    ("action", "state", "message"),
    [
        (Action.START, S.STARTED, "failed_precondition: machine still active, refusing to start"),
        (Action.STOP, S.DESTROYED, "failed_precondition: machine is not running, refusing to stop"),
        (Action.SUSPEND, S.STOPPED, "failed_precondition: machine is not running, refusing to suspend"),
        (Action.RESTART, S.STOPPED, "failed_precondition: machine is not running, refusing to restart"),
        (Action.UPDATE, S.STARTING, "failed_precondition: machine is in a transient state, refusing to update"),
        (Action.SIGNAL, S.STOPPED, "failed_precondition: machine is not running, refusing to signal"),
        (Action.EXEC, S.SUSPENDED, "failed_precondition: machine is not running, refusing to exec"),
    ],
)
def test_refusals_say_why(action: Action, state: MachineState, message: str) -> None:
    with pytest.raises(FailedPreconditionError) as caught:
        check_action(action, state)
    assert str(caught.value) == f"{message} (current state: {state.value})"


def test_destroying_a_running_machine_needs_force() -> None:
    with pytest.raises(FailedPreconditionError, match="stop it first or use force=true"):
        check_action(Action.DESTROY, S.STARTED)
    for state in MachineState:
        if state is not S.DESTROYED:
            check_action(Action.DESTROY, state, force=True)
    with pytest.raises(FailedPreconditionError, match="current state: destroyed"):
        check_action(Action.DESTROY, S.DESTROYED, force=True)


def test_force_means_nothing_to_other_actions() -> None:
    with pytest.raises(FailedPreconditionError):
        check_action(Action.START, S.STARTED, force=True)
