"""The control plane, assembled: one object the API, the edge and the CLI's server share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aerodrome.control.apps import Apps
from aerodrome.control.auth import Tokens
from aerodrome.control.autoextend import AutoExtend
from aerodrome.control.builds import Builds
from aerodrome.control.certificates import Certificates
from aerodrome.control.edge_power import EdgePower
from aerodrome.control.events import ChangeFeed
from aerodrome.control.followers import AppFollower
from aerodrome.control.host_watch import HEALTH_INTERVAL, Heartbeats, HostWatch
from aerodrome.control.hosts import Hosts
from aerodrome.control.ips import IPs
from aerodrome.control.logs import LogSettings, MachineLogs
from aerodrome.control.machine_base import host_deadline
from aerodrome.control.machines import Machines
from aerodrome.control.oidc import OidcIssuer
from aerodrome.control.periodic import Periodic
from aerodrome.control.placing import Placer
from aerodrome.control.registry import RegistryAccess
from aerodrome.control.releases import Releases
from aerodrome.control.retention import Retention, RetentionSettings
from aerodrome.control.schedules import Schedules
from aerodrome.control.secretkeys import SecretKeys
from aerodrome.control.secrets import Secrets
from aerodrome.control.standbys import Standbys
from aerodrome.control.volumes import GIB, Volumes
from aerodrome.core import (
    APP_DESTROYING,
    HOSTNAMES,
    IPS,
    App,
    ChangeRelay,
    CheckBoard,
    Clock,
    EdgeTLS,
    HostAgent,
    IPAddress,
    RateLimiter,
    RegistrySigner,
    SharedBuckets,
    Store,
    SystemClock,
    fault_point,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Settings:
    default_region: str = "iad"
    regions: frozenset[str] | None = None  # None: every region code a client names
    rate_limits: bool = True
    volume_unit_bytes: int = GIB
    volume_check_interval: float = 30.0  # seconds between auto-extend passes; 0 turns them off
    schedule_interval: float = 30.0  # seconds between passes over scheduled machines; 0 turns them off
    shared_ipv4: str = "127.0.0.1"  # the edge's shared address; dedicated ones come from the pools below
    ipv4_pool: str = "127.0.1.0/24"
    ipv6_pool: str = "fdae:ad::/48"  # a ULA prefix apart from fd00::/64 (eth0) and fdaa::/16 (6PN)
    app_domain: str = "localhost"  # apps answer as <name>.<app_domain> on the edge
    # machines' OIDC tokens name `<oidc_issuer>/<org>` as issuer; its `/.well-known/jwks` is served by the API
    oidc_issuer: str = "http://127.0.0.1:4280/oidc"
    # what is kept of machines' events and versions, and of destroyed machines
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    # what is kept of machines' output, and the logs API's bounds
    logs: LogSettings = field(default_factory=LogSettings)
    host_check_interval: float = HEALTH_INTERVAL  # seconds between health calls to each host; 0: none
    # a registered host whose heartbeat is this many seconds old is unreachable (with `heartbeats`)
    heartbeat_stale_after: float = 3 * HEALTH_INTERVAL
    edge_https: tuple[str, int] | None = None  # where the edge terminates TLS (certificate checks); None: no edge


class ControlPlane:
    def __init__(
        self,
        store: Store,
        agents: HostAgent | Sequence[HostAgent],
        secrets_key: bytes,
        settings: Settings | None = None,
        clock: Clock | None = None,
        registry_signer: RegistrySigner | None = None,
        edge: EdgeTLS | None = None,
        heartbeats: Heartbeats | None = None,
        relay: ChangeRelay | None = None,
        buckets: SharedBuckets | None = None,
    ) -> None:
        """`edge` is the edge's TLS for custom hostnames (issued and served through it); None: no edge.
        `heartbeats` reads the registered hosts' heartbeats (the hosts table); None: health calls alone. `relay`
        and `buckets` are what replicas of one database share (the change feed, the rate limits); None: this
        process alone."""
        self.settings = settings or Settings()
        self.store = store
        # the hosts' agents, by host name; their owner opens and closes them
        self.feed = ChangeFeed(relay)
        self.hosts = Hosts(store, list(agents) if isinstance(agents, Sequence) else [agents], self.feed)
        self.agent: HostAgent = self.hosts  # routes each call to its machine's or volume's host
        self.clock = clock or SystemClock()
        self.checks = CheckBoard()  # machines' health checks, as the host's checker last saw them
        self.tokens = Tokens(store, self.clock)
        self.registry = RegistryAccess(store, self.tokens, self.clock, registry_signer)
        self.apps = Apps(store, self.clock)
        self.ips = IPs(
            store,
            self.clock,
            shared_v4=self.settings.shared_ipv4,
            pool_v4=self.settings.ipv4_pool,
            pool_v6=self.settings.ipv6_pool,
        )
        self.secrets = Secrets(store, self.clock, secrets_key)
        self.releases = Releases(store, self.clock)
        self.secretkeys = SecretKeys(store, self.clock, secrets_key)
        self.builds = Builds(self.clock)
        self.oidc = OidcIssuer(self.clock, secrets_key, self.settings.oidc_issuer)
        self.certificates = Certificates(
            store,
            self.clock,
            secrets_key,
            app_domain=self.settings.app_domain,
            edge=edge,
            edge_https=self.settings.edge_https,
            changed=lambda app_name: self.feed.publish_app(HOSTNAMES, app_name),
        )
        self.volumes = Volumes(store, self.hosts, self.clock, unit_bytes=self.settings.volume_unit_bytes)
        self.machines = Machines(
            store,
            self.hosts,
            self.clock,
            self.feed,
            self.volumes,
            Placer(store, self.hosts, unit_bytes=self.settings.volume_unit_bytes),
            self.secrets,
            self.registry,
            default_region=self.settings.default_region,
            regions=self.settings.regions,
        )
        self.autoextend = AutoExtend(store, self.machines, self.volumes, interval=self.settings.volume_check_interval)
        self.retention = Retention(store, self.clock, self.settings.retention, log_max_age=self.settings.logs.max_age)
        self.logs = MachineLogs(store, self.hosts, self.clock, self.settings.logs)
        self.feed.subscribe(self.logs.machine_changed)
        self.host_watch = HostWatch(
            store,
            self.hosts,
            self.machines,
            interval=self.settings.host_check_interval,
            heartbeats=heartbeats,
            stale_after=self.settings.heartbeat_stale_after,
            clock=self.clock,
        )
        self.schedules = Schedules(store, self.machines, self.clock, interval=self.settings.schedule_interval)
        self.standbys = Standbys(store, self.machines, self.feed)
        self.edge_power = EdgePower(store, self.machines)  # all the edge may ask of the control plane
        self.limiter = RateLimiter(self.clock, enabled=self.settings.rate_limits, shared=buckets)
        self._take_downs: dict[str, asyncio.Task[None]] = {}  # apps being deleted, by name
        self.ips.subscribe(allocated=self._ips_changed, released=self._ips_changed)
        self.followers = AppFollower(self.feed)  # other replicas' changes to what this one's edge serves
        self.followers.follow(HOSTNAMES, self.certificates.refresh)

    async def _ips_changed(self, ip: IPAddress) -> None:
        self.feed.publish_app(IPS, ip.app_name)

    async def start(self) -> None:
        """Adopt what a previous run left: record the exits the host saw meanwhile, reconcile every machine with
        the host, then follow the host's events."""
        await self.store.ensure_org("personal", "Personal")
        await self.feed.start()  # listening before anything is read: a change made meanwhile is not missed
        self.followers.start()
        await self.hosts.open()
        await self.host_watch.adopt_all()
        self.host_watch.start()
        await self.volumes.remove_orphans()
        await self.certificates.load()
        self.autoextend.start()
        self.retention.start()
        self.logs.start()
        self.schedules.start()
        for app in await self.store.list_apps(None):
            if app.destroying:
                log.info("resuming the deletion of app %s", app.name)
                self._take_down_later(app.name)

    def background(self) -> list[Periodic]:
        """The passes the control plane repeats on its own (auto-extend, retention, logs, schedules)."""
        return [self.autoextend.periodic, self.retention.periodic, self.logs.periodic, self.schedules.periodic]

    async def resolve_image(self, app: App, reference: str) -> dict[str, Any]:
        """Fly's image_ref of the image `reference` names, pulled by this host for `app`'s organisation as its
        machines would pull it (flyctl's `app.image(ref:)` before `machine run` and `deploy --image`)."""
        grant = await self.registry.pull_grant(app.org_slug)
        return await self.agent.resolve_image(reference, grant, deadline=host_deadline())

    async def delete_app(self, app: App) -> None:
        """Mark the app destroying, on disk, and take it down in the background (as Fly answers 202). A restart
        resumes the take-down, so an accepted delete always completes."""
        if not app.destroying:
            await self.store.set_app_status(app.name, APP_DESTROYING)
            fault_point("app.delete.marked")
        self._take_down_later(app.name)

    def _take_down_later(self, name: str) -> None:
        if name in self._take_downs:
            return  # a second DELETE while the first is under way
        task = asyncio.get_running_loop().create_task(self._take_down(name), name=f"delete app {name}")
        self._take_downs[name] = task
        task.add_done_callback(lambda _: self._take_downs.pop(name, None))

    async def _take_down(self, name: str) -> None:
        """Retry until the app is gone: a step that fails (a busy loop device, say) is tried again later."""
        pause = 1.0
        while True:
            app = await self.store.get_app(name)
            if app is None:
                return
            try:
                await self._remove(app)
                return
            except Exception:
                log.exception("deleting app %s failed; retrying in %gs", name, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 60.0)

    async def _remove(self, app: App) -> None:
        """Destroy the app's machines (forcefully) and volumes, release what it holds, then drop the app."""
        gate = asyncio.Semaphore(8)  # machines go down side by side, a few at a time

        async def destroy(machine_id: str) -> None:
            async with gate:
                await self.machines.destroy(app, machine_id, force=True, nonce_=None, ignore_lease=True)

        await asyncio.gather(*(destroy(m.id) for m in await self.store.list_machines(app.name)))
        fault_point("app.delete.machines_destroyed")
        for volume in await self.store.list_volumes(app.name):
            await self.volumes.delete(app, volume.id)
        for volume in await self.store.list_volumes(app.name, include_destroyed=True):
            await self.volumes.delete_snapshots(volume.id)  # the app's rows go, snapshots' included
        fault_point("app.delete.volumes_deleted")
        await self.ips.release_all(app)
        await self.certificates.remove_all(app)
        await self.store.delete_app(app.name)
        fault_point("app.delete.recorded")
        log.info("app %s deleted", app.name)

    async def close(self) -> None:
        """Stop taking apps down (the next start resumes them), then the background work of machines."""
        for task in list(self._take_downs.values()):
            task.cancel()
        await asyncio.gather(*self._take_downs.values(), return_exceptions=True)
        await self.host_watch.close()
        await self.hosts.close()
        await self.autoextend.close()
        await self.retention.close()
        await self.logs.close()
        await self.schedules.close()
        await self.standbys.close()
        await self.machines.close()
        await self.followers.close()
        await self.feed.close()
