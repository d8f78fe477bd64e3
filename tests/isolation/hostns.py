"""A host of the test's own: a network namespace the daemon runs in, and an "outside" one behind its uplink.

The daemon's host here is a namespace with nothing but loopback, the machines' veths, a veth pair of the test's
("own", carrying host addresses: this kernel has no dummy driver) and the uplink to "outside", which has no link
but that one: whatever a machine sends stays in namespaces the test made, and deleting the two namespaces
removes every interface, address, route and rule made in them. The test's own thread (and every process it
starts, `aerodrome serve` among them) runs in the host namespace while a test uses it, so the daemon's host
starts from a known state (IPv4 forwarding off, no rules) that no other test on the machine can change.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

UPLINK_ADDRESS, OUTSIDE_ADDRESS = "198.18.0.1", "198.18.0.2"  # RFC 2544: routed only between the two namespaces
HOST_ADDRESS4, HOST_ADDRESS6 = "198.51.100.7", "fd42:7::7"  # addresses of the host's own (test-made) interface
PORT = 9000


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextlib.contextmanager
def entered(netns: str) -> Iterator[None]:
    """Run the calling thread, and the processes and sockets it makes, in network namespace `netns`."""
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(back)
    finally:
        os.close(target)
        os.close(back)


def sh(script: str, netns: str | None = None) -> str:
    """Run a shell script (stopping at the first failure), in `netns` if given; its stdout."""
    argv = ["sh", "-ec", script] if netns is None else ["nsenter", f"--net=/run/netns/{netns}", "sh", "-ec", script]
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


@dataclass
class Listener:
    """A TCP listener the test holds: what connected to it is read on its side, not guessed from the client."""

    sock: socket.socket

    @classmethod
    def open(cls, address: str, port: int = PORT) -> Listener:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(64)
        sock.setblocking(False)
        return cls(sock)

    def received(self) -> list[str]:
        """The first line sent on each connection accepted so far (the kernel queues them until then)."""
        lines = []
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return lines
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    lines.append(conn.recv(256).decode(errors="replace").strip())

    def close(self) -> None:
        self.sock.close()


@dataclass
class OwnHost:
    """The namespaces and the names of what the test made in them."""

    host: str  # the daemon's host
    outside: str  # behind the uplink
    uplink: str
    own: str  # the host's interface with HOST_ADDRESS4/6
    listeners: list[Listener] = field(default_factory=list)

    def listen(self, address: str, port: int = PORT, *, outside: bool = False) -> Listener:
        """A listener in the host namespace (the test's thread is in it), or in the outside one."""
        with entered(self.outside) if outside else contextlib.nullcontext():
            listener = Listener.open(address, port)
        self.listeners.append(listener)
        return listener

    def sh(self, script: str) -> str:
        return sh(script, self.host)

    def iptables(self) -> str:
        return self.sh("iptables-save; ip6tables-save")

    def routes(self) -> str:
        return self.sh("ip -4 route show table all; ip -6 route show table all")

    def sysctl(self, name: str) -> str:
        return self.sh(f"cat /proc/sys/net/{name}").strip()


#: The outside's addresses, by what they stand for; all on its loopback, each answering on PORT.
OUTSIDE = {
    "public": "203.0.113.80",  # TEST-NET-3, standing for the internet
    "allowed LAN": "192.168.213.5",  # opened with --egress-allow 192.168.213.0/24
    "other LAN": "192.168.214.5",
    "RFC 1918 10/8": "10.213.0.5",
    "CGNAT": "100.64.213.5",
    "metadata": "169.254.169.254",
}
ALLOWED_LAN = "192.168.213.0/24"


def _setup_script(t: OwnHost) -> tuple[str, str]:
    host = "\n".join(
        [
            "ip link set lo up",
            # First: interfaces made later take the default, which writing ip_forward sets too.
            "echo 0 > /proc/sys/net/ipv4/ip_forward",
            "echo 0 > /proc/sys/net/ipv6/conf/all/forwarding",
            f"ip link add {t.uplink} type veth peer name eth0 netns {t.outside}",
            f"ip addr add {UPLINK_ADDRESS}/30 dev {t.uplink}",
            f"ip link set {t.uplink} up",
            f"ip route add default via {OUTSIDE_ADDRESS} dev {t.uplink}",
            f"ip link add {t.own} type veth peer name {t.own}p",
            f"ip addr add {HOST_ADDRESS4}/32 dev {t.own}",
            f"ip addr add {HOST_ADDRESS6}/128 dev {t.own} nodad",
            f"ip link set {t.own}p up",
            f"ip link set {t.own} up",
        ]
    )
    outside = "\n".join(
        [
            "ip link set lo up",
            "echo 0 > /proc/sys/net/ipv4/ip_forward",
            f"ip addr add {OUTSIDE_ADDRESS}/30 dev eth0",
            "ip link set eth0 up",
            *(f"ip addr add {address}/32 dev lo" for address in OUTSIDE.values()),
            # A way back to the machines (every test pool is in 172.16/12) that needs no NAT from the daemon: a
            # connection that leaked out unmasqueraded still completes, and shows on the listener.
            f"ip route add 172.16.0.0/12 via {UPLINK_ADDRESS}",
            "ip route add unreachable default",  # it has no other link; and should it get one, nothing leaves
        ]
    )
    return host, outside


@contextlib.contextmanager
def own_host() -> Iterator[OwnHost]:
    """Make the two namespaces, enter the host one, and remove both afterwards, whatever happened."""
    suffix = os.urandom(3).hex()
    t = OwnHost(host=f"adtest-host-{suffix}", outside=f"adtest-out-{suffix}", uplink="uplink0", own="own0")
    made: list[str] = []
    try:
        for netns in (t.host, t.outside):
            sh(f"ip netns add {netns}")
            made.append(netns)
        host_script, outside_script = _setup_script(t)
        sh(host_script, t.host)
        sh(outside_script, t.outside)
        with entered(t.host):
            yield t
    finally:
        for listener in t.listeners:
            listener.close()
        for netns in made:
            sh(f"ip netns del {netns}")
    assert not set(made) & set(sh("ip netns list").split()), "the test's namespaces are still there"


def gateways(private_ip: str, org_prefixlen: int = 20) -> tuple[str, str, str]:
    """A machine's IPv4 address (the host part of its IPv6 one) and its organisation's two gateways."""
    ipv6 = ipaddress.IPv6Address(private_ip)
    ipv4 = ipaddress.IPv4Address(int(ipv6) & 0xFFFF_FFFF)
    gateway4 = ipaddress.IPv4Network((ipv4, org_prefixlen), strict=False).network_address + 1
    gateway6 = ipaddress.IPv6Network((ipv6, 64), strict=False).network_address + 1
    return str(ipv4), str(gateway4), str(gateway6)
