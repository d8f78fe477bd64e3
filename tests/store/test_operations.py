from __future__ import annotations

from pathlib import Path

import pytest

from aerodrome.core import FailedPreconditionError, NotFoundError
from aerodrome.store import OperationStatus, SqlStore


class FixedClock:
    def __init__(self) -> None:
        self.seconds = 1_700_000_000.0

    def now(self) -> float:
        return self.seconds

    def monotonic(self) -> float:
        return self.seconds


async def test_run_log_lifecycle(store: SqlStore) -> None:
    run = await store.begin_operation("m1", "start", {"attempt": 1})
    assert run.status is OperationStatus.RUNNING and run.step == ""
    await store.complete_step(run.id, "prepare_rootfs")
    await store.complete_step(run.id, "create_sandbox", {"attempt": 1, "sandbox": "c1"})

    [unfinished] = await store.unfinished_operations()
    assert (unfinished.id, unfinished.step, unfinished.payload) == (
        run.id,
        "create_sandbox",
        {"attempt": 1, "sandbox": "c1"},
    )

    await store.finish_operation(run.id)
    assert await store.unfinished_operations() == []
    finished = await store.get_operation(run.id)
    assert finished is not None and finished.status is OperationStatus.SUCCEEDED


async def test_one_running_operation_per_machine_and_action(store: SqlStore) -> None:
    run = await store.begin_operation("m1", "start")
    with pytest.raises(FailedPreconditionError):
        await store.begin_operation("m1", "start")
    await store.begin_operation("m1", "stop")  # another action on the same machine may run
    await store.begin_operation("m2", "start")
    await store.finish_operation(run.id, OperationStatus.FAILED, "runc exited 1")
    await store.begin_operation("m1", "start")  # free again once the first run finished
    failed = await store.get_operation(run.id)
    assert failed is not None and failed.error == "runc exited 1"


async def test_finished_runs_refuse_more_steps(store: SqlStore) -> None:
    run = await store.begin_operation("m1", "destroy")
    await store.finish_operation(run.id, OperationStatus.ABORTED)
    with pytest.raises(NotFoundError):
        await store.complete_step(run.id, "late_step")
    with pytest.raises(NotFoundError):
        await store.finish_operation(run.id)
    with pytest.raises(ValueError):
        await store.finish_operation(run.id, OperationStatus.RUNNING)


async def test_unfinished_operations_by_host_oldest_first(tmp_path: Path) -> None:
    clock = FixedClock()
    store = SqlStore.open_sqlite(tmp_path / "ops.db", clock=clock)
    try:
        here = await store.begin_operation("m1", "start", host="h1")
        clock.seconds += 1
        there = await store.begin_operation("m2", "start", host="h2")
        clock.seconds += 1
        later = await store.begin_operation("m3", "stop", host="h1")
        assert [run.id for run in await store.unfinished_operations()] == [here.id, there.id, later.id]
        assert [run.id for run in await store.unfinished_operations("h1")] == [here.id, later.id]
        assert here.started_at == 1_700_000_000_000
    finally:
        await store.close()
