"""A listing and a get show each machine as it is now, however quickly it changed since the last one."""

from __future__ import annotations

import httpx

from tests.api.helpers import create_machine


def test_a_listing_shows_every_change_made_within_the_same_second(api: httpx.Client, app_name: str, image: str) -> None:
    first = create_machine(api, app_name, {"image": image}, skip_launch=True)
    second = create_machine(api, app_name, {"image": image, "metadata": {"role": "b"}}, skip_launch=True)
    path = f"/v1/apps/{app_name}/machines"
    assert {m["id"] for m in api.get(path).json()} == {first["id"], second["id"]}

    for value in ("one", "two"):  # metadata writes keep the state and, within a second, updated_at
        api.post(f"{path}/{first['id']}/metadata/role", json={"value": value}).raise_for_status()
        listed = {m["id"]: m for m in api.get(path).json()}
        assert listed[first["id"]]["config"]["metadata"]["role"] == value
        assert api.get(f"{path}/{first['id']}").json()["config"]["metadata"]["role"] == value
        assert [m["id"] for m in api.get(path, params={"metadata.role": value}).json()] == [first["id"]]

    api.delete(f"{path}/{second['id']}").raise_for_status()
    assert [m["id"] for m in api.get(path).json()] == [first["id"]]
    assert {m["id"] for m in api.get(path, params={"include_deleted": "true"}).json()} == {first["id"], second["id"]}
    summary = api.get(path, params={"summary": "true"}).json()
    assert [m["id"] for m in summary] == [first["id"]] and "config" not in summary[0]
