"""Every LLM streaming API sseload reads, against servers written from each API's public reference.

The servers (tests/llm_servers.py) know what they sent: which event carried output, of which kind, the
usage, the finish, the error. The scan (sseload.protocol.scan, and its compiled twin) must say the same of
every event, with any text in the tokens; a whole run against each server, with no scenario, must give
every stream its TTFT, time to first answer token, tokens, finish reason and the service's id.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseload.protocol.dialects import BUILT_IN, declared, for_url, program, values_at
from sseload.protocol.outcomes import Outcome
from sseload.protocol.response import Response
from sseload.protocol.rules import StreamRules
from sseload.protocol.scan import ANSWER, REASONING, scan
from sseload.protocol.sse import KIND_BITS, PyEventLog
from tests import llm_servers
from tests.conftest import serving, side_by_side, sseload_run
from tests.event_logs import BOTH

MS = 1e6
TRICKY = ['"', "\\", '\\"', '"text":"x"', '"delta":"y"', '"thought":true', '"type":"response.output_text.delta"',
          '"error":{"message":"m"}', '"stop_reason":"x"', '"output_tokens":5', "é", "😀", "\n", "{", "}"]
texts = st.one_of(st.text(max_size=8), st.sampled_from(TRICKY),
                  st.lists(st.sampled_from(TRICKY), max_size=3).map("".join))


class _Capture:
    """A server connection that keeps what a stream sends: the API's events, as sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_chunk(self, data: bytes) -> None:
        self.sent.append(data)

    def wait(self, seconds: float) -> None:
        pass


def events_of(dialect: str, reasoning: int = 2, answer: int = 3, error: str = ""):
    """(the stream's bytes, per event: (kind sent, its data)) as the dialect's server sends them."""
    conn = _Capture()
    s = llm_servers._Stream(dialect, conn, {})
    output_at: dict[int, int] = {}  # the index of each event carrying output: its kind
    s.sent_output = lambda is_answer: output_at.setdefault(len(conn.sent), ANSWER if is_answer else REASONING)
    llm_servers._stream(dialect, s, reasoning, answer, 0, "stop", error)
    datas = [chunk.decode().split("data:", 1)[1].strip() for chunk in conn.sent]
    return b"".join(conn.sent), [(output_at.get(i, 0), data) for i, data in enumerate(datas)]


@pytest.mark.unit
@pytest.mark.parametrize("name", list(BUILT_IN))
@pytest.mark.parametrize("reasoning", [0, 2])
def test_the_scan_finds_the_output_the_server_sent_and_of_its_kind(name, reasoning):
    if name in ("tgi", "triton") and reasoning:
        reasoning = 0  # these APIs stream no reasoning apart: every token is output
    _, events = events_of(name, reasoning)
    prog = program(BUILT_IN[name])
    assert [scan(data, prog).kinds for _, data in events] == [kind for kind, _ in events]


@pytest.mark.unit
@pytest.mark.parametrize("name", ["openai", "responses", "anthropic", "gemini"])
@settings(max_examples=60, deadline=None)
@given(words=st.lists(texts, min_size=1, max_size=4))
def test_any_text_in_the_tokens_leaves_the_scan_as_the_server_meant(name, words):
    prog = program(BUILT_IN[name])
    for word in words:
        for kind, data in events_of(name, 1, 2)[1]:
            if data == "[DONE]":
                continue
            obj = json.loads(data)
            _put_text(obj, word or "x")  # the same event with this text in its token, as json.dumps writes it
            for form in ({}, {"ensure_ascii": False, "separators": (",", ":")}, {"indent": 1}):
                changed = json.dumps(obj, **form)
                assert scan(changed, prog).kinds == kind, changed


