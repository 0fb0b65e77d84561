"""Independent servers of the LLM streaming APIs, one per dialect, written from each API's public reference.

None is sseload's: each speaks its API as its documentation shows a stream (the events, their names,
their JSON, how usage, finish reasons and errors come), paced on a known schedule (``prefill_s`` before
the first output, ``gap_s`` between tokens, ``reasoning`` thinking tokens before the ``answer`` tokens),
and logs per request, on the monotonic clock (``time.perf_counter_ns``, the client's too), when the
request arrived and when its first output and first answer token were sent. References:

- OpenAI chat completions: platform.openai.com/docs/api-reference/chat-streaming
- OpenAI Responses: platform.openai.com/docs/api-reference/responses-streaming
- Anthropic Messages: docs.anthropic.com/en/docs/build-with-claude/streaming
- Hugging Face TGI: huggingface.github.io/text-generation-inference (``/generate_stream``)
- Triton generate extension: github.com/triton-inference-server/server docs/protocol/extension_generate.md
- Gemini: ai.google.dev/api/generate-content (``streamGenerateContent?alt=sse``)
"""

from __future__ import annotations

import json
import time
import uuid

from tests.serverkit import Closed, Conn, Request, ScriptedServer, serve_keepalive

#: Each dialect's request path, as its reference gives it.
PATHS = {"openai": "/v1/chat/completions", "responses": "/v1/responses", "anthropic": "/v1/messages",
         "tgi": "/generate_stream", "triton": "/v2/models/ensemble/generate_stream",
         "gemini": "/v1beta/models/gemini-2.5-flash:streamGenerateContent"}
PROMPT_TOKENS = 9


