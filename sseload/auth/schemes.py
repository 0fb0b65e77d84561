"""Authentication methods as header producers, built once from a scenario's [auth] table.

Secrets are read from environment variables the scenario names; they live only in these
objects and in the headers sent, never in records, logs or reports.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from sseload.auth.apig import UNSIGNED_PAYLOAD, sign
from sseload.auth.iam import TokenCache, token_request_body, urllib_fetch
from sseload.scenario.model import Auth, ScenarioError, from_env


class Authenticator:
    """No authentication; the base of the others."""

    method = "none"

    def headers(self, method: str, url: str, headers: dict[str, str], body: bytes,
                payload_hash: str | None) -> tuple[dict[str, str], float]:
        """Return (headers to send, seconds spent fetching credentials: never stream latency)."""
        return headers, 0.0

    def secrets(self) -> list[str]:
        return []


class StaticToken(Authenticator):
    method = "token"

    def __init__(self, token: str) -> None:
        self._token = token

    def headers(self, method, url, headers, body, payload_hash):
        return {**headers, "X-Auth-Token": self._token}, 0.0

    def secrets(self):
        return [self._token]


class IamToken(Authenticator):
    method = "iam"

    def __init__(self, cache: TokenCache, password: str) -> None:
        self.cache = cache
        self._password = password

    def headers(self, method, url, headers, body, payload_hash):
        token, fetch_s = self.cache.get()
        return {**headers, "X-Auth-Token": token}, fetch_s

    def secrets(self):
        token = self.cache._token
        return [self._password] + ([token.value] if token else [])


class AppCode(Authenticator):
    method = "app_code"

    def __init__(self, code: str) -> None:
        self._code = code

    def headers(self, method, url, headers, body, payload_hash):
        return {**headers, "X-Apig-AppCode": self._code}, 0.0

    def secrets(self):
        return [self._code]


class Signed(Authenticator):
    """SDK-HMAC-SHA256: AK/SK (with optional security token) or AppKey/AppSecret."""

    def __init__(self, method: str, key: str, secret: str, security_token: str | None = None,
                 unsigned_payload: bool = False) -> None:
        self.method = method
        self._key = key
        self._secret = secret
        self._security_token = security_token
        self._unsigned = unsigned_payload

    def headers(self, method, url, headers, body, payload_hash):
        if self._unsigned:
            headers = {**headers, "X-Sdk-Content-Sha256": UNSIGNED_PAYLOAD}
        signed = sign(method, url, headers, body, self._key, self._secret,
                      payload_hash=payload_hash, security_token=self._security_token)
        return signed, 0.0

    def secrets(self):
        return [s for s in (self._secret, self._security_token) if s]


def _env(environ: Mapping[str, str], var: str, what: str, header: bool = True) -> str:
    """A secret from ``var``: its one trailing line end removed (said once, by name: scenario.from_env);
    ``header``: it is sent in a header, so it must be Latin-1. No message shows the value."""
    value = environ.get(var, "") if var else ""
    if value:
        try:
            value = from_env(var, value)
        except ScenarioError as err:
            raise ScenarioError(f"[auth] the {what}: {err}") from None
    if not value:
        raise ScenarioError(
            f"[auth] needs the {what} in the environment variable {var or '(none named)'}, "
            f"which is not set; export it (e.g. `export {var or 'NAME'}=...`) or name another variable in the scenario"
        )
    if header:
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ScenarioError(f"[auth] the {what} in ${var} has a character HTTP/1.1 cannot send in a header "
                                "(header bytes are Latin-1); check the variable (its value is not shown: it is a "
                                "secret)") from None
    return value


def secret_vars(auth: Auth) -> list[str]:
    """The environment variables ``auth``'s method reads its secrets from (`sseload run` removes a
    trailing line end from them once, for all its processes)."""
    names = {"token": [auth.token_env], "app_code": [auth.app_code_env],
             "aksk": [auth.ak_env, auth.sk_env, auth.security_token_env],
             "app_key": [auth.app_key_env, auth.app_secret_env],
             "iam": [auth.iam_user_env, auth.iam_password_env, auth.iam_domain_env]}.get(auth.method, [])
    return [name for name in names if name]


def from_scenario(auth: Auth, target_url: str, environ: Mapping[str, str] = os.environ,
                  fetch=urllib_fetch) -> Authenticator:
    """Build the authenticator; a missing secret is a ScenarioError naming the variable."""
    if auth.method == "none":
        return Authenticator()
    if auth.method == "token":
        return StaticToken(_env(environ, auth.token_env, "IAM token"))
    if auth.method == "app_code":
        return AppCode(_env(environ, auth.app_code_env, "AppCode"))
    if auth.method == "aksk":
        security = _env(environ, auth.security_token_env, "security token") if auth.security_token_env else None
        return Signed("aksk", _env(environ, auth.ak_env, "access key (AK)"),
                      _env(environ, auth.sk_env, "secret key (SK)", header=False), security, auth.unsigned_payload)
    if auth.method == "app_key":
        return Signed("app_key", _env(environ, auth.app_key_env, "AppKey"),
                      _env(environ, auth.app_secret_env, "AppSecret", header=False), None, auth.unsigned_payload)
    if auth.method == "iam":
        parts = urlsplit(target_url)
        url = auth.iam_url or f"{parts.scheme}://{parts.netloc}/v3/auth/tokens"
        password = _env(environ, auth.iam_password_env, "IAM password", header=False)  # (sent in JSON)
        body = token_request_body(
            _env(environ, auth.iam_user_env, "IAM user name", header=False), password,
            _env(environ, auth.iam_domain_env, "IAM account (domain)", header=False),
            auth.project,
        )
        return IamToken(TokenCache(url, body, fetch), password)
    raise ScenarioError(f"[auth] method {auth.method!r} is not supported")
