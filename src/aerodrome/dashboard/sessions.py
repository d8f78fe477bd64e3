"""The dashboard's session: organisation tokens and a CSRF token in one encrypted cookie.

The cookie is Fernet-encrypted with a key kept in the data directory, so the browser holds tokens it cannot
read (HttpOnly, SameSite=Strict, Path=/dashboard) and the server keeps no session table: a restart keeps people
signed in, and a revoked token is refused on its next request because every request authenticates it again.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "aerodrome_dashboard"
MAX_AGE = 12 * 3600  # seconds a sign-in lasts
MAX_ORGS = 8  # tokens one session holds: the cookie stays well under browsers' 4 KiB
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass
class Session:
    """What the cookie carries: tokens by organisation, the organisation shown, the CSRF token, one message."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    tokens: dict[str, str] = field(default_factory=dict)
    org: str = ""
    flash: tuple[str, str] | None = None  # (kind, text) shown once on the next page
    changed: bool = False

    @property
    def token(self) -> str | None:
        return self.tokens.get(self.org)

    def sign_in(self, org_slug: str, token: str) -> None:
        if org_slug not in self.tokens and len(self.tokens) >= MAX_ORGS:
            self.tokens.pop(next(iter(self.tokens)))
        self.tokens[org_slug] = token
        self.org = org_slug
        self.csrf = secrets.token_urlsafe(24)  # a new sign-in never reuses a token seen before it
        self.changed = True

    def sign_out(self) -> None:
        self.tokens.clear()
        self.org = ""
        self.csrf = secrets.token_urlsafe(24)
        self.changed = True

    def say(self, kind: str, text: str) -> None:
        self.flash = (kind, text[:500])
        self.changed = True

    def take_flash(self) -> tuple[str, str] | None:
        flash, self.flash = self.flash, None
        if flash:
            self.changed = True
        return flash


class SessionCodec:
    """Reads and writes the session cookie; a cookie that does not decrypt, or is too old, is a new session."""

    def __init__(self, key: bytes, *, secure: bool = False) -> None:
        self._fernet = Fernet(key)
        self._secure = secure

    def load(self, request: Request) -> Session:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return Session(changed=True)
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(raw.encode(), ttl=MAX_AGE))
            flash = data.get("flash")
            return Session(
                csrf=str(data["csrf"]),
                tokens={str(k): str(v) for k, v in dict(data.get("tokens") or {}).items()},
                org=str(data.get("org") or ""),
                flash=(str(flash[0]), str(flash[1])) if flash else None,
            )
        except (InvalidToken, ValueError, KeyError, TypeError, IndexError):
            return Session(changed=True)

    def save(self, session: Session, response: Response) -> None:
        if not session.changed:
            return
        data = {"csrf": session.csrf, "tokens": session.tokens, "org": session.org, "flash": session.flash}
        response.set_cookie(
            COOKIE,
            self._fernet.encrypt(json.dumps(data).encode()).decode(),
            max_age=MAX_AGE,
            path="/dashboard",
            httponly=True,
            samesite="strict",
            secure=self._secure,
        )


async def csrf_ok(request: Request, session: Session) -> bool:
    """The POST carries the session's CSRF token, in the form or (htmx, scripts) in a header."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent is not None and secrets.compare_digest(sent, session.csrf)
