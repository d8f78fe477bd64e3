"""A control plane's side of the cluster: mutual TLS to the agents, issued by the cluster CA."""

from __future__ import annotations

import ssl
from pathlib import Path

from aerodrome.agent import Identity, read_ca_file
from aerodrome.cli.config import HostCheckError
from aerodrome.core import AerodromeError


def control_plane_tls(ca_file: Path) -> ssl.SSLContext:
    """This control plane's side of mutual TLS: a client certificate issued by the cluster CA's file."""
    try:
        return Identity.control_plane(read_ca_file(ca_file, create=False)).client_context()
    except AerodromeError as exc:
        raise HostCheckError(exc.message) from None
