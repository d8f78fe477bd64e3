"""What `/metrics` says of one organisation's apps: edge traffic, machines, their usage, volumes.

Read at scrape time: the edge's per-app counts (plain fields the data path bumps), the store's machines and
volumes, each running machine's cgroups and veth, each volume's filesystem. Where Fly publishes a series
(`fly_edge_*`, `fly_instance_*`, `fly_volume_*`) it has Fly's name and unit; Fly's counters end in `_count`
rather than `_total`, so they are exposed untyped. The rest is `aerodrome_*`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from aerodrome.api.metrics import cumulative
from aerodrome.control import Hosts
from aerodrome.control.periodic import Periodic
from aerodrome.core import AerodromeError, App, HostAgent, Machine, MachineState, MachineUsage, Volume
from aerodrome.proxy import Edge
from aerodrome.proxy.traffic import LATENCY_BUCKETS, AppTraffic
from aerodrome.store import SqlStore

STATUS_CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")


def _untyped(name: str, documentation: str) -> Metric:
    return Metric(name, documentation, "unknown")


def _sample(family: Metric, labels: dict[str, str], value: float) -> None:
    family.add_sample(family.name, labels, value)


class OrgMetrics:
    """The `MetricSource` of `aerodrome serve`: called with the caller's organisation, it reads only that one."""

    def __init__(self, store: SqlStore, edge: Edge, hosts: Hosts) -> None:
        self.store = store
        self.edge = edge
        self.hosts = hosts
        self.agent: HostAgent = hosts  # each machine's and volume's own host

    async def __call__(self, org_slug: str) -> Iterable[Metric]:
        apps = [app for app in await self.store.list_apps(org_slug) if not app.destroying]
        machines = [m for app in apps for m in await self.store.list_machines(app.name)]
        volumes = [v for app in apps for v in await self.store.list_volumes(app.name)]
        # a machine of a host out of reach has no usage to read now
        running = [m for m in machines if m.state is MachineState.STARTED and self.hosts.reachable(m.host)]
        usages = zip(running, await asyncio.gather(*(self.agent.machine_usage(m.id) for m in running)), strict=True)
        return [
            *self._edge(apps),
            *_machines(machines),
            *_usage([(m, u) for m, u in usages if u is not None]),
            *await self._volumes(volumes),
        ]

    def _edge(self, apps: list[App]) -> list[Metric]:
        region = self.edge.settings.region
        responses = _untyped("fly_edge_http_responses_count", "HTTP responses the edge sent, by status class")
        latency = HistogramMetricFamily(
            "fly_edge_http_response_time_seconds",
            "From request sent to the machine to its response head",
            labels=["app", "region"],
        )
        bytes_in = CounterMetricFamily(
            "aerodrome_edge_request_bytes", "Request body bytes from clients", labels=["app"]
        )
        bytes_out = CounterMetricFamily(
            "aerodrome_edge_response_bytes", "Response body bytes to clients", labels=["app"]
        )
        starts = CounterMetricFamily(
            "aerodrome_edge_autostarts", "Machines the edge started for a request", labels=["app"]
        )
        waits = HistogramMetricFamily(
            "aerodrome_edge_autostart_duration_seconds", "From an autostart to its port accepting", labels=["app"]
        )
        traffic_by_app = self.edge.fleet.traffic
        for app in apps:
            traffic = traffic_by_app.get(app.name) or AppTraffic()
            for status, count in zip(STATUS_CLASSES, traffic.responses, strict=True):
                if count:
                    _sample(responses, {"app": app.name, "region": region, "status": status}, count)
            latency.add_metric(
                [app.name, region], cumulative(traffic.latency_buckets, LATENCY_BUCKETS), traffic.latency_seconds
            )
            bytes_in.add_metric([app.name], traffic.bytes_in)
            bytes_out.add_metric([app.name], traffic.bytes_out)
            starts.add_metric([app.name], traffic.autostarts)
            waits.add_metric(
                [app.name], cumulative(traffic.autostart_buckets, LATENCY_BUCKETS), traffic.autostart_seconds
            )
        return [responses, latency, bytes_in, bytes_out, starts, waits]

    async def _volumes(self, volumes: list[Volume]) -> list[Metric]:
        size = GaugeMetricFamily(
            "fly_volume_size_bytes", "Size of the volume's filesystem", labels=["app", "volume", "volume_name"]
        )
        used = GaugeMetricFamily(
            "fly_volume_used_pct", "Percent of the volume's filesystem in use", labels=["app", "volume", "volume_name"]
        )
        used_bytes = GaugeMetricFamily(
            "aerodrome_volume_used_bytes", "Bytes in use on the volume", labels=["app", "volume", "volume_name"]
        )
        for volume in volumes:
            try:
                usage = await self.agent.volume_usage(volume.id)
            except AerodromeError:
                continue  # raw (no filesystem), or destroyed since it was listed
            labels = [volume.app_name, volume.id, volume.name]
            size.add_metric(labels, usage.bytes_total)
            used_bytes.add_metric(labels, usage.bytes_used)
            used.add_metric(labels, 100.0 * usage.bytes_used / usage.bytes_total if usage.bytes_total else 0.0)
        return [size, used, used_bytes]


