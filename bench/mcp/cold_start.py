"""The guide's MCP server on aerodrome: stopped machine → first MCP reply through the edge, and warm round trips
through edge + wrap against direct stdio to the same server from the same image, as ratios.

Run (root): `.venv/bin/python bench/mcp/cold_start.py [--cold 5] [--rounds 50]`. It builds (or reuses from the
cache) the `flyio/mcp` image with the filesystem server preinstalled, runs a real `aerodrome serve`, launches the
guide's machine (`npx -f @modelcontextprotocol/server-filesystem /data/`) and measures, in the same run:
  cold passthru    — machine stopped; GET the edge (which starts it), then POST initialize; until the reply line
  cold streamable  — machine stopped; one Streamable HTTP initialize POST; until its SSE reply
  process start    — the floor: spawn the image's node on the server's script on this host; until initialize's reply
  warm             — p50 of initialize and tools/call: direct stdio to that process, passthru and Streamable HTTP
                     through the edge and wrap (raw keep-alive sockets, so no client library's cost is counted)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.api.helpers import wait_for
from tests.support.server import Server, running_server

from aerodrome.cli.mcp import launch_app
from aerodrome.cli.mcp_image import McpImageRecipe, build_mcp_layout, push_layout
from aerodrome.client import Client, ClientSettings

SERVER = "@modelcontextprotocol/server-filesystem"
INIT = {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}
CALL = {"name": "list_directory", "arguments": {"path": "/data"}}
STREAMING = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def message(request_id: int, method: str, params: dict[str, object] | None = None) -> bytes:
    body: dict[str, object] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return json.dumps(body).encode() + b"\n"


class Edge:
    """One keep-alive HTTP/1.1 connection to the edge for one app; chunked bodies are read as lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, token: str) -> None:
        self.reader, self.writer, self.host, self.token = reader, writer, host, token
        self.pending = b""
        self.last: dict[str, str] = {}

    @classmethod
    async def open(cls, server: Server, app: str, token: str) -> Edge:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.edge_http_port)
        return cls(reader, writer, f"{app}.localhost:{server.edge_http_port}", token)

    async def send(self, method: str, body: bytes = b"", headers: dict[str, str] | None = None) -> dict[str, str]:
        """Send a request; return the reply's headers (lower-case names) with its status under ':status'."""
        lines = [f"{method} / HTTP/1.1", f"Host: {self.host}", f"Authorization: Bearer {self.token}"]
        lines += [f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
        return {":status": head[0].split()[1], **fields}

    async def line(self) -> bytes:
        """The next line of a chunked body."""
        while b"\n" not in self.pending:
            size = int(await self.reader.readuntil(b"\r\n"), 16)
            self.pending += (await self.reader.readexactly(size + 2))[:-2]
        line, _, self.pending = self.pending.partition(b"\n")
        return line

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> bytes:
        """POST; a passthru 202 has an empty body, a Streamable reply is read up to its `data:` line and its end."""
        self.last = await self.send("POST", body, headers)
        if "content-length" in self.last:
            return await self.reader.readexactly(int(self.last["content-length"]))
        data = b""
        while not data:
            line = await self.line()
            data = line[5:].strip() if line.startswith(b"data:") else b""
        self.pending = b""
        while size := int(await self.reader.readuntil(b"\r\n"), 16):  # the rest of the stream, to its last chunk
            await self.reader.readexactly(size + 2)
        await self.reader.readexactly(2)
        return data

    def close(self) -> None:
        self.writer.close()


def stop(server: Server, app: str, machine_id: str) -> None:
    with server.client() as api:
        api.post(f"/v1/apps/{app}/machines/{machine_id}/stop")
        wait_for(api, app, machine_id, "stopped", timeout=60)


async def cold_passthru(server: Server, app: str, token: str) -> float:
    started = time.perf_counter()
    listener, poster = await Edge.open(server, app, token), await Edge.open(server, app, token)
    await listener.send("GET", headers={"Accept": "application/json"})  # held by the edge while the machine starts
    await poster.post(message(0, "initialize", INIT), {"Content-Type": "application/json"})
    await listener.line()
    elapsed = time.perf_counter() - started
    listener.close(), poster.close()
    return elapsed


async def cold_streamable(server: Server, app: str, token: str) -> float:
    started = time.perf_counter()
    edge = await Edge.open(server, app, token)
    await edge.post(message(0, "initialize", INIT), STREAMING)
    elapsed = time.perf_counter() - started
    edge.close()
    return elapsed


async def p50(rounds: int, once: object) -> float:
    samples = []
    for n in range(rounds):
        started = time.perf_counter()
        await once(n)  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def warm_direct(rootfs: Path, data: Path, rounds: int) -> tuple[float, float, float]:
    """(process start → initialize reply, initialize p50, tools/call p50) on the image's node, on this host."""
    script = rootfs / "node_modules" / SERVER / "dist/index.js"
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        str(rootfs / "usr/local/bin/node"), str(script), str(data), stdin=-1, stdout=-1, stderr=-3
    )
    assert proc.stdin and proc.stdout

    async def round_trip(line: bytes) -> None:
        proc.stdin.write(line)  # type: ignore[union-attr]
        await proc.stdout.readline()  # type: ignore[union-attr]

    await round_trip(message(0, "initialize", INIT))
    spawn = time.perf_counter() - started
    init = await p50(rounds, lambda n: round_trip(message(n, "initialize", INIT)))
    call = await p50(rounds, lambda n: round_trip(message(n, "tools/call", {**CALL, "arguments": {"path": str(data)}})))
    proc.kill()
    await proc.wait()
    return spawn, init, call


