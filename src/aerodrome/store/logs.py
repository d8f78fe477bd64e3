"""Queries for machine logs: appending a machine's lines with its output cursor, paging an app's lines, and
the bounds (bytes per machine, age) that keep the table from growing with a machine's age."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, delete, func, insert, select, update

from aerodrome.core import LogLine, OutputCursor
from aerodrome.store.schema import machine_logs, machine_output, machines

_INSERT_LINE = insert(machine_logs)
_TRIM_BATCH = 1000  # rows looked at per step while trimming a machine's oldest lines
# A trim leaves this share of the bound, so the sum it starts with is paid once per tenth of the bound added,
# not on every append (a sum over a full 1 MiB of short lines costs about 20 ms of the writer).
_TRIM_TO = 0.9


def line_row(line: LogLine) -> dict[str, Any]:
    return {
        "machine_id": line.machine_id,
        "app_name": line.app_name,
        "region": line.region,
        "timestamp": line.timestamp_us,
        "level": line.level,
        "provider": line.provider,
        "message": line.message,
        "bytes": len(line.message.encode("utf-8", errors="replace")),
    }


def _line_from_row(row: Row[Any]) -> LogLine:
    return LogLine(
        id=row.id,
        machine_id=row.machine_id,
        app_name=row.app_name,
        region=row.region,
        timestamp_us=row.timestamp,
        level=row.level,
        provider=row.provider,
        message=row.message,
    )


def add_line(conn: Connection, line: LogLine) -> None:
    conn.execute(_INSERT_LINE, line_row(line))


def output_cursor(conn: Connection, machine_id: str) -> OutputCursor:
    row = conn.execute(select(machine_output).where(machine_output.c.machine_id == machine_id)).first()
    return OutputCursor(row.file, row.offset) if row is not None else OutputCursor()


def append_output(
    conn: Connection, machine_id: str, lines: Sequence[LogLine], cursor: OutputCursor, max_bytes: int
) -> None:
    if conn.execute(select(machines.c.id).where(machines.c.id == machine_id)).first() is None:
        return  # its app was deleted meanwhile: nothing of it may outlive the app
    rows = [line_row(line) for line in lines]
    if rows:
        conn.execute(_INSERT_LINE, rows)
    of_machine = machine_output.c.machine_id == machine_id
    before = conn.execute(select(machine_output.c.stored).where(of_machine)).scalar()
    stored = (before or 0) + sum(row["bytes"] for row in rows)
    if stored > max_bytes:
        stored = trim(conn, machine_id, int(max_bytes * _TRIM_TO))
    values = {"file": cursor.file, "offset": cursor.offset, "stored": stored}
    if before is None:
        conn.execute(insert(machine_output), {"machine_id": machine_id, **values})
    else:
        conn.execute(update(machine_output).where(of_machine), values)


def trim(conn: Connection, machine_id: str, max_bytes: int) -> int:
    """Drop the machine's oldest lines until its messages total at most `max_bytes`; the bytes left."""
    of_machine = machine_logs.c.machine_id == machine_id
    total = conn.execute(select(func.coalesce(func.sum(machine_logs.c.bytes), 0)).where(of_machine)).scalar_one()
    excess = int(total) - max_bytes
    left = int(total)
    last_id, after = None, 0
    while excess > 0:
        query = select(machine_logs.c.id, machine_logs.c.bytes).where(of_machine, machine_logs.c.id > after)
        rows = conn.execute(query.order_by(machine_logs.c.id).limit(_TRIM_BATCH)).all()
        if not rows:
            break
        for row in rows:
            excess -= row.bytes
            left -= row.bytes
            last_id = after = row.id
            if excess <= 0:
                break
    if last_id is not None:
        conn.execute(delete(machine_logs).where(of_machine, machine_logs.c.id <= last_id))
    return left


def read_logs(
    conn: Connection, app_name: str, *, after: int | None, machine_id: str | None, region: str | None, limit: int
) -> list[LogLine]:
    query = select(machine_logs).where(machine_logs.c.app_name == app_name)
    if machine_id:
        query = query.where(machine_logs.c.machine_id == machine_id)
    if region:
        query = query.where(machine_logs.c.region == region)
    if after is None:  # the newest lines, oldest first
        rows = conn.execute(query.order_by(machine_logs.c.id.desc()).limit(limit)).all()
        return [_line_from_row(row) for row in reversed(rows)]
    rows = conn.execute(query.where(machine_logs.c.id > after).order_by(machine_logs.c.id).limit(limit)).all()
    return [_line_from_row(row) for row in rows]


def last_log_id(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(machine_logs.c.id), 0))).scalar_one())


_OLD_LINES = (
    select(machine_logs.c.id)
    .where(machine_logs.c.timestamp < bindparam("before"))
    .order_by(machine_logs.c.timestamp)
    .limit(bindparam("batch"))
)


def prune_logs(conn: Connection, before_us: int, batch: int) -> int:
    ids = list(conn.execute(_OLD_LINES, {"before": before_us, "batch": batch}).scalars())
    if not ids:
        return 0
    return conn.execute(delete(machine_logs).where(machine_logs.c.id.in_(ids))).rowcount


def forget_app(conn: Connection, app_name: str, app_machines: Select[Any]) -> None:
    """Every line of an app being deleted, and its machines' cursors."""
    conn.execute(delete(machine_logs).where(machine_logs.c.app_name == app_name))
    conn.execute(delete(machine_output).where(machine_output.c.machine_id.in_(app_machines)))


def forget_machines(conn: Connection, machine_ids: Sequence[str]) -> None:
    """The output cursors of machines whose rows are gone (their lines go by age)."""
    if machine_ids:
        conn.execute(delete(machine_output).where(machine_output.c.machine_id.in_(machine_ids)))
