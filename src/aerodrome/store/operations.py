"""The durable run log of operations on machines (flyd's FSM runs, superfly/fsm's START/COMPLETE records).

A run is begun before its first side effect and updated after each step; at boot the host agent asks for its
unfinished runs and resumes each after its last completed step. At most one run per (machine, action) is
running at a time, which a partial unique index enforces in the engine itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from aerodrome.core import FailedPreconditionError, NotFoundError
from aerodrome.store.schema import operations


class OperationStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class Operation:
    id: str  # ULID
    machine_id: str
    action: str
    step: str  # the last completed step; "" until the first completes
    status: OperationStatus
    started_at: int  # milliseconds since the epoch
    updated_at: int
    payload: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    host: str = "local"


def _from_row(row: Row[Any]) -> Operation:
    return Operation(
        id=row.id,
        machine_id=row.machine_id,
        action=row.action,
        step=row.step,
        status=OperationStatus(row.status),
        started_at=row.started_at,
        updated_at=row.updated_at,
        payload=row.payload,
        error=row.error,
        host=row.host,
    )


def get_operation(conn: Connection, operation_id: str) -> Operation | None:
    row = conn.execute(select(operations).where(operations.c.id == operation_id)).first()
    return None if row is None else _from_row(row)


def begin_operation(conn: Connection, run: Operation) -> None:
    try:
        conn.execute(
            insert(operations).values(
                id=run.id,
                machine_id=run.machine_id,
                action=run.action,
                step=run.step,
                status=run.status.value,
                payload=run.payload,
                error=run.error,
                host=run.host,
                started_at=run.started_at,
                updated_at=run.updated_at,
            )
        )
    except IntegrityError as exc:
        raise FailedPreconditionError(
            f"an operation {run.action!r} is already running on machine {run.machine_id}"
        ) from exc


def complete_step(conn: Connection, operation_id: str, step: str, payload: dict[str, Any] | None, now_ms: int) -> None:
    values: dict[str, Any] = {"step": step, "updated_at": now_ms}
    if payload is not None:
        values["payload"] = payload
    _update_running(conn, operation_id, values)


def finish_operation(
    conn: Connection, operation_id: str, status: OperationStatus, error: str | None, now_ms: int
) -> None:
    if status is OperationStatus.RUNNING:
        raise ValueError("an operation finishes as succeeded, failed or aborted")
    _update_running(conn, operation_id, {"status": status.value, "error": error, "updated_at": now_ms})


def _update_running(conn: Connection, operation_id: str, values: dict[str, Any]) -> None:
    statement = (
        update(operations)
        .where(operations.c.id == operation_id, operations.c.status == OperationStatus.RUNNING.value)
        .values(**values)
    )
    if conn.execute(statement).rowcount == 0:
        raise NotFoundError(f"no running operation {operation_id}")


def unfinished_operations(conn: Connection, host: str | None) -> list[Operation]:
    query = select(operations).where(operations.c.status == OperationStatus.RUNNING.value)
    if host is not None:
        query = query.where(operations.c.host == host)
    return [_from_row(row) for row in conn.execute(query.order_by(operations.c.id))]
