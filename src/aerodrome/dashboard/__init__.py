"""The web dashboard served at `/dashboard/` on the API's listener: server-rendered pages, htmx, live tables."""

from __future__ import annotations

from aerodrome.dashboard.commands import MachineForm
from aerodrome.dashboard.samples import Samples
from aerodrome.dashboard.sessions import Session, SessionCodec
from aerodrome.dashboard.site import Dashboard

__all__ = ["Dashboard", "MachineForm", "Samples", "Session", "SessionCodec"]
