"""The private network's resolver: one asyncio server (UDP and TCP) for every machine on the host.

It listens at Fly's address, fdaa::3, and at an IPv4 one, both put on the host side of every machine's veth by
the runtime (sockets bound with IP_FREEBIND, so they listen before the first machine runs); the firewall lets
machines reach exactly its port there. A question is answered for the organisation of the machine that asks
(known by its source address; anyone else is REFUSED), `.internal` names from the directory, any other name
forwarded to the host's own resolvers when machines have egress (else REFUSED).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from aerodrome.inside.directory import Directory
from aerodrome.inside.names import Names, chunks, records

log = logging.getLogger(__name__)

DNS_PORT = 53
TTL = 1  # seconds: a machine that stops leaves the answers within the second
FORWARD_TIMEOUT = 3.0
TCP_IDLE = 10.0  # seconds a TCP client may keep a connection without asking
MAX_TCP_CLIENTS = 256
IP_FREEBIND, IPV6_FREEBIND = 15, 78  # Linux's, at SOL_IP and SOL_IPV6


def freebind_socket(address: str, port: int, kind: socket.SocketKind) -> socket.socket:
    """A socket bound to `address`, which need not be on any interface yet."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        else:
            sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        sock.bind((address, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def host_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    """The host's resolvers, where forwarded questions go."""
    try:
        with open(path) as f:
            lines = f.read(65536).splitlines()
    except OSError:
        return []
    return [parts[1].split("%")[0] for line in lines if len(parts := line.split()) >= 2 and parts[0] == "nameserver"]


@dataclass(frozen=True, slots=True)
class ResolverSettings:
    addresses: tuple[str, ...]  # where it listens
    api: tuple[str, ...]  # what `_api.internal` answers
    forward: bool = False  # other names go to the host's resolvers (machines have egress)
    port: int = DNS_PORT


class Resolver:
    def __init__(self, directory: Directory, settings: ResolverSettings, upstream: Sequence[str] = ()) -> None:
        self.directory = directory
        self.settings = settings
        self.names = Names(api=settings.api)
        self.upstream = list(upstream) if upstream else host_nameservers()
        self._transports: list[asyncio.BaseTransport] = []
        self._servers: list[asyncio.Server] = []
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for address in self.settings.addresses:
                udp = freebind_socket(address, self.settings.port, socket.SOCK_DGRAM)
                transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self), sock=udp)
                self._transports.append(transport)
                tcp = freebind_socket(address, self.settings.port, socket.SOCK_STREAM)
                self._servers.append(await asyncio.start_server(self._stream, sock=tcp, limit=65536))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._transports.clear()
        self._servers.clear()

    async def handle(self, wire: bytes, source: str) -> bytes | None:
        """The reply to one query from `source`; None for what is not a query at all."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if query.flags & dns.flags.QR or len(query.question) != 1:
            return _reply(query, dns.rcode.FORMERR).to_wire()
        caller = await self.directory.caller(source.split("%")[0])
        if caller is None:
            return _reply(query, dns.rcode.REFUSED).to_wire()
        question = query.question[0]
        qname = question.name.to_text(omit_final_dot=True).lower()
        answer = self.names.answer(await self.directory.snapshot(), caller, qname)
        if answer is None:
            return await self._forward(query, wire)
        response = _reply(query, dns.rcode.NOERROR if answer.exists else dns.rcode.NXDOMAIN)
        response.flags |= dns.flags.AA
        for rdtype, values in records(answer, question.rdtype):
            rdatas = [_rdata(rdtype, value) for value in values]
            response.answer.append(dns.rrset.from_rdata_list(question.name, TTL, rdatas))
        return response.to_wire()

    async def _forward(self, query: dns.message.Message, wire: bytes) -> bytes:
        if not self.settings.forward or not self.upstream:
            return _reply(query, dns.rcode.REFUSED).to_wire()
        for server in self.upstream:
            with contextlib.suppress(dns.exception.DNSException, OSError):
                reply = await dns.asyncquery.udp(query, server, timeout=FORWARD_TIMEOUT, ignore_unexpected=True)
                return reply.to_wire()
        return _reply(query, dns.rcode.SERVFAIL).to_wire()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(self._clients) >= MAX_TCP_CLIENTS:
            writer.close()
            return
        self._clients.add(task)
        source = str(writer.get_extra_info("peername")[0])
        try:
            while True:
                size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE))[0]
                reply = await self.handle(await asyncio.wait_for(reader.readexactly(size), TCP_IDLE), source)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is one without the subclass

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            reply = await self.resolver.handle(data, str(addr[0]))
        except Exception:
            log.exception("the resolver could not answer a query")
            return
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(_truncated(reply), addr)


def _reply(query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    response.flags |= dns.flags.RA
    return response


def _rdata(rdtype: dns.rdatatype.RdataType, value: str | bytes) -> dns.rdata.Rdata:
    if rdtype == dns.rdatatype.TXT:
        assert isinstance(value, bytes)
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, rdtype, chunks(value))
    assert isinstance(value, str)
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, value)


UDP_LIMIT = 512


def _truncated(reply: bytes) -> bytes:
    """A UDP reply longer than 512 bytes goes as its header with TC set: the client asks again over TCP."""
    if len(reply) <= UDP_LIMIT:
        return reply
    message = dns.message.from_wire(reply)
    message.answer.clear()
    message.flags |= dns.flags.TC
    return message.to_wire()