def _put_text(obj, word: str) -> None:
    """Put ``word`` in every non-empty text field (a token's text; the full text of a done event)."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in list(items):
        if key in ("content", "reasoning_content", "delta", "text", "thinking") and isinstance(value, str) and value:
            obj[key] = word
        else:
            _put_text(value, word)


@pytest.mark.unit
@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize("name", list(BUILT_IN))
def test_the_event_log_records_each_dialects_kinds_usage_and_hands_back_the_first_finish_and_error(cls, name):
    reasoning = 0 if name in ("tgi", "triton") else 2
    body, events = events_of(name, reasoning, 3)
    log = cls(program=program(BUILT_IN[name]), sentinel=b"[DONE]")
    notable = log.feed(body, 1)
    packed = memoryview(log.llm()).cast("q").tolist()
    assert [v % KIND_BITS for v in packed] == [kind for kind, _ in events]
    assert notable and notable[0].data == events[0][1]  # the first event: the service's id
    if name not in ("triton",):
        # the output tokens the usage reported (Gemini counts its thoughts apart: thoughtsTokenCount)
        assert max(v // KIND_BITS - 1 for v in packed) == 3 + (reasoning if name != "gemini" else 0)
    if name in ("openai", "responses", "anthropic", "gemini"):
        assert log.prompt_tokens == llm_servers.PROMPT_TOKENS
    if name in ("openai", "responses", "gemini"):
        assert log.reasoning_tokens == 2


def _response(name: str, body: bytes, **rules) -> Response:
    resp = Response(StreamRules(completion="auto", dialect=BUILT_IN[name], **rules), PyEventLog, 0)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    resp.feed(1, head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    return resp


@pytest.mark.unit
@pytest.mark.parametrize("name", list(BUILT_IN))
def test_an_error_in_the_stream_is_an_event_error_with_its_message(name):
    body, _ = events_of(name, 0, 2, error="the model is overloaded")
    resp = _response(name, body)
    outcome, error, code = resp.verdict(1)
    assert outcome is Outcome.EVENT_ERROR and "the model is overloaded" in error, (outcome, error)


@pytest.mark.unit
@pytest.mark.parametrize("name,finish,rid", [
    ("openai", "stop", "chatcmpl-"), ("responses", "completed", "resp_"), ("anthropic", "stop", "msg_"),
    ("tgi", "stop", None), ("triton", "", None), ("gemini", "stop", "")])
def test_a_stream_ends_ok_with_its_finish_reason_and_the_services_id(name, finish, rid):
    body, _ = events_of(name, 0, 2)
    resp = _response(name, body)
    assert resp.verdict(1)[0] is Outcome.OK
    assert resp.finish_reason == finish
    assert resp.response_id.startswith(rid) if rid is not None else resp.response_id == ""


@pytest.mark.unit
def test_the_request_path_chooses_the_dialect():
    said = {url: (d.name if d else None) for url, d in (
        (u, for_url(u)) for u in ("http://h/v1/chat/completions", "http://h/v1/completions", "http://h/v1/responses",
                                  "http://h/v1/messages", "http://h/generate_stream",
                                  "http://h/v2/models/m/generate_stream",
                                  "http://h/v1beta/models/g:streamGenerateContent?alt=sse", "http://h/v1/stream"))}
    assert list(said.values()) == ["openai", "openai", "responses", "anthropic", "tgi", "triton", "gemini", None]


@pytest.mark.unit
def test_a_declared_dialect_names_a_bad_path_and_needs_an_output():
    with pytest.raises(ValueError, match="needs output"):
        declared({"finish": "done"})
    with pytest.raises(ValueError, match="is not a JSON path"):
        declared({"output": "a..b"})
    with pytest.raises(ValueError, match="has no key 'outputs'"):
        declared({"outputs": "a"})
    assert values_at({"a": [{"b": 1}, {"b": 2}]}, "a[].b") == [1, 2]


# --- whole runs, with no scenario: the URL and a body ---

BODIES = {"openai": {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
          "responses": {"model": "m", "input": "hi", "stream": True},
          "anthropic": {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}],
                        "stream": True},
          "tgi": {"inputs": "hi", "parameters": {"max_new_tokens": 8}},
          "triton": {"text_input": "hi", "max_tokens": 8},
          "gemini": {"contents": [{"parts": [{"text": "hi"}]}]}}


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_with_no_scenario_each_api_gives_ttft_tokens_and_finish_as_its_server_sent_them(tmp_path, start_server, name):
    reasoning = 0 if name in ("tgi", "triton") else 3
    srv = start_server(llm_servers.llm_api_server, name, answer=6, reasoning=reasoning, prefill_s=0.06, gap_s=0.008)
    url = srv.url + ("?alt=sse" if name == "gemini" else "")
    result = sseload_run(tmp_path, "-H", url, "--body", json.dumps(BODIES[name]), "-u", "2", "-t", "2s", "-r", "10",
                         run_id=name)
    assert result.code == 0, result.stderr[-2000:]
    assert result.info["dialect"]["name"] == name
    s = result.streams
    done = s[s["outcome"] != "cancelled"]
    assert len(done) >= 4 and (done["outcome"] == "ok").all(), done[["outcome", "error"]]
    sends = [x for x in srv.sends if "first_output_ns" in x]
    true_ttft = np.median([x["first_output_ns"] - x["arrival_ns"] for x in sends]) / MS
    assert abs(done["ttft_ms"].median() - true_ttft) < 2.0, (done["ttft_ms"].describe(), true_ttft)
    true_answer = np.median([x["first_answer_ns"] - x["arrival_ns"] for x in sends]) / MS
    assert abs(done["answer_ttft_ms"].median() - true_answer) < 2.0, (done["answer_ttft_ms"].describe(), true_answer)
    if reasoning:
        assert (done["answer_ttft_ms"] > done["ttft_ms"] + 15).all()  # three thinking tokens, 8 ms apart
    assert (done["output_tokens"] == 6 + reasoning).all()
    assert (done["tokens_from"] == ("chunks" if name == "triton" else "usage")).all()
    finish = {"openai": "stop", "responses": "completed", "anthropic": "end_turn", "tgi": "eos_token",
              "triton": None, "gemini": "STOP"}[name]
    assert list(done["finish_reason"].unique()) == [finish] if finish else done["finish_reason"].isna().all()
    assert done["request_id"].str.startswith("req-").all()
    if name in ("openai", "responses", "anthropic", "gemini"):
        assert done["response_id"].notna().all() and (done["prompt_tokens"] == llm_servers.PROMPT_TOKENS).all()
    if name in ("openai", "responses", "gemini"):  # Anthropic's usage counts no thinking tokens apart
        assert (done["reasoning_tokens"] == reasoning).all()


TGI_PATHS = {"output": "token.text", "output_tokens": "details.generated_tokens", "finish": "details.finish_reason",
             "error": "error"}


@pytest.mark.unit
@pytest.mark.parametrize("cls", BOTH)
def test_a_dialect_declared_by_paths_reads_a_stream_as_the_built_in_one_does(cls):
    body, _ = events_of("tgi", 0, 5)
    built_in, custom = (cls(program=program(d)) for d in (BUILT_IN["tgi"], declared(TGI_PATHS)))
    assert built_in.feed(body, 1) == custom.feed(body, 1)
    assert built_in.llm() == custom.llm() and built_in.prompt_tokens == custom.prompt_tokens
    tgi, json_ = _response("tgi", body), Response(StreamRules(completion="auto", dialect=declared(TGI_PATHS)),
                                                   PyEventLog, 0)
    json_.feed(1, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(body)
               + body)
    assert (json_.verdict(1), json_.finish_reason) == (tgi.verdict(1), tgi.finish_reason) == ((Outcome.OK, "", ""),
                                                                                              "stop")


def test_a_custom_api_declared_in_the_scenario_gets_ttft_and_tokens(tmp_path, start_server):
    srv = start_server(llm_servers.llm_api_server, "tgi", answer=5, prefill_s=0.05, gap_s=0.005, path="/custom/infer")
    scenario = {"request": {"path": "/custom/infer", "method": "POST"}, "body": {"json": BODIES["tgi"]},
                "stream": {"completion": "auto", "dialect": TGI_PATHS}}
    result = sseload_run(tmp_path, "-H", srv.base_url, "-u", "2", "-t", "1s", scenario=scenario, run_id="custom")
    assert result.code == 0, result.stderr[-2000:]
    assert result.info["dialect"]["name"] == "json"
    done = result.streams[result.streams["outcome"] != "cancelled"]
    assert (done["outcome"] == "ok").all() and (done["output_tokens"] == 5).all()
    assert (done["finish_reason"] == "eos_token").all() and (done["tokens_from"] == "usage").all()
    true_ttft = np.median([x["first_output_ns"] - x["arrival_ns"] for x in srv.sends]) / MS
    assert abs(done["ttft_ms"].median() - true_ttft) < 2.0


def test_an_impatient_user_abandons_a_slow_first_token_and_the_server_sees_the_disconnect(tmp_path, start_server):
    srv = start_server(llm_servers.llm_api_server, "openai", answer=3, prefill_s=0.4, gap_s=0.005)
    scenario = {"request": {"path": llm_servers.PATHS["openai"]}, "body": {"json": BODIES["openai"]},
                "load": {"patience_s": 0.15, "patience_share": 0.5}, "thresholds": {"abandon_rate_max": 0.1}}
    result = sseload_run(tmp_path, "-H", srv.base_url, "-u", "4", "-r", "100", "-t", "2s", scenario=scenario,
                         run_id="patience")
    s = result.streams
    gave_up, waited = s[s["outcome"] == "abandoned"], s[s["outcome"] == "ok"]
    assert len(gave_up) >= 4 and len(waited) >= 4, s["outcome"].value_counts()
    assert (gave_up["duration_ms"].between(150, 250)).all() and gave_up["ttft_ms"].isna().all()
    assert "no output token within 0.15 s" in gave_up["error"].iloc[0]
    assert set(gave_up["user"]).isdisjoint(set(waited["user"]))  # a user is patient or not, for the whole run
    srv.stop()
    assert sum(1 for x in srv.sends if x.get("disconnected")) >= len(gave_up) - 2  # the last may end with the run
    assert result.code == 1 and "abandon_rate_max" in result.stdout  # the threshold judged the abandon rate


@pytest.mark.unit
def test_the_servers_own_timings_and_cached_tokens_are_kept_beside_the_clients():
    chunks = [{"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
              {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
               "timings": {"prompt_n": 9, "prompt_ms": 12.5, "predicted_n": 1, "predicted_ms": 3.1}},
              {"id": "c1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 1,
                                                    "prompt_tokens_details": {"cached_tokens": 8}}}]
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    resp = _response("openai", body)
    assert resp.verdict(1)[0] is Outcome.OK and resp.response_id == "c1"
    assert json.loads(resp.server_timings) == chunks[1]["timings"]
    assert resp.log.cached_tokens == 8 and resp.log.prompt_tokens == 9


STREAMED_ERRORS = ["anthropic", "responses"]


@pytest.fixture(scope="module")
def streamed_error_runs(tmp_path_factory):
    """A run against each of STREAMED_ERRORS' servers streaming an error, side by side (what is checked is
    each stream's outcome and error, not its times): name -> RunResult."""
    srvs = {name: llm_servers.llm_api_server(name, answer=2, prefill_s=0.01, gap_s=0.002,
                                             error="the model is overloaded") for name in STREAMED_ERRORS}
    folders = {name: tmp_path_factory.mktemp(name) for name in srvs}  # here: mktemp is not for threads

    def run(name, srv):
        return sseload_run(folders[name], "-H", srv.url, "--body", json.dumps(BODIES[name]), "-u",
                           "1", "-t", "1s", run_id=f"{name}-error")

    with serving(srvs):
        yield side_by_side(srvs, run)


@pytest.mark.parametrize("name", STREAMED_ERRORS)
def test_an_error_the_service_streams_is_an_event_error_over_the_wire(streamed_error_runs, name):
    streams = streamed_error_runs[name].streams
    done = streams[streams["outcome"] != "cancelled"]
    assert len(done) >= 2 and (done["outcome"] == "event_error").all(), done[["outcome", "error"]]
    assert done["error"].str.contains("the model is overloaded").all()
    assert set(done["error_code"]) == {"overloaded_error" if name == "anthropic" else "server_error"}
