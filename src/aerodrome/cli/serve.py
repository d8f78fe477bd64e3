"""`aerodrome serve`: the one place where store, host agent, registry, control plane, API and edge are wired."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import uvicorn

from aerodrome.agent import LocalAgent, RemoteAgent
from aerodrome.api import ApiLimits, build_app, guarded_protocol
from aerodrome.api.metrics import MetricSource
from aerodrome.cli.cluster import Registrations, control_plane_tls, open_registrations
from aerodrome.cli.config import (
    EDGE_LIMITS,
    EDGE_TIMEOUTS,
    NETNS_POOL,
    HostCheckError,
    Layout,
    raise_fd_limit,
    split_hostport,
)
from aerodrome.cli.inside import (
    Inside,
    adopt_running,
    api_sockets,
    host_services,
    machine_activity,
    start_health_checks,
    start_inside,
)
from aerodrome.cli.listeners import bind_listener, bound_address, clear_ports, hostport, report_ports
from aerodrome.cli.metrics import BackgroundMetrics, OrgMetrics
from aerodrome.control import ControlPlane, LogSettings, RetentionSettings, Secrets, Settings
from aerodrome.core import (
    HOSTNAMES,
    IPS,
    FailedPreconditionError,
    HostAgent,
    InvalidArgumentError,
    UnavailableError,
)
from aerodrome.dashboard import Dashboard
from aerodrome.inside import HealthChecker
from aerodrome.proxy import Edge, EdgeSettings, edge_certificates, native
from aerodrome.proxy.control_directory import ControlDirectory
from aerodrome.proxy.dedicated import AddressBook, DedicatedAddresses
from aerodrome.runtime import (
    EmbeddedAccess,
    EmbeddedRegistry,
    ImageStore,
    LoopVolumeBackend,
    RegistryGate,
    RegistryTokens,
    RuncRuntime,
    TokenAuth,
    allowed_registries,
)
from aerodrome.store import SqlStore, sqlite_url

log = logging.getLogger("aerodrome")
MCP_IMAGE = "flyio/mcp:latest"  # the quick start's image: built on this host, never pulled from Docker Hub
MCP_IMAGE_HINT = "build it once with `sudo aerodrome images build-mcp` (the README's quick start, step 1)"
# the control plane's and the edge's own defaults, written once there: serve's options start from them
_PLANE = Settings()
_EDGE = EdgeSettings(data_dir=Path())


@dataclass(frozen=True, slots=True)
class ServeOptions:
    data_dir: Path
    database: str | None = None  # a PostgreSQL URL; None: the one the data directory names, else its SQLite file
    api: str = "127.0.0.1:4280"
    registry: str = "127.0.0.1:5000"
    default_region: str = _PLANE.default_region
    regions: frozenset[str] | None = None
    rate_limits: bool = _PLANE.rate_limits
    volume_unit_bytes: int = _PLANE.volume_unit_bytes
    volume_check_interval: float = _PLANE.volume_check_interval
    mirrors: dict[str, str] = field(default_factory=dict)
    allow_registries: tuple[str, ...] = ()  # registries image references may name, besides the embedded one
    edge_http: str = hostport(_EDGE.http_host, _EDGE.http_port)
    edge_https: str = hostport(_EDGE.https_host, _EDGE.https_port)
    domain: str = _PLANE.app_domain
    autostop_idle: float = _EDGE.autostop_idle
    autostop_interval: float = _EDGE.autostop_interval
    machine_ipv4_pool: str = "172.30.0.0/16"
    org_prefix_len: int = 20
    dedicated_ipv4_pool: str = _PLANE.ipv4_pool
    dedicated_ipv6_pool: str = _PLANE.ipv6_pool
    image_gc_interval: float = 3600.0
    disk_reserve_bytes: int = 1024**3
    compat_32bit: bool = False
    netns_pool: int = NETNS_POOL  # prepared network slots per organisation starting machines (0: none)
    egress: bool = True
    dns: bool = True  # the machines' resolver at fdaa::3, `_api.internal:4280` and /.fly/api
    egress_allow: tuple[str, ...] = ()  # IPv4 networks machines reach despite egress's denied ranges
    uplink: str | None = None  # egress's interface; None: the default route's
    edge_timeouts: dict[str, float] = field(default_factory=dict)  # EDGE_TIMEOUTS name → seconds
    api_limits: ApiLimits = field(default_factory=ApiLimits)
    edge_limits: dict[str, int] = field(default_factory=dict)  # EDGE_LIMITS name → count or bytes
    agents: tuple[tuple[str, Path | None], ...] = ()  # remote agents: (URL, token file or None over TLS); () local
    cluster_ca: Path | None = None  # the cluster CA's file, for https:// agents
    no_local_agent: bool = False  # drive the hosts registered in the database (--database), no agent in-process
    heartbeat_interval: float = 2.0  # the registered agents' heartbeat period
    heartbeat_misses: int = 3  # periods without a heartbeat after which a registered host is unreachable
    peers: tuple[str, ...] = ()  # hosts of the private network (UNDERLAY_IPV6=POOL) the edge routes machines to
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    logs: LogSettings = field(default_factory=LogSettings)
    dashboard: bool = True  # the web dashboard at /dashboard/ on the API's listener


PEER_ROUTES_INTERVAL = 2.0  # seconds between looks for organisations made since


async def route_to_peers(store: SqlStore, values: tuple[str, ...]) -> None:
    """Route every organisation's machines on each peer host there, for the edge (an organisation made later
    within PEER_ROUTES_INTERVAL); the routes go when serve stops."""
    from aerodrome.core import AerodromeError
    from aerodrome.runtime import parse_peer, route_orgs, unroute_orgs

    peers = [parse_peer(value) for value in values]
    routed: set[int] = set()
    try:
        while True:
            with contextlib.suppress(AerodromeError, OSError):  # the database or `ip` out for a moment: next time
                orgs = {org.internal_numeric_id for org in await store.list_orgs()}
                await route_orgs(sorted(orgs - routed), peers)
                routed |= orgs
            await asyncio.sleep(PEER_ROUTES_INTERVAL)
    finally:
        await unroute_orgs(sorted(routed), peers)


def load_secrets_key(path: Path) -> bytes:
    """The key that encrypts app secrets at rest; made on first start, readable by root only."""
    if path.exists():
        return path.read_bytes().strip()
    key = Secrets.new_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


def secure_data_dir(layout: Layout) -> None:
    """The data directory is root's alone: 0700, and the database and keys 0600, whatever an older version
    or the umask left (the daemon itself runs with umask 077)."""
    layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(layout.root, 0o700)
    for path in layout.root.iterdir():
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o600)


def database_url(layout: Layout, given: str | None = None) -> str:
    """The database of this data directory: `given` (then recorded, 0600, for the commands run on the directory
    later: `tokens create`, `orgs create`), else the one recorded, else the embedded SQLite file."""
    if given is not None:
        fd = os.open(layout.database_url, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(given + "\n")
        return given
    if layout.database_url.is_file():
        return layout.database_url.read_text().strip()
    return sqlite_url(layout.database)


async def open_store(layout: Layout, database: str | None = None) -> SqlStore:
    secure_data_dir(layout)
    try:
        store = await SqlStore.open(database_url(layout, database))
    except UnavailableError as exc:
        raise HostCheckError(str(exc)) from None
    await store.ensure_org("personal", "Personal")
    return store


async def serve(options: ServeOptions) -> None:
    os.umask(0o077)  # nothing the daemon writes is for other users of the host
    raise_fd_limit()
    layout = Layout(options.data_dir)
    store = await open_store(layout, options.database)
    clear_ports(layout.root)
    # bound first, so that with port 0 the registry's token realm and the clients' addresses name the port taken
    api_socket = bind_listener(options.api, 4280, "API")
    options = replace(options, api=bound_address(api_socket))
    try:  # bound before the parts are made: the control plane's certificate checks take the edge's HTTPS address
        edge_sockets = (
            bind_listener(options.edge_http, 8080, "edge's HTTP listener"),
            bind_listener(options.edge_https, 8443, "edge's HTTPS listener"),
        )
    except HostCheckError:
        api_socket.close()
        raise
    options = replace(options, edge_http=bound_address(edge_sockets[0]), edge_https=bound_address(edge_sockets[1]))
    tokens = RegistryTokens(layout.registry)
    registry = EmbeddedRegistry(layout.registry, options.registry, auth=registry_auth(options, tokens))
    await registry.start()  # before the image store and the gate name it: with port 0 its port is known then
    options = replace(options, registry=registry.url)
    images = ImageStore(
        layout.images,
        registries=(options.registry,),
        mirrors=options.mirrors,
        missing_hints={MCP_IMAGE: MCP_IMAGE_HINT},
        gate=RegistryGate(
            allowed_registries((options.registry,), options.mirrors, options.allow_registries),
            EmbeddedAccess(options.registry, tokens, registry.problem),
        ),
    )
    registrations: Registrations | None = None
    try:
        if options.no_local_agent:
            secrets_key = load_secrets_key(layout.secrets_key)
            registrations = await open_registrations(store.host_table(), secrets_key, options.heartbeat_interval)
            agents = await registrations.wait_for_hosts()
        else:
            agents = await open_host_agents(options, layout, images)
    except BaseException:
        if registrations is not None:
            await registrations.close()
        await registry.stop()
        await store.close()
        raise
    agent = agents[0]
    watcher = asyncio.create_task(registry.supervise(), name="registry supervisor")
    # the machines' resolver, /.fly/api and busy-detection read this host's runtime: only with the in-process agent
    local_runtime = agent.runtime if isinstance(agent, LocalAgent) else None
    # each part is made whole by its constructor, in dependency order; they then talk through the store and feeds
    settings = edge_settings(options, layout)
    edge_tls = edge_certificates(settings)
    plane = ControlPlane(
        store,
        agents,
        load_secrets_key(layout.secrets_key),
        Settings(
            default_region=options.default_region,
            regions=options.regions,
            rate_limits=options.rate_limits,
            volume_unit_bytes=options.volume_unit_bytes,
            volume_check_interval=options.volume_check_interval,
            app_domain=options.domain,
            ipv4_pool=options.dedicated_ipv4_pool,
            ipv6_pool=options.dedicated_ipv6_pool,
            retention=options.retention,
            logs=options.logs,
            edge_https=(settings.https_host, settings.https_port),
            heartbeat_stale_after=options.heartbeat_interval * options.heartbeat_misses,
        ),
        registry_signer=tokens,
        edge=edge_tls,
        heartbeats=registrations.heartbeats if registrations is not None else None,
        relay=store.change_relay(),
        buckets=store.shared_buckets(),
    )
    addresses = AddressBook()
    directory = ControlDirectory(
        store,
        plane.edge_power,
        domain=options.domain,
        dedicated=addresses.app_for,
        hostnames=plane.certificates.app_for,
        checks=plane.checks,
        static_reader=images.read_file,
        usage_reader=machine_activity if local_runtime is not None else None,
    )
    edge = Edge(directory, settings, certificates=edge_tls, listeners=edge_sockets)
    dedicated = DedicatedAddresses(edge, directory.service_ports, pool_v6=plane.settings.ipv6_pool, book=addresses)
    plane.ips.subscribe(allocated=dedicated.bind, released=dedicated.release)
    plane.feed.subscribe(edge.fleet.machine_changed)
    plane.feed.subscribe_reset(edge.fleet.forget_all)
    follow_other_replicas(plane, edge, dedicated)
    metric_sources: list[MetricSource] = [OrgMetrics(store, edge, plane.hosts), BackgroundMetrics(plane.background())]
    dashboard = (
        Dashboard(plane, load_secrets_key(layout.root / "dashboard.key"), metric_sources) if options.dashboard else None
    )
    api_app = build_app(
        plane,
        extra_routes=dashboard.routes() if dashboard else None,
        limits=options.api_limits,
        health_checks={"registry": registry.problem},
        metric_sources=metric_sources,
    )
    inside: Inside | None = None
    checker: HealthChecker | None = None
    try:
        if options.dns and local_runtime is not None:
            inside = await start_inside(store, plane, local_runtime, api_app, egress=options.egress)
        await plane.start()
        if registrations is not None:
            registrations.start(plane.hosts.add)
        if inside is not None and local_runtime is not None:
            await adopt_running(inside, store, local_runtime)
        checker = await start_health_checks(store, plane, edge)
        await edge.start()
        await dedicated.start(await plane.ips.dedicated(("v4", "v6", "private_v6")))
        host, port = api_socket.getsockname()[:2]
        server = uvicorn.Server(
            uvicorn.Config(
                api_app,
                host=host,
                port=port,
                http=guarded_protocol(options.api_limits),  # httptools, with bounded heads and connections
                lifespan="off",
                log_level="warning",
                log_config=None,  # uvicorn's lines go through the daemon's handler: one format (--log-format)
            )
        )
        log.info("API on http://%s:%d, registry on %s, data in %s", host, port, options.registry, layout.root)
        edge_http, edge_https = (
            hostport(edge.settings.http_host, edge.http_port),
            hostport(edge.settings.https_host, edge.https_port),
        )
        log.info("edge on http://%s and https://%s (CA: %s)", edge_http, edge_https, edge.ca_path)
        report_ports(
            layout.root,
            {"api": options.api, "registry": registry.url, "edge_http": edge_http, "edge_https": edge_https},
        )
        if not native.active:
            log.warning("the edge's data path runs as plain Python (slower): `aerodrome build-edge` compiles it")
        # a remote agent keeps its own images; the in-process one's are this host's to collect
        collector = asyncio.create_task(
            collect_unused_images(store, images, options.image_gc_interval, local_runtime is not None)
        )
        streams = asyncio.create_task(end_streams_at_exit(server, dashboard)) if dashboard else None
        router = asyncio.create_task(route_to_peers(store, options.peers)) if options.peers else None
        try:
            keep_running_after_signals()
            await server.serve(sockets=api_sockets(api_socket, inside))
        finally:
            collector.cancel()
            if streams is not None:
                streams.cancel()
            if router is not None:
                router.cancel()
                await asyncio.gather(router, return_exceptions=True)  # its routes removed
    finally:
        clear_ports(layout.root)
        api_socket.close()
        for each_socket in edge_sockets:  # the edge's servers closed them, unless it never started
            each_socket.close()
        if dashboard is not None:
            await dashboard.close()
        await dedicated.close()
        if inside is not None:
            await inside.close()
        if checker is not None:
            await checker.close()
        await edge.close()
        await plane.close()
        if registrations is not None:
            await registrations.close()
        for each in agents:
            await each.close()
        watcher.cancel()
        await registry.stop()
        await store.close()
        log.info("stopped; machines keep running and are adopted at the next start")


def follow_other_replicas(plane: ControlPlane, edge: Edge, dedicated: DedicatedAddresses) -> None:
    """The edge serves the hostnames and binds the dedicated addresses another replica changed."""

    async def hostnames(app: str | None) -> None:
        await plane.certificates.refresh(app)
        edge.fleet.forget_all() if app is None else edge.fleet.forget_routes(app)

    async def addresses(app: str | None) -> None:
        await dedicated.sync(app, await plane.ips.dedicated(("v4", "v6", "private_v6")))
        edge.fleet.forget_all() if app is None else edge.fleet.forget_routes(app)

    plane.followers.follow(HOSTNAMES, hostnames)
    plane.followers.follow(IPS, addresses)


async def end_streams_at_exit(server: uvicorn.Server, dashboard: Dashboard) -> None:
    """Once uvicorn is told to stop, end the dashboard's live streams: it waits for open responses to finish."""
    # uvicorn sets a plain flag from its signal handler: there is no event to await
    while not server.should_exit:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    dashboard.end_streams()


