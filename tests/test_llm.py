"""LLM streams: token metrics against an OpenAI-compatible server that is not the reference target.

The vLLM-like server (tests/servers.py) sends the role chunk at once, the first token after a
200 ms prefill, chunks of 1-3 tokens and the usage chunk; its ground truth is kept per request.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sseload.protocol.dialects import OPENAI, read_event
from sseload.protocol.sse import KIND_BITS
from sseload.record.tokens import FROM_CHUNKS, FROM_TOKENIZER, FROM_USAGE, stream_tokens
from sseload.views import results
from tests import servers
from tests.conftest import serving, side_by_side, sseload_reported_run, sseload_run

BODY = {"model": "m", "messages": [{"role": "user", "content": "tell me a story"}], "max_tokens": 24,
        "stream": True, "stream_options": {"include_usage": True}}


@pytest.mark.unit
def test_a_streams_token_facts_come_from_usage_else_from_the_chunks_carrying_output():
    t = np.array([1_000, 5_000, 9_000, 12_000], dtype=np.int64).tobytes()
    role, content, usage = 0, 1, KIND_BITS * (7 + 1)
    llm = np.array([role, content, content, usage], dtype=np.int64).tobytes()
    facts = stream_tokens(llm, t, 0)
    assert facts[:3] == (5_000, 7, FROM_USAGE)
    assert facts.chunk_tokens.tolist() == [0, -1, -1, 0]  # only the total is known
    no_usage = np.array([role, content, content, 0], dtype=np.int64).tobytes()
    facts = stream_tokens(no_usage, t, 1_000)
    assert facts[:3] == (4_000, 2, FROM_CHUNKS) and facts.chunk_tokens.tolist() == [0, 1, 1, 0]
    per_chunk = np.array([KIND_BITS * (0 + 1), 1 + KIND_BITS * (3 + 1), 1 + KIND_BITS * (4 + 1), KIND_BITS * (4 + 1)],
                         dtype=np.int64).tobytes()
    facts = stream_tokens(per_chunk, t, 0)  # vLLM's continuous usage: every chunk reports the tokens so far
    assert facts[:3] == (5_000, 4, FROM_USAGE) and facts.chunk_tokens.tolist() == [0, 3, 1, 0]
    assert stream_tokens(b"", b"", 0)[:3] == (-1, -1, "")


def test_ttft_tokens_and_tpot_match_the_servers_truth(tmp_path, start_server):
    srv = start_server(servers.vllm_like_server, prefill_s=0.2, token_s=0.01)
    result = sseload_run(tmp_path, "-H", srv.url, "--body", json.dumps(BODY),
                         "-u", "3", "-t", "2s", "-r", "10", run_id="llm")
    assert result.code == 0, result.stderr[-2000:]
    s = result.streams
    ok = s[s["outcome"] == "ok"]
    assert len(ok) >= 6
    truth = srv.truth
    true_ttft_ms = 1000 * np.median([t["first_token_s"] for t in truth])
    assert abs(ok["ttft_ms"].median() - true_ttft_ms) < 5.0, (ok["ttft_ms"].describe(), true_ttft_ms)
    assert ok["ttfe_ms"].median() < 50  # the role-only chunk came at once: TTFE is not TTFT
    assert (ok["output_tokens"] == 24).all() and (ok["tokens_from"] == FROM_USAGE).all()
    assert (ok["prompt_tokens"] == 4).all()
    assert (ok["finish_reason"] == "length").all()  # max_tokens ended every answer, and the record says so
    assert np.allclose(ok["tokens_per_s"], 24 / (ok["duration_ms"] / 1e3))
    true_tpot_ms = np.median([1000 * (t["last_token_s"] - t["first_token_s"]) / (t["tokens"] - 1) for t in truth])
    assert abs(ok["tpot_ms"].median() / true_tpot_ms - 1) < 0.05, (ok["tpot_ms"].describe(), true_tpot_ms)
    ev = result.events
    content = ev[ev["output"].fillna(False).astype(bool)]
    assert (content.groupby("stream_id").size() == truth[0]["chunks"]).all()  # role and usage chunks do not count
    true_itl_ms = 1000 * np.median(np.concatenate([np.diff(t["chunk_s"]) for t in truth]))
    itl = content[content["stream_id"].isin(ok["stream_id"])].groupby("stream_id")["t_ms"].diff().dropna()
    assert abs(itl.median() / true_itl_ms - 1) < 0.05, (itl.describe(), true_itl_ms)
    out = result.stdout
    assert "TTFT ms" in out and "TPOT ms" in out and "output tokens" in out and "from usage:" in out
    assert result.info["target_url"] == srv.url


def without_usage_run(tmp_path, srv):
    body = {**BODY, "stream_options": {"include_usage": False}, "max_tokens": 10}
    scenario = {"request": {"path": "/v1/chat/completions"}, "body": {"json": body},
                "slo": {"ttft_ms": 40.0}, "thresholds": {"min_goodput": 0.5},
                "load": {"users": 2, "spawn_rate": 10, "run_time": "1s"}}
    return sseload_reported_run(tmp_path, "-H", srv.base_url, scenario=scenario, run_id="chunks")


def test_without_usage_the_tokens_are_the_chunks_carrying_output_and_slos_give_goodput(side_runs):
    result, _ = side_runs["without_usage"]
    s = result.streams[lambda d: d["outcome"] == "ok"]
    assert (s["output_tokens"] == 10).all() and (s["tokens_from"] == FROM_CHUNKS).all()
    assert s["prompt_tokens"].isna().all()
    assert result.code == 1  # a 50 ms prefill never meets a 40 ms TTFT objective: goodput 0 fails the threshold
    assert "min_goodput" in result.stdout and "goodput 0.00 streams/s" in result.stdout
    report = (result.run_dir / "report.html").read_text()  # the token charts, goodput's among them
    assert all(f"data-chart='{name}'" in report for name in ("ttft", "tpot", "itl", "tokens_over_time"))


def _dataset(path, n: int) -> None:
    lines = []
    for k in range(n):
        if k % 3 == 0:
            lines.append(json.dumps(f"prompt number {k}"))
        elif k % 3 == 1:
            lines.append(json.dumps({"messages": [{"role": "user", "content": f"question {k}"}]}))
        else:
            lines.append(json.dumps({"conversations": [{"from": "human", "value": f"sharegpt {k}"},
                                                       {"from": "gpt", "value": "an answer"}]}))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.unit
def test_dataset_lines_become_bodies_on_the_template_in_the_order_asked(tmp_path):
    from sseload.scenario.bodies import bodies
    from sseload.scenario.model import Body, ScenarioError

    _dataset(tmp_path / "p.jsonl", 6)
    spec = Body(json={"model": "m", "stream": True, "max_tokens": 8}, dataset="p.jsonl")
    got = [json.loads(b) for b in bodies(spec, tmp_path)]
    assert [g["messages"][0]["content"] for g in got] == [
        "prompt number 0", "question 1", "sharegpt 2", "prompt number 3", "question 4", "sharegpt 5"]
    assert all(g["model"] == "m" and g["max_tokens"] == 8 for g in got)
    shuffled = [json.loads(b)["messages"][0]["content"] for b in bodies(Body(dataset="p.jsonl", order="shuffle",
                                                                              seed=3), tmp_path)]
    assert sorted(shuffled) == sorted(g["messages"][0]["content"] for g in got) and shuffled != [
        g["messages"][0]["content"] for g in got]
    assert shuffled == [json.loads(b)["messages"][0]["content"] for b in bodies(
        Body(dataset="p.jsonl", order="shuffle", seed=3), tmp_path)]  # the seed fixes it
    (tmp_path / "bad.jsonl").write_text('"fine"\n{not json\n')
    with pytest.raises(ScenarioError, match="line 2 is not JSON"):
        bodies(Body(dataset="bad.jsonl"), tmp_path)
    with pytest.raises(ScenarioError, match="cannot be read"):
        bodies(Body(dataset="missing.jsonl"), tmp_path)


@pytest.mark.unit
def test_synthetic_prompts_are_distinct_sized_as_asked_and_share_only_the_prefix_asked():
    from sseload.scenario.bodies import bodies
    from sseload.scenario.model import Body

    got = [json.loads(b) for b in bodies(Body(prompts=50, input_words="uniform:20:40", max_tokens="uniform:5:9",
                                              shared_prefix_words=6, seed=1))]
    texts = [g["messages"][0]["content"] for g in got]
    assert len(set(texts)) == 50
    assert all(len(t.split()) - 7 in range(20, 41) for t in texts)  # 6 shared words and the prompt's number
    assert len({" ".join(t.split()[:6]) for t in texts}) == 1 and len({t.split()[6] for t in texts}) == 50
    assert all(5 <= g["max_tokens"] <= 9 for g in got)


def dataset_run(tmp_path, srv):
    _dataset(tmp_path / "prompts.jsonl", 200)
    scenario = {"request": {"path": "/v1/chat/completions"},
                "body": {"dataset": "prompts.jsonl", "json": {"model": "m", "stream": True, "max_tokens": 4,
                                                              "stream_options": {"include_usage": True}}},
                "load": {"users": 2, "spawn_rate": 10, "run_time": "1s"}}
    return sseload_run(tmp_path, "-H", srv.base_url, scenario=scenario, run_id="dataset")


def chunk_error_run(tmp_path, srv):
    return sseload_run(tmp_path, "-H", srv.url, "--body", json.dumps({**BODY, "stream_options": {}}),
                       "-u", "1", "-t", "1s", run_id="chunk-error")


def conversation_run(tmp_path, srv):
    _conversations(tmp_path / "conversations.jsonl")
    scenario = {"request": {"path": "/v1/chat/completions"},
                "body": {"dataset": "conversations.jsonl", "multi_turn": True, "max_tokens": "6",
                         "include_usage": True},
                "load": {"users": 2, "spawn_rate": 10, "run_time": "2s"}}
    return sseload_run(tmp_path, "-H", srv.base_url, scenario=scenario, run_id="conversation")


#: The runs whose checks are of what was sent, counted and said, none of a token's time but a lower bound
#: (a 50 ms prefill never meets a 40 ms objective), the longest first: name -> (the run, given a folder and
#: its server; the vLLM-like server's options).
SIDE_RUNS = {"conversation": (conversation_run, {"prefill_s": 0.02, "token_s": 0.002, "chunk_tokens": (2,)}),
             "without_usage": (without_usage_run, {"prefill_s": 0.05, "token_s": 0.005, "chunk_tokens": (1,)}),
             "chunk_error": (chunk_error_run, {"prefill_s": 0.02, "token_s": 0.002, "chunk_tokens": (1,),
                                               "error_after": 4}),
             "dataset": (dataset_run, {"prefill_s": 0.02, "token_s": 0.002})}


@pytest.fixture(scope="module")
def side_runs(tmp_path_factory):
    """SIDE_RUNS side by side, each against a vLLM-like server of its own: name -> (RunResult, its server)."""
    srvs = {name: servers.vllm_like_server(**options) for name, (_, options) in SIDE_RUNS.items()}
    folders = {name: tmp_path_factory.mktemp(name) for name in SIDE_RUNS}  # here: mktemp is not for threads
    with serving(srvs):
        results = side_by_side(SIDE_RUNS, lambda name, job: job[0](folders[name], srvs[name]))
        yield {name: (results[name], srvs[name]) for name in SIDE_RUNS}


def test_a_dataset_run_sends_a_distinct_body_per_stream(side_runs):
    result, srv = side_runs["dataset"]
    assert result.code == 0, result.stderr[-2000:]
    sent = [t["body"] for t in srv.truth]
    assert len(sent) >= 10 and len(set(sent)) == len(sent)  # asserted at the server
    assert (result.streams["output_tokens"] == 4).all()


def test_the_reference_target_streams_as_an_llm_server(tmp_path):
    """Role chunk with the head, prefill growing with the prompt, multi-token chunks up to max_tokens,
    the usage chunk when asked: the harness's token metrics against the target's own schedule."""
    prompt = "one two three four five six seven eight nine ten"
    scenario = {"request": {"path": "/v1/chat/completions"},
                "body": {"json": {"model": "m", "stream": True, "max_tokens": 12,
                                  "stream_options": {"include_usage": True},
                                  "messages": [{"role": "user", "content": prompt}]}},
                "stream": {"completion": "done"},
                "load": {"users": 2, "spawn_rate": 10, "run_time": "1s"},
                "target": {"ttfe_ms": 50, "gap_ms": 5, "prefill_ms_per_word": 10, "tokens_per_chunk": "uniform:1:3"}}
    result = sseload_run(tmp_path, scenario=scenario, run_id="target-llm")
    assert result.code == 0, result.stderr[-2000:]
    ok = result.streams[lambda d: d["outcome"] == "ok"]
    assert len(ok) >= 4
    assert abs(ok["ttft_ms"].median() - (50 + 10 * 10)) < 5  # ttfe_ms + prefill per prompt word
    assert ok["ttfe_ms"].max() < 20  # the role-only chunk comes with the head
    assert (ok["output_tokens"] == 12).all() and (ok["tokens_from"] == FROM_USAGE).all()
    assert (ok["prompt_tokens"] == 10).all()
    assert abs(ok["tpot_ms"].median() - 5) < 1.0  # gap_ms per token


@pytest.mark.unit
def test_include_usage_asks_every_json_body_for_the_usage_chunk(tmp_path):
    from sseload.scenario.bodies import bodies
    from sseload.scenario.model import Body

    got = [json.loads(b) for b in bodies(Body(prompts=3, include_usage=True))]
    assert all(g["stream_options"] == {"include_usage": True} for g in got)
    kept = json.loads(bodies(Body(json={"stream_options": {"continuous_usage_stats": True}}, include_usage=True))[0])
    assert kept["stream_options"] == {"continuous_usage_stats": True, "include_usage": True}
    assert bodies(Body(text="plain", include_usage=True)) == [b"plain"]


def _word_tokenizer(path) -> None:
    """A tokenizer.json made here (nothing downloaded): every whitespace-separated word one token."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(path))


