"""The embedded registry's policy, as a pure function: owners, the shared namespaces and the operator."""

from __future__ import annotations

from aerodrome.core import ALL_ACTIONS, SHARED_NAMESPACES, PullGrant, granted_actions, namespace_of


def test_the_first_component_names_the_owner() -> None:
    assert namespace_of("my-app") == "my-app"
    assert namespace_of("my-app/worker/v2") == "my-app"


def test_owners_have_every_right_others_none() -> None:
    assert granted_actions("my-app", "acme", "acme") == ALL_ACTIONS
    assert granted_actions("my-app", "other", "acme") == frozenset()
    assert granted_actions("unowned", "acme", None) == frozenset()


def test_shared_namespaces_are_pulled_by_all_and_written_by_the_operator() -> None:
    assert {"flyio", "library"} <= SHARED_NAMESPACES
    for namespace in SHARED_NAMESPACES:
        assert granted_actions(namespace, "acme", None) == {"pull"}
        assert granted_actions(namespace, "acme", "acme") == {"pull"}  # an organisation of that slug included
        assert granted_actions(namespace, None, None) == ALL_ACTIONS


def test_the_operator_has_every_right_everywhere() -> None:
    assert granted_actions("my-app", None, "acme") == ALL_ACTIONS
    assert granted_actions("unowned", None, None) == ALL_ACTIONS


def test_a_pull_grant_covers_its_namespaces_only() -> None:
    grant = PullGrant("acme", frozenset({"acme", "my-app", *SHARED_NAMESPACES}))
    assert grant.allows("my-app") and grant.allows("my-app/worker") and grant.allows("flyio/mcp")
    assert not grant.allows("my-app-2") and not grant.allows("other/my-app")
