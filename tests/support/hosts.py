"""Hosts as network namespaces: several `aerodrome agent`s, each in a netns of its own, and one `serve` in
another ("edge"), joined by a bridge in a "fabric" netns the test makes. Nothing of it is in the host's own
network namespace: its routes and rules stay as they were, whatever the test does.

Each host's netns has `underlay0` on the bridge (10.6.6.N/24 and fd6e:6::N/64: inside the namespaces, so
side-by-side runs never meet), its machine pool is 172.(16+i).0.0/16, its agent runs under `nsenter --net`
(only the network namespace changes: runc, the agent's own `ip netns add`, cgroups and mounts see the host's,
and the machines' netns are named in the host's /run/netns as usual; `ip netns exec` would also give the agent
a mount namespace of its own, where the netns it names and the sysfs it reads are not the host's), and each is
told the others as `--peer`. Listeners stay loopback: forwarders (tests/support/netns.py) carry serve's calls
to each agent's 127.0.0.1, the agents' pulls to serve's registry, and the test's requests to serve's API and edge.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.agents import HostProcess
from tests.support.netns import ROOT, Forwarders, call_in
from tests.support.registry import free_loopback_port
from tests.support.server import Server

NETNS_DIR = Path("/run/netns")
REGIONS = ("ams", "cdg", "ord", "sin")  # one per host, so that a test places a machine by asking its host's region


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class NetHost:
    """One host's netns and its place on the underlay."""

    name: str
    netns: str
    index: int  # its number on the underlay
    octet: int  # the X of 10.X.6.0/24 and fd6e:X::/64

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.netns)

    @property
    def underlay4(self) -> str:
        return f"10.{self.octet}.6.{self.index}"

    @property
    def underlay6(self) -> str:
        return f"fd6e:{self.octet}::{self.index}"

    def sh(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", f"--net={self.path}", "sh", "-c", command], capture_output=True, text=True, timeout=60
        )


@dataclass
class NetnsServer(Server):
    """serve, run inside the edge's netns."""

    netns_path: str = ""

    def argv(self) -> list[str]:
        return ["nsenter", f"--net={self.netns_path}", *super().argv()]


@dataclass
class NetnsAgent(HostProcess):
    """`aerodrome agent` inside its host's netns."""

    host: NetHost | None = None