@pytest.mark.parametrize("counted_by", ["tokenizer", "continuous_usage"])
def test_each_chunks_tokens_give_itl_per_token(tmp_path, start_server, counted_by):
    """Without usage, a local tokenizer counts the output; with vLLM's continuous usage each chunk
    says its own tokens. Either way each chunk's tokens are the server's, and ITL per token is its pace."""
    srv = start_server(servers.vllm_like_server, prefill_s=0.05, token_s=0.01, chunk_tokens=(1, 3, 2))
    options = {"include_usage": False} if counted_by == "tokenizer" else {"continuous_usage_stats": True}
    stream = {"format": "openai"}
    if counted_by == "tokenizer":
        _word_tokenizer(tmp_path / "tokenizer.json")
        stream["tokenizer"] = "tokenizer.json"
    scenario = {"request": {"path": "/v1/chat/completions"},
                "body": {"json": {**BODY, "max_tokens": 12, "stream_options": options}}, "stream": stream,
                "load": {"users": 2, "spawn_rate": 10, "run_time": "1s"}}
    result = sseload_run(tmp_path, "-H", srv.base_url, scenario=scenario, run_id=counted_by)
    assert result.code == 0, result.stderr[-2000:]
    ok = result.streams[lambda d: d["outcome"] == "ok"]
    assert len(ok) >= 4
    assert (ok["output_tokens"] == 12).all()
    assert (ok["tokens_from"] == (FROM_TOKENIZER if counted_by == "tokenizer" else FROM_USAGE)).all()
    ev = result.events
    chunks = ev[ev["output"].fillna(False).astype(bool) & ev["stream_id"].isin(ok["stream_id"])]
    true_sizes = srv.truth[0]["chunk_tokens"]
    assert all(group.tolist() == true_sizes for _, group in chunks.groupby("stream_id")["tokens"])
    per_token = results.summarise(results.load(result.run_dir))["itl_per_token_ms"]
    assert abs(per_token["p50"] / 10.0 - 1) < 0.05, per_token  # token_s, whatever the chunk's size