async def warm_edge(server: Server, app: str, token: str, rounds: int) -> tuple[float, float, float, float]:
    """(passthru initialize, passthru tools/call, Streamable initialize, Streamable tools/call) p50 via the edge."""
    listener, poster = await Edge.open(server, app, token), await Edge.open(server, app, token)
    await listener.send("GET", headers={"Accept": "application/json"})

    async def passthru(line: bytes) -> None:
        await poster.post(line, {"Content-Type": "application/json"})
        await listener.line()

    p_init = await p50(rounds, lambda n: passthru(message(n, "initialize", INIT)))
    p_call = await p50(rounds, lambda n: passthru(message(n, "tools/call", CALL)))
    listener.close(), poster.close()
    session = await Edge.open(server, app, token)
    await session.post(message(0, "initialize", INIT), STREAMING)
    headers = {**STREAMING, "Mcp-Session-Id": session.last["mcp-session-id"]}
    # initialize again inside the session: a round trip like direct stdio's, not a new program per sample
    s_init = await p50(rounds, lambda n: session.post(message(n + 1, "initialize", INIT), headers))
    s_call = await p50(rounds, lambda n: session.post(message(n + 1, "tools/call", CALL), headers))
    session.close()
    return p_init, p_call, s_init, s_call


async def main(cold_runs: int, rounds: int) -> None:
    layout = build_mcp_layout(McpImageRecipe(preinstall=(SERVER,)))
    with running_server() as server, tempfile.TemporaryDirectory() as scratch:
        push_layout(layout, server.image("flyio/mcp"), credentials=server.operator_credentials)
        with Client(ClientSettings(server.api_url, server.token, timeout=120.0)) as api:
            command = ["npx", "-f", SERVER, "/data/"]
            machine_id, token = launch_app(api, "bench-mcp", "personal", "iad", "flyio/mcp:latest", command, 1)
        await cold_streamable(server, "bench-mcp", token)  # the first start pulls and unpacks the image: not counted
        passthru, streamable = [], []
        for _ in range(cold_runs):
            await asyncio.to_thread(stop, server, "bench-mcp", machine_id)
            passthru.append(await cold_passthru(server, "bench-mcp", token))
            await asyncio.to_thread(stop, server, "bench-mcp", machine_id)
            streamable.append(await cold_streamable(server, "bench-mcp", token))
        rootfs = Path(scratch) / "bundle"
        unpack = ["umoci", "unpack", "--image", f"{layout}:latest", str(rootfs)]
        await asyncio.to_thread(subprocess.run, unpack, check=True, capture_output=True)
        (Path(scratch) / "data").mkdir()
        spawn, d_init, d_call = await warm_direct(rootfs / "rootfs", Path(scratch) / "data", rounds)
        p_init, p_call, s_init, s_call = await warm_edge(server, "bench-mcp", token, rounds)
    ms = 1000.0
    print(f"stopped machine → first MCP reply through the edge ({cold_runs} runs, median; floor: process start)")
    print(f"  process start, host     {spawn * ms:8.0f} ms")
    for name, runs in (("cold passthru", passthru), ("cold streamable", streamable)):
        median = statistics.median(runs)
        print(f"  {name:<22}  {median * ms:8.0f} ms  x{median / spawn:5.1f}   runs: {[round(r * ms) for r in runs]}")
    print(f"warm round trips, p50 of {rounds} (floor: direct stdio)")
    print(f"  {'':<22}  {'initialize':>10}  {'ratio':>6}  {'tools/call':>10}  {'ratio':>6}")
    rows = (("direct stdio", d_init, d_call), ("edge+wrap passthru", p_init, p_call))
    for name, init, call in (*rows, ("edge+wrap streamable", s_init, s_call)):
        print(f"  {name:<22}  {init * ms:8.2f}ms  x{init / d_init:5.1f}  {call * ms:8.2f}ms  x{call / d_call:5.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cold", type=int, default=5, help="stopped → first reply runs")
    parser.add_argument("--rounds", type=int, default=50, help="warm round trips per figure")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.cold, arguments.rounds))