class BackgroundMetrics:
    """The `MetricSource` of the daemon's own repeated passes, the same for every organisation."""

    def __init__(self, passes: Sequence[Periodic]) -> None:
        self.passes = passes

    async def __call__(self, org_slug: str) -> Iterable[Metric]:
        done = CounterMetricFamily("aerodrome_background_passes", "Passes of background work finished", labels=["task"])
        failed = CounterMetricFamily(
            "aerodrome_background_pass_failures", "Passes of background work that failed", labels=["task"]
        )
        for periodic in self.passes:
            done.add_metric([periodic.name], periodic.passes)
            failed.add_metric([periodic.name], periodic.failures)
        return [done, failed]


def _machines(machines: list[Machine]) -> list[Metric]:
    by_state = GaugeMetricFamily("aerodrome_machines", "Machines by app and state", labels=["app", "state"])
    for (app, state), count in sorted(Counter((m.app_name, m.state.value) for m in machines).items()):
        by_state.add_metric([app, state], count)
    up = GaugeMetricFamily("fly_instance_up", "1 while the machine is started", labels=["app", "instance", "region"])
    for machine in machines:
        up.add_metric([machine.app_name, machine.id, machine.region], 1 if machine.state is MachineState.STARTED else 0)
    return [by_state, up]


def _usage(usages: list[tuple[Machine, MachineUsage]]) -> list[Metric]:
    cpu = _untyped("fly_instance_cpu", "CPU time of the machine's processes by mode, in centiseconds")
    cpu_seconds = CounterMetricFamily(
        "aerodrome_machine_cpu_seconds", "CPU time of the machine's processes", labels=["app", "instance"]
    )
    memory = GaugeMetricFamily(
        "aerodrome_machine_memory_bytes", "Memory charged to the machine now", labels=["app", "instance"]
    )
    mem_total = GaugeMetricFamily(
        "fly_instance_memory_mem_total", "The machine's memory limit", labels=["app", "instance"]
    )
    received = _untyped("fly_instance_net_recv_bytes", "Bytes the machine received")
    sent = _untyped("fly_instance_net_sent_bytes", "Bytes the machine sent")
    for machine, usage in usages:
        labels = {"app": machine.app_name, "instance": machine.id}
        _sample(cpu, {**labels, "cpu": "all", "mode": "user"}, round(usage.cpu_user_seconds * 100))
        _sample(cpu, {**labels, "cpu": "all", "mode": "system"}, round(usage.cpu_system_seconds * 100))
        cpu_seconds.add_metric([machine.app_name, machine.id], usage.cpu_seconds)
        memory.add_metric([machine.app_name, machine.id], usage.memory_bytes)
        if usage.memory_limit_bytes is not None:
            mem_total.add_metric([machine.app_name, machine.id], usage.memory_limit_bytes)
        _sample(received, {**labels, "device": "eth0"}, usage.net_received_bytes)
        _sample(sent, {**labels, "device": "eth0"}, usage.net_sent_bytes)
    return [cpu, cpu_seconds, memory, mem_total, received, sent]
