"""One run of one check against a machine: a TCP connect, or an HTTP request whose status line is all that is read.

What answers is the machine's own program, so it is hostile: every probe is bounded by its check's timeout as a
whole (a server that trickles its headers cannot hold it), the body is never read, redirects are not followed,
and the host's proxy settings are ignored (the request goes to the machine's private address, nowhere else).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import httpx

from aerodrome.core import CheckSpec

MAX_OUTPUT = 256  # characters of a probe's output kept in the Machine's `checks`
USER_AGENT = "aerodrome-healthcheck"


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    output: str


class Prober:
    """Runs checks; one HTTP client (no pooling: each probe is a fresh connection, as a fresh client would be)."""

    def __init__(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        self._client = httpx.AsyncClient(limits=limits, trust_env=False, follow_redirects=False)
        self._insecure = httpx.AsyncClient(limits=limits, trust_env=False, follow_redirects=False, verify=False)

    async def run(self, check: CheckSpec, address: str) -> Outcome:
        try:
            async with asyncio.timeout(check.timeout):
                if check.type == "tcp":
                    return await self._tcp(address, check.port)
                return await self._http(check, address)
        except TimeoutError:
            return Outcome(False, f"timed out after {check.timeout:g}s")
        except Exception as exc:  # OSError, httpx's errors, anything a hostile reply provokes: the check fails
            return Outcome(False, _shorten(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__))

    async def _tcp(self, address: str, port: int) -> Outcome:
        _, writer = await asyncio.open_connection(address, port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return Outcome(True, f"connected to port {port}")

    async def _http(self, check: CheckSpec, address: str) -> Outcome:
        host = f"[{address}]" if ":" in address else address
        url = f"{'https' if check.https else 'http'}://{host}:{check.port}{check.path}"
        headers = [("User-Agent", USER_AGENT), *check.headers]
        client = self._insecure if check.tls_skip_verify else self._client
        request = client.build_request(check.method, url, headers=headers)
        response = await client.send(request, stream=True)
        await response.aclose()  # the status line and headers are the answer; the body stays unread
        shown = _shorten(f"{response.status_code} {response.reason_phrase}".strip())
        return Outcome(200 <= response.status_code < 300, shown)

    async def close(self) -> None:
        await self._client.aclose()
        await self._insecure.aclose()


def _shorten(text: str) -> str:
    printable = "".join(c if c.isprintable() else "?" for c in text)
    return printable if len(printable) <= MAX_OUTPUT else printable[: MAX_OUTPUT - 3] + "..."
