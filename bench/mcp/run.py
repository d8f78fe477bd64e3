"""MCP bridge latency: initialize and tools/call round trips through wrap (HTTP) vs direct stdio, p50, as ratios.

Run: `.venv/bin/python bench/mcp/run.py [--rounds 50]`. Every figure comes from the same run, on the same test
server (tests/mcp/fs_server.py). Clients are raw (JSON lines over pipes; httpx with keep-alive), so the figures are
the transports' cost rather than a client library's (httpx costs about 7 to 10 ms per request on these hosts, more
than the bridge itself).
  direct      — JSON-RPC lines on the server's own stdin/stdout
  passthru    — wrap's Fly protocol: POST the line (202), read the reply from the GET stream
  streamable  — Streamable HTTP: POST with Accept JSON + SSE, reply as one event; initialize opens a session
                (on a warm spare program), cold-initialize on a freshly spawned one (--spare-sessions 0)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.mcp.harness import FS_SERVER, running_wrap

INIT_PARAMS = {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}
CALL_PARAMS = {"name": "read_file", "arguments": {"path": "hello.txt"}}
STREAMING = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class RawHttp:
    """A minimal keep-alive HTTP/1.1 client: Content-Length or chunked replies, and a line-per-chunk stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> RawHttp:
        """Open a connection to wrap on loopback."""
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, method: str, body: bytes = b"", headers: dict[str, str] | None = None) -> dict[str, str]:
        """Send a request and read the reply head; returns its headers (lower-case names)."""
        lines = [f"{method} / HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")[1:]
        return {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in head if line)}

    async def chunk(self) -> bytes:
        """Read one chunk of a chunked body (b"" at its end)."""
        size = int(await self.reader.readuntil(b"\r\n"), 16)
        data = await self.reader.readexactly(size + 2)
        return data[:-2]

    async def request(self, method: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
        """A whole request and reply body."""
        reply = await self.send(method, body, headers)
        if "content-length" in reply:
            return await self.reader.readexactly(int(reply["content-length"]))
        chunks = []
        while data := await self.chunk():
            chunks.append(data)
        return b"".join(chunks)

    def close(self) -> None:
        """Close the connection."""
        self.writer.close()


def message(request_id: int, method: str, params: dict[str, object] | None = None) -> bytes:
    """One JSON-RPC request line."""
    body: dict[str, object] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return json.dumps(body).encode() + b"\n"


async def timed(rounds: int, once: Callable[[int], Awaitable[None]], pause: float = 0.0) -> float:
    """p50 of `rounds` runs of `once`, in milliseconds."""
    samples = []
    for n in range(rounds):
        started = time.perf_counter()
        await once(n)
        samples.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(pause)
    return statistics.median(samples)


async def direct(root: Path, rounds: int) -> dict[str, float]:
    """Round trips on the server's own pipes."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(FS_SERVER), str(root), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    async def round_trip(line: bytes) -> None:
        stdin.write(line)
        await stdin.drain()
        await stdout.readline()

    results = {
        "initialize": await timed(rounds, lambda n: round_trip(message(n, "initialize", INIT_PARAMS))),
        "tools/call": await timed(rounds, lambda n: round_trip(message(10_000 + n, "tools/call", CALL_PARAMS))),
    }
    stdin.close()
    await process.wait()
    return results


async def passthru(root: Path, rounds: int) -> dict[str, float]:
    """Round trips through wrap's Fly protocol."""
    async with running_wrap(root) as wrap:
        listener, poster = await RawHttp.connect(wrap.port), await RawHttp.connect(wrap.port)
        await listener.send("GET")

        async def round_trip(line: bytes) -> None:
            await poster.request("POST", line, {"Content-Type": "application/json"})
            await listener.chunk()

        results = {
            "initialize": await timed(rounds, lambda n: round_trip(message(n, "initialize", INIT_PARAMS))),
            "tools/call": await timed(rounds, lambda n: round_trip(message(10_000 + n, "tools/call", CALL_PARAMS))),
        }
        listener.close()
        poster.close()
        return results


async def streamable(root: Path, rounds: int) -> dict[str, float]:
    """Round trips over Streamable HTTP: new sessions on warm spares, then calls within one session."""
    async with running_wrap(root, ["--spare-sessions", "1"]) as wrap:
        client = await RawHttp.connect(wrap.port)
        await client.request("POST", message(0, "initialize", INIT_PARAMS), STREAMING)  # starts keeping a spare
        await asyncio.sleep(2.0)
        session_ids: list[str] = []

        async def open_session(n: int) -> None:
            reply = await client.send("POST", message(n, "initialize", INIT_PARAMS), STREAMING)
            while await client.chunk():
                pass
            session_ids.append(reply["mcp-session-id"])

        initialize = await timed(max(3, rounds // 10), open_session, pause=2.0)  # let the spare refill
        headers = {**STREAMING, "Mcp-Session-Id": session_ids[-1]}
        call = await timed(
            rounds, lambda n: client.request("POST", message(10_000 + n, "tools/call", CALL_PARAMS), headers)
        )
        client.close()
        return {"initialize": initialize, "tools/call": call}


async def cold_initialize(root: Path, rounds: int) -> float:
    """Streamable HTTP initialize when the session's program has to be spawned first."""
    async with running_wrap(root, ["--spare-sessions", "0"]) as wrap:
        client = await RawHttp.connect(wrap.port)
        cold = await timed(
            max(3, rounds // 10), lambda n: client.request("POST", message(n, "initialize", INIT_PARAMS), STREAMING)
        )
        client.close()
        return cold


async def main(rounds: int) -> None:
    """Measure everything and print a table with ratios to direct stdio."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "hello.txt").write_text("hello")
        base = await direct(root, rounds)
        rows = {"direct stdio": base, "wrap passthru": await passthru(root, rounds)}
        rows["wrap streamable"] = await streamable(root, rounds)
        cold = await cold_initialize(root, rounds)
    print(f"{'p50 ms':<18}{'initialize':>12}{'ratio':>8}{'tools/call':>12}{'ratio':>8}")
    for name, row in rows.items():
        init, call = row["initialize"], row["tools/call"]
        print(f"{name:<18}{init:>12.2f}{init / base['initialize']:>8.2f}{call:>12.2f}{call / base['tools/call']:>8.2f}")
    print(f"{'streamable cold':<18}{cold:>12.2f}{cold / base['initialize']:>8.1f}   (session program spawned first)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50)
    asyncio.run(main(parser.parse_args().rounds))
