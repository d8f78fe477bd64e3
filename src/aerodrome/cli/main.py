"""The `aerodrome` command: `serve` runs the platform; the rest are small clients of it, shaped like flyctl."""

from __future__ import annotations

import enum
import ipaddress
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aerodrome.cli.agent import agent
from aerodrome.cli.apps import app as apps_app
from aerodrome.cli.bench import bench
from aerodrome.cli.certs import app as certs_app
from aerodrome.cli.config import (
    EDGE_LIMITS,
    EDGE_TIMEOUTS,
    MAX_NETNS_POOL,
    NETNS_POOL,
    HostCheckError,
    data_dir,
    missing_requirements,
)
from aerodrome.cli.doctor import doctor
from aerodrome.cli.ips import app as ips_app
from aerodrome.cli.login import login, logout
from aerodrome.cli.logs import logs
from aerodrome.cli.machine_changes import app as machines_app
from aerodrome.cli.registry_images import app as images_app
from aerodrome.cli.secrets import app as secrets_app
from aerodrome.cli.session import api_command
from aerodrome.cli.status import status
from aerodrome.cli.tokens import DataDir, orgs_app, tokens_app
from aerodrome.cli.volumes import app as volumes_app
from aerodrome.core import AerodromeError

if TYPE_CHECKING:
    from aerodrome.api import ApiLimits

app = typer.Typer(help="aerodrome: the Fly.io Machines API on your own Linux host.", no_args_is_help=True)
app.add_typer(apps_app, name="apps")
app.add_typer(machines_app, name="machine")
app.add_typer(machines_app, name="machines", hidden=True)  # flyctl takes both
app.add_typer(volumes_app, name="volumes")
app.add_typer(ips_app, name="ips")
app.add_typer(secrets_app, name="secrets")
app.add_typer(certs_app, name="certs")
app.add_typer(tokens_app, name="tokens")
app.add_typer(orgs_app, name="orgs")
app.add_typer(images_app, name="images")
api_command(app, "logs")(logs)
api_command(app, "status")(status)
app.command("login")(login)
app.command("logout")(logout)
app.command()(doctor)
app.command()(agent)
app.command()(bench)


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def configure_logging(log_format: LogFormat) -> None:
    """The daemon's log on stderr: `time name level message` as text, or as one JSON object a line (with
    `exc_info` holding a traceback) for log shippers."""
    handler = logging.StreamHandler(sys.stderr)
    fields = "%(asctime)s %(name)s %(levelname)s %(message)s"
    if log_format is LogFormat.JSON:
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(fields, rename_fields={"asctime": "time", "levelname": "level"}))
    else:
        handler.setFormatter(logging.Formatter(fields))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def _run(coro: object) -> None:
    import uvloop

    uvloop.run(coro)  # type: ignore[arg-type]


