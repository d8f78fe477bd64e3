"""Read resolvers beyond a single app: app and organisation listings, the viewer, regions, machines, volumes,
secrets, certificates and tokens, each answered from the control plane the REST routes use.

Fly-only concepts with no meaning on one's own hosts answer as Fly does for an organisation without them: no
remote builder, no egress addresses, no Nomad services, no billing issue.
"""

from __future__ import annotations

from typing import Any

from aerodrome.api.graphql.resolvers import Context, Info, app_node, connection, organization_node
from aerodrome.api.regions import REGIONS
from aerodrome.control import describe, require_app, require_org_wide
from aerodrome.core import App, Certificate, Machine, NotFoundError, Release, Token, Volume, rfc3339

JSON = dict[str, Any]


def region_node(region: dict[str, object]) -> JSON:
    return {
        "code": region["code"],
        "name": region["name"],
        "latitude": region["latitude"],
        "longitude": region["longitude"],
        "gatewayAvailable": region["gateway_available"],
        "requiresPaidPlan": region["requires_paid_plan"],
        "deprecated": region["deprecated"],
    }


def served_regions(context: Context) -> list[JSON]:
    served = context.plane.settings.regions
    return [region_node(r) for r in REGIONS if served is None or r["code"] in served]


def machine_node(context: Context, machine: Machine, app: App) -> JSON:
    ips = [{"id": f"{machine.id}/6pn", "family": "v6", "kind": "privatenet", "ip": machine.private_ip, "maskSize": 48}]

    async def app_field(info: Info) -> JSON:
        return await app_node(context, app)

    return {
        "id": machine.id,
        "name": machine.name,
        "config": machine.config,
        "state": machine.state.value,
        "region": machine.region,
        "createdAt": machine.created_at,
        "app": app_field,
        "ips": {"nodes": ips},
        "host": {"id": context.plane.settings.default_region},
        "hostStatus": context.plane.hosts.host_status(machine.host),  # as the REST API's host_status
        "egressIpAddresses": {"nodes": []},
    }


def token_node(token: Token) -> JSON:
    return {
        "id": token.id,
        "name": token.name,
        "token": "",  # the secret is shown once, when the token is made
        "tokenHeader": None,
        # a token made without an expiry never expires, shown as Fly shows the farthest date
        "expiresAt": "9999-12-31T23:59:59Z" if token.expires_at is None else rfc3339(token.expires_at),
        "revokedAt": token.revoked_at,
        "user": {"id": token.org_slug, "email": "", "name": None, "enablePaidHobby": False},
    }


def certificate_node(cert: Certificate) -> JSON:
    info = describe(cert.fullchain)
    return {
        "id": cert.hostname,
        "hostname": cert.hostname,
        "createdAt": cert.created_at,
        "clientStatus": "Ready",
        "configured": True,
        "acmeAlpnConfigured": cert.acme_requested,
        "acmeDnsConfigured": False,
        "certificateAuthority": info.issuer,
        "dnsProvider": "",
        "dnsValidationHostname": f"_acme-challenge.{cert.hostname}",
        "dnsValidationInstructions": "",
        "dnsValidationTarget": "",
        "isApex": cert.hostname.count(".") == 1,
        "isWildcard": cert.hostname.startswith("*."),
        "source": "custom" if cert.source == "custom" else "fly",
        "issued": {"nodes": [{"id": info.fingerprint, "type": info.key_type, "expiresAt": info.expires_at}]},
        "validationErrors": [],
    }


def release_node(release: Release) -> JSON:
    """Both of Fly's release types (`Release`, `ReleaseUnprocessed`) read their fields from this."""
    return {
        "id": release.id,
        "version": release.version,
        "status": release.status,
        "reason": release.reason,
        "description": release.description,
        "imageRef": release.image_ref,
        "stable": release.status == "complete",
        "inProgress": release.status in ("pending", "running"),
        "evaluationId": None,  # Nomad's
        "user": {"id": release.user or "token", "email": release.user, "name": None},
        "createdAt": release.created_at,
        "configDefinition": None,  # fly.toml is not kept: flyctl then reads the app's config from its machines
    }


# Query


async def query_latest_image_details(_: None, info: Info, image: str, **_versions: str | None) -> JSON:
    """Fly tracks versions of its own images only; for any other it answers "Unknown repository", which `fly
    status` and `fly image show` read as no update to offer. No image here is Fly's."""
    raise NotFoundError(f"Unknown repository: {image}")


async def query_apps(_: None, info: Info, **args: Any) -> JSON:
    context = info.context
    org_id = args.get("organizationId")
    wrong_org = org_id and org_id not in (context.org.id, context.org.slug)
    apps = [] if wrong_org or args.get("role") else await context.plane.apps.list(context.caller, context.org.slug)
    nodes = [await app_node(context, app) for app in apps]
    page = connection(nodes, after=args.get("after"), before=args.get("before"), first=args.get("first"), last=None)
    return {"nodes": page["nodes"], "pageInfo": page["pageInfo"]}


async def query_organizations(_: None, info: Info, **args: Any) -> JSON:
    return {"nodes": [organization_node(info.context.org)]}  # a token belongs to one organisation, as admin


async def query_viewer(_: None, info: Info) -> JSON:
    # a token, not a user: Fly's `Macaroon` principal
    return {"__typename": "Macaroon", "id": info.context.caller.id, "email": ""}


async def query_platform(_: None, info: Info) -> JSON:
    context = info.context
    return {"requestRegion": context.plane.settings.default_region, "regions": served_regions(context)}


