"""The step runner on its own, over the agent's journal in a temporary SQLite file: the order of its START and
COMPLETE rows, results under keys, resuming an operation cut short (by cancellation, and by SIGKILL at a fault
point in a child process), failures that undo, and sealed arguments."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aerodrome.agent.journal import Journal
from aerodrome.agent.operations import OPERATION_STEPS
from aerodrome.agent.steps import JSON, Plan, State, Step, StepRunner
from aerodrome.core import FAULT_ENV, HOST_STEPS, InvalidArgumentError

SRC = Path(__file__).resolve().parents[2] / "src"


def by_what(kind: str, args: JSON) -> str:
    return str(args.get("what", ""))


class Recorder:
    """A planner whose operation "copy" has three steps, each noting what it did; `hold` stops one mid-way."""

    def __init__(self) -> None:
        self.acted: list[str] = []
        self.undone: list[State] = []
        self.hold: dict[str, asyncio.Event] = {}
        self.fail_at = ""
        self.reached = asyncio.Event()  # set when a held step is reached

    def plan(self, kind: str, args: JSON) -> Plan:
        if kind != "copy":
            raise ValueError(f"unknown operation {kind!r}")

        def step(name: str) -> Step:
            async def act(state: State) -> None:
                self.acted.append(name)
                if name in self.hold:
                    self.reached.set()
                    await self.hold[name].wait()
                if name == self.fail_at:
                    raise InvalidArgumentError(f"{name} refused")
                state[name] = f"{args['what']}:{name}"

            return Step(name, act)

        async def undo(state: State) -> None:
            self.undone.append(dict(state))

        return Plan((step("fetch"), step("write"), step("publish")), result=lambda s: s, undo=undo)


@pytest.fixture
async def journal(tmp_path: Path) -> Journal:
    opened = Journal.open(tmp_path / "agent.db")
    yield opened  # type: ignore[misc]
    opened.close()


async def run(runner: StepRunner, key: str, what: str = "a") -> object:
    return await (await runner.submit(key, "copy", {"what": what}))


async def test_each_step_is_started_before_it_acts_and_completed_after(journal: Journal) -> None:
    recorder = Recorder()
    result = await run(StepRunner(journal, recorder.plan, by_what), "k1")
    assert result == {"fetch": "a:fetch", "write": "a:write", "publish": "a:publish"}
    assert recorder.acted == ["fetch", "write", "publish"]
    assert await journal.operation("k1") == (
        "done",
        "publish",
        [(n, p) for n in ("fetch", "write", "publish") for p in ("START", "COMPLETE")],
    )
    assert await journal.recorded("k1", "copy") == (True, result)
    assert await journal.unfinished() == []


async def test_a_key_seen_before_returns_its_result_and_acts_no_more(journal: Journal) -> None:
    recorder = Recorder()
    first = await run(StepRunner(journal, recorder.plan, by_what), "k1", "a")
    again = await run(StepRunner(journal, recorder.plan, by_what), "k1", "b")  # another runner: the key is durable
    assert again == first and recorder.acted == ["fetch", "write", "publish"]


async def test_the_same_key_while_it_runs_joins_the_run(journal: Journal) -> None:
    recorder = Recorder()
    recorder.hold["write"] = asyncio.Event()
    runner = StepRunner(journal, recorder.plan, by_what)
    first = await runner.submit("k1", "copy", {"what": "a"})
    second = await runner.submit("k1", "copy", {"what": "a"})
    assert second is first
    recorder.hold["write"].set()
    await first
    assert recorder.acted == ["fetch", "write", "publish"]


async def test_an_operation_cut_short_resumes_at_the_step_it_was_in(journal: Journal) -> None:
    recorder = Recorder()
    recorder.hold["write"] = asyncio.Event()
    runner = StepRunner(journal, recorder.plan, by_what)
    outcome = await runner.submit("k1", "copy", {"what": "a"})
    await recorder.reached.wait()
    assert recorder.acted == ["fetch", "write"]
    outcome.cancel()  # the agent went away in the middle of `write`
    with pytest.raises(asyncio.CancelledError):
        await outcome
    [unfinished] = await journal.unfinished()
    assert (unfinished.key, unfinished.step, unfinished.state) == ("k1", "write", {"fetch": "a:fetch"})

    again = Recorder()
    resumed = StepRunner(journal, again.plan, by_what)
    assert [r.key for r in await resumed.resume()] == ["k1"]
    await resumed.drain()  # resumed in the background
    assert again.acted == ["write", "publish"]  # fetch is not done twice; write, started, is done again
    assert await journal.unfinished() == []
    seen, result = await journal.recorded("k1", "copy")
    assert seen and result == {"fetch": "a:fetch", "write": "a:write", "publish": "a:publish"}
    status, _, rows = await journal.operation("k1") or ("", "", [])
    started_twice = [("fetch", "START"), ("fetch", "COMPLETE"), ("write", "START"), ("write", "COMPLETE")]
    assert status == "done" and rows[:4] == started_twice


async def test_a_resumed_operation_goes_before_new_ones_on_its_resource_and_its_retry_joins_it(
    journal: Journal,
) -> None:
    await journal.begin("k1", "copy", {"what": "a"}, "fetch")
    await journal.advance("k1", "fetch", {"fetch": "a:fetch"}, "write")  # as a killed agent left it
    recorder = Recorder()
    runner = StepRunner(journal, recorder.plan, by_what)
    await runner.resume()
    retry = await runner.submit("k1", "copy", {"what": "a"})
    after = await runner.submit("k2", "copy", {"what": "a"})
    assert (await retry)["publish"] == "a:publish" and (await after)["publish"] == "a:publish"
    assert recorder.acted == ["write", "publish", "fetch", "write", "publish"]  # k1's rest, then k2


async def test_a_failed_step_undoes_and_leaves_the_key_free(journal: Journal) -> None:
    recorder = Recorder()
    recorder.fail_at = "write"
    runner = StepRunner(journal, recorder.plan, by_what)
    with pytest.raises(InvalidArgumentError, match="write refused"):
        await run(runner, "k1")
    assert recorder.undone == [{"fetch": "a:fetch"}]
    status, step, _ = await journal.operation("k1") or ("", "", [])
    assert (status, step) == ("failed", "write")
    assert await journal.recorded("k1", "copy") == (False, None)
    assert await journal.unfinished() == []
    recorder.fail_at = ""
    assert (await run(runner, "k1"))["publish"] == "a:publish"  # type: ignore[index]
    _, _, rows = await journal.operation("k1") or ("", "", [])
    assert rows[0] == ("fetch", "START") and len(rows) == 6  # the failed run's rows gave way to the new one's


async def test_a_refusal_before_it_begins_writes_nothing(journal: Journal) -> None:
    def refuse() -> None:
        raise InvalidArgumentError("too late")

    with pytest.raises(InvalidArgumentError):
        await StepRunner(journal, Recorder().plan, by_what).submit("k1", "copy", {"what": "a"}, admit=refuse)
    assert await journal.operation("k1") is None


async def test_an_operation_no_plan_knows_is_set_aside_at_resume(journal: Journal) -> None:
    await journal.begin("k9", "vanished", {}, "first")
    assert [r.key for r in await StepRunner(journal, Recorder().plan, by_what).resume()] == ["k9"]
    assert await journal.unfinished() == []
    assert (await journal.operation("k9") or ("",))[0] == "failed"


async def test_arguments_and_state_are_sealed_on_disk(journal: Journal, tmp_path: Path) -> None:
    await run(StepRunner(journal, Recorder().plan, by_what), "k1", "SECRET-VALUE-123")
    raw = _journal_bytes(tmp_path)
    assert b"SECRET-VALUE-123" not in raw
    assert (tmp_path / "agent.db.key").stat().st_mode & 0o777 == 0o600


def _journal_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.iterdir() if p.name.startswith("agent.db"))


def test_every_host_step_is_a_step_of_an_operation() -> None:
    assert list(HOST_STEPS) == [f"agent.{kind}.{step}" for kind, steps in OPERATION_STEPS.items() for step in steps]


# A child process runs "destroy" (two steps that append to a file) and is SIGKILLed at one of them by the fault
# hook; a second one resumes it from the journal.
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from aerodrome.agent.journal import Journal
    from aerodrome.agent.steps import Plan, Step, StepRunner

    root = Path(sys.argv[1])

    def plan(kind, args):
        def step(name):
            async def act(state):
                with open(root / "acted", "a") as out:
                    out.write(name + "\\n")
                state[name] = True
            return Step(name, act)
        return Plan((step("remove_sandbox"), step("detach_volumes")), result=lambda state: sorted(state))

    async def main():
        journal = Journal.open(root / "agent.db")
        runner = StepRunner(journal, plan, lambda kind, args: kind)
        if sys.argv[2] == "resume":
            await runner.resume()
            await runner.drain()
        else:
            await (await runner.submit("k1", "destroy", {}))
        print(await journal.recorded("k1", "destroy"))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("step", ["remove_sandbox", "detach_volumes"])
def test_a_sigkill_at_a_step_is_resumed_by_the_next_process(tmp_path: Path, step: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), FAULT_ENV: f"agent.destroy.{step}"}
    killed = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), "run"], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr
    del env[FAULT_ENV]
    resumed = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), "resume"], env=env, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.decode().strip() == "(True, ['detach_volumes', 'remove_sandbox'])"
    acted = (tmp_path / "acted").read_text().split()
    # the step the kill cut short acts again (idempotent), the ones completed before it do not
    expected = {"remove_sandbox": ["remove_sandbox", "remove_sandbox", "detach_volumes"]}
    assert acted == expected.get(step, ["remove_sandbox", "detach_volumes", "detach_volumes"])
