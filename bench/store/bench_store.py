"""Store figures on a real SQLite file: add_machine per second, get_machine p50, listing 10 000 machines.

Run: .venv/bin/python -m bench.store.bench_store [directory]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from aerodrome.core import App, Machine, MachineEvent, MachineState, ulid
from aerodrome.store import SqlStore, create_store_engine, sqlite_url
from aerodrome.store.mapping import machine_to_row
from aerodrome.store.schema import machines

CONFIG = {"image": "busybox:latest", "guest": {"cpus": 1, "memory_mb": 256, "cpu_kind": "shared"}, "env": {"A": "b"}}


def machine(machine_id: str, app_name: str) -> Machine:
    return Machine(
        machine_id, app_name, machine_id, "ord", MachineState.CREATED, ulid(), CONFIG, "fdaa::2", {}, "t", "t"
    )


def event(machine_id: str, n: int) -> MachineEvent:
    return MachineEvent(ulid(), machine_id, "launch", "created", "user", n)


async def measure(directory: Path) -> dict[str, float]:
    path = directory / "bench.db"
    started = time.perf_counter()
    store = SqlStore.open_sqlite(path)
    figures = {"open_and_migrate_ms": (time.perf_counter() - started) * 1000}
    try:
        await store.ensure_org("personal", "Personal")
        for name in ("small", "big"):
            await store.add_app(App(name, name, "personal", "default", 1, "t"))

        count = 500
        started = time.perf_counter()
        for n in range(count):
            await store.add_machine(machine(f"a{n:013d}", "small"), event(f"a{n:013d}", n))
        figures["add_machine_per_s"] = count / (time.perf_counter() - started)

        samples = []
        for n in range(2000):
            started = time.perf_counter_ns()
            await store.get_machine(f"a{n % count:013d}")
            samples.append((time.perf_counter_ns() - started) / 1000)
        figures["get_machine_p50_us"] = statistics.median(samples)
        figures["get_machine_p99_us"] = statistics.quantiles(samples, n=100)[98]

        engine = create_store_engine(sqlite_url(path))
        with engine.begin() as connection:
            connection.execute(insert(machines), [machine_to_row(machine(f"b{n:013d}", "big")) for n in range(10_000)])
        engine.dispose()
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            listed = await store.list_machines("big")
            timings.append((time.perf_counter() - started) * 1000)
            assert len(listed) == 10_000
        figures["list_10000_ms_median"] = statistics.median(timings)
    finally:
        await store.close()
    return figures


def main() -> None:
    with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as directory:
        for name, value in asyncio.run(measure(Path(directory))).items():
            print(f"{name:24} {value:10.1f}")


if __name__ == "__main__":
    main()
