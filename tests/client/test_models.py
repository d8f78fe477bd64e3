"""The client's models read what a newer server (or Fly) sends: unknown fields kept and sent back, nulls as
defaults, and a config read then written loses nothing."""

from __future__ import annotations

from aerodrome.client import Machine, UpdateMachineRequest


def test_unknown_fields_and_nulls_are_tolerated_and_kept() -> None:
    machine = Machine.model_validate(
        {
            "id": "m1",
            "name": None,
            "events": None,
            "incomplete": False,
            "config": {"image": "nginx", "services": None, "dns": {"skip_registration": True}, "init": {"exec": ["a"]}},
        }
    )
    assert machine.name == "" and machine.events == [] and machine.config.services is None
    assert machine.model_extra == {"incomplete": False}
    assert machine.config.init is not None and machine.config.init.exec_ == ["a"]
    sent = UpdateMachineRequest(config=machine.config).to_json()
    assert sent == {"config": {"image": "nginx", "dns": {"skip_registration": True}, "init": {"exec": ["a"]}}}