def test_an_error_inside_the_stream_is_the_streams_error(side_runs):
    result, _ = side_runs["chunk_error"]
    s = result.streams
    assert len(s) >= 3 and (s["outcome"] == "event_error").all(), s[["outcome", "error"]]
    assert s["error"].str.contains("the engine died mid-stream").all() and (s["error_code"] == "500").all()
    assert (s["output_tokens"] == 4).all()
    assert result.code == 1 and "event_error" in result.stdout


@pytest.mark.unit
def test_a_chunks_ending_says_its_finish_reason_and_error():
    assert _ending('{"choices":[{"delta":{},"finish_reason":"content_filter"}]}') == ("content_filter", "", "")
    assert _ending('{"error":{"message":"overloaded","type":"server_error","code":null}}') == (
        "", "overloaded", "server_error")  # a null code: its type says what it was
    assert _ending('{"object":"error","message":"bad","type":"BadRequestError","code":400}') == ("", "bad", "400")
    assert _ending('{"error":"quota exceeded"}') == ("", "quota exceeded", "")
    assert _ending('{"error": {"message" broken') == ("", '{"error": {"message" broken', "")


def _conversations(path) -> None:
    path.write_text("\n".join(json.dumps(line) for line in [
        {"conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "first question"},
                           {"from": "gpt", "value": "a recorded answer, not sent"},
                           {"from": "human", "value": "second question"}, {"from": "gpt", "value": "x"},
                           {"from": "human", "value": "third question"}]},
        {"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "dropped"},
                      {"role": "user", "content": "and then?"}]},
    ]) + "\n")


