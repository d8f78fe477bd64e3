"""`aerodrome machine`: run, list, status, the lifecycle actions, exec, leases, wait, cordon."""

from __future__ import annotations

from typing import Annotated

import typer

from aerodrome.cli import machine_flags as flags
from aerodrome.cli.machine_specs import machine_config
from aerodrome.cli.progress import activity, machine_wait, shown
from aerodrome.cli.session import Session, api_command
from aerodrome.client import CreateMachineRequest, Machine, MachineContainer, NotFoundError

app = typer.Typer(help="Machines: run, inspect and drive them.", no_args_is_help=True)

AppOption = Annotated[str, typer.Option("--app", "-a", envvar="FLY_APP", help="The app (else FLY_APP).")]
MachineId = Annotated[str, typer.Argument(help="The machine's id.")]


def machine_line(machine: Machine) -> str:
    name = f" ({machine.name})" if machine.name else ""
    return f"machine {machine.id}{name} is {machine.state} in {machine.region}"


def wait_with_spinner(session: Session, app_name: str, machine: Machine, state: str, timeout: float) -> Machine:
    """Wait for `state`, showing the machine's state as it goes (on a terminal's stderr, never with --json)."""
    enabled = shown(session.status_console, session.json)
    with machine_wait(session.status_console, enabled, machine, state, timeout) as show:
        return session.client.wait(app_name, machine.id, state, timeout=timeout, poll=2.0, on_poll=show)


def create_with_spinner(session: Session, app_name: str, request: CreateMachineRequest) -> Machine:
    """The create, which pulls and unpacks an image the host lacks before it answers: a spinner meanwhile."""
    doing = f"creating a machine from {request.config.image} (pulling it if the host lacks it)"
    with activity(session.status_console, shown(session.status_console, session.json), doing):
        return session.client.create_machine(app_name, request)


@api_command(app, "run")
def run(
    session: Session,
    image: Annotated[str, typer.Argument(help="The image, e.g. 127.0.0.1:5000/busybox:latest or flyio/mcp:latest.")],
    app_name: AppOption,
    name: flags.Name = "",
    region: flags.Region = "",
    env: flags.Env = None,
    cmd: flags.Cmd = None,
    entrypoint: flags.Entrypoint = None,
    vm_cpus: flags.Cpus = None,
    vm_memory: flags.Memory = None,
    vm_cpu_kind: flags.CpuKind = None,
    volume: flags.Volume = None,
    port: flags.PortFlag = None,
    autostop: flags.Autostop = None,
    autostart: flags.Autostart = None,
    restart: flags.RestartFlag = None,
    metadata: flags.Metadata = None,
    file_local: flags.FileLocal = None,
    detach: flags.Detach = False,
    timeout: flags.Timeout = 120.0,
) -> None:
    """Create a machine from an image and start it (waiting until it has started, unless --detach)."""
    given = flags.run_flags(
        image, env=env, cmd=cmd, entrypoint=entrypoint, vm_cpus=vm_cpus, vm_memory=vm_memory,
        vm_cpu_kind=vm_cpu_kind, volume=volume, port=port, autostop=autostop, autostart=autostart,
        restart=restart, metadata=metadata, file_local=file_local,
    )  # fmt: skip
    request = CreateMachineRequest(config=machine_config(given), name=name or None, region=region or None)
    machine = create_with_spinner(session, app_name, request)
    if not detach:
        machine = wait_with_spinner(session, app_name, machine, "started", timeout)
    session.emit(machine, machine_line(machine))


@api_command(app, "list")
def list_(
    session: Session,
    app_name: AppOption,
    state: Annotated[list[str] | None, typer.Option("--state", help="Only machines in this state, repeatable.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Destroyed machines too.")] = False,
) -> None:
    """List the app's machines."""
    machines = session.client.list_machines(app_name, states=state, include_deleted=all_)
    session.emit(
        machines,
        lambda: session.table(
            ("ID", "NAME", "STATE", "CHECKS", "REGION", "IMAGE", "IP", "UPDATED"),
            [
                (m.id, m.name, m.state, m.checks_summary(), m.region, m.config.image, m.private_ip, m.updated_at)
                for m in machines
            ],
            empty="no machines",
        ),
    )


@api_command(app, "status")
def status(session: Session, machine_id: MachineId, app_name: AppOption) -> None:
    """A machine: its state, config and latest events."""
    machine = session.client.get_machine(app_name, machine_id)

    def show() -> None:
        session.console.print(f"[bold]{machine_line(machine)}[/bold]")
        session.console.print(f"image {machine.config.image}, private ip {machine.private_ip}")
        session.console.print(f"version {machine.instance_id}, updated {machine.updated_at}")
        if machine.checks:
            session.table(
                ("CHECK", "STATUS", "OUTPUT", "UPDATED"),
                [(c.name, c.status, c.output, c.updated_at) for c in machine.checks],
            )
        if machine.containers is not None:
            session.table(
                ("CONTAINER", "STATE", "HEALTHY", "EXIT", "RESTARTS"),
                [_container_row(c) for c in machine.containers],
                empty="no container runs",
            )
        session.table(
            ("EVENT", "STATUS", "SOURCE", "TIMESTAMP"),
            [(e.type, e.status, e.source, e.timestamp) for e in machine.events],
        )

    session.emit(machine, show)