@dataclass
class Cluster:
    """N agent hosts and one serve, each in a netns, on a bridge; `close` removes all of it."""

    workdir: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    pools: list[str] = field(default_factory=list)
    nets: list[NetHost] = field(default_factory=list)
    agents: list[NetnsAgent] = field(default_factory=list)
    server: NetnsServer | None = None
    forwarders: Forwarders = field(default_factory=Forwarders)

    @property
    def fabric(self) -> str:
        return f"ad6f-{self.token}"

    @property
    def edge(self) -> NetHost:
        return self.nets[-1]

    def build(self, names: list[str]) -> None:
        """The netns, the bridge, the underlay addresses; then the agents and serve, started."""
        # every address is inside the test's namespaces: the pools need only differ from each other, not from the
        # host's routes or other runs' (which the host-wide unrouted_pool reservations are for)
        self.pools = [f"172.{16 + n}.0.0/16" for n in range(len(names))]
        octet = 6
        ip("netns", "add", self.fabric)
        self._run_in_fabric("link", "add", "br0", "type", "bridge")
        self._run_in_fabric("link", "set", "br0", "up")
        for index, name in enumerate([*names, "edge"], start=2):
            self._plug(NetHost(name, f"ad6-{self.token}-{name}", index, octet))
        self._start(names)

    def _run_in_fabric(self, *args: str) -> None:
        ip("-n", self.fabric, *args)

    def _plug(self, net: NetHost) -> None:
        ip("netns", "add", net.netns)
        self.nets.append(net)
        ip("-n", net.netns, "link", "set", "lo", "up")
        ip("-n", net.netns, "link", "add", "underlay0", "type", "veth", "peer", "name", net.name, "netns", self.fabric)
        self._run_in_fabric("link", "set", net.name, "master", "br0", "up")
        ip("-n", net.netns, "addr", "add", f"{net.underlay4}/24", "dev", "underlay0")
        ip("-n", net.netns, "addr", "add", f"{net.underlay6}/64", "dev", "underlay0", "nodad")
        ip("-n", net.netns, "link", "set", "underlay0", "up")

    def _start(self, names: list[str]) -> None:
        self.server = NetnsServer(
            self.workdir,
            machine_pool=self.pools[0],  # serve runs no machine itself
            api_port=free_loopback_port(),
            registry_port=free_loopback_port(),
            edge_http_port=free_loopback_port(),
            edge_https_port=free_loopback_port(),
            netns_path=self.edge.path,
        )
        self.server.data_dir.mkdir(mode=0o700)
        for port in (self.server.api_port, self.server.registry_port, self.server.edge_http_port):
            self.forwarders.add(ROOT, self.edge.path, port)
        hosts = self.nets[:-1]
        for net, pool in zip(hosts, self.pools, strict=True):
            keys = self.server.data_dir / "registry"
            agent = NetnsAgent(
                net.name, self.workdir / net.name, self.server.registry, keys, machine_pool=pool, host=net
            )
            agent.argv_prefix = ("nsenter", f"--net={net.path}")
            peers = [(other, p) for other, p in zip(hosts, self.pools, strict=True) if other is not net]
            agent.extra_args = tuple(arg for other, p in peers for arg in ("--peer", f"{other.underlay6}={p}"))
            agent.extra_args += ("--peer", self.edge.underlay6, "--region", REGIONS[len(self.agents)])
            self.forwarders.add(ROOT, net.path, agent.port)  # the test's own calls
            self.forwarders.add(self.edge.path, net.path, agent.port)  # serve's
            self.forwarders.add(net.path, self.edge.path, self.server.registry_port)  # the agent's pulls
            self.agents.append(agent)
            self.server.extra_args += ("--agent", agent.url, "--agent-token-file", str(agent.token_file))
        # serve routes each organisation's machines to their host itself (`serve --peer`)
        for net, pool in zip(hosts, self.pools, strict=True):
            self.server.extra_args += ("--peer", f"{net.underlay6}={pool}")
        for agent in self.agents:
            agent.start()
        self.server.start()

    def leftovers(self, machine_ids: list[str]) -> list[str]:
        """What the agents left in their namespaces and data directories, the private network's routes and
        underlay rules included."""
        found = [line for agent in self.agents for line in _agent_leftovers(agent, machine_ids)]
        for net in self.nets:  # serve's routes in the edge's too
            routes = net.sh("ip -6 route show proto 173").stdout.splitlines()
            rules = [r for r in net.sh("ip6tables-save").stdout.splitlines() if "underlay0" in r or "fd6e:" in r]
            found += [f"{net.name}: {line}" for line in routes + rules]
        return found

    def stop(self) -> None:
        """Stop serve and the agents, by their pids (each removes its rules and routes once it has no machine)."""
        if self.server is not None:
            self.server.stop()
        for agent in self.agents:
            agent.stop()

    def close(self) -> None:
        """`stop`, the forwarders too; then delete every netns (their links, routes and rules go with them)."""
        self.stop()
        self.forwarders.close()
        for net in self.nets:
            subprocess.run(["ip", "netns", "del", net.netns], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.fabric], capture_output=True, timeout=30)


def _agent_leftovers(agent: NetnsAgent, machine_ids: list[str]) -> list[str]:
    assert agent.host is not None
    return call_in(agent.host.path, lambda: agent.leftovers(machine_ids))


def new_cluster(names: list[str]) -> Cluster:
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="aerodrome-6pn-")))
    try:
        cluster.build(names)
    except BaseException:
        cluster.close()
        shutil.rmtree(cluster.workdir, ignore_errors=True)
        raise
    return cluster