@pytest.mark.unit
def test_a_conversation_dataset_gives_each_line_its_turns(tmp_path):
    from sseload.scenario.bodies import bodies, conversations
    from sseload.scenario.model import Body, ScenarioError

    _conversations(tmp_path / "c.jsonl")
    first, second = conversations(Body(dataset="c.jsonl", multi_turn=True, max_tokens="8", include_usage=True),
                                  tmp_path)
    assert first.turns == ("first question", "second question", "third question")
    assert first.system == ({"role": "system", "content": "be brief"},)
    assert second.turns == ("hello", "and then?") and second.system == ()
    body = json.loads(first.body([{"role": "user", "content": "first question"},
                                  {"role": "assistant", "content": "A1"}], 1))
    assert body["messages"] == [{"role": "system", "content": "be brief"},
                                {"role": "user", "content": "first question"},
                                {"role": "assistant", "content": "A1"}, {"role": "user", "content": "second question"}]
    assert body["max_tokens"] == 8 and body["stream_options"] == {"include_usage": True} and body["stream"]
    (tmp_path / "turns.jsonl").write_text(json.dumps(["hi", "and you?"]) + "\n")  # a line that is a list of turns
    spec = Body(dataset="turns.jsonl", multi_turn=True)
    assert conversations(spec, tmp_path)[0].turns == ("hi", "and you?")
    assert [json.loads(b)["messages"] for b in bodies(spec, tmp_path)] == [[{"role": "user", "content": "hi"}]]
    (tmp_path / "none.jsonl").write_text(json.dumps({"messages": [{"role": "system", "content": "s"}]}) + "\n")
    with pytest.raises(ScenarioError, match="no user turn"):
        conversations(Body(dataset="none.jsonl", multi_turn=True), tmp_path)


