"""Machine logs as Fly's logs API serves them (`GET /api/v1/apps/{app}/logs`): a page and its `next_token`, and
the poll that follows an app as flyctl's does (ask from the last token; an empty page waits `poll` seconds).

Against Fly these requests go to the platform API (`FLY_API_BASE_URL`, else `https://api.fly.io`), not to the
Machines API; against aerodrome both are the base URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import Field

from aerodrome.client.calls import Call
from aerodrome.client.machine_config import Model


class LogEvent(Model):
    provider: str = ""


class LogMeta(Model):
    instance: str = ""
    region: str = ""
    event: LogEvent = Field(default_factory=LogEvent)


class LogEntry(Model):
    id: str = ""
    timestamp: str = ""
    message: str = ""
    level: str = ""
    instance: str = ""
    region: str = ""
    meta: LogMeta = Field(default_factory=LogMeta)

    def line(self) -> str:
        """The entry as flyctl prints it: `<timestamp> app[<machine>] <region> [info] <message>`."""
        provider = self.meta.event.provider or "app"
        return f"{self.timestamp} {provider}[{self.instance}] {self.region} [{self.level}] {self.message}"


class LogPage(Model):
    entries: list[LogEntry] = Field(default_factory=list)
    next_token: str = ""


def _page(body: Any) -> LogPage:
    body = body or {}
    entries = [LogEntry.model_validate({"id": d.get("id", ""), **(d.get("attributes") or {})}) for d in body["data"]]
    return LogPage(entries=entries, next_token=str((body.get("meta") or {}).get("next_token") or ""))


def app_logs(app: str, *, next_token: str = "", instance: str = "", region: str = "") -> Call[LogPage]:
    """A page of the app's lines after `next_token` (its newest lines without one), as flyctl polls them."""
    params = {
        "next_token": next_token,
        **({"instance": instance} if instance else {}),
        **({"region": region} if region else {}),
    }
    return Call("GET", f"/api/v1/apps/{quote(app, safe='')}/logs", _page, params=params, platform=True)


class LogFollow:
    """Where a follow is: the token to ask from next, and how long to wait after an empty page."""

    def __init__(self, app: str, *, instance: str = "", region: str = "", next_token: str = "", poll: float = 1.0):
        self.app, self.instance, self.region = app, instance, region
        self.next_token, self.poll = next_token, poll

    def call(self) -> Call[LogPage]:
        return app_logs(self.app, next_token=self.next_token, instance=self.instance, region=self.region)

    def advance(self, page: LogPage) -> list[LogEntry]:
        """The page's entries; the token moves on (an empty page keeps the one it had, as flyctl does)."""
        if page.next_token:
            self.next_token = page.next_token
        return page.entries
