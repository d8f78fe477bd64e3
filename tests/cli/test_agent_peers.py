"""`aerodrome agent --peer`: the other hosts of the private network, refused when malformed or when their pools
overlap each other's or the host's own (machines on two hosts would share IPv6 addresses)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_agent_command import in_process


@pytest.mark.parametrize(
    ("peers", "complaint"),
    [
        (["10.0.0.2=172.31.0.0/16"], "use IPV6_ADDRESS[=IPV4_POOL]"),
        (["fdaa::2=172.31.0.0/16"], "must be outside fdaa::/16"),
        (["fd00::2=172.30.128.0/17"], "overlap"),
        (["fd00::2=172.31.0.0/16", "fd00::3=172.31.0.0/16"], "overlap"),
    ],
)
def test_a_malformed_or_overlapping_peer_is_refused(tmp_path: Path, peers: list[str], complaint: str) -> None:
    args = [arg for peer in peers for arg in ("--peer", peer)]
    code, stderr = in_process("agent", "--data-dir", str(tmp_path), "--machine-ipv4-pool", "172.30.0.0/16", *args)
    assert code == 2 and complaint in stderr, stderr