async def query_nearest_region(_: None, info: Info, wireguardGateway: bool | None = None) -> JSON:
    context = info.context
    code = context.plane.settings.default_region
    return next((r for r in served_regions(context) if r["code"] == code), served_regions(context)[0])


async def query_app_name_available(_: None, info: Info, name: str) -> bool:
    return await info.context.plane.store.get_app(name) is None  # names are global, as on Fly


async def query_machine(_: None, info: Info, machineId: str) -> JSON:
    context = info.context
    machine = await context.plane.store.get_machine(machineId)
    app = await context.plane.store.get_app(machine.app_name) if machine else None
    if machine is None or app is None or app.org_slug != context.caller.org_slug or app.destroying:
        raise NotFoundError(f"Could not find Machine {machineId!r}")
    require_app(context.caller, app.name)
    return machine_node(context, machine, app)


async def query_volume(_: None, info: Info, id: str) -> JSON:
    context = info.context
    volume = await context.plane.store.get_volume(id)
    app = await context.plane.store.get_app(volume.app_name) if volume else None
    if volume is None or app is None or app.org_slug != context.caller.org_slug:
        raise NotFoundError(f"Could not find Volume {id!r}")
    require_app(context.caller, app.name)
    return volume_node(context, volume, app)


def volume_node(context: Context, volume: Volume, app: App) -> JSON:
    async def app_field(info: Info) -> JSON:
        return await app_node(context, app)

    async def snapshots(info: Info, **_: Any) -> JSON:
        listed = await context.plane.volumes.snapshots(app, volume.id)
        nodes = [
            {
                "id": s.id,
                "size": s.size,
                "digest": s.digest,
                "createdAt": s.created_at,
                "retentionDays": s.retention_days,
            }
            for s in listed
        ]
        return {"nodes": nodes}

    return {"__typename": "Volume", "id": volume.id, "state": volume.state, "app": app_field, "snapshots": snapshots}


# App fields


async def app_machines(app: JSON, info: Info, **args: Any) -> JSON:
    context = info.context
    record: App = app["_record"]
    machines = await context.plane.machines.list(record, include_deleted=False, region=None, states=[])
    return {"nodes": [machine_node(context, m, record) for m in machines]}


async def app_secrets(app: JSON, info: Info) -> list[JSON]:
    secrets = await info.context.plane.secrets.list(app["name"])
    return [{"id": s.name, "name": s.name, "digest": s.digest, "createdAt": s.created_at} for s in secrets]


async def app_certificates(app: JSON, info: Info, **args: Any) -> JSON:
    context = info.context
    page, _ = await context.plane.certificates.list(
        app["_record"], filter_=args.get("filter") or "", cursor="", limit=500
    )
    return {"nodes": [certificate_node(c) for c in page]}


async def app_regions(app: JSON, info: Info) -> list[JSON]:
    context = info.context
    machines = await context.plane.machines.list(app["_record"], include_deleted=False, region=None, states=[])
    codes = {m.region for m in machines}
    return [r for r in served_regions(context) if r["code"] in codes]


async def app_current_release(app: JSON, info: Info) -> JSON | None:
    current = await info.context.plane.releases.current(app["_record"])
    return release_node(current) if current else None


async def app_releases(app: JSON, info: Info, **args: Any) -> JSON:
    listed = await info.context.plane.releases.list(app["_record"], args.get("first") or 500)  # the plane bounds it
    wanted = args.get("status")
    return {"nodes": [release_node(r) for r in listed if not wanted or r.status == wanted]}


async def app_version(app: JSON, info: Info) -> int:
    current = await info.context.plane.releases.current(app["_record"])
    return current.version if current else 0


async def org_limited_access_tokens(org: JSON, info: Info, **_: Any) -> JSON:
    """The organisation's own tokens; deploy tokens are listed with their app."""
    context = info.context
    require_org_wide(context.caller, "the organization's tokens")
    tokens = await context.plane.tokens.of_org(context.org.slug)
    return {"nodes": [token_node(t) for t in tokens if t.revoked_at is None and t.app_name is None]}


async def app_limited_access_tokens(app: JSON, info: Info, **_: Any) -> JSON:
    tokens = await info.context.plane.tokens.of_org(info.context.org.slug)
    mine = [t for t in tokens if t.revoked_at is None and t.app_name == app["name"]]
    return {"nodes": [token_node(t) for t in mine]}


FIELD_RESOLVERS: dict[tuple[str, str], Any] = {
    ("Queries", "apps"): query_apps,
    ("Queries", "organizations"): query_organizations,
    ("Queries", "viewer"): query_viewer,
    ("Queries", "platform"): query_platform,
    ("Queries", "nearestRegion"): query_nearest_region,
    ("Queries", "appNameAvailable"): query_app_name_available,
    ("Queries", "machine"): query_machine,
    ("Queries", "volume"): query_volume,
    ("App", "machines"): app_machines,
    ("App", "limitedAccessTokens"): app_limited_access_tokens,
    ("App", "secrets"): app_secrets,
    ("App", "certificates"): app_certificates,
    ("App", "regions"): app_regions,
    ("App", "currentRelease"): app_current_release,
    ("App", "currentReleaseUnprocessed"): app_current_release,
    ("Queries", "latestImageDetails"): query_latest_image_details,
    ("App", "releasesUnprocessed"): app_releases,
    ("App", "version"): app_version,
    ("Organization", "limitedAccessTokens"): org_limited_access_tokens,
}
