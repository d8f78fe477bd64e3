"""What Fly tells a machine about itself: its environment variables and the files that name its resolvers.

The runtime adds what only it knows, the machine's addresses (FLY_PRIVATE_IP, FLY_PUBLIC_IP), and the
hostname and /etc/hosts (with `fly-local-6pn`).
"""

from __future__ import annotations

from aerodrome.core import GuestFile, MachineSpec

DEFAULT_PROCESS_GROUP = "app"  # flyctl's group for a machine of no group


def fly_env(app_name: str, machine_id: str, version: str, region: str, spec: MachineSpec) -> dict[str, str]:
    """Fly's variables with Fly's values; the config's own PRIMARY_REGION (flyctl sets it from fly.toml) wins."""
    return {
        "FLY_APP_NAME": app_name,
        "FLY_MACHINE_ID": machine_id,
        "FLY_ALLOC_ID": machine_id,
        "FLY_REGION": region,
        "FLY_IMAGE_REF": spec.image,
        "FLY_MACHINE_VERSION": version,
        "FLY_PROCESS_GROUP": spec.process_group or DEFAULT_PROCESS_GROUP,
        "FLY_VM_MEMORY_MB": str(spec.memory_mb),
        "PRIMARY_REGION": spec.env.get("PRIMARY_REGION") or region,
    }


def dns_files(spec: MachineSpec) -> tuple[GuestFile, ...]:
    """The resolv.conf of a config that names its own resolvers (config.dns.nameservers)."""
    resolv_conf = spec.dns.resolv_conf()
    return () if resolv_conf is None else (GuestFile("/etc/resolv.conf", resolv_conf),)
