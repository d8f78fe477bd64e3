"""`GET /metrics`: Prometheus' text format, behind the API token, and the counts of the API's own requests.

The API's requests are counted by a middleware into plain dicts (one event loop: no lock, no label lookup in a
metrics library per request) and turned into metric families when scraped. The rest — edge traffic, machines,
volumes — comes from `MetricSource`s the server wires in, each asked for the caller's organisation only: a token
sees its own apps and machines, and the daemon-wide series (the API's requests, the daemon process), which name
no app.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aerodrome.api.context import authenticate
from aerodrome.control import require_org_wide

#: Upper bounds (seconds) of the API's latency histogram: Prometheus' defaults, then +Inf.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"  # the route label of a path no route serves: paths come from clients, templates do not

#: Families for one organisation, read at scrape time (the organisation's slug is the argument).
MetricSource = Callable[[str], Awaitable[Iterable[Metric]]]


def cumulative(buckets: list[int], bounds: Iterable[float]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last one past every bound) as Prometheus' cumulative `le` buckets."""
    total, out = 0, []
    for bound, count in zip([*bounds, float("inf")], buckets, strict=True):
        total += count
        out.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
    return out


class ApiMetrics:
    """Requests by method, route template and status; latency by method and route template."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], tuple[list[int], list[float]]] = {}  # buckets, [sum]

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.latency.get((method, route))
        if histogram is None:
            histogram = self.latency[(method, route)] = ([0] * (len(LATENCY_BUCKETS) + 1), [0.0])
        histogram[0][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        histogram[1][0] += seconds

    def collect(self) -> list[Metric]:
        requests = CounterMetricFamily(
            "aerodrome_api_requests",
            "API requests answered, by route template and status",
            labels=["method", "route", "status"],
        )
        for labels, count in sorted(self.requests.items()):
            requests.add_metric(list(labels), count)
        latency = HistogramMetricFamily(
            "aerodrome_api_request_duration_seconds", "Time to answer an API request", labels=["method", "route"]
        )
        for (method, route), (buckets, total) in sorted(self.latency.items()):
            latency.add_metric([method, route], cumulative(buckets, LATENCY_BUCKETS), total[0])
        return [requests, latency]


class MetricsMiddleware:
    """Counts every HTTP request the API answers; it runs inside the app, so the route matched is known."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the client gets when the app raises before it answers

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - began)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


_PROCESS = ProcessCollector(registry=None)  # the daemon's own CPU, memory and descriptors


async def metrics(request: Request) -> Response:
    caller = await authenticate(request)
    require_org_wide(caller, "the organization's metrics")
    api_metrics: ApiMetrics = request.app.state.api_metrics
    sources: list[MetricSource] = request.app.state.metric_sources
    families = [*_PROCESS.collect(), *api_metrics.collect()]
    for source in sources:
        families.extend(await source(caller.org_slug))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"])]