def _json(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


class _Stream:
    """One response's events, written as its API does, and the send log of one request."""

    def __init__(self, dialect: str, conn: Conn, log: dict) -> None:
        self.dialect, self.conn, self.log = dialect, conn, log
        self.id = uuid.uuid4().hex[:24]
        self.seq = 0

    def send(self, data: str, event: str | None = None, sep: str = "\n\n", space: bool = True) -> None:
        head = f"event: {event}\n" if event else ""
        self.conn.send_chunk((head + ("data: " if space else "data:") + data + sep).encode())

    def sent_output(self, answer: bool) -> None:
        now = time.perf_counter_ns()
        self.log.setdefault("first_output_ns", now)
        if answer:
            self.log.setdefault("first_answer_ns", now)

    def typed(self, event: str, **fields) -> None:  # Responses and Anthropic: the type in the event and the data
        if self.dialect == "responses":
            fields["sequence_number"] = self.seq
            self.seq += 1
        self.send(_json({"type": event, **fields}), event)


def _stream(dialect: str, s: _Stream, reasoning: int, answer: int, gap_s: float, finish: str, error: str) -> None:
    tokens = [("thought ", False)] * reasoning + [(f"tok{k} ", True) for k in range(answer)]
    n = len(tokens)
    if dialect == "openai":
        def chunk(delta, reason=None, usage=None):
            obj = {"id": f"chatcmpl-{s.id}", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]}
            if usage is not None:
                obj = {**obj, "choices": [], "usage": usage}
            s.send(_json(obj))
        chunk({"role": "assistant", "content": ""})
        for i, (text, is_answer) in enumerate(tokens):
            s.conn.wait(gap_s if i else 0)
            s.sent_output(is_answer)
            chunk({"content": text} if is_answer else {"reasoning_content": text})
        if error:
            s.send(_json({"error": {"message": error, "type": "server_error", "code": "overloaded"}}))
            return
        chunk({}, finish)
        chunk({}, usage={"prompt_tokens": PROMPT_TOKENS, "completion_tokens": n, "total_tokens": PROMPT_TOKENS + n,
                         "completion_tokens_details": {"reasoning_tokens": reasoning}})
        s.send("[DONE]")
    elif dialect == "responses":
        rid = f"resp_{s.id}"
        base = {"id": rid, "object": "response", "created_at": 1, "status": "in_progress", "model": "m",
                "output": [], "usage": None, "incomplete_details": None, "error": None}
        s.typed("response.created", response=base)
        s.typed("response.in_progress", response=base)
        if reasoning:
            s.typed("response.output_item.added", output_index=0, item={"id": "rs_1", "type": "reasoning",
                                                                          "summary": []})
        s.typed("response.output_item.added", output_index=1,
                item={"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []})
        s.typed("response.content_part.added", item_id="msg_1", output_index=1, content_index=0,
                part={"type": "output_text", "text": "", "annotations": []})
        for i, (text, is_answer) in enumerate(tokens):
            s.conn.wait(gap_s if i else 0)
            s.sent_output(is_answer)
            if is_answer:
                s.typed("response.output_text.delta", item_id="msg_1", output_index=1, content_index=0, delta=text,
                        logprobs=[])
            else:
                s.typed("response.reasoning_summary_text.delta", item_id="rs_1", output_index=0, summary_index=0,
                        delta=text)
        if error:
            s.typed("response.failed", response={**base, "status": "failed",
                                                 "error": {"code": "server_error", "message": error}})
            return
        full = "".join(t for t, a in tokens if a)
        s.typed("response.output_text.done", item_id="msg_1", output_index=1, content_index=0, text=full)
        usage = {"input_tokens": PROMPT_TOKENS, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": n,
                 "output_tokens_details": {"reasoning_tokens": reasoning}, "total_tokens": PROMPT_TOKENS + n}
        done = {**base, "status": "completed" if finish == "stop" else "incomplete",
                "incomplete_details": None if finish == "stop" else {"reason": finish},
                "output": [{"type": "message", "content": [{"type": "output_text", "text": full}]}], "usage": usage}
        s.typed("response.completed" if finish == "stop" else "response.incomplete", response=done)
    elif dialect == "anthropic":
        s.typed("message_start", message={"id": f"msg_{s.id}", "type": "message", "role": "assistant", "content": [],
                                          "model": "claude", "stop_reason": None, "stop_sequence": None,
                                          "usage": {"input_tokens": PROMPT_TOKENS, "cache_read_input_tokens": 4,
                                                    "output_tokens": 1}})
        s.typed("ping")
        block = -1
        for i, (text, is_answer) in enumerate(tokens):
            if i == 0 or (is_answer and not tokens[i - 1][1]):
                if block >= 0:
                    s.typed("content_block_stop", index=block)
                block += 1
                s.typed("content_block_start", index=block, content_block={"type": "text", "text": ""}
                        if is_answer else {"type": "thinking", "thinking": "", "signature": ""})
            s.conn.wait(gap_s if i else 0)
            s.sent_output(is_answer)
            s.typed("content_block_delta", index=block, delta={"type": "text_delta", "text": text} if is_answer
                    else {"type": "thinking_delta", "thinking": text})
        if error:
            s.send(_json({"type": "error", "error": {"type": "overloaded_error", "message": error}}), "error")
            return
        s.typed("content_block_stop", index=block)
        s.typed("message_delta", delta={"stop_reason": finish, "stop_sequence": None}, usage={"output_tokens": n})
        s.typed("message_stop")
    elif dialect == "tgi":
        for i, (text, _) in enumerate(tokens):
            s.conn.wait(gap_s if i else 0)
            s.sent_output(True)
            last = i == n - 1 and not error
            s.send(_json({"index": i + 1, "token": {"id": 100 + i, "text": text, "logprob": -0.5, "special": False},
                          "generated_text": "".join(t for t, _ in tokens) if last else None,
                          "details": {"finish_reason": finish, "generated_tokens": n, "seed": None} if last
                          else None}), space=False)
        if error:
            s.send(_json({"error": error, "error_type": "overloaded"}), space=False)
    elif dialect == "triton":
        for i, (text, _) in enumerate(tokens):
            s.conn.wait(gap_s if i else 0)
            s.sent_output(True)
            s.send(_json({"model_name": "ensemble", "model_version": "1", "text_output": text}))
        if error:
            s.send(_json({"error": error}))
    elif dialect == "gemini":
        for i, (text, is_answer) in enumerate(tokens):
            s.conn.wait(gap_s if i else 0)
            s.sent_output(is_answer)
            last = i == n - 1 and not error
            part = {"text": text} if is_answer else {"text": text, "thought": True}
            cand = {"content": {"parts": [part], "role": "model"}, "index": 0}
            if last:
                cand["finishReason"] = finish
            answers = sum(1 for _, a in tokens[: i + 1] if a)
            usage = {"promptTokenCount": PROMPT_TOKENS, "candidatesTokenCount": answers,
                     "totalTokenCount": PROMPT_TOKENS + i + 1, "thoughtsTokenCount": min(i + 1, reasoning)}
            s.send(_json({"candidates": [cand], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash",
                          "responseId": s.id}), sep="\r\n\r\n")
        if error:
            s.send(_json({"error": {"code": 503, "message": error, "status": "UNAVAILABLE"}}), sep="\r\n\r\n")


def llm_api_server(dialect: str, *, answer: int = 8, reasoning: int = 0, prefill_s: float = 0.05,
                   gap_s: float = 0.01, finish: str = "", error: str = "", **kw) -> ScriptedServer:
    """A server of ``dialect``'s API (PATHS names its path): per request, ``prefill_s`` of silence (after the
    head, or after its preamble events), then ``reasoning`` thinking tokens and ``answer`` tokens one per
    chunk, ``gap_s`` apart, then its finish (``finish``, else the API's usual word) and usage, or ``error``
    in the stream as the API words one. ``srv.sends``: per request, the arrival and first-output times
    (perf_counter ns), what was sent, and ``disconnected`` where the client went away mid-stream."""
    finish = finish or {"openai": "stop", "responses": "stop", "anthropic": "end_turn", "tgi": "eos_token",
                        "triton": "", "gemini": "STOP"}[dialect]
    sends: list[dict] = []
    path = kw.pop("path", PATHS[dialect])

    def respond(conn: Conn, req: Request) -> bool:
        arrived = time.perf_counter_ns()
        if req.target.split("?")[0] != path or req.method != "POST":
            conn.send_response(404, b'{"error":"not found"}', {"Content-Type": "application/json"})
            return True
        log = {"arrival_ns": arrived, "body": req.body, "output_tokens": reasoning + answer,
               "reasoning_tokens": reasoning}
        sends.append(log)
        s = _Stream(dialect, conn, log)
        conn.start_chunked(200, {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                                 "X-Request-Id": f"req-{s.id}"})
        try:
            conn.wait(prefill_s)
            _stream(dialect, s, reasoning, answer, gap_s, finish, error)
            log["id"] = s.id
            conn.end_chunked()
        except Closed:  # the client went away mid-stream (an impatient user): the server sees it
            log["disconnected"] = True
            raise
        return True

    srv = ScriptedServer(lambda c: serve_keepalive(c, respond), name=f"{dialect}-api", path=path, **kw)
    srv.sends = sends
    return srv
