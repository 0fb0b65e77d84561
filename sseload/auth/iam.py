"""IAM tokens: the request to ask for one and the answer's parsing are pure; the fetch is injected.

``POST {iam}/v3/auth/tokens`` with a password identity scoped to a project answers 201 with the
token in ``X-Subject-Token`` and ``token.expires_at`` in the body. A token lives 24 h; the
cache refreshes it ahead of expiry so no stream waits on IAM in the middle of a run.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

REFRESH_MARGIN_S = 600.0


class TokenError(RuntimeError):
    pass


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: datetime


def token_request_body(user: str, password: str, domain: str, project: str) -> bytes:
    return json.dumps({
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "password": password, "domain": {"name": domain}}},
            },
            "scope": {"project": {"name": project}},
        }
    }).encode()


def parse_token_response(status: int, headers: dict[str, str], body: bytes) -> Token:
    if status != 201:
        raise TokenError(f"IAM answered {status} instead of 201; check the IAM user, password, domain and project")
    lower = {k.lower(): v for k, v in headers.items()}
    token = lower.get("x-subject-token")
    if not token:
        raise TokenError("IAM answered 201 without an X-Subject-Token header")
    try:
        expires = json.loads(body)["token"]["expires_at"]
        expires_at = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        raise TokenError("IAM's answer has no readable token.expires_at") from None
    return Token(token, expires_at)


Fetch = Callable[[str, bytes, dict[str, str]], tuple[int, dict[str, str], bytes]]


class TokenCache:
    """One token per process, fetched on first use and again ``REFRESH_MARGIN_S`` before expiry."""

    def __init__(self, url: str, body: bytes, fetch: Fetch,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.url = url
        self._body = body
        self._fetch = fetch
        self._clock = clock
        self._token: Token | None = None
        self.fetches = 0
        self.last_fetch_s = 0.0
        self._lock = threading.Lock()  # cooperative under gevent's monkey patching

    def _fresh(self) -> Token | None:
        token = self._token
        if token is not None and (token.expires_at - self._clock()).total_seconds() > REFRESH_MARGIN_S:
            return token
        return None

    def get(self) -> tuple[str, float]:
        """Return (token, seconds spent fetching now: 0 when cached)."""
        token = self._fresh()
        if token is not None:
            return token.value, 0.0
        with self._lock:  # one fetch at a time; the others wait for it, then use its token
            token = self._fresh()
            if token is not None:
                return token.value, 0.0
            return self._fetch_now()

    def _fetch_now(self) -> tuple[str, float]:
        started = time.perf_counter()
        status, headers, body = self._fetch(self.url, self._body, {"Content-Type": "application/json"})
        self._token = parse_token_response(status, headers, body)
        self.fetches += 1
        self.last_fetch_s = time.perf_counter() - started
        return self._token.value, self.last_fetch_s


def urllib_fetch(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """The real fetch (cooperative under gevent's monkey patching)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()
    except (urllib.error.URLError, OSError) as err:
        raise TokenError(f"cannot reach IAM at {url}: {getattr(err, 'reason', err)}") from None