def _container_row(container: MachineContainer) -> tuple[str, ...]:
    healthy = "" if container.healthy is None else ("yes" if container.healthy else "no")
    exit_code = "" if container.exit_code is None else str(container.exit_code)
    return (container.name, container.state, healthy, exit_code, str(container.restart_count))


@api_command(app, "start")
def start(session: Session, machine_id: MachineId, app_name: AppOption) -> None:
    """Start a stopped or suspended machine."""
    result = session.client.start_machine(app_name, machine_id)
    session.emit(result, f"machine {machine_id} starting (was {result.previous_state})")


@api_command(app, "stop")
def stop(
    session: Session,
    machine_id: MachineId,
    app_name: AppOption,
    signal: Annotated[str, typer.Option("--signal", "-s", help="Signal to send first (else the config's).")] = "",
    timeout: Annotated[str, typer.Option("--timeout", help="Go duration before SIGKILL, e.g. 10s.")] = "",
) -> None:
    """Stop a machine."""
    session.client.stop_machine(app_name, machine_id, signal=signal, timeout=timeout)
    session.emit({"ok": True, "id": machine_id}, f"machine {machine_id} stopping")


@api_command(app, "suspend")
def suspend(session: Session, machine_id: MachineId, app_name: AppOption) -> None:
    """Suspend a started machine (its memory stays; resume with start)."""
    session.client.suspend_machine(app_name, machine_id)
    session.emit({"ok": True, "id": machine_id}, f"machine {machine_id} suspending")


@api_command(app, "restart")
def restart(
    session: Session,
    machine_id: MachineId,
    app_name: AppOption,
    signal: Annotated[str, typer.Option("--signal", "-s", help="Signal to stop it with.")] = "",
) -> None:
    """Restart a machine."""
    session.client.restart_machine(app_name, machine_id, signal=signal)
    session.emit({"ok": True, "id": machine_id}, f"machine {machine_id} restarting")


@api_command(app, "destroy")
def destroy(
    session: Session,
    machine_id: MachineId,
    app_name: AppOption,
    force: Annotated[bool, typer.Option("--force", "-f", help="Destroy it even if it is running.")] = False,
) -> None:
    """Destroy a machine (a started one only with --force)."""
    session.client.destroy_machine(app_name, machine_id, force=force)
    session.emit({"ok": True, "id": machine_id}, f"machine {machine_id} destroyed")


@api_command(app, "exec", context_settings={"ignore_unknown_options": True})
def exec_(
    session: Session,
    machine_id: MachineId,
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after --.")],
    app_name: AppOption,
    timeout: Annotated[int, typer.Option("--timeout", min=1, max=300, help="Seconds.")] = 30,
    container: Annotated[str, typer.Option("--container", help="The container, in a multi-container machine.")] = "",
) -> None:
    """Run a command in a started machine; its output, and its exit status as this command's (but with --json)."""
    result = session.client.exec_machine(app_name, machine_id, command, timeout=timeout, container=container)
    if session.json:
        session.emit(result)
        return
    typer.echo(result.stdout, nl=False)
    typer.echo(result.stderr, nl=False, err=True)
    raise typer.Exit(result.exit_code)


@api_command(app, "leases")
def leases(
    session: Session,
    machine_id: MachineId,
    app_name: AppOption,
    clear: Annotated[bool, typer.Option("--clear", help="Release the lease, whoever holds it.")] = False,
) -> None:
    """The machine's lease, if one is held (`--clear` releases it)."""
    session.client.get_machine(app_name, machine_id)  # an absent machine is a 404, not "no lease"
    try:
        lease = session.client.get_lease(app_name, machine_id)
    except NotFoundError:
        session.emit({"lease": None}, f"machine {machine_id} has no lease")
        return
    if clear:
        session.client.release_lease(app_name, machine_id, lease.nonce)
        session.emit({"lease": None, "released": lease}, f"released the lease of {lease.owner}")
        return
    session.emit(
        {"lease": lease},
        lambda: session.table(
            ("OWNER", "DESCRIPTION", "EXPIRES", "NONCE"),
            [(lease.owner, lease.description, lease.expires_at, lease.nonce)],
        ),
    )


@api_command(app, "wait")
def wait(
    session: Session,
    machine_id: MachineId,
    app_name: AppOption,
    state: Annotated[str, typer.Option("--state", help="started, stopped, suspended or destroyed.")] = "started",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds.")] = 60.0,
) -> None:
    """Wait until the machine is in a state (exit status 5 when the time runs out)."""
    machine = session.client.get_machine(app_name, machine_id)
    machine = wait_with_spinner(session, app_name, machine, state, timeout)
    session.emit(machine, machine_line(machine))


@api_command(app, "cordon")
def cordon(session: Session, machine_id: MachineId, app_name: AppOption) -> None:
    """Take the machine out of the edge's choices (it keeps running)."""
    session.client.cordon_machine(app_name, machine_id, True)
    session.emit({"ok": True, "id": machine_id, "cordoned": True}, f"machine {machine_id} cordoned")


@api_command(app, "uncordon")
def uncordon(session: Session, machine_id: MachineId, app_name: AppOption) -> None:
    """Let the edge route to the machine again."""
    session.client.cordon_machine(app_name, machine_id, False)
    session.emit({"ok": True, "id": machine_id, "cordoned": False}, f"machine {machine_id} uncordoned")
