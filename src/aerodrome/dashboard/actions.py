"""The dashboard's actions (POST, CSRF-checked): each calls the control-plane method its REST route calls, with
the same rate limits, so what it refuses and the message it gives are the API's."""

from __future__ import annotations

from starlette.responses import Response

from aerodrome.api.errors import status_of
from aerodrome.api.routes.actions import _exec_request
from aerodrome.control import require_org_wide
from aerodrome.core import AerodromeError, InvalidArgumentError
from aerodrome.dashboard.commands import MachineForm
from aerodrome.dashboard.view import View

LIFECYCLE = ("start", "stop", "suspend", "restart")


async def create_app(view: View) -> Response:
    form = await view.form()
    app = await view.plane.apps.create(view.caller, form.get("name", "").strip(), view.caller.org_slug)
    return view.back(f"/apps/{app.name}", "ok", f"app {app.name} created")


async def delete_app(view: View) -> Response:
    app = await view.app()
    await view.plane.limiter.check("delete_app", view.caller.org_slug)
    await view.plane.delete_app(app)
    return view.back("/apps", "ok", f"app {app.name} is being deleted")


async def lifecycle(view: View) -> Response:
    app = await view.app()
    mid, what = view.request.path_params["machine_id"], view.request.path_params["action"]
    if what not in LIFECYCLE:
        raise InvalidArgumentError(f"unknown action {what!r}")
    await view.plane.limiter.check(what, mid)
    machines = view.plane.machines
    if what == "start":
        await machines.start(app, mid, None)
    elif what == "stop":
        await machines.stop(app, mid, None)
    elif what == "suspend":
        await machines.suspend(app, mid, None)
    else:
        await machines.restart(app, mid, None)
    return view.back(f"/apps/{app.name}/machines/{mid}", "ok", f"{what}: requested for {mid}")


async def destroy(view: View) -> Response:
    app = await view.app()
    mid = view.request.path_params["machine_id"]
    form = await view.form()
    if form.get("confirm") != mid:
        raise InvalidArgumentError(f"type the machine's id ({mid}) to destroy it")
    await view.plane.limiter.check("destroy", mid)
    await view.plane.machines.destroy(app, mid, force=form.get("force") == "on", nonce_=None)
    return view.back(f"/apps/{app.name}", "ok", f"machine {mid} destroyed")


async def exec_(view: View) -> Response:
    app = await view.app()
    mid = view.request.path_params["machine_id"]
    await view.plane.limiter.check("exec", mid)
    command, stdin, timeout = _exec_request({"command": ["sh", "-c", (await view.form()).get("command", "")]})
    result = await view.plane.machines.exec(app, mid, command, stdin, float(timeout))
    stdout = result.stdout.decode(errors="replace")
    output = {
        "exit_code": result.exit_code,
        "stdout": stdout,
        "stderr": result.stderr.decode(errors="replace"),
    }
    if view.request.headers.get("hx-request"):
        return view.render("exec_result.html", result=output)
    return view.back(f"/apps/{app.name}/machines/{mid}", "ok", f"exit {result.exit_code}: {stdout[:400]}")


async def create_machine(view: View) -> Response:
    app = await view.app()
    form = MachineForm.of(await view.form())
    await view.plane.limiter.check("create", app.name)
    org = await view.plane.store.get_org(view.caller.org_slug)
    assert org is not None  # a token exists only for an existing organisation
    try:
        machine = await view.plane.machines.create(app, org.internal_numeric_id, form.body())
    except AerodromeError as exc:  # the form again, as filled in, with the API's status and message
        volumes = await view.plane.volumes.list(app)
        return view.render(
            "new_machine.html", status_of(exc), title="New machine", app=app, form=form, volumes=volumes, error=exc
        )
    return view.back(f"/apps/{app.name}/machines/{machine.id}", "ok", f"machine {machine.id} created")


async def preview_machine(view: View) -> Response:
    """The form's equivalent commands (htmx swaps them in as the form changes); a bad value shows its message."""
    app = await view.app()
    form = MachineForm.of(await view.form())
    api_url = f"{view.request.url.scheme}://{view.request.url.netloc}"
    try:
        commands = {"curl": form.curl(api_url, app.name), "cli": form.cli(app.name)}
    except InvalidArgumentError as exc:
        commands = {"error": exc.message}
    return view.render("commands.html", commands=commands)


async def create_volume(view: View) -> Response:
    app = await view.app()
    form = await view.form()
    body = {"name": form.get("name", "").strip(), "size_gb": _size(form.get("size_gb", ""))}
    region = view.plane.machines.region_for(form.get("region") or None)
    volume = await view.plane.volumes.create(app, body, region)
    return view.back(f"/apps/{app.name}/volumes", "ok", f"volume {volume.id} created")


async def extend_volume(view: View) -> Response:
    app = await view.app()
    vol_id = view.request.path_params["volume_id"]
    size = _size((await view.form()).get("size_gb", ""))
    volume, needs_restart = await view.plane.volumes.extend(app, vol_id, size)
    note = " (restart its machine to use it)" if needs_restart else ""
    return view.back(f"/apps/{app.name}/volumes", "ok", f"volume {volume.id} is now {volume.size_gb} GB{note}")


async def snapshot_volume(view: View) -> Response:
    app = await view.app()
    snapshot = await view.plane.volumes.snapshot(app, view.request.path_params["volume_id"])
    return view.back(f"/apps/{app.name}/volumes", "ok", f"snapshot {snapshot.id} taken")


async def create_token(view: View) -> Response:
    require_org_wide(view.caller, "the organization's tokens")
    name = (await view.form()).get("name", "").strip()[:100]
    secret = await view.plane.tokens.create(view.caller.org_slug, name)
    return view.back("/tokens", "secret", secret)


async def revoke_token(view: View) -> Response:
    require_org_wide(view.caller, "the organization's tokens")
    token = await view.plane.tokens.revoke(view.caller.org_slug, view.request.path_params["token_id"])
    return view.back("/tokens", "ok", f"token {token.id} revoked")


async def switch_org(view: View) -> Response:
    slug = (await view.form()).get("org", "")
    if slug not in view.session.tokens:
        raise InvalidArgumentError(f"no token for organisation {slug!r} in this session: sign in with one")
    view.session.org = slug
    view.session.changed = True
    return view.back("/apps", "ok", f"now showing {slug}")


def _size(raw: str) -> int:
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 6:
        raise InvalidArgumentError(f"invalid size_gb {raw[:20]!r}: a whole number of GB")
    return int(raw)
