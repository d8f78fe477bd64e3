"""The dashboard's metric samples: the last hour per machine, rates, sparklines (no server)."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from aerodrome.dashboard import Samples
from aerodrome.dashboard import samples as module


async def test_samples_keep_the_last_hour_and_drop_what_is_gone() -> None:
    """A source standing for `/metrics`' families: two machines, then only one, an hour and more later."""
    machines = ["m1", "m2"]

    async def source(org: str) -> list[object]:
        cpu = CounterMetricFamily("aerodrome_machine_cpu_seconds", "", labels=["app", "instance"])
        memory = GaugeMetricFamily("aerodrome_machine_memory_bytes", "", labels=["app", "instance"])
        for m in machines:
            cpu.add_metric(["a", m], 2.0)
            memory.add_metric(["a", m], 3 * 2**20)
        return [cpu, memory]

    now = [1_000_000.0]
    samples = Samples([source], clock=lambda: now[0])  # type: ignore[list-item]
    await samples.sample("personal")
    [first] = samples.of("m1")
    assert (first.cpu_seconds, first.memory_bytes) == (2.0, 3 * 2**20)
    machines.remove("m2")
    now[0] += module.WINDOW + 1
    await samples.sample("personal")
    assert len(samples.of("m1")) == 2 and samples.of("m2") == []
    assert module.rates(samples.of("m1"), "cpu_seconds") == [0.0]
    assert module.sparkline([0.0, 1.0]) == "0.0,47.0 240.0,1.0"
