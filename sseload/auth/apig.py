"""APIG ``SDK-HMAC-SHA256`` request signing and verification, pure functions.

The same algorithm signs AK/SK requests (IAM credentials) and AppKey/AppSecret requests (app
authentication). It matches Huawei's APIG SDK signer byte for byte; see docs/gateway.md
for the rules and test vectors. No I/O and no clock unless ``when`` is omitted, so the
reference target verifies with the very code the harness signs with.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "ALGORITHM",
    "DATE_FORMAT",
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "SignatureError",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "payload_sha256",
    "sign",
    "verify",
]

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
CONTENT_SHA256_HEADER = "x-sdk-content-sha256"
DEFAULT_MAX_SKEW_S = 15 * 60


class SignatureError(Exception):
    """A request failed verification; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, message: str, access: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason  # missing, malformed, unknown_key, bad_signature, date_skew
        self.access = access


def _encode(segment: str) -> str:
    # Keep only A-Z a-z 0-9 - _ . ~ ; quote() always keeps the first four groups.
    return quote(segment, safe="~")


def canonical_uri(path: str) -> str:
    uri = "/".join(_encode(part) for part in unquote(path or "/").split("/"))
    return uri if uri.endswith("/") else uri + "/"


def _query_pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def canonical_query(query: str) -> str:
    """``b=2&a=x y/z&a=1&empty=`` -> ``a=1&a=x%20y%2Fz&b=2&empty=``."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(_query_pairs(query)))


def payload_sha256(body: bytes) -> str:
    """Hex SHA-256 of a body; compute once per distinct body and pass it to :func:`sign`."""
    return hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256


def _host_of(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default_port:
        host = f"{host}:{parts.port}"
    return host, parts.path, parts.query


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    payload_hash: str,
) -> str:
    """``headers`` must be keyed by lower-case name."""
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    if CONTENT_SHA256_HEADER in headers:
        payload_hash = headers[CONTENT_SHA256_HEADER].strip()
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        )
    )


def _signature(secret: str, date: str, request: str) -> str:
    digest = hashlib.sha256(request.encode("utf-8")).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{date}\n{digest}"
    return hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    key: str,
    secret: str,
    when: datetime | None = None,
    *,
    payload_hash: str | None = None,
    security_token: str | None = None,
) -> dict[str, str]:
    """Return the headers to send: ``headers`` plus X-Sdk-Date, Host and Authorization.

    Every header given is signed. ``payload_hash`` skips re-hashing a body that is sent
    many times; ``security_token`` adds the signed X-Security-Token of temporary
    credentials. An X-Sdk-Date already in ``headers`` is kept (and ``when`` ignored).
    """
    out = dict(headers)
    lower = {name.lower(): value for name, value in out.items()}
    if "x-sdk-date" not in lower:
        moment = when or datetime.now(UTC)
        out["X-Sdk-Date"] = lower["x-sdk-date"] = moment.strftime(DATE_FORMAT)
    host, path, query = _host_of(url)
    if "host" not in lower:
        out["Host"] = lower["host"] = host
    if security_token is not None and "x-security-token" not in lower:
        out["X-Security-Token"] = lower["x-security-token"] = security_token
    signed = sorted(lower)
    request = canonical_request(
        method, path, query, lower, signed, payload_hash or payload_sha256(body)
    )
    signature = _signature(secret, lower["x-sdk-date"], request)
    out["Authorization"] = (
        f"{ALGORITHM} Access={key}, SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return out


def parse_authorization(value: str) -> tuple[str, list[str], str]:
    """Split an Authorization header into (access, signed header names, signature)."""
    if not value.startswith(ALGORITHM + " "):
        raise SignatureError("malformed", f"Authorization does not start with {ALGORITHM}")
    fields = {}
    for part in value[len(ALGORITHM) + 1 :].split(","):
        name, sep, val = part.strip().partition("=")
        if sep:
            fields[name] = val
    try:
        return fields["Access"], fields["SignedHeaders"].split(";"), fields["Signature"]
    except KeyError as missing:
        raise SignatureError("malformed", f"Authorization lacks {missing.args[0]}") from None


def verify(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup: Callable[[str], str | None],
    now: datetime | None = None,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
    *,
    payload_hash: str | None = None,
) -> str:
    """Check a signed request; return its access key or raise :class:`SignatureError`.

    ``lookup`` maps an access key to its secret (None when unknown). The Host header, when
    present, is what was signed; the URL supplies path and query.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    auth = lower.get("authorization")
    if not auth:
        raise SignatureError("missing", "no Authorization header")
    access, signed, signature = parse_authorization(auth)
    secret = lookup(access)
    if secret is None:
        raise SignatureError("unknown_key", f"unknown access key {access!r}", access)
    date = lower.get("x-sdk-date")
    if not date or "x-sdk-date" not in signed:
        raise SignatureError("malformed", "X-Sdk-Date is missing or not signed", access)
    try:
        sent = datetime.strptime(date, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("malformed", f"X-Sdk-Date {date!r} is not {DATE_FORMAT}", access) from None
    skew = abs(((now or datetime.now(UTC)) - sent).total_seconds())
    if skew > max_skew_s:
        raise SignatureError("date_skew", f"X-Sdk-Date is {skew:.0f} s off the gateway clock", access)
    missing = [name for name in signed if name not in lower]
    if missing:
        raise SignatureError("malformed", f"signed header(s) not sent: {', '.join(missing)}", access)
    _, path, query = _host_of(url)
    request = canonical_request(
        method, path, query, lower, signed, payload_hash or payload_sha256(body)
    )
    if not hmac.compare_digest(_signature(secret, date, request), signature):
        raise SignatureError("bad_signature", "signature does not match", access)
    return access