def registry_auth(options: ServeOptions, tokens: RegistryTokens) -> TokenAuth:
    """The registry takes tokens from the API's /v2/token, at an address clients on this host can reach."""
    host, port = split_hostport(options.api, 4280)
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return TokenAuth(f"http://{shown}:{port}/v2/token", tokens.service, tokens.issuer, tokens.cert_path)


def keep_running_after_signals() -> None:
    """Once it has shut down, uvicorn raises again the signal that stopped it: with the default handlers that
    would end the process there, before the runtime (whose rules and routes go when no machine is left), the
    registry and the store are closed. A signal during that close is ignored; SIGKILL still ends it."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)


async def open_host_agents(options: ServeOptions, layout: Layout, images: ImageStore) -> list[HostAgent]:
    """The agents of `--agent`, reached over the network (the control plane asks each its host's name); else the
    in-process one over this host's runtime, which re-adopts the machines a previous run left and records the
    exits they made meanwhile."""
    if options.agents:
        tls = control_plane_tls(options.cluster_ca) if options.cluster_ca is not None else None
        return [
            RemoteAgent(url, read_agent_token(token_file)) if token_file is not None else RemoteAgent(url, tls=tls)
            for url, token_file in options.agents
        ]
    runtime = await open_runtime(options, layout, images)
    try:
        return [
            await LocalAgent.open(
                runtime, LoopVolumeBackend(layout.volumes), layout.runtime, region=options.default_region
            )
        ]
    except BaseException:
        await runtime.close()
        raise


def read_agent_token(token_file: Path) -> str:
    try:
        return token_file.read_text().strip()
    except OSError as exc:
        raise HostCheckError(f"cannot read the agent's token {token_file}: {exc.strerror}") from None


async def open_runtime(options: ServeOptions, layout: Layout, images: ImageStore) -> RuncRuntime:
    """The runtime, with the host's networking set up: before anything starts, it refuses an address layout
    the data directory cannot take, bad egress settings, and a host whose routes overlap the machine pool."""
    try:
        runtime = RuncRuntime(
            layout.runtime,
            images,
            ipv4_pool=options.machine_ipv4_pool,
            org_prefixlen=options.org_prefix_len,
            egress=options.egress,
            egress_allow=options.egress_allow,
            uplink=options.uplink,
            reserve_bytes=options.disk_reserve_bytes,
            compat_32bit=options.compat_32bit,
            netns_pool=options.netns_pool,
            services=host_services(options.dns),
        )
        await runtime.prepare_host()
    except (FailedPreconditionError, InvalidArgumentError) as exc:
        raise HostCheckError(exc.message) from None
    return runtime


async def collect_unused_images(store: SqlStore, images: ImageStore, interval: float, enabled: bool = True) -> None:
    """Now and then, remove the unpacked images no machine uses (a machine's destroy leaves its image behind)."""
    while enabled:
        await asyncio.sleep(interval)
        try:
            in_use = {str(m.image_ref.get("digest")) for m in await store.live_machines()}
            # an image pulled moments ago may belong to a machine whose create has not finished
            removed = await images.remove_unused(in_use, grace=min(60.0, 10 * interval))
        except Exception:
            log.exception("could not remove unused images")
            continue
        if removed:
            log.info("removed %d unused image(s)", len(removed))


def edge_settings(options: ServeOptions, layout: Layout) -> EdgeSettings:
    http_host, http_port = split_hostport(options.edge_http, 8080)
    https_host, https_port = split_hostport(options.edge_https, 8443)
    chosen: dict[str, Any] = {EDGE_TIMEOUTS[name]: seconds for name, seconds in options.edge_timeouts.items()}
    chosen.update({EDGE_LIMITS[name]: count for name, count in options.edge_limits.items()})
    return EdgeSettings(
        data_dir=layout.edge,
        http_host=http_host,
        http_port=http_port,
        https_host=https_host,
        https_port=https_port,
        region=options.default_region,
        autostop_idle=options.autostop_idle,
        autostop_interval=min(options.autostop_interval, max(options.autostop_idle / 2, 0.5)),
        domain=options.domain,
        **chosen,
    )
