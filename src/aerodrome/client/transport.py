"""Sending a `Call` with httpx, sync or async: the only code the two clients do not share, and it is small."""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar

import httpx

from aerodrome.client.calls import Call, RetryPolicy, decode, transport_error
from aerodrome.client.settings import ClientSettings

T = TypeVar("T")


def _request_args(settings: ClientSettings, call: Call[Any]) -> dict[str, Any]:
    url = settings.graphql if call.graphql else settings.platform + call.path if call.platform else call.path
    args: dict[str, Any] = {"params": call.query(), "headers": call.headers()}
    if call.body is not None:
        args["json"] = call.body
    if call.timeout is not None:
        args["timeout"] = httpx.Timeout(call.timeout, connect=min(call.timeout, 10.0))
    return {"method": call.method, "url": url, **args}


def _http_args(settings: ClientSettings) -> dict[str, Any]:
    return {"base_url": settings.base_url, "headers": settings.headers(), "timeout": settings.timeout}


class SyncTransport:
    def __init__(self, settings: ClientSettings, retry: RetryPolicy, http: httpx.Client | None = None) -> None:
        self.settings, self.retry = settings, retry
        self.http = http or httpx.Client(**_http_args(settings))

    def send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self.http.request(**_request_args(self.settings, call))
            except httpx.TransportError as exc:
                delay = self.retry.after_failure(call, exc, attempt)
                if delay is None:
                    raise transport_error(call, self.settings.base_url, exc) from exc
            else:
                delay = self.retry.after_response(call, response, attempt)
                if delay is None:
                    return decode(call, response)
            attempt += 1
            time.sleep(delay)

    def close(self) -> None:
        self.http.close()


class AsyncTransport:
    def __init__(self, settings: ClientSettings, retry: RetryPolicy, http: httpx.AsyncClient | None = None) -> None:
        self.settings, self.retry = settings, retry
        self.http = http or httpx.AsyncClient(**_http_args(settings))

    async def send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self.http.request(**_request_args(self.settings, call))
            except httpx.TransportError as exc:
                delay = self.retry.after_failure(call, exc, attempt)
                if delay is None:
                    raise transport_error(call, self.settings.base_url, exc) from exc
            else:
                delay = self.retry.after_response(call, response, attempt)
                if delay is None:
                    return decode(call, response)
            attempt += 1
            await asyncio.sleep(delay)

    async def close(self) -> None:
        await self.http.aclose()
