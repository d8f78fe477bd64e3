"""Machine states and which actions each state allows (Fly's machine-states reference)."""

from __future__ import annotations

from enum import StrEnum

from aerodrome.core.errors import FailedPreconditionError


class MachineState(StrEnum):
    CREATED = "created"
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SUSPENDING = "suspending"
    SUSPENDED = "suspended"
    RESTARTING = "restarting"
    UPDATING = "updating"
    REPLACING = "replacing"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"
    FAILED = "failed"
    LAUNCH_FAILED = "launch_failed"

    @property
    def is_settled(self) -> bool:
        """A state a machine rests in; `wait?state=settled` returns on any of these."""
        return self in _SETTLED


_SETTLED = frozenset(
    {
        MachineState.CREATED,
        MachineState.STARTED,
        MachineState.STOPPED,
        MachineState.SUSPENDED,
        MachineState.FAILED,
        MachineState.DESTROYED,
    }
)


class Action(StrEnum):
    START = "start"
    STOP = "stop"
    SUSPEND = "suspend"
    RESTART = "restart"
    UPDATE = "update"
    DESTROY = "destroy"
    SIGNAL = "signal"
    EXEC = "exec"


S = MachineState
#: For each action, the states it may begin from. Destroy of a started machine needs `force`.
ALLOWED_FROM: dict[Action, frozenset[MachineState]] = {
    Action.START: frozenset({S.CREATED, S.STOPPED, S.SUSPENDED, S.FAILED}),
    Action.STOP: frozenset({S.STARTED, S.SUSPENDED, S.STOPPED, S.CREATED, S.FAILED, S.RESTARTING}),
    Action.SUSPEND: frozenset({S.STARTED}),
    Action.RESTART: frozenset({S.STARTED, S.FAILED}),
    Action.UPDATE: frozenset({S.CREATED, S.STARTED, S.STOPPED, S.SUSPENDED, S.FAILED}),
    Action.DESTROY: frozenset({S.CREATED, S.STOPPED, S.SUSPENDED, S.FAILED, S.LAUNCH_FAILED}),
    Action.SIGNAL: frozenset({S.STARTED}),
    Action.EXEC: frozenset({S.STARTED}),
}

_REFUSALS: dict[Action, str] = {
    Action.START: "machine still active, refusing to start",
    Action.STOP: "machine is not running, refusing to stop",
    Action.SUSPEND: "machine is not running, refusing to suspend",
    Action.RESTART: "machine is not running, refusing to restart",
    Action.UPDATE: "machine is in a transient state, refusing to update",
    Action.DESTROY: "machine still active, refusing to destroy; stop it first or use force=true",
    Action.SIGNAL: "machine is not running, refusing to signal",
    Action.EXEC: "machine is not running, refusing to exec",
}


def check_action(action: Action, state: MachineState, *, force: bool = False) -> None:
    """Raise Fly's `failed_precondition` error unless `action` may begin from `state`."""
    if action is Action.DESTROY and force and state is not S.DESTROYED:
        return
    if state not in ALLOWED_FROM[action]:
        raise FailedPreconditionError(f"failed_precondition: {_REFUSALS[action]} (current state: {state.value})")
