"""Network namespaces for tests: running code inside one, and loopback forwarders between them.

A thread that joins a network namespace (setns) makes its sockets there, and so do the processes it starts;
a socket keeps its namespace whichever thread uses it afterwards. So one event loop in the test process can
listen on a namespace's loopback and connect on another's: a forwarder that lets `serve` in one "host" reach
an agent's loopback listener in another (and the agents the embedded registry), with nothing but loopback
listening anywhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
ROOT = f"/proc/{os.getpid()}/task/{os.getpid()}/ns/net"  # the test process's own namespace (its main thread's)
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def join(netns_path: str) -> None:
    """Move the calling thread into the network namespace at `netns_path`."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns {netns_path}: {os.strerror(error)}")
    finally:
        os.close(fd)


def call_in(netns_path: str, function: Callable[[], T]) -> T:
    """`function()` run in a thread of its own inside the namespace (its subprocesses are there too)."""
    with concurrent.futures.ThreadPoolExecutor(1, initializer=join, initargs=(netns_path,)) as pool:
        return pool.submit(function).result()


class Forwarders:
    """TCP forwarders from a loopback port in one namespace to a loopback port in another, on a loop of their own."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="netns-forwarders", daemon=True)
        self._thread.start()
        self._pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
        self._servers: list[asyncio.Server] = []

    def _pool(self, netns_path: str) -> concurrent.futures.ThreadPoolExecutor:
        if netns_path not in self._pools:
            self._pools[netns_path] = concurrent.futures.ThreadPoolExecutor(1, initializer=join, initargs=(netns_path,))
        return self._pools[netns_path]

    def _socket_in(self, netns_path: str) -> socket.socket:
        return self._pool(netns_path).submit(socket.socket, socket.AF_INET, socket.SOCK_STREAM).result()

    def add(self, listen_netns: str, connect_netns: str, port: int, to_port: int | None = None) -> None:
        """Forward 127.0.0.1:`port` of `listen_netns` to 127.0.0.1:`to_port` (default: the same) of `connect_netns`."""
        listener = self._socket_in(listen_netns)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        target = (connect_netns, to_port or port)
        started = asyncio.run_coroutine_threadsafe(self._serve(listener, target), self._loop)
        self._servers.append(started.result(timeout=10))

    async def _serve(self, listener: socket.socket, target: tuple[str, int]) -> asyncio.Server:
        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._forward(reader, writer, target)

        return await asyncio.start_server(forward, sock=listener)

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: tuple[str, int]
    ) -> None:
        loop = asyncio.get_running_loop()
        upstream = await loop.run_in_executor(self._pool(target[0]), socket.socket, socket.AF_INET, socket.SOCK_STREAM)
        upstream.setblocking(False)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await loop.sock_connect(upstream, ("127.0.0.1", target[1]))
        except OSError:
            upstream.close()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(sock=upstream)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        for pool in self._pools.values():
            pool.shutdown()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
