"""An app's machines on PostgreSQL: the ids and row versions from the database, the records from memory.

Most of listing thousands of machines is decoding their rows (the configs above all) and rendering them. Every
change of a machine row raises its `row_version` (`save_machine`, `set_lease`: compare-and-set), so a record
held in memory with the version the database names is the row itself, whichever replica wrote it: exact with
several writers. The listing reads `(id, row_version)` of the machines it shows, and decodes only the rows
this process has not seen at that version, read in one more statement (all of them, if most are new). The
records handed back are the same objects while a machine is unchanged, which lets the API reuse their JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

from aerodrome.core import Machine, MachineState
from aerodrome.store import machines
from aerodrome.store.cache import MAX_ENTRIES
from aerodrome.store.runner import Runner

#: Past this share of rows unseen, the whole listing is read in one statement instead of by ids.
WHOLE_READ_SHARE = 0.5


class VersionedListing:
    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._held: dict[str, Machine] = {}

    async def listing(
        self, app_name: str, *, include_deleted: bool, region: str | None, states: Sequence[MachineState]
    ) -> list[Machine]:
        versions = await self._runner.read(
            machines.list_machine_versions, app_name, include_deleted=include_deleted, region=region, states=states
        )
        held = self._held
        unseen = {mid: version for mid, version in versions if (m := held.get(mid)) is None or m.row_version != version}
        if len(unseen) > WHOLE_READ_SHARE * len(versions):
            return await self._whole(app_name, include_deleted=include_deleted, region=region, states=states)
        if unseen:
            read = await self._runner.read(machines.machines_by_ids, list(unseen))
            self._hold(read)
            if len(read) != len(unseen) or any(m.row_version != unseen[m.id] for m in read):
                # changed or gone between the two statements: the listing's one statement answers instead
                return await self._whole(app_name, include_deleted=include_deleted, region=region, states=states)
        listed = [held.get(mid) for mid, _ in versions]
        if None in listed:  # the bound emptied memory meanwhile
            return await self._whole(app_name, include_deleted=include_deleted, region=region, states=states)
        return listed  # type: ignore[return-value]

    async def _whole(
        self, app_name: str, *, include_deleted: bool, region: str | None, states: Sequence[MachineState]
    ) -> list[Machine]:
        read = await self._runner.read(
            machines.list_machines, app_name, include_deleted=include_deleted, region=region, states=states
        )
        self._hold(read)
        return read

    def _hold(self, records: Sequence[Machine]) -> None:
        if len(self._held) + len(records) > MAX_ENTRIES:
            self._held.clear()
        for record in records:
            self._held[record.id] = record
