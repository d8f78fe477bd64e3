"""The dashboard's pages (GET): apps, an app's machines, a machine, volumes, secrets, tokens, organisations."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response, StreamingResponse

from aerodrome.api.routes.logs import entry
from aerodrome.control import require_org_wide
from aerodrome.core import App, LogLine, Machine, MachineEvent, MachineState
from aerodrome.dashboard.commands import MachineForm
from aerodrome.dashboard.live import admit_log_stream, log_lines, machine_table
from aerodrome.dashboard.samples import rates, sparkline
from aerodrome.dashboard.view import TEMPLATES, View

SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def when(milliseconds: int) -> str:
    return datetime.fromtimestamp(milliseconds / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def log_text(line: LogLine) -> str:
    attributes = entry(line)["attributes"]
    return f"{attributes['timestamp'][:23]}Z {line.message}"


async def apps(view: View) -> Response:
    rows = []
    for app in await view.plane.apps.list(view.caller, view.caller.org_slug):
        machines = await view.plane.machines.list(app, include_deleted=False, region=None, states=[])
        certificates = await view.plane.certificates.count(app)
        ips = [ip.address for ip in await view.plane.ips.list(app)]
        states = sorted(Counter(m.state.value for m in machines).items())
        rows.append({"app": app, "states": states, "ips": ips, "certificates": certificates})
    return view.render("apps.html", title="Apps", rows=rows)


async def _last_events(view: View, machines: list[Machine]) -> dict[str, MachineEvent | None]:
    latest: dict[str, MachineEvent | None] = {}
    for machine in machines:
        events = await view.plane.store.list_events(machine.id, limit=1)
        latest[machine.id] = events[0] if events else None
    return latest


def _usage(view: View, machine_id: str) -> dict[str, str]:
    samples = view.dashboard.samples.of(machine_id)
    if not samples:
        return {"cpu": "", "memory": ""}
    cpu = rates(samples[-2:], "cpu_seconds")
    return {
        "cpu": f"{cpu[-1] * 100:.1f}%" if cpu else "",
        "memory": f"{samples[-1].memory_bytes / 2**20:.1f} MiB",
    }


async def machine_rows(view: View, app: App) -> str:
    machines = await view.plane.machines.list(app, include_deleted=False, region=None, states=[])
    events = await _last_events(view, machines)
    for machine in machines:
        if machine.state is MachineState.STARTED:  # one sample of the organisation serves them all
            await view.dashboard.samples.fresh(view.caller.org_slug, machine.id)
    usage = {m.id: _usage(view, m.id) for m in machines}
    return TEMPLATES.get_template("machine_rows.html").render(
        root="/dashboard",
        app=app,
        machines=machines,
        events=events,
        usage=usage,
        when=when,
        host_status=view.plane.hosts.host_status,
    )


async def app_page(view: View) -> Response:
    app = await view.app()
    return view.render("app.html", title=app.name, app=app, rows=await machine_rows(view, app))


async def machine_stream(view: View) -> Response:
    app = await view.app()

    async def draw() -> str:
        return await machine_rows(view, app)

    return StreamingResponse(
        machine_table(view.dashboard.changes, app.name, draw), media_type="text/event-stream", headers=SSE_HEADERS
    )


def _graphs(view: View, machine: Machine) -> list[dict[str, Any]]:
    samples = view.dashboard.samples.of(machine.id)
    requests = view.dashboard.samples.of(f"app:{machine.app_name}")
    series = [
        ("CPU", [r * 100 for r in rates(samples, "cpu_seconds")], "%"),
        ("Memory", [s.memory_bytes / 2**20 for s in samples], "MiB"),
        ("Network", [r / 1024 for r in rates(samples, "net_bytes")], "KiB/s"),
        ("Edge requests (app)", rates(requests, "requests"), "req/s"),
    ]
    return [
        {"name": name, "points": sparkline(values), "last": f"{values[-1]:.1f} {unit}" if values else "no samples yet"}
        for name, values, unit in series
    ]


async def machine_page(view: View) -> Response:
    app = await view.app()
    machine = await view.plane.machines.find(app, view.request.path_params["machine_id"], include_deleted=True)
    await view.dashboard.samples.fresh(view.caller.org_slug, machine.id)
    events = await view.plane.store.list_events(machine.id, limit=20)
    versions = await view.plane.store.list_versions(machine.id)
    lines = await view.plane.store.read_logs(app.name, after=None, machine_id=machine.id, region=None, limit=100)
    return view.render(
        "machine.html",
        title=machine.id,
        app=app,
        machine=machine,
        events=events,
        versions=versions,
        lines=[log_text(line) for line in lines],
        after=lines[-1].id if lines else "",
        checks=machine.config.get("checks") or {},
        graphs=_graphs(view, machine),
        when=when,
        host_status=view.plane.hosts.host_status(machine.host),
    )


async def log_stream(view: View) -> Response:
    app = await view.app()
    machine = await view.plane.machines.find(app, view.request.path_params["machine_id"], include_deleted=True)
    raw = view.request.query_params.get("after", "")
    after = int(raw) if raw.isdigit() and len(raw) <= 18 else None
    admit_log_stream(view.plane, view.caller.org_slug)

    def draw(line: object) -> str:
        assert isinstance(line, LogLine)
        return log_text(line) + "\n"

    stream = log_lines(view.plane, view.dashboard.changes, view.caller.org_slug, app.name, machine.id, after, draw)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


async def confirm_destroy(view: View) -> Response:
    app = await view.app()
    machine = await view.plane.machines.find(app, view.request.path_params["machine_id"])
    return view.render("destroy.html", title=f"Destroy {machine.id}", app=app, machine=machine)


async def new_machine(view: View) -> Response:
    app = await view.app()
    form = MachineForm.of(dict(view.request.query_params))
    volumes = await view.plane.volumes.list(app)
    return view.render("new_machine.html", title="New machine", app=app, form=form, volumes=volumes, commands=None)


async def volumes(view: View) -> Response:
    app = await view.app()
    rows = []
    for volume in await view.plane.volumes.list(app):
        usage = await view.plane.volumes.usage(volume)
        rows.append({"volume": volume, "usage": usage, "snapshots": await view.plane.volumes.snapshots(app, volume.id)})
    return view.render("volumes.html", title=f"{app.name}: volumes", app=app, rows=rows)


async def secrets(view: View) -> Response:
    app = await view.app()
    listed = await view.plane.secrets.list(app.name)
    return view.render("secrets.html", title=f"{app.name}: secrets", app=app, secrets=listed)


async def tokens(view: View) -> Response:
    require_org_wide(view.caller, "the organization's tokens")
    listed = await view.plane.tokens.of_org(view.caller.org_slug)
    return view.render("tokens.html", title="Tokens", tokens=listed, caller=view.caller)


async def orgs(view: View) -> Response:
    known = [await view.plane.store.get_org(slug) for slug in sorted(view.session.tokens)]
    return view.render("orgs.html", title="Organisations", known=[o for o in known if o is not None])
