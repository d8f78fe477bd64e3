"""aerodrome.proxy: the edge (Fly's fly-proxy) — Host/SNI/address routing, autostart, autostop, limits, TLS."""

from __future__ import annotations

from aerodrome.proxy import native

native.activate(__path__)  # before any other module of the package is imported: they may be compiled

from aerodrome.proxy.autostop import Autostopper
from aerodrome.proxy.balancer import Balancer, NoMachineError
from aerodrome.proxy.context import EdgeSettings
from aerodrome.proxy.directory import STARTABLE_STATES, AppRoute, Backend, Directory
from aerodrome.proxy.edge import Edge, edge_certificates
from aerodrome.proxy.fleet import Fleet
from aerodrome.proxy.statics import MAX_STATIC_BYTES, StaticFile, StaticReader, StaticRoot
from aerodrome.proxy.tls import CertificateAuthority, CertificateStore

__all__ = [
    "MAX_STATIC_BYTES",
    "STARTABLE_STATES",
    "AppRoute",
    "Autostopper",
    "Backend",
    "Balancer",
    "CertificateAuthority",
    "CertificateStore",
    "Directory",
    "Edge",
    "EdgeSettings",
    "Fleet",
    "NoMachineError",
    "StaticFile",
    "StaticReader",
    "StaticRoot",
    "edge_certificates",
]
