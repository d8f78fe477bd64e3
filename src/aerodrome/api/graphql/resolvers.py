"""Resolvers of the GraphQL subset: apps and their organisation, IP address allocation and release, token
revocation, organisation creation.

Objects are plain dicts whose keys are the schema's field names (graphql-core's default resolver reads them);
only fields that need the store or arguments have a resolver of their own, bound in `schema.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeAlias

from graphql import GraphQLResolveInfo

from aerodrome.api.render import app_status
from aerodrome.control import ControlPlane, require_org_wide
from aerodrome.core import (
    IMAGE_SIZE_KEY,
    AlreadyExistsError,
    App,
    InvalidArgumentError,
    IPAddress,
    NotFoundError,
    Organization,
    Token,
)

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Context:
    """What every resolver sees as `info.context`: the plane and the authenticated caller."""

    plane: ControlPlane
    caller: Token
    org: Organization


Info: TypeAlias = "GraphQLResolveInfo[Context]"  # generic from graphql-core 3.3; a string so 3.2 imports it too


def organization_node(org: Organization) -> JSON:
    return {
        "id": org.id,
        "internalNumericId": org.internal_numeric_id,
        "name": org.name,
        "paidPlan": False,
        "rawSlug": org.slug,
        "slug": org.slug,
        "type": "PERSONAL" if org.slug == "personal" else "SHARED",
        # no billing, builders, add-ons or members here: Fly's answers for an organisation without them
        "billable": False,
        "billingStatus": "CURRENT",
        "viewerRole": "admin",  # a token acts for its whole organisation
        "remoteBuilderImage": "",
        "remoteBuilderApp": None,
        "addOnSsoLink": None,
        "addOns": {"nodes": []},  # `fly apps destroy` lists them (Tigris buckets) before it deletes
        "provisionsBetaExtensions": False,
        "members": {"edges": []},
    }


async def app_node(context: Context, app: App) -> JSON:
    machines, _ = await context.plane.store.app_counts(app.name)
    hostname = f"{app.name}.{context.plane.settings.app_domain}"
    return {
        "_record": app,
        "appUrl": f"https://{hostname}",
        "cnameTarget": hostname,
        "createdAt": app.created_at,
        "deployed": machines > 0,
        "hostname": hostname,
        "id": app.id,
        "internalId": app.id,
        "internalNumericId": app.internal_numeric_id,
        "name": app.name,
        "network": app.network,
        "networkId": context.org.internal_numeric_id,
        "organization": organization_node(context.org),
        "platformVersion": "machines",
        "role": None,
        "status": app_status(app, machines),
        "version": 0,
        "config": {"definition": {}},  # fly.toml lives with the client; Fly keeps none for a machines app
        "services": [],  # Nomad's; a machine's services are in its config
        "imageDetails": None,
        "image": None,
        "currentRelease": None,
        "currentReleaseUnprocessed": None,
        "releasesUnprocessed": {"nodes": []},
        "egressIpAddresses": {"nodes": []},  # static egress addresses are Fly's; machines here have none
    }


def ip_node(ip: IPAddress, org: Organization) -> JSON:
    # Only flycast addresses live on a private network; public ones have none, as on Fly.
    network = None
    if ip.type == "private_v6":
        network = {
            "createdAt": ip.created_at,
            "id": f"{org.id}/{ip.network}",
            "name": ip.network,
            "organization": organization_node(org),
            "updatedAt": ip.created_at,
        }
    return {
        "address": ip.address,
        "createdAt": ip.created_at,
        "id": ip.id,
        "network": network,
        "region": ip.region or "global",
        "serviceName": ip.service_name,
        "type": ip.type,
    }


async def _app(context: Context, name: object) -> App:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError("appId is required")
    return await context.plane.apps.get(context.caller, name)


# Query


async def query_app(_: None, info: Info, **args: str | None) -> JSON:
    context = info.context
    return await app_node(context, await _app(context, args.get("name") or args.get("internalId")))


async def query_organization(
    _: None, info: Info, id: str | None = None, name: str | None = None, slug: str | None = None
) -> JSON:
    context = info.context
    wanted = [value for value in (id, name, slug) if value]
    org = context.org
    if wanted and not any(value in (org.id, org.slug, org.name) for value in wanted):
        raise NotFoundError(f"Could not find Organization {wanted[0]!r}")
    return organization_node(org)


# App fields


async def app_ip_addresses(
    app: JSON,
    info: Info,
    after: str | None = None,
    before: str | None = None,
    first: int | None = None,
    last: int | None = None,
) -> JSON:
    context = info.context
    # The shared IPv4 is `sharedIpAddress`, not a node, as flyctl expects.
    ips = [ip for ip in await context.plane.ips.list(app["_record"]) if ip.type != "shared_v4"]
    nodes = [ip_node(ip, context.org) for ip in ips]
    return connection(nodes, after=after, before=before, first=first, last=last)


async def app_ip_address(app: JSON, info: Info, address: str) -> JSON | None:
    context = info.context
    ip = await context.plane.ips.find(app["_record"], address=address)
    return None if ip is None or ip.type == "shared_v4" else ip_node(ip, context.org)


async def app_shared_ip_address(app: JSON, info: Info) -> str | None:
    return await info.context.plane.ips.shared_address(app["_record"])


def connection(
    nodes: list[JSON], *, after: str | None, before: str | None, first: int | None, last: int | None
) -> JSON:
    """A Relay connection over `nodes`, with node ids as cursors."""
    ids = [node["id"] for node in nodes]
    start = ids.index(after) + 1 if after in ids else 0
    end = ids.index(before) if before in ids else len(nodes)
    window = nodes[start:end]
    has_next = has_previous = False
    if first is not None and first >= 0:
        has_next, window = len(window) > first, window[:first]
    if last is not None and last >= 0:
        has_previous, window = len(window) > last, window[len(window) - last :]
    return {
        "edges": [{"cursor": node["id"], "node": node} for node in window],
        "nodes": window,
        "pageInfo": {
            "startCursor": window[0]["id"] if window else None,
            "endCursor": window[-1]["id"] if window else None,
            "hasNextPage": has_next or end < len(nodes),
            "hasPreviousPage": has_previous or start > 0,
        },
        "totalCount": len(nodes),
    }


# Mutations


async def allocate_ip_address(_: None, info: Info, input: JSON) -> JSON:
    context = info.context
    app = await _app(context, input.get("appId"))
    org_id = input.get("organizationId")
    if org_id and org_id not in (context.org.id, context.org.slug):
        raise NotFoundError(f"Could not find Organization {org_id!r}")
    ip = await context.plane.ips.allocate(
        app,
        context.org,
        input["type"],
        region=input.get("region") or "",
        network=input.get("network") or "",
        service_name=input.get("serviceName") or "",
    )
    return {
        "app": await app_node(context, app),
        "clientMutationId": input.get("clientMutationId"),
        "ipAddress": None if ip.type == "shared_v4" else ip_node(ip, context.org),
    }


async def release_ip_address(_: None, info: Info, input: JSON) -> JSON:
    context = info.context
    address, ip_id = input.get("ip"), input.get("ipAddressId")
    if input.get("appId"):
        app = await _app(context, input["appId"])
    else:  # by id alone: the caller's app that holds it
        app = await _owner(context, address, ip_id)
    await context.plane.ips.release(app, address=address, ip_id=ip_id)
    return {"app": await app_node(context, app), "clientMutationId": input.get("clientMutationId")}


async def delete_limited_access_token(_: None, info: Info, input: JSON) -> JSON:
    context = info.context
    if not input.get("id"):
        raise InvalidArgumentError("a token is revoked by its id")
    require_org_wide(context.caller, "the organization's tokens")
    token = await context.plane.tokens.revoke(context.caller.org_slug, str(input["id"]))
    return {"clientMutationId": input.get("clientMutationId"), "revokedBy": input.get("revokedBy"), "token": token.id}


ORG_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def org_slug(name: str, slug: str | None) -> str:
    wanted = slug if slug is not None else re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not ORG_SLUG.fullmatch(wanted):
        raise InvalidArgumentError(f"organization slug {wanted!r}: lower-case letters, digits and dashes, 1-63")
    return wanted


async def create_organization(_: None, info: Info, input: JSON) -> JSON:
    """As on Fly, any caller may make an organisation; it gets the new organisation's first token."""
    plane = info.context.plane
    name = str(input.get("name") or "").strip()
    if not name or len(name) > 100:
        raise InvalidArgumentError("an organization's name is 1 to 100 characters")
    slug = org_slug(name, input.get("slug"))
    if await plane.store.get_org(slug) is not None:
        raise AlreadyExistsError(f"organization {slug!r} already exists")
    org = await plane.store.ensure_org(slug, name)
    token = await plane.tokens.create(slug, f"created with {slug}")
    return {"clientMutationId": input.get("clientMutationId"), "organization": organization_node(org), "token": token}