@app.command()
def serve(
    data_dir_: DataDir = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="postgresql://USER[:PASS]@HOST[:PORT]/DB to keep the state in (default: DATA_DIR/aerodrome.db).",
        ),
    ] = None,
    api: Annotated[str, typer.Option("--api", help="API listen address.")] = "127.0.0.1:4280",
    registry: Annotated[str, typer.Option("--registry", help="Embedded registry listen address.")] = "127.0.0.1:5000",
    region: Annotated[str, typer.Option("--region", help="Region recorded when a request names none.")] = "iad",
    regions: Annotated[str, typer.Option("--regions", help="Comma-separated regions served (default: any).")] = "",
    rate_limits: Annotated[
        bool, typer.Option("--rate-limits/--no-rate-limits", help="Fly's API rate limits (off for local development).")
    ] = True,
    dashboard: Annotated[
        bool, typer.Option("--dashboard/--no-dashboard", help="The web dashboard at /dashboard/ on the API listener.")
    ] = True,
    edge_http: Annotated[
        str, typer.Option("--edge-http", help="Edge listener for services' port 80.")
    ] = "127.0.0.1:8080",
    edge_https: Annotated[
        str, typer.Option("--edge-https", help="Edge listener for services' port 443 (TLS).")
    ] = "127.0.0.1:8443",
    domain: Annotated[str, typer.Option("--domain", help="Apps answer at <app>.<domain>.")] = "localhost",
    autostop_idle: Annotated[
        float, typer.Option("--autostop-idle", help="Seconds without traffic before autostop acts.")
    ] = 300.0,
    machine_ipv4_pool: Annotated[
        str, typer.Option("--machine-ipv4-pool", help="Private IPv4 range for machines (a subnet per organisation).")
    ] = "172.30.0.0/16",
    org_prefix_len: Annotated[
        int,
        typer.Option("--org-prefix-len", help="Size of each organisation's subnet of the pool (20: 4093 machines)."),
    ] = 20,
    dedicated_ipv4_pool: Annotated[
        str,
        typer.Option("--dedicated-ipv4-pool", help="Dedicated v4 app addresses, bound by the edge (in 127.0.0.0/8)."),
    ] = "127.0.1.0/24",
    dedicated_ipv6_pool: Annotated[
        str, typer.Option("--dedicated-ipv6-pool", help="Dedicated v6 app addresses, bound by the edge on lo.")
    ] = "fdae:ad::/48",
    egress: Annotated[
        bool,
        typer.Option(
            "--egress/--no-egress",
            help="Let machines open connections out of the host (NAT), never to private or link-local addresses.",
        ),
    ] = True,
    egress_allow: Annotated[
        list[str] | None,
        typer.Option(
            "--egress-allow",
            help="An IPv4 network machines may reach despite that (a LAN service), repeatable; also with --no-egress.",
        ),
    ] = None,
    dns: Annotated[
        bool,
        typer.Option(
            "--dns/--no-dns",
            help="Machines' resolver at fdaa::3 (.internal names), _api.internal:4280 and /.fly/api in each machine.",
        ),
    ] = True,
    uplink: Annotated[
        str | None, typer.Option("--uplink", help="The interface egress leaves by (default: the default route's).")
    ] = None,
    image_gc_interval: Annotated[
        float, typer.Option("--image-gc-interval", help="Seconds between removals of images no machine uses.")
    ] = 3600.0,
    mirror: Annotated[
        list[str] | None,
        typer.Option("--mirror", help="Image name mapping FROM=TO, e.g. docker.io/library=127.0.0.1:5000/library."),
    ] = None,
    allow_registry: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-registry",
            help="A registry HOST[:PORT] image references may name, repeatable (default: the embedded one and the "
            "mirrors' targets).",
        ),
    ] = None,
    volume_unit_mb: Annotated[
        int, typer.Option("--volume-unit-mb", help="Size of one volume 'GB' in MiB (tests use 1).", hidden=True)
    ] = 1024,
    volume_check_interval: Annotated[
        float, typer.Option("--volume-check-interval", help="Seconds between volume auto-extend checks (0: off).")
    ] = 30.0,
    disk_reserve_mb: Annotated[
        int,
        typer.Option(
            "--disk-reserve-mb", min=0, help="MiB of the data filesystem kept free: no machine starts below it."
        ),
    ] = 1024,
    netns_pool: Annotated[
        int,
        typer.Option(
            "--netns-pool",
            min=0,
            max=MAX_NETNS_POOL,
            help="Prepared network namespaces kept per organisation starting machines (0: none).",
        ),
    ] = NETNS_POOL,
    allow_32bit: Annotated[
        bool,
        typer.Option("--allow-32bit", help="Let machines run 32-bit x86 programs (a wider seccomp filter)."),
    ] = False,
    edge_timeout: Annotated[
        list[str] | None,
        typer.Option(
            "--edge-timeout",
            help=f"An edge timeout NAME=SECONDS, repeatable; NAME is one of {', '.join(EDGE_TIMEOUTS)}.",
        ),
    ] = None,
    api_limit: Annotated[
        list[str] | None,
        typer.Option("--api-limit", help="An API listener limit NAME=VALUE, repeatable (see the README)."),
    ] = None,
    edge_limit: Annotated[
        list[str] | None,
        typer.Option(
            "--edge-limit",
            help=f"An edge limit NAME=N, repeatable; NAME is one of {', '.join(EDGE_LIMITS)}.",
        ),
    ] = None,
    events_per_machine: Annotated[
        int, typer.Option("--events-per-machine", min=1, help="Events kept per machine, the newest.")
    ] = 100,
    event_max_age: Annotated[
        float, typer.Option("--event-max-age", min=0, help="Seconds an event is kept (30 days).")
    ] = 30 * 86400.0,
    versions_per_machine: Annotated[
        int, typer.Option("--versions-per-machine", min=1, help="Versions kept per machine, the current among them.")
    ] = 10,
    destroyed_machine_age: Annotated[
        float,
        typer.Option(
            "--destroyed-machine-age", min=0, help="Seconds a destroyed machine stays listed with include_deleted."
        ),
    ] = 7 * 86400.0,
    retention_interval: Annotated[
        float, typer.Option("--retention-interval", min=0, help="Seconds between retention sweeps (0: off).")
    ] = 60.0,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="The daemon's own log lines: text, or one JSON object a line.")
    ] = LogFormat.TEXT,
    log_bytes_per_machine: Annotated[
        int, typer.Option("--log-bytes-per-machine", min=1024, help="Bytes of log lines kept per machine (1 MiB).")
    ] = 1024 * 1024,
    log_max_age: Annotated[float, typer.Option("--log-max-age", min=0, help="Seconds a log line is kept (7 days).")] = 7
    * 86400.0,
    log_streams: Annotated[
        int, typer.Option("--log-streams", min=1, help="Log follow streams open at once (64; a quarter per org).")
    ] = 64,
    agent_url: Annotated[
        list[str] | None,
        typer.Option(
            "--agent", help="URL of a host agent (`aerodrome agent`) to drive, not the in-process one; repeatable."
        ),
    ] = None,
    agent_token_file: Annotated[
        list[Path] | None,
        typer.Option("--agent-token-file", help="An http:// agent's DIR/agent.token (one per such --agent, in order)."),
    ] = None,
    cluster_ca: Annotated[
        Path | None,
        typer.Option("--cluster-ca", help="The cluster CA's file (the agents'): reach https:// agents by mutual TLS."),
    ] = None,
    no_local_agent: Annotated[
        bool,
        typer.Option("--no-local-agent", help="Drive the hosts registered in --database; no agent in this process."),
    ] = False,
    heartbeat_interval: Annotated[
        float, typer.Option("--heartbeat-interval", min=0.1, help="Registered agents' heartbeat period (2 s).")
    ] = 2.0,
    heartbeat_misses: Annotated[
        int, typer.Option("--heartbeat-misses", min=1, help="Periods without a heartbeat: host unreachable (3).")
    ] = 3,
    peer: Annotated[
        list[str] | None,
        typer.Option(
            "--peer", help="A host of the private network, UNDERLAY_IPV6=ITS_MACHINE_POOL: the edge routes there."
        ),
    ] = None,
) -> None:
    """Run the API, the machines runtime and the embedded registry in the foreground."""
    from aerodrome.cli.serve import ServeOptions
    from aerodrome.cli.serve import serve as run_serve
    from aerodrome.control import LogSettings, RetentionSettings

    mirrors, edge_timeouts = parse_mirrors(mirror or []), parse_edge_timeouts(edge_timeout or [])
    check_dedicated_pools(dedicated_ipv4_pool, dedicated_ipv6_pool)
    api_limits = parse_api_limits(api_limit or [])
    edge_limits = parse_edge_limits(edge_limit or [])
    agents = parse_agents(agent_url or [], agent_token_file or [], cluster_ca)
    if database is not None:
        check_database(database)
    if no_local_agent and (database is None or agents):
        raise typer.BadParameter(
            "--no-local-agent drives the hosts registered in --database URL (and takes no --agent)",
            param_hint="--no-local-agent",
        )
    problem = missing_requirements()
    if problem:
        typer.echo(f"aerodrome: {problem}", err=True)
        raise typer.Exit(2)
    from aerodrome.runtime import check_user_namespaces, claim_subordinate_ids

    try:
        check_user_namespaces(data_dir(data_dir_))
        claim_subordinate_ids()  # machines' user namespaces take their host ids from this range
    except OSError as exc:
        typer.echo(f"aerodrome: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(log_format)
    options = ServeOptions(
        data_dir=data_dir(data_dir_),
        database=database,
        api=api,
        registry=registry,
        default_region=region,
        regions=frozenset(r.strip() for r in regions.split(",") if r.strip()) or None,
        rate_limits=rate_limits,
        dashboard=dashboard,
        volume_unit_bytes=volume_unit_mb * 1024 * 1024,
        edge_http=edge_http,
        edge_https=edge_https,
        domain=domain,
        autostop_idle=autostop_idle,
        volume_check_interval=volume_check_interval,
        machine_ipv4_pool=machine_ipv4_pool,
        org_prefix_len=org_prefix_len,
        dedicated_ipv4_pool=dedicated_ipv4_pool,
        dedicated_ipv6_pool=dedicated_ipv6_pool,
        egress=egress,
        egress_allow=tuple(egress_allow or ()),
        uplink=uplink,
        dns=dns,
        image_gc_interval=image_gc_interval,
        disk_reserve_bytes=disk_reserve_mb * 1024 * 1024,
        compat_32bit=allow_32bit,
        netns_pool=netns_pool,
        mirrors=mirrors,
        allow_registries=tuple(allow_registry or ()),
        edge_timeouts=edge_timeouts,
        api_limits=api_limits,
        edge_limits=edge_limits,
        agents=agents,
        cluster_ca=cluster_ca,
        no_local_agent=no_local_agent,
        heartbeat_interval=heartbeat_interval,
        heartbeat_misses=heartbeat_misses,
        peers=tuple(check_serve_peers(peer or [])),
        retention=RetentionSettings(
            events_per_machine=events_per_machine,
            event_max_age=event_max_age,
            versions_per_machine=versions_per_machine,
            destroyed_machine_age=destroyed_machine_age,
            interval=retention_interval,
        ),
        logs=LogSettings(
            max_bytes_per_machine=log_bytes_per_machine,
            max_age=log_max_age,
            streams=log_streams,
            streams_per_org=max(1, log_streams // 4),
        ),
    )
    try:
        _run(run_serve(options))
    except HostCheckError as exc:
        typer.echo(f"aerodrome: {exc}", err=True)
        raise typer.Exit(2) from None


def check_database(url: str) -> None:
    from aerodrome.store import check_database_url

    try:
        check_database_url(url)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--database") from None


def check_serve_peers(values: list[str]) -> list[str]:
    from aerodrome.cli.agent import check_peer_flags

    return check_peer_flags(values, "0.0.0.0/32") if values else []


def parse_agents(
    urls: list[str], token_files: list[Path], cluster_ca: Path | None = None
) -> tuple[tuple[str, Path | None], ...]:
    """Each http:// --agent URL with its --agent-token-file, paired in the order given; https:// ones take none
    (mutual TLS with --cluster-ca)."""
    from aerodrome.cli.agent import parse_agent_url

    parsed = [parse_agent_url(url) for url in urls]
    plain = [url for url in parsed if url.startswith("http://")]
    if len(plain) != len(token_files):
        raise typer.BadParameter(
            "give one --agent-token-file for each --agent of http:// (https:// takes none)",
            param_hint="--agent-token-file",
        )
    if len(plain) < len(parsed) and cluster_ca is None:
        raise typer.BadParameter("an https:// --agent needs --cluster-ca FILE", param_hint="--cluster-ca")
    files = iter(token_files)
    agents = tuple((url, next(files) if url.startswith("http://") else None) for url in parsed)
    seen = [url for url, _ in agents]
    if len(set(seen)) != len(seen):
        raise typer.BadParameter("give each --agent once: one URL is one host", param_hint="--agent")
    return agents


def parse_mirrors(values: list[str]) -> dict[str, str]:
    mirrors = {}
    for value in values:
        source, sep, target = value.partition("=")
        if not sep or not source or not target:
            raise typer.BadParameter(f"{value!r}: use FROM=TO", param_hint="--mirror")
        mirrors[source] = target
    return mirrors


_EDGE_TIMEOUT = "--edge-timeout"


def parse_edge_timeouts(values: list[str]) -> dict[str, float]:
    timeouts = {}
    for value in values:
        name, sep, seconds = value.partition("=")
        if not sep or name not in EDGE_TIMEOUTS:
            choices = ", ".join(EDGE_TIMEOUTS)
            raise typer.BadParameter(f"{value!r}: use NAME=SECONDS, NAME one of {choices}", param_hint=_EDGE_TIMEOUT)
        try:
            timeouts[name] = float(seconds)
        except ValueError:
            raise typer.BadParameter(f"{value!r}: {seconds!r} is not seconds", param_hint=_EDGE_TIMEOUT) from None
        if not timeouts[name] > 0:
            raise typer.BadParameter(f"{value!r}: a timeout must be more than 0 seconds", param_hint=_EDGE_TIMEOUT)
    return timeouts


def parse_api_limits(values: list[str]) -> ApiLimits:
    from aerodrome.api import parse_limits

    pairs = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep:
            raise typer.BadParameter(f"{value!r}: use NAME=VALUE", param_hint="--api-limit")
        pairs[name] = setting
    try:
        return parse_limits(pairs)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--api-limit") from None


_EDGE_LIMIT = "--edge-limit"


def check_dedicated_pools(pool_v4: str, pool_v6: str) -> None:
    """A dedicated IPv4 pool lies in 127.0.0.0/8, which Linux treats as local whole (nothing to add to the host);
    the IPv6 one is any network (its addresses are added to lo). Each holds at least one address."""
    for flag, value, version in (("--dedicated-ipv4-pool", pool_v4, 4), ("--dedicated-ipv6-pool", pool_v6, 6)):
        try:
            network = ipaddress.ip_network(value)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a network (e.g. 127.0.1.0/24)", param_hint=flag) from None
        if network.version != version or network.num_addresses < (4 if version == 4 else 2):
            raise typer.BadParameter(f"{value!r}: an IPv{version} network of two addresses or more", param_hint=flag)
        if version == 4 and not network.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):  # type: ignore[arg-type]
            raise typer.BadParameter(f"{value!r} is not inside 127.0.0.0/8", param_hint=flag)


def parse_edge_limits(values: list[str]) -> dict[str, int]:
    limits = {}
    for value in values:
        name, sep, count = value.partition("=")
        if not sep or name not in EDGE_LIMITS:
            choices = ", ".join(EDGE_LIMITS)
            raise typer.BadParameter(f"{value!r}: use NAME=N, NAME one of {choices}", param_hint=_EDGE_LIMIT)
        if not count.strip().isdigit() or int(count) < 1:
            raise typer.BadParameter(f"{value!r}: a limit is a whole number, at least 1", param_hint=_EDGE_LIMIT)
        limits[name] = int(count)
    return limits


@app.command("build-edge")
def build_edge(force: Annotated[bool, typer.Option("--force", help="Build even if up to date.")] = False) -> None:
    """Compile the edge's data path with mypyc (scripts/install-deps.sh does); without it the edge runs as plain
    Python, slower."""
    from aerodrome.proxy import native

    if native.is_fresh() and not force:
        typer.echo(f"the edge's compiled data path is up to date ({native.DIRECTORY})")
        return
    typer.echo("compiling the edge's data path (mypyc)…")
    try:
        native.build()
    except (RuntimeError, OSError) as exc:
        typer.echo(f"could not compile the edge's data path; it runs as plain Python: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"compiled {len(native.MODULES)} modules into {native.DIRECTORY}")


def _mount_optional_commands() -> None:
    try:
        from aerodrome.cli.mcp import app as mcp_app
    except ImportError:  # pragma: no cover - the MCP commands ship with the package
        return
    app.add_typer(mcp_app, name="mcp")


_mount_optional_commands()


def main() -> None:
    try:
        app()
    except AerodromeError as exc:  # a refusal, not a crash: one line, as scripts expect
        typer.echo(f"aerodrome: {exc.message}", err=True)
        raise SystemExit(1) from None


__all__ = ["app", "main"]
