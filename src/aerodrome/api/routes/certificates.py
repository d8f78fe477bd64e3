"""`/v1/apps/{app}/certificates`: custom hostnames, with uploaded certificates or ones from aerodrome's CA.

Fly's shapes name a certificate's source `custom` or `fly`; certificates from aerodrome's CA (which stands in for
Fly's ACME issuance) are shown as `fly`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api.context import Call
from aerodrome.api.responses import JSONResponse
from aerodrome.control import CheckReport, describe
from aerodrome.core import App, Certificate, rfc3339

JSON = dict[str, object]

READY, REMOVED, AWAITING = "Ready", "Removed", "Awaiting configuration"


def _entry(cert: Certificate, status: str = "active") -> JSON:
    info = describe(cert.fullchain)
    return {
        "source": "custom" if cert.source == "custom" else "fly",
        "status": status,
        "issuer": info.issuer,
        "created_at": cert.updated_at,  # when this certificate was issued or uploaded
        "expires_at": info.expires_at,
        "issued": [{"certificate_authority": info.issuer, "expires_at": info.expires_at, "type": info.key_type}],
    }


def _validation(cert: Certificate) -> JSON:
    # aerodrome's CA issues without a challenge, so a requested certificate counts as validated.
    return {
        "alpn_configured": cert.acme_requested,
        "http_configured": cert.acme_requested,
        "dns_configured": False,
        "ownership_txt_configured": False,
    }


async def _dns_requirements(call: Call, app: App) -> JSON:
    """The records a hostname needs to reach the app; fly-go's `DNSRequirements`."""
    addresses = await call.plane.ips.list(app)
    return {
        "a": [ip.address for ip in addresses if ip.type in ("v4", "shared_v4")],
        "aaaa": [ip.address for ip in addresses if ip.type == "v6"],
        "cname": f"{app.name}.{call.plane.settings.app_domain}",
    }


async def _detail(call: Call, app: App, cert: Certificate) -> JSON:
    return {
        "hostname": cert.hostname,
        "acme_requested": cert.acme_requested,
        "certificates": [_entry(cert)],
        "configured": True,
        "status": READY,
        "dns_provider": "",
        "dns_requirements": await _dns_requirements(call, app),
        "validation": _validation(cert),
        "validation_errors": [],
    }


def _gone(hostname: str) -> JSON:
    return {"hostname": hostname, "acme_requested": False, "certificates": [], "configured": False, "status": REMOVED}


def _summary(cert: Certificate) -> JSON:
    return {
        "hostname": cert.hostname,
        "status": READY,
        "configured": True,
        "acme_requested": cert.acme_requested,
        "acme_alpn_configured": cert.acme_requested,
        "acme_http_configured": cert.acme_requested,
        "acme_dns_configured": False,
        "ownership_txt_configured": False,
        "has_custom_certificate": cert.source == "custom",
        "has_fly_certificate": cert.source == "aerodrome",
        "dns_provider": "",
        "created_at": cert.created_at,
        "updated_at": cert.updated_at,
    }


def _check(report: CheckReport, timestamp: str) -> JSON:
    cert = report.certificate
    return {
        "hostname": cert.hostname,
        "acme_requested": cert.acme_requested,
        "certificates": [_entry(cert, "active" if report.configured else "pending_validation")],
        "configured": report.configured,
        "status": READY if report.configured else AWAITING,
        "dns_provider": "",
        "validation": _validation(cert),
        "validation_errors": [
            {"code": code, "message": message, "remediation": "", "timestamp": timestamp}
            for code, message in report.errors
        ],
    }


async def list_certificates(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    params = request.query_params
    filter_ = params.get("filter", "")
    page, next_cursor = await call.plane.certificates.list(
        app, filter_=filter_, cursor=params.get("cursor", ""), limit=call.query_int("limit", 25)
    )
    total = await call.plane.certificates.count(app, filter_=filter_)
    body: JSON = {"certificates": [_summary(c) for c in page], "total_count": total}
    if next_cursor:
        body["next_cursor"] = next_cursor
    return JSONResponse(body)


async def request_acme(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    cert = await call.plane.certificates.request_acme(app, (await call.body()).get("hostname"))
    return JSONResponse(await _detail(call, app, cert), status_code=201)


async def upload_custom(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    body = await call.body()
    cert = await call.plane.certificates.upload_custom(
        app, body.get("hostname"), body.get("fullchain"), body.get("private_key")
    )
    return JSONResponse(await _detail(call, app, cert), status_code=201)


async def get_certificate(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    cert = await call.plane.certificates.get(app, request.path_params["hostname"])
    return JSONResponse(await _detail(call, app, cert))


async def delete_certificate(request: Request) -> Response:
    call = await Call.of(request)
    await call.plane.certificates.remove(await call.app(), request.path_params["hostname"])
    return Response(status_code=204)


async def delete_acme(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    hostname = request.path_params["hostname"]
    kept = await call.plane.certificates.remove_acme(app, hostname)
    return JSONResponse(_gone(hostname.lower()) if kept is None else await _detail(call, app, kept))


async def delete_custom(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    hostname = request.path_params["hostname"]
    kept = await call.plane.certificates.remove_custom(app, hostname)
    if kept is None:
        warning = f"{hostname} had no other certificate: it is no longer served or routed"
        return JSONResponse({**_gone(hostname.lower()), "warning": warning})
    warning = f"{hostname} is now served with a certificate from aerodrome's CA"
    return JSONResponse({**await _detail(call, app, kept), "warning": warning})


async def check_certificate(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    report = await call.plane.certificates.check(app, request.path_params["hostname"])
    # no `dns_records`: aerodrome does not resolve names (fly-go reads its absence as none)
    body = {**_check(report, rfc3339(call.plane.clock.now())), "dns_requirements": await _dns_requirements(call, app)}
    return JSONResponse(body)


routes = [
    Route("/v1/apps/{app_name}/certificates", list_certificates, methods=["GET"]),
    Route("/v1/apps/{app_name}/certificates/acme", request_acme, methods=["POST"]),
    Route("/v1/apps/{app_name}/certificates/custom", upload_custom, methods=["POST"]),
    Route("/v1/apps/{app_name}/certificates/{hostname}", get_certificate, methods=["GET"]),
    Route("/v1/apps/{app_name}/certificates/{hostname}", delete_certificate, methods=["DELETE"]),
    Route("/v1/apps/{app_name}/certificates/{hostname}/acme", delete_acme, methods=["DELETE"]),
    Route("/v1/apps/{app_name}/certificates/{hostname}/custom", delete_custom, methods=["DELETE"]),
    Route("/v1/apps/{app_name}/certificates/{hostname}/check", check_certificate, methods=["POST"]),
]