async def _owner(context: Context, address: str | None, ip_id: str | None) -> App:
    for app in await context.plane.apps.list(context.caller, context.caller.org_slug):
        if await context.plane.ips.find(app, address=address, ip_id=ip_id) is not None:
            return app
    raise NotFoundError(f"IP address {address or ip_id} not found")


#: (type, field) → resolver; every other field is read from the parent dict.
async def app_image(parent: JSON, info: Info, ref: str) -> JSON | None:
    """flyctl's `ResolveImageForApp`: the image pulled as the app's machines would pull it; null when no allowed
    registry has it, which flyctl reports as "could not find image"."""
    context: Context = info.context
    try:
        image = await context.plane.resolve_image(parent["_record"], ref)
    except NotFoundError:
        return None
    digest = str(image.get("digest") or "")
    return {
        "id": digest,
        "digest": digest,
        "ref": ref,
        "compressedSizeFull": int(image.get(IMAGE_SIZE_KEY) or 0),
        "manifest": {"annotations": {}},  # fly-go reads only the annotations, for a Fly builder's id
    }


FIELD_RESOLVERS: dict[tuple[str, str], Any] = {
    ("Queries", "app"): query_app,
    ("Queries", "organization"): query_organization,
    ("Mutations", "allocateIpAddress"): allocate_ip_address,
    ("Mutations", "releaseIpAddress"): release_ip_address,
    ("Mutations", "deleteLimitedAccessToken"): delete_limited_access_token,
    ("Mutations", "createOrganization"): create_organization,
    ("App", "ipAddresses"): app_ip_addresses,
    ("App", "ipAddress"): app_ip_address,
    ("App", "sharedIpAddress"): app_shared_ip_address,
    ("App", "image"): app_image,
}
