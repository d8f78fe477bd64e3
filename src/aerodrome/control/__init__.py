"""The control plane (Fly's flaps): apps, machines, volumes, secrets and tokens over a Store and a Runtime."""

from __future__ import annotations

from aerodrome.control.auth import (
    MAX_AUTHORIZATION_BYTES,
    MAX_TOKENS,
    candidate_tokens,
    hash_token,
    require_app,
    require_org_wide,
    token_lifetime,
)
from aerodrome.control.builds import Build, Builds
from aerodrome.control.certificates import CertificateInfo, Certificates, CheckReport, describe
from aerodrome.control.hosts import HostEntry, Hosts
from aerodrome.control.ips import IPs
from aerodrome.control.logs import LogSettings, MachineLogs
from aerodrome.control.machines import Machines
from aerodrome.control.oidc import OidcIssuer
from aerodrome.control.plane import ControlPlane, Settings
from aerodrome.control.registry import Caller, RegistryAccess
from aerodrome.control.releases import Releases
from aerodrome.control.retention import Retention, RetentionSettings
from aerodrome.control.schedules import Schedules, period_of
from aerodrome.control.secretkeys import SecretKeys
from aerodrome.control.secrets import Secrets
from aerodrome.control.standbys import Standbys, is_standby
from aerodrome.control.volumes import GIB, Volumes

__all__ = [
    "GIB",
    "MAX_AUTHORIZATION_BYTES",
    "MAX_TOKENS",
    "Build",
    "Builds",
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
    "OidcIssuer",
    "RegistryAccess",
    "Releases",
    "Retention",
    "RetentionSettings",
    "Schedules",
    "SecretKeys",
    "Secrets",
    "Settings",
    "Standbys",
    "Volumes",
    "candidate_tokens",
    "describe",
    "hash_token",
    "is_standby",
    "period_of",
    "require_app",
    "require_org_wide",
    "token_lifetime",
]
