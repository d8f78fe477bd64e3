"""The control plane (Fly's flaps): apps, machines, volumes, secrets and tokens over a Store and a Runtime."""

from __future__ import annotations

from aerodrome.control.auth import MAX_AUTHORIZATION_BYTES, MAX_TOKENS, candidate_tokens, hash_token
from aerodrome.control.certificates import CertificateInfo, Certificates, CheckReport, describe
from aerodrome.control.hosts import HostEntry, Hosts
from aerodrome.control.ips import IPs
from aerodrome.control.logs import LogSettings, MachineLogs
from aerodrome.control.machines import Machines
from aerodrome.control.plane import ControlPlane, Settings
from aerodrome.control.registry import Caller, RegistryAccess
from aerodrome.control.releases import Releases
from aerodrome.control.retention import Retention, RetentionSettings
from aerodrome.control.secretkeys import SecretKeys
from aerodrome.control.secrets import Secrets
from aerodrome.control.volumes import GIB, Volumes

__all__ = [
    "GIB",
    "MAX_AUTHORIZATION_BYTES",
    "MAX_TOKENS",
    "Caller",
    "CertificateInfo",
    "Certificates",
    "CheckReport",
    "ControlPlane",
    "HostEntry",
    "Hosts",
    "IPs",
    "LogSettings",
    "MachineLogs",
    "Machines",
    "RegistryAccess",
    "Releases",
    "Retention",
    "RetentionSettings",
    "SecretKeys",
    "Secrets",
    "Settings",
    "Volumes",
    "candidate_tokens",
    "describe",
    "hash_token",
]
