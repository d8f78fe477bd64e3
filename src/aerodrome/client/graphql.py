"""The GraphQL calls of Fly's API that the Machines API has no REST form for in flyctl: IP addresses
(`allocateIpAddress`, `releaseIpAddress`, an app's `ipAddresses`), the caller's organisation and a new one
(`createOrganization`)."""

from __future__ import annotations

from typing import Any

from aerodrome.client.calls import Call
from aerodrome.client.models import CreatedOrganization, IPAddress, Organization

_IP_FIELDS = "id address type region createdAt serviceName network { name }"

ALLOCATE_IP = (
    "mutation($input: AllocateIPAddressInput!) { allocateIpAddress(input: $input) { "
    f"app {{ sharedIpAddress }} ipAddress {{ {_IP_FIELDS} }} }} }}"
)
RELEASE_IP = "mutation($input: ReleaseIPAddressInput!) { releaseIpAddress(input: $input) { clientMutationId } }"
LIST_IPS = (
    f"query($name: String!) {{ app(name: $name) {{ sharedIpAddress ipAddresses {{ nodes {{ {_IP_FIELDS} }} }} }} }}"
)
_ORG_FIELDS = "id slug name internalNumericId type"
ORGANIZATION = f"query($slug: String) {{ organization(slug: $slug) {{ {_ORG_FIELDS} }} }}"
CREATE_ORGANIZATION = (
    "mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { "
    f"organization {{ {_ORG_FIELDS} }} token }} }}"
)

IP_TYPES = ("v4", "shared_v4", "v6", "private_v6")


def _query(query: str, variables: dict[str, Any], parse: Any, *, idempotent: bool) -> Call[Any]:
    body = {"query": query, "variables": variables}
    return Call("POST", "/graphql", parse, body=body, graphql=True, idempotent=idempotent)


def ip_address(node: dict[str, Any]) -> IPAddress:
    network = node.get("network") or {}
    return IPAddress(
        id=str(node.get("id") or ""),
        address=str(node.get("address") or ""),
        type=str(node.get("type") or ""),
        region=str(node.get("region") or ""),
        service_name=str(node.get("serviceName") or ""),
        network=str(network.get("name") or ""),
        created_at=str(node.get("createdAt") or ""),
    )


def _shared(address: str) -> IPAddress:
    return IPAddress(address=address, type="shared_v4", region="global")


def _allocated(data: dict[str, Any]) -> IPAddress:
    payload = data.get("allocateIpAddress") or {}
    if payload.get("ipAddress"):
        return ip_address(payload["ipAddress"])
    return _shared(str((payload.get("app") or {}).get("sharedIpAddress") or ""))


def _listed(data: dict[str, Any]) -> list[IPAddress]:
    app = data.get("app") or {}
    ips = [ip_address(node) for node in (app.get("ipAddresses") or {}).get("nodes") or [] if node]
    shared = app.get("sharedIpAddress")
    return ([_shared(shared)] if shared else []) + ips


def allocate_ip(
    app: str, type_: str, *, region: str = "", network: str = "", service_name: str = ""
) -> Call[IPAddress]:
    """`type_` is one of `IP_TYPES`; a shared IPv4 comes back as the app's `sharedIpAddress`."""
    variables: dict[str, Any] = {"input": {"appId": app, "type": type_, "region": region}}
    if network:
        variables["input"]["network"] = network
    if service_name:
        variables["input"]["serviceName"] = service_name
    return _query(ALLOCATE_IP, variables, _allocated, idempotent=False)


def release_ip(app: str, address: str) -> Call[None]:
    variables = {"input": {"appId": app, "ip": address}}
    return _query(RELEASE_IP, variables, lambda data: None, idempotent=False)


def list_ips(app: str) -> Call[list[IPAddress]]:
    return _query(LIST_IPS, {"name": app}, _listed, idempotent=True)


def organization_of(node: dict[str, Any]) -> Organization:
    return Organization(
        id=str(node.get("id") or ""),
        slug=str(node.get("slug") or ""),
        name=str(node.get("name") or ""),
        internal_numeric_id=node.get("internalNumericId") or 0,
        type=node.get("type"),
    )


def organization(slug: str = "") -> Call[Organization]:
    def parse(data: dict[str, Any]) -> Organization:
        return organization_of(data.get("organization") or {})

    return _query(ORGANIZATION, {"slug": slug or None}, parse, idempotent=True)


def create_organization(name: str, slug: str = "") -> Call[CreatedOrganization]:
    """A new organisation and its first token (`slug` is aerodrome's: Fly makes it from the name)."""

    def parse(data: dict[str, Any]) -> CreatedOrganization:
        payload = data.get("createOrganization") or {}
        return CreatedOrganization(
            organization=organization_of(payload.get("organization") or {}), token=str(payload.get("token") or "")
        )

    variables = {"input": {"name": name, **({"slug": slug} if slug else {})}}
    return _query(CREATE_ORGANIZATION, variables, parse, idempotent=False)
