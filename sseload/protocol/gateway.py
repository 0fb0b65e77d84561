"""Facts about the API gateway in front of a real-time service, in one place.

The reference target uses them to answer like the gateway; the harness uses them to
classify what it got back (sseload.protocol.classify). See docs/gateway.md.
"""

from __future__ import annotations

import json
import secrets

DEFAULT_LIMIT_S = 40.0
DEFAULT_MAX_BODY_BYTES = 12 * 1024 * 1024  # "12 MB": not defined as 10^6 or 2^20; configurable
SSE_CONTENT_TYPE = "text/event-stream;charset=UTF-8"

# error_code -> meaning, as the harness sorts them into outcomes
AUTH_CODES = frozenset({"APIG.0301", "APIG.0302", "APIG.0303", "APIG.0305", "APIG.0307"})
THROTTLE_CODES = frozenset({"APIG.0308"})
CUTOFF_CODES = frozenset({"APIG.0201", "APIG.0203", "ModelArts.4503"})

#: (status, error_code, error_msg) the gateway answers with, by case.
ERRORS: dict[str, tuple[int, str, str]] = {
    "too_large": (413, "APIG.0201", "Request entity too large."),
    "backend_timeout": (504, "APIG.0201", "Backend timeout."),
    "backend_unavailable": (502, "APIG.0202", "Backend unavailable."),
    "token_invalid": (401, "APIG.0301", "Incorrect IAM authentication information: token is missing or invalid."),
    "aksk_invalid": (401, "APIG.0301", "Incorrect IAM authentication information: verify aksk signature fail."),
    "app_invalid": (401, "APIG.0303", "Incorrect app authentication information: app not found or signature invalid."),
    "auth_locked": (401, "APIG.0305",
                    "Incorrect authentication information: access key locked after repeated failures."),
    "token_expired": (401, "APIG.0307", "The token must be updated."),
    "throttled": (429, "APIG.0308", "The throttling threshold has been reached: policy user over ratelimit."),
    "not_found": (404, "APIG.0101", "The API does not exist or has not been published in the environment."),
    "internal": (500, "APIG.0103", "The backend service returned an internal error."),
    "unavailable": (503, "APIG.0202", "Backend service unavailable."),
}

REASONS = {
    200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 413: "Payload Too Large", 414: "URI Too Long", 429: "Too Many Requests",
    494: "Request Header Too Large", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


def new_request_id() -> str:
    return secrets.token_hex(16)


def error_body(code: str, message: str, request_id: str) -> bytes:
    return json.dumps({"error_code": code, "error_msg": message, "request_id": request_id}).encode()


def error_code_of(body: bytes) -> str | None:
    """The APIG/ModelArts ``error_code`` of an error body, or None if it has none."""
    try:
        value = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return None
    if isinstance(value, dict):
        code = value.get("error_code")
        return str(code) if code is not None else None
    return None