def test_a_conversation_sends_each_turn_after_the_answer_with_the_history(side_runs):
    result, srv = side_runs["conversation"]
    assert result.code == 0, result.stderr[-2000:]
    answers = {t["answer"] for t in srv.truth}
    later_turns = 0
    for t in srv.truth:  # asserted at the server: every answer in a history is one the server gave
        messages = json.loads(t["body"])["messages"]
        assistant = [m["content"] for m in messages if m["role"] == "assistant"]
        assert set(assistant) <= answers and "dropped" not in assistant, messages
        users = [m["content"] for m in messages if m["role"] == "user"]
        assert len(assistant) == len(users) - 1
        later_turns += bool(assistant)
    assert later_turns >= 3
    s = result.streams
    assert set(s["turn"].dropna().astype(int)) >= {1, 2, 3}
    for _, conv in s.groupby("conversation_id"):  # each conversation's turns in order, one stream each
        assert conv.sort_values("start_ns")["turn"].tolist() == list(range(1, len(conv) + 1))
    assert "conversations" in result.stdout and "p50 by turn" in result.stdout


@pytest.mark.unit
def test_a_tokenizer_that_cannot_be_read_says_which_and_why(tmp_path):
    from sseload.record.tokens import load_tokenizer

    with pytest.raises(ValueError, match="missing.json.*not a tokenizer.json"):
        load_tokenizer(str(tmp_path / "missing.json"))
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(ValueError, match="junk.json"):
        load_tokenizer(str(tmp_path / "junk.json"))


def _ending(data: str) -> tuple[str, str, str]:
    said = read_event(OPENAI, data)
    return said.finish, said.error, said.code
