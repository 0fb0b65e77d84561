"""The emulated gateway's authentication: IAM tokens, AK/SK and app signatures, app codes, lockouts.

It answers as APIG does (docs/gateway.md): a wrong credential gets the error the gateway sends for
it, an AK that failed ``lockout_failures`` times in a row is locked for ``lockout_s``, and IAM's
token endpoint issues project-scoped tokens that expire. Signatures are checked with the very
code the harness signs with (sseload.auth.apig).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from sseload.auth.apig import ALGORITHM, SignatureError, parse_authorization, verify
from sseload.protocol.gateway import new_request_id
from sseload.target.config import TargetConfig


class GatewayAuth:
    """The gateway's memory of credentials: issued tokens, failures and lockouts per access key."""

    def __init__(self, cfg: TargetConfig) -> None:
        self.cfg = cfg
        self.issued_tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.failures: dict[str, int] = {}
        self.locked_until: dict[str, float] = {}

    def authenticate(self, method: str, url: str, headers: dict[str, str], body: bytes) -> str | None:
        """Return None when allowed, else the ERRORS key to answer with (and a detail)."""
        cfg = self.cfg
        if not cfg.auth_required:
            return None
        now = time.monotonic()
        token = headers.get("x-auth-token")
        if token is not None:
            if token in cfg.tokens:
                return None
            expiry = self.issued_tokens.get(token)
            if expiry is None:
                return "token_invalid"
            return None if expiry > now else "token_expired"
        authorization = headers.get("authorization", "")
        if authorization.startswith(ALGORITHM):
            try:
                access = parse_authorization(authorization)[0]
            except SignatureError:
                return "aksk_invalid" if cfg.aksk else "app_invalid"
            kind = "app_invalid" if access in cfg.app_keys or not cfg.aksk else "aksk_invalid"
            if self.locked_until.get(access, 0.0) > now:
                return "auth_locked"
            try:
                verify(
                    method, url, headers, body,
                    lambda ak: cfg.aksk.get(ak) or cfg.app_keys.get(ak),
                    max_skew_s=cfg.max_skew_s,
                )
            except SignatureError:
                failures = self.failures.get(access, 0) + 1
                self.failures[access] = failures
                if failures >= cfg.lockout_failures:
                    self.locked_until[access] = now + cfg.lockout_s
                    self.failures[access] = 0
                return kind
            self.failures.pop(access, None)
            return None
        code = headers.get("x-apig-appcode")
        if code is not None:
            return None if code in cfg.app_codes else "app_invalid"
        return "token_invalid"

    def issue_token(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Emulate IAM ``POST /v3/auth/tokens`` (password identity, project scope)."""
        try:
            auth = json.loads(body)["auth"]
            user = auth["identity"]["password"]["user"]
            name, password = user["name"], user["password"]
            project = auth["scope"]["project"]["name"]
        except (ValueError, KeyError, TypeError):
            return 400, {}, json.dumps({"error": {"code": 400, "message": "The request body is malformed."}}).encode()
        if self.cfg.iam_users.get(name) != password:
            return 401, {}, json.dumps(
                {"error": {"code": 401, "message": "The username or password is wrong."}}).encode()
        token = "MII" + new_request_id() + new_request_id()
        self.issued_tokens[token] = time.monotonic() + self.cfg.token_ttl_s
        issued = datetime.now(UTC)
        expires = issued + timedelta(seconds=self.cfg.token_ttl_s)
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        doc = {
            "token": {
                "expires_at": expires.strftime(fmt),
                "issued_at": issued.strftime(fmt),
                "methods": ["password"],
                "project": {"name": project},
                "user": {"name": name},
            }
        }
        return 201, {"X-Subject-Token": token}, json.dumps(doc).encode()
