"""The agent's durable step runner, in the shape of superfly/fsm (flyd): every operation is a named sequence of
steps, written down as it goes, and resumed where it was after a crash of the agent.

An operation is its idempotency key, its kind ("prepare", "stop"…) and its arguments (JSON). Before its first
step acts, the operation and that step's START are committed to the run log; after each step, its COMPLETE and
the START of the next one are committed together, with the operation's state (what the steps found so far, e.g.
the image digest); after the last one, its COMPLETE and the operation's result, under its key, in one
transaction. At the agent's start `resume` carries every unfinished operation on from the step whose START is
its last row: each step is idempotent, so re-running one that acted before the crash is safe. Resumed operations
run in the background (a stop may wait out its timeout; the agent answers meanwhile), those of one resource
(machine, volume) one after the other and before any new operation on it; a retry of a resumed key joins it.
A step that fails runs the plan's `undo` and ends the operation; its error is not kept, the key may be sent again.

Plans are built from (kind, args) by the agent (`Planner`), so a resumed operation runs the same steps as the
one that was cut short. `AERODROME_FAULT_KILL_AT=agent.<kind>.<step>` kills the agent right after the step has
acted and before its COMPLETE is written: the worst moment for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aerodrome.core import fault_point

log = logging.getLogger("aerodrome.agent.steps")

JSON = dict[str, Any]
State = dict[str, Any]  # what an operation's steps found so far, handed from one step to the next


@dataclass(frozen=True, slots=True)
class Step:
    name: str  # a verb: what the step does (`make_sandbox`)
    act: Callable[[State], Awaitable[None]]  # reads and adds to the operation's state


async def _nothing(_: State) -> None:
    return None


def _no_result(_: State) -> Any:
    return None


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...]
    result: Callable[[State], Any] = _no_result  # the operation's result (JSON), from its final state
    undo: Callable[[State], Awaitable[None]] = _nothing  # after a step failed: leave the host as it was


Planner = Callable[[str, JSON], Plan]
ResourceOf = Callable[[str, JSON], str]  # the machine or volume an operation acts on, from its kind and arguments


@dataclass(frozen=True, slots=True)
class Unfinished:
    key: str
    kind: str
    args: JSON
    state: State
    step: str  # the step whose START is written and whose COMPLETE is not


class RunLog(Protocol):
    """Where the runner writes operations down (the agent's journal). Every call commits before it returns."""

    async def recorded(self, key: str, kind: str) -> tuple[bool, Any]: ...

    async def begin(self, key: str, kind: str, args: JSON, step: str) -> None:
        """The operation, and the START of its first step."""
        ...

    async def advance(self, key: str, done: str, state: State, step: str) -> None:
        """COMPLETE of `done`, the state after it, and START of `step`."""
        ...

    async def finish(self, key: str, kind: str, done: str, state: State, result: Any) -> None:
        """COMPLETE of the last step, and the result under the key."""
        ...

    async def fail(self, key: str, step: str, error: str) -> None: ...

    async def unfinished(self) -> list[Unfinished]:
        """The operations begun and not finished, oldest first."""
        ...


class StepRunner:
    def __init__(self, log: RunLog, planner: Planner, resource_of: ResourceOf) -> None:
        self._log = log
        self._planner = planner
        self._resource_of = resource_of
        self._inflight: dict[str, asyncio.Future[Any]] = {}  # operations under way, by key
        self._resumed: dict[str, asyncio.Task[None]] = {}  # the resumed operations of each resource, in order
        self._resuming: dict[str, str] = {}  # the kind of the resumed operation each resource is in
        self._chain_kinds: dict[str, set[str]] = {}  # the kinds of operations each resumed chain holds

    async def submit(
        self, key: str, kind: str, args: JSON, *, admit: Callable[[], None] = lambda: None, wait: float | None = None
    ) -> asyncio.Future[Any]:
        """The operation's outcome: its recorded result when the key was seen before, the one under way when it
        is running, else a new run (`admit` may refuse it first, by raising). A new run waits up to `wait`
        seconds for the resumed operations of its resource (TimeoutError after that, nothing begun)."""
        resumed = self._resumed.get(self._resource_of(kind, args))
        if resumed is not None and key not in self._inflight:
            await asyncio.wait_for(asyncio.shield(resumed), wait)  # what was begun on this resource goes first
        running = self._inflight.get(key)
        if running is not None:
            return running
        seen, result = await self._log.recorded(key, kind)
        if seen:
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(result)
            return done
        admit()
        plan = self._planner(kind, args)
        await self._log.begin(key, kind, args, plan.steps[0].name)
        task = asyncio.get_running_loop().create_task(
            self._execute(Unfinished(key, kind, args, {}, plan.steps[0].name), plan)
        )
        self._inflight[key] = task
        task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return task

    async def _execute(self, run: Unfinished, plan: Plan) -> Any:
        names = [step.name for step in plan.steps]
        state = dict(run.state)
        for index in range(names.index(run.step), len(names)):
            step = plan.steps[index]
            try:
                await step.act(state)
            except BaseException as exc:
                await self._failed(run, plan, step.name, state, exc)
                raise
            fault_point(f"agent.{run.kind}.{step.name}")  # acted, not yet COMPLETE
            if index + 1 < len(names):
                await self._log.advance(run.key, step.name, state, names[index + 1])
        result = plan.result(state)
        await self._log.finish(run.key, run.kind, names[-1], state, result)
        return result

    async def _failed(self, run: Unfinished, plan: Plan, step: str, state: State, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            return  # the agent is closing: the operation stays unfinished, resumed at the next start
        try:
            await plan.undo(state)
        except Exception:
            log.exception("could not undo %s %s after its step %s failed", run.kind, run.key, step)
        await self._log.fail(run.key, step, f"{type(exc).__name__}: {exc}")

    async def resume(self) -> list[Unfinished]:
        """Carry every unfinished operation on from its step, in the background: one resource's operations one
        after the other, in the order they began. Returns what is resumed."""
        found = await self._log.unfinished()
        chains: dict[str, list[tuple[Unfinished, Plan, asyncio.Future[Any]]]] = {}
        loop = asyncio.get_running_loop()
        for run in found:
            try:
                plan = self._planner(run.kind, run.args)
                resource = self._resource_of(run.kind, run.args)
            except Exception as exc:  # written by another version of the agent: it cannot be carried on
                log.error("cannot resume %s %s: %s", run.kind, run.key, exc)
                await self._log.fail(run.key, run.step, f"not resumable: {exc}")
                continue
            outcome = loop.create_future()
            outcome.add_done_callback(_retrieved)
            self._inflight[run.key] = outcome
            chains.setdefault(resource, []).append((run, plan, outcome))
        for resource, runs in chains.items():
            self._resumed[resource] = loop.create_task(self._resume_chain(resource, runs))
            self._chain_kinds[resource] = {run.kind for run, _, _ in runs}
        return found

    async def settle(self, kinds: set[str]) -> None:
        """Wait for the resumed chains that hold an operation of one of `kinds` (their outcomes are logged)."""
        waiting = [task for resource, task in self._resumed.items() if self._chain_kinds.get(resource, set()) & kinds]
        await asyncio.gather(*waiting, return_exceptions=True)

    async def _resume_chain(self, resource: str, runs: list[tuple[Unfinished, Plan, asyncio.Future[Any]]]) -> None:
        try:
            for run, plan, outcome in runs:
                log.info("resuming %s %s at its step %s", run.kind, run.key, run.step)
                self._resuming[resource] = run.kind
                try:
                    outcome.set_result(await self._execute(run, plan))
                except asyncio.CancelledError:
                    outcome.cancel()
                    raise
                except Exception as exc:
                    outcome.set_exception(exc)
                    log.warning("%s %s, resumed, failed: %s", run.kind, run.key, exc)
                finally:
                    self._inflight.pop(run.key, None)
        finally:
            self._resumed.pop(resource, None)
            self._resuming.pop(resource, None)

    def resuming(self, resource: str) -> str:
        """The kind of the resumed operation `resource` is in ("" when none): its host state is not final yet."""
        return self._resuming.get(resource, "")

    async def drain(self) -> None:
        """Wait for the operations under way, resumed ones included (closing the agent)."""
        waiting = [*self._inflight.values(), *self._resumed.values()]
        await asyncio.gather(*waiting, return_exceptions=True)


def _retrieved(outcome: asyncio.Future[Any]) -> None:
    """A resumed operation's outcome no retry asked for is logged by the chain, not by the event loop."""
    if not outcome.cancelled():
        outcome.exception()
