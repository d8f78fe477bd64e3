"""Mutations beyond IP addresses: apps, secrets, releases, certificates, tokens and egress addresses, through the same
control-plane calls as the REST routes."""

from __future__ import annotations

from typing import Any

from aerodrome.api.graphql.queries import certificate_node, release_node
from aerodrome.api.graphql.resolvers import Info, app_node, organization_node
from aerodrome.control import require_org_wide, token_lifetime
from aerodrome.core import App, InvalidArgumentError, NotFoundError, UnprocessableError

JSON = dict[str, Any]


async def _app(info: Info, name: object) -> App:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError("appId is required")
    return await info.context.plane.apps.get(info.context.caller, name)


def _check_org(info: Info, org_id: object) -> None:
    org = info.context.org
    if org_id not in (org.id, org.slug):
        raise NotFoundError(f"Could not find Organization {org_id!r}")


async def create_app(_: None, info: Info, input: JSON) -> JSON:
    context = info.context
    _check_org(info, input.get("organizationId"))
    app = await context.plane.apps.create(
        context.caller, input.get("name"), context.org.slug, input.get("network") or ""
    )
    node = await app_node(context, app)
    node["regions"] = []  # a new app runs nowhere yet
    return {"app": node}


async def delete_app(_: None, info: Info, appId: str) -> JSON:
    app = await _app(info, appId)
    await info.context.plane.limiter.check("delete_app", info.context.caller.org_slug)
    await info.context.plane.delete_app(app)
    return {"organization": organization_node(info.context.org)}


async def set_secrets(_: None, info: Info, input: JSON) -> JSON:
    app = await _app(info, input.get("appId"))
    secrets = info.context.plane.secrets
    values: dict[str, object] = {s["key"]: s["value"] for s in input["secrets"]}
    if input.get("replaceAll"):
        values = {**{s.name: None for s in await secrets.list(app.name)}, **values}
    version = await secrets.set(app.name, values)
    return {"release": release_node(await info.context.plane.releases.secrets_changed(app, version))}


async def unset_secrets(_: None, info: Info, input: JSON) -> JSON:
    app = await _app(info, input.get("appId"))
    version = await info.context.plane.secrets.set(app.name, dict.fromkeys(input["keys"]))
    return {"release": release_node(await info.context.plane.releases.secrets_changed(app, version))}


async def create_release(_: None, info: Info, input: JSON) -> JSON:
    context = info.context
    app = await _app(info, input.get("appId"))
    release = await context.plane.releases.create(
        app,
        image=input["image"],
        strategy=input["strategy"],
        user=context.caller.name or context.caller.id,
        status="pending",  # the deployer marks it done with updateRelease
    )
    return {"app": await app_node(context, app), "release": release_node(release)}


async def update_release(_: None, info: Info, input: JSON) -> JSON:
    context = info.context
    release = await context.plane.releases.update(
        context.caller.org_slug,
        str(input["releaseId"]),
        input.get("status") or "complete",
        input.get("metadata"),
        app_name=context.caller.app_name,
    )
    return {"clientMutationId": input.get("clientMutationId"), "release": release_node(release)}


async def _check_payload(info: Info, app: App, hostname: str) -> JSON:
    context = info.context
    report = await context.plane.certificates.check(app, hostname)
    addresses = await context.plane.ips.list(app)
    node = certificate_node(report.certificate)
    node["configured"] = report.configured
    node["clientStatus"] = "Ready" if report.configured else "Awaiting configuration"
    node["validationErrors"] = [
        {"errorCode": None, "message": message, "remediation": None, "timestamp": node["createdAt"]}
        for _, message in report.errors
    ]
    check = {
        "aRecords": [ip.address for ip in addresses if ip.type in ("v4", "shared_v4")],
        "aaaaRecords": [ip.address for ip in addresses if ip.type == "v6"],
        "cnameRecords": [f"{app.name}.{context.plane.settings.app_domain}"],
        "soa": None,
        "dnsProvider": None,
        "dnsVerificationRecord": None,
        "resolvedAddresses": [],
    }
    return {"certificate": node, "check": check}


async def add_certificate(_: None, info: Info, appId: str, hostname: str) -> JSON:
    app = await _app(info, appId)
    await info.context.plane.certificates.request_acme(app, hostname)
    return await _check_payload(info, app, hostname)


async def check_certificate(_: None, info: Info, input: JSON) -> JSON:
    app = await _app(info, input.get("appId"))
    return await _check_payload(info, app, input["hostname"])


async def delete_certificate(_: None, info: Info, appId: str, hostname: str) -> JSON:
    app = await _app(info, appId)
    cert = await info.context.plane.certificates.remove(app, hostname)
    return {"app": await app_node(info.context, app), "certificate": certificate_node(cert)}


async def allocate_egress_ip_address(_: None, info: Info, input: JSON) -> JSON:
    await _app(info, input.get("appId"))
    raise UnprocessableError("static egress IP addresses are not available: machines leave through the host's address")


async def release_egress_ip_address(_: None, info: Info, input: JSON) -> JSON:
    await _app(info, input.get("appId"))
    raise NotFoundError(f"egress IP address {input.get('ip') or ''} not found")


TOKEN_PROFILES = ("deploy", "deploy_organization")


async def create_limited_access_token(_: None, info: Info, input: JSON) -> JSON:
    """`fly tokens create deploy` asks for profile `deploy` with `{"app_id": …}`: a token of that app only;
    `deploy_organization` (`fly tokens create org`, and the base flyctl narrows itself for `readonly`) a token of
    the organisation. Any other profile is refused: a token must never grant more than its profile names."""
    context = info.context
    _check_org(info, input.get("organizationId"))
    profile = input.get("profile")
    if profile not in TOKEN_PROFILES:
        raise UnprocessableError(f"token profile {profile!r} is not available here: use deploy or deploy_organization")
    params = input.get("profileParams") or {}
    app_id = params.get("app_id") if isinstance(params, dict) else None
    lifetime = token_lifetime(input.get("expiry"))
    if app_id:
        app = await _app(info, app_id)
        secret = await context.plane.tokens.create(app.org_slug, input["name"], app_name=app.name, lifetime=lifetime)
    else:
        require_org_wide(context.caller, "organization tokens")
        secret = await context.plane.tokens.create(context.org.slug, input["name"], lifetime=lifetime)
    return {"limitedAccessToken": {"tokenHeader": f"FlyV1 {secret}"}}


async def log_out(_: None, info: Info, input: JSON) -> JSON:
    context = info.context
    await context.plane.tokens.revoke(context.caller.org_slug, context.caller.id)  # as Fly ends the session
    return {"ok": True}


FIELD_RESOLVERS: dict[tuple[str, str], Any] = {
    ("Mutations", "createApp"): create_app,
    ("Mutations", "deleteApp"): delete_app,
    ("Mutations", "setSecrets"): set_secrets,
    ("Mutations", "unsetSecrets"): unset_secrets,
    ("Mutations", "createRelease"): create_release,
    ("Mutations", "updateRelease"): update_release,
    ("Mutations", "addCertificate"): add_certificate,
    ("Mutations", "checkCertificate"): check_certificate,
    ("Mutations", "deleteCertificate"): delete_certificate,
    ("Mutations", "allocateEgressIpAddress"): allocate_egress_ip_address,
    ("Mutations", "releaseEgressIpAddress"): release_egress_ip_address,
    ("Mutations", "createLimitedAccessToken"): create_limited_access_token,
    ("Mutations", "logOut"): log_out,
}
