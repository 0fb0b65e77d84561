"""The IAM token cache: fetched once, reused, refreshed ahead of expiry, errors named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sseload.auth.iam import (
    REFRESH_MARGIN_S,
    TokenCache,
    TokenError,
    parse_token_response,
    token_request_body,
)

pytestmark = pytest.mark.unit


class FakeIam:
    def __init__(self, lifetime: timedelta) -> None:
        self.lifetime = lifetime
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.calls = 0

    def fetch(self, url, body, headers):
        self.calls += 1
        expires = (self.now + self.lifetime).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return 201, {"X-Subject-Token": f"tok{self.calls}"}, json.dumps({"token": {"expires_at": expires}}).encode()


def test_token_is_fetched_once_then_reused_then_refreshed_before_expiry():
    iam = FakeIam(timedelta(hours=24))
    cache = TokenCache("http://iam/v3/auth/tokens", b"{}", iam.fetch, clock=lambda: iam.now)
    token, spent = cache.get()
    assert token == "tok1" and spent >= 0 and iam.calls == 1
    iam.now += timedelta(hours=23)
    assert cache.get() == ("tok1", 0.0)  # still more than the margin left
    iam.now += timedelta(hours=1) - timedelta(seconds=REFRESH_MARGIN_S - 1)
    assert cache.get()[0] == "tok2" and iam.calls == 2


def test_request_body_is_password_identity_scoped_to_a_project():
    doc = json.loads(token_request_body("alice", "pw", "acct", "cn-southwest-2"))
    assert doc["auth"]["identity"]["methods"] == ["password"]
    user = doc["auth"]["identity"]["password"]["user"]
    assert user == {"name": "alice", "password": "pw", "domain": {"name": "acct"}}
    assert doc["auth"]["scope"] == {"project": {"name": "cn-southwest-2"}}


@pytest.mark.parametrize("status,headers,body,message", [
    (401, {}, b"{}", "IAM answered 401"),
    (201, {}, b"{}", "without an X-Subject-Token"),
    (201, {"X-Subject-Token": "t"}, b"{}", "no readable token.expires_at"),
])
def test_bad_iam_answers_are_named(status, headers, body, message):
    with pytest.raises(TokenError, match=message):
        parse_token_response(status, headers, body)
