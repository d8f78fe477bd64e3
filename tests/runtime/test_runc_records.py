"""What a create leaves on disk: one record, and the bundle only once the machine starts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aerodrome.core import SandboxStatus
from tests.runtime.conformance import Harness
from tests.runtime.runc_fixtures import harness, image_store_root, needs_root

__all__ = ["harness", "image_store_root"]  # fixtures

pytestmark = [pytest.mark.root, needs_root]


async def test_a_created_machine_is_one_record_and_its_bundle_comes_with_start(
    harness: Harness, tmp_path: Path
) -> None:
    spec = harness.spec()
    await harness.runtime.create(spec)
    machine_dir = tmp_path / "runtime" / "machines" / spec.machine_id
    assert sorted(p.name for p in machine_dir.iterdir()) == ["machine.json"]
    await harness.runtime.start(spec.machine_id)
    # The OCI config went to runc through a pipe: the bundle only names it.
    assert os.readlink(machine_dir / "config.json").startswith("/proc/self/fd/")


async def test_a_machine_recorded_by_an_older_version_keeps_its_addresses(harness: Harness, tmp_path: Path) -> None:
    spec = harness.spec()
    created = await harness.runtime.create(spec)
    machine_dir = tmp_path / "runtime" / "machines" / spec.machine_id
    record = json.loads((machine_dir / "machine.json").read_text())
    (machine_dir / "network.json").write_text(json.dumps(record.pop("network")))  # the older layout
    (machine_dir / "machine.json").write_text(json.dumps(record))
    restarted = await harness.reopen()
    assert await restarted.status(spec.machine_id) is SandboxStatus.CREATED
    assert await restarted.create(spec) == created
    other = await restarted.create(harness.spec())
    assert other.private_ipv4 != created.private_ipv4
