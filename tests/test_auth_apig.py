"""SDK-HMAC-SHA256 signing: the SPEC.md vectors, and verify(sign(...)) as a property."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseload.auth.apig import (
    SignatureError,
    canonical_query,
    canonical_request,
    canonical_uri,
    sign,
    verify,
)

V1_URL = (
    "https://0f1e2d3c4b5a.apig.cn-southwest-2.huaweicloudapis.com"
    "/v1/infers/468d146d-278a-4ca2-8830-0b6fb37d3b72/v1/chat/completions"
)
V1_BODY = b'{"model":"qwen","messages":[{"role":"user","content":"hi"}],"stream":true}'


pytestmark = pytest.mark.unit


def test_spec_vector_1_chat_completions():
    headers = sign(
        "POST",
        V1_URL,
        {"Content-Type": "application/json", "X-Sdk-Date": "20250101T000000Z"},
        V1_BODY,
        "HPUAEXAMPLEAK0000001",
        "ExampleSecretKey0123456789abcdefghijklmn",
    )
    assert headers["Authorization"] == (
        "SDK-HMAC-SHA256 Access=HPUAEXAMPLEAK0000001, "
        "SignedHeaders=content-type;host;x-sdk-date, "
        "Signature=4df1916da7c1ef87a1c4974be40059ade91f8accb5fac4f9f83915f0022fe7c8"
    )
    assert headers["Host"] == "0f1e2d3c4b5a.apig.cn-southwest-2.huaweicloudapis.com"


def test_spec_vector_1_payload_hash_is_the_last_canonical_line():
    # SPEC.md labels 9a7d... "canonical request hash"; it is the body's SHA-256, which is the
    # canonical request's last line. The signature above is what proves the whole request.
    lower = {
        "content-type": "application/json",
        "x-sdk-date": "20250101T000000Z",
        "host": "0f1e2d3c4b5a.apig.cn-southwest-2.huaweicloudapis.com",
    }
    body_hash = hashlib.sha256(V1_BODY).hexdigest()
    assert body_hash == "9a7df34705609ed3538c1f23c82dfb05556832b44a1496712c36b23431db03f4"
    request = canonical_request(
        "POST",
        "/v1/infers/468d146d-278a-4ca2-8830-0b6fb37d3b72/v1/chat/completions",
        "",
        lower,
        sorted(lower),
        body_hash,
    )
    assert request.splitlines() == [
        "POST",
        "/v1/infers/468d146d-278a-4ca2-8830-0b6fb37d3b72/v1/chat/completions/",
        "",
        "content-type:application/json",
        "host:0f1e2d3c4b5a.apig.cn-southwest-2.huaweicloudapis.com",
        "x-sdk-date:20250101T000000Z",
        "",
        "content-type;host;x-sdk-date",
        body_hash,
    ]


def test_spec_vector_2_query_and_when():
    headers = sign(
        "POST",
        "https://service.endpoint.myhuaweicloud.com/resources?size=1",
        {},
        b'{"name":"test","id":1}',
        "AccessKey",
        "SecretKey",
        when=datetime(2020, 6, 8, 2, 39, 0, tzinfo=UTC),
    )
    assert headers["X-Sdk-Date"] == "20200608T023900Z"
    assert headers["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, "
        "Signature=436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f"
    )


def test_spec_vector_3_query_canonicalisation():
    assert canonical_query("b=2&a=x y/z&a=1&empty=") == "a=1&a=x%20y%2Fz&b=2&empty="


@pytest.mark.parametrize(
    "path,expected",
    [
        ("/a/b", "/a/b/"),
        ("/a/b/", "/a/b/"),
        ("", "/"),
        ("/", "/"),
        ("/a%20b/c d", "/a%20b/c%20d/"),
        ("/x%2Fy", "/x/y/"),  # decoded first: an encoded slash becomes a separator
        ("/~user/a-b_c.d", "/~user/a-b_c.d/"),
        ("/é", "/%C3%A9/"),
        ("/a+b=c", "/a%2Bb%3Dc/"),
    ],
)
def test_canonical_uri(path, expected):
    assert canonical_uri(path) == expected


def test_non_default_port_is_part_of_host_and_default_is_not():
    assert sign("GET", "http://127.0.0.1:8080/x", {}, b"", "k", "s")["Host"] == "127.0.0.1:8080"
    assert sign("GET", "https://h.example:443/x", {}, b"", "k", "s")["Host"] == "h.example"


def test_unsigned_payload_replaces_the_body_hash():
    base = {"X-Sdk-Date": "20250101T000000Z", "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"}
    a = sign("POST", "https://h/p", base, b"one body", "k", "s")
    b = sign("POST", "https://h/p", base, b"another body", "k", "s")
    assert a["Authorization"] == b["Authorization"]
    assert "x-sdk-content-sha256" in a["Authorization"]


def test_security_token_is_sent_and_signed():
    headers = sign("POST", "https://h/p", {}, b"", "k", "s", security_token="tok")
    assert headers["X-Security-Token"] == "tok"
    assert "x-security-token" in headers["Authorization"].split("SignedHeaders=")[1]


def test_payload_hash_argument_equals_hashing_the_body():
    when = datetime(2025, 1, 1, tzinfo=UTC)
    body = b"x" * 1000
    plain = sign("POST", "https://h/p", {}, body, "k", "s", when)
    cached = sign("POST", "https://h/p", {}, body, "k", "s", when, payload_hash=hashlib.sha256(body).hexdigest())
    assert plain == cached


# --- verify: the target's side ---

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
KEYS = {"AK1": "secret-one"}


def _signed(method="POST", url="http://127.0.0.1:9000/v1/infers/s/x?b=1&a=2", body=b'{"a":1}'):
    headers = sign(method, url, {"Content-Type": "application/json"}, body, "AK1", "secret-one", NOW)
    return method, url, headers, body


def test_verify_accepts_what_sign_produced():
    method, url, headers, body = _signed()
    assert verify(method, url, headers, body, KEYS.get, NOW) == "AK1"


def test_verify_rejects_unknown_key():
    method, url, headers, body = _signed()
    with pytest.raises(SignatureError) as err:
        verify(method, url, headers, body, {}.get, NOW)
    assert err.value.reason == "unknown_key" and err.value.access == "AK1"


def test_verify_rejects_date_skew_over_15_minutes_but_not_under():
    method, url, headers, body = _signed()
    assert verify(method, url, headers, body, KEYS.get, NOW + timedelta(minutes=14))
    with pytest.raises(SignatureError) as err:
        verify(method, url, headers, body, KEYS.get, NOW + timedelta(minutes=16))
    assert err.value.reason == "date_skew"


def test_verify_rejects_missing_authorization():
    with pytest.raises(SignatureError) as err:
        verify("GET", "http://h/", {}, b"", KEYS.get, NOW)
    assert err.value.reason == "missing"


def _flip(s, i):
    b = bytearray(s.encode() if isinstance(s, str) else s)
    b[i % len(b)] ^= 0x01
    return bytes(b)


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.text(alphabet="abcxyz-_.~ /%é", min_size=1, max_size=20),
    query=st.lists(st.tuples(st.text("abk", min_size=1, max_size=3), st.text("12 z", max_size=3)), max_size=4),
    body=st.binary(max_size=64),
    hval=st.text(alphabet="abcdef0123456789", min_size=1, max_size=10),
    part=st.sampled_from(["method", "path", "query", "header", "body"]),
    pos=st.integers(min_value=0, max_value=1000),
)
def test_any_single_byte_change_breaks_the_signature(method, path, query, body, hval, part, pos):
    from urllib.parse import quote

    path = "/" + quote(path, safe="/~")
    q = "&".join(f"{k}={quote(v)}" for k, v in query)
    url = f"http://127.0.0.1:9000{path}" + (f"?{q}" if q else "")
    headers = sign(method, url, {"X-Model": hval}, body, "AK1", "secret-one", NOW)
    assert verify(method, url, headers, body, KEYS.get, NOW) == "AK1"

    m, u, h, b = method, url, dict(headers), body
    if part == "method":
        m = {"GET": "PUT", "POST": "PATCH", "PUT": "GET", "DELETE": "POST"}[method]
    elif part == "path":
        u = f"http://127.0.0.1:9000{path}z" + (f"?{q}" if q else "")
    elif part == "query":
        u = url + ("&" if q else "?") + "zz=1"
    elif part == "header":
        h["X-Model"] = _flip(hval, pos).decode("latin-1")
    else:
        b = _flip(body, pos) if body else b"x"
    with pytest.raises(SignatureError) as err:
        verify(m, u, h, b, KEYS.get, NOW)
    assert err.value.reason == "bad_signature"
