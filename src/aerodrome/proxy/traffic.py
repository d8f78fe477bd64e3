"""What the edge counts per app, for `/metrics`: plain integer and float fields, bumped on the data path.

A counter in a metrics library takes a lock and a label lookup per increment; here an app's counts are fields of
one object the connection already holds, so counting a request costs a few field writes (compiled with the rest
of the data path). The metrics endpoint reads these fields when it is scraped.
"""

from __future__ import annotations

#: Upper bounds (seconds) of the latency histograms: Prometheus' default buckets, the last one +Inf.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _observe(buckets: list[int], seconds: float) -> None:
    """Count `seconds` in the first bucket it fits (cumulated only when read); past the last bound: +Inf."""
    index = 0
    for bound in LATENCY_BUCKETS:
        if seconds <= bound:
            break
        index += 1
    buckets[index] += 1


class AppTraffic:
    """One app's requests through the edge: by status class, bytes each way, latency to the response head,
    and the machines the edge started for it with how long requests waited for them."""

    __slots__ = (
        "autostart_buckets",
        "autostart_seconds",
        "autostarts",
        "bytes_in",
        "bytes_out",
        "latency_buckets",
        "latency_seconds",
        "responses",
    )

    def __init__(self) -> None:
        self.responses = [0, 0, 0, 0, 0, 0]  # by status // 100 (index 0: anything out of range)
        self.bytes_in = 0  # request bodies from clients
        self.bytes_out = 0  # response bodies to clients
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_seconds = 0.0
        self.autostarts = 0
        self.autostart_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.autostart_seconds = 0.0

    def respond(self, status: int, seconds: float) -> None:
        """A response head went to the client `seconds` after the request went to the machine."""
        group = status // 100
        self.responses[group if 0 < group < 6 else 0] += 1
        self.latency_seconds += seconds
        _observe(self.latency_buckets, seconds)

    def refuse(self, status: int) -> None:
        """The edge answered itself (no machine, a failed start, a redirect): no latency to count."""
        group = status // 100
        self.responses[group if 0 < group < 6 else 0] += 1

    def autostarted(self, seconds: float) -> None:
        self.autostarts += 1
        self.autostart_seconds += seconds
        _observe(self.autostart_buckets, seconds)
