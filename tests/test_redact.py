"""sseload.record.redact: what is secret is never written, and a server's text cannot steer a terminal or a page."""

from __future__ import annotations

import base64
import json

import pytest

from sseload.record.redact import (
    REDACTED,
    Secrets,
    is_secret_name,
    markdown,
    scenario_to_write,
    split_userinfo,
    visible,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["Authorization", "proxy-authorization", "Cookie", "X-Auth-Token", "X-Security-Token",
                                  "X-Apig-AppCode", "api-key", "X-API-Key", "api_key", "access_token", "client_secret",
                                  "password", "X-Amz-Signature", "sig", "X-Session-Id"])
def test_credential_names_are_secret(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["Content-Type", "Accept", "X-Sdk-Date", "Host", "model", "stream", "X-Request-Id"])
def test_ordinary_names_are_not(name):
    assert not is_secret_name(name)


def test_a_name_the_user_declares_is_secret():
    assert not is_secret_name("X-Tenant")
    assert is_secret_name("x_tenant", ["X-Tenant"])


def test_known_values_are_masked_in_every_form_they_come_back_in():
    s = Secrets()
    s.add("Bearer sk-live-0123456789 abc/+=")
    text = ("echo: Authorization: Bearer sk-live-0123456789 abc/+= | url sk-live-0123456789%20abc%2F%2B%3D "
            '| json "sk-live-0123456789 abc/+=" | form sk-live-0123456789+abc%2F%2B%3D')
    out = s.scrub(text)
    assert "sk-live" not in out
    assert out.count(REDACTED) == 4


def test_basic_credentials_are_masked_decoded_too():
    s = Secrets()
    token = base64.b64encode(b"alice:pa55word!").decode()
    s.add(f"Basic {token}")
    out = s.scrub(f"got {token}; user alice:pa55word!; password pa55word!")
    assert "pa55word" not in out and token not in out


def test_short_values_are_masked_by_name_only():
    s = Secrets()
    s.add("abc")
    assert s.scrub("abc of 123") == "abc of 123"
    assert s.headers({"X-Api-Key": "abc"}) == {"X-Api-Key": REDACTED}


def test_urls_lose_userinfo_and_secret_query_values():
    s = Secrets()
    out = s.url("https://bob:hunter22@api.example.com/v1/stream?api_key=K3Y-VALUE&model=m1&token=T0KEN")
    assert "bob" not in out and "hunter22" not in out and "K3Y-VALUE" not in out and "T0KEN" not in out
    assert "api.example.com/v1/stream" in out and "model=m1" in out


def test_userinfo_becomes_basic_auth_and_leaves_the_url():
    url, basic = split_userinfo("https://us%40er:p%3Ass@host.example:8443/p?q=1")
    assert url == "https://host.example:8443/p?q=1"
    assert base64.b64decode(basic.split()[1]) == b"us@er:p:ss"
    assert split_userinfo("https://host/p") == ("https://host/p", None)


def test_a_scenario_is_written_without_credentials_or_body():
    from sseload.record.redact import KNOWN
    KNOWN.add("s3cr3t-header-value")
    written = scenario_to_write({
        "request": {"url": "https://u:pw12345@h/p?api_key=abcdef123", "method": "POST",
                    "headers": {"Authorization": "Bearer xyz123456", "X-Tenant": "t-1",
                                "X-Other": "s3cr3t-header-value", "Content-Type": "application/json"},
                    "secret_headers": ["X-Tenant"]},
        "auth": {"iam_url": "https://iam/v3?token=qwerty987"},
        "body": {"text": "prompt with sk-in-body", "json": None, "write": False},
    })
    text = json.dumps(written)
    for secret in ("pw12345", "abcdef123", "xyz123456", "t-1", "s3cr3t-header-value", "qwerty987", "sk-in-body"):
        assert secret not in text
    assert written["request"]["headers"]["Content-Type"] == "application/json"


def test_a_body_is_written_when_asked():
    written = scenario_to_write({"request": {}, "body": {"text": "hello there", "write": True}})
    assert written["body"]["text"] == "hello there"


@pytest.mark.parametrize("hostile", ["\x1b]0;pwned\x07", "\x1b[2J\x1b[H", "line\rall thresholds PASS", "\x9b31m",
                                     "\u202eevil", "nul\x00byte", "bell\x07", "del\x7f"])
def test_control_and_escape_sequences_become_visible(hostile):
    out = visible(hostile)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or 0x202a <= ord(c) <= 0x202e for c in out)
    assert "\\x" in out or "\\u" in out


def test_long_text_is_cut_with_its_length_said():
    out = visible("x" * 5000, 100)
    assert out.startswith("x" * 100) and "5000 characters" in out and len(out) < 200


@pytest.mark.parametrize("hostile", ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<!-- hide",
                                     "[click](https://evil)", "a | b", "**bold** `code`", "![i](x)"])
def test_markdown_renders_a_servers_text_as_text(hostile):
    out = markdown(hostile)
    assert "<" not in out and "](" not in out and "| " not in out.replace("\\|", "") and "**" not in out
    assert "`" not in out.replace("\\`", "")


def test_a_secret_cut_off_at_the_end_of_an_echo_is_masked():
    s = Secrets()
    s.add("sk-0123456789abcdef")
    assert s.scrub_cut("Authorization: Bearer sk-01234") == "Authorization: Bearer " + REDACTED
    assert s.scrub_cut("ends with sk-") == "ends with sk-"  # too little of it to tell
    assert s.scrub_cut("nothing here") == "nothing here"
