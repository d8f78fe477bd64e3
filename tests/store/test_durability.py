from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from aerodrome.store import SqlStore

# Writes machines forever, printing each id only after add_machine has returned (the moment the API would reply).
WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from aerodrome.core import App, Machine, MachineEvent, MachineState
    from aerodrome.store import SqlStore

    async def main(path):
        store = SqlStore.open_sqlite(path)
        await store.ensure_org("personal", "Personal")
        await store.add_app(App("a1", "app1", "personal", "default", 1, "2024-05-01T10:00:00Z"))
        for n in range(1_000_000):
            machine_id = f"m{n:08d}"
            machine = Machine(machine_id, "app1", machine_id, "ord", MachineState.CREATED, f"v{n}",
                              {"image": "busybox", "n": n}, "fdaa::2", {}, "t", "t")
            event = MachineEvent(f"e{n:08d}", machine_id, "launch", "created", "user", n)
            await store.add_machine(machine, event)
            print(machine_id, flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


def write_until_killed(path: Path, acknowledgements: int) -> list[str]:
    """Run the writer, SIGKILL it right after its `acknowledgements`-th reply, return the ids it acknowledged."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    acknowledged: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    ) as writer:
        assert writer.stdout is not None
        for line in writer.stdout:
            acknowledged.append(line.strip())
            if len(acknowledged) == acknowledgements:
                writer.send_signal(signal.SIGKILL)
                break
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    return acknowledged


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    acknowledged = write_until_killed(path, 50)
    assert len(acknowledged) == 50

    store = SqlStore.open_sqlite(path)
    try:
        for machine_id in acknowledged:
            machine = await store.get_machine(machine_id)
            assert machine is not None, machine_id
            assert [event.id for event in await store.list_events(machine_id)] == [f"e{machine_id[1:]}"]
            assert len(await store.list_versions(machine_id)) == 1
    finally:
        await store.close()
