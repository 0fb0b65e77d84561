"""The run plan: the scenario compiled once, before any load, by each process that runs users.

Compiling is where a scenario meets the machine: ``${VAR}`` references and credentials are read
from the environment, the host is resolved, bodies are built, the tokenizer and the CA bundle are
loaded, and the stream rules are derived (:func:`stream_rules`). Whatever cannot be used stops the
process before any load with one sentence (sseload.run.verdict.BadInput). A master runs no users and
compiles nothing: it only names the target (:func:`target_url`).
"""

from __future__ import annotations

import ssl
from dataclasses import fields
from pathlib import Path

from sseload.auth.schemes import Authenticator, from_scenario
from sseload.protocol.dialects import OUTPUT_KINDS
from sseload.protocol.rules import SEND_TIME_UNITS_NS, StreamRules
from sseload.record import redact
from sseload.record.tokens import load_tokenizer
from sseload.run.verdict import BadInput
from sseload.scenario import bodies as body_mod
from sseload.scenario.load import expand_env, request_headers
from sseload.scenario.model import Scenario, ScenarioError, Stream, check_url, dialect_of, request_url
from sseload.scenario.trace import Trace
from sseload.transport.client import Endpoint, PreparedRequest

WORKER_BODY_STRIDE = 7919  # a prime: workers' starting places in a list of bodies, spread
#: The rules derived from the scenario as a whole (the URL, the gateway, the body, files), by stream_rules.
DERIVED = ("deadline_s", "limit_s", "dialect", "keep_output", "output_kinds", "tokenizer", "new_connection",
           "patience_s")
#: The rules a scenario's [stream] table gives under the same names: copied, never written out twice.
SAME_NAMES = tuple(f.name for f in fields(StreamRules)
                   if f.name in Stream.__dataclass_fields__ and f.name not in DERIVED)
#: The rules no scenario sets: the protocol's own limits, and what the rules make of the rest (the dialect's program).
PROTOCOL_ONLY = ("max_head_bytes", "program")


def stream_rules(scenario: Scenario, url: str, tokenizer: object = None) -> StreamRules:
    """How this scenario's streams are judged: [stream]'s fields of the same name, and the rest
    derived here (the deadline from the gateway's limit and the grace, the LLM dialect from the URL)."""
    st = scenario.stream
    return StreamRules(
        **{name: getattr(st, name) for name in SAME_NAMES},
        deadline_s=scenario.gateway.limit_s + st.grace_s,
        limit_s=scenario.gateway.limit_s,
        dialect=dialect_of(scenario, url),
        keep_output=bool(st.tokenizer) or scenario.body.multi_turn,
        output_kinds=sum(OUTPUT_KINDS[kind] for kind in set(st.output)),
        tokenizer=tokenizer,
        new_connection=st.connection == "new",
        patience_s=scenario.load.patience_s,
    )


def target_url(scenario: Scenario, host: str | None) -> str:
    """The target as run.json names it, without a credential: what a master (which sends nothing)
    knows of it; the credentials the URLs and headers carry are remembered, so nothing it writes shows them."""
    url = redact.split_userinfo(host or scenario.request.url)[0]
    redact.remember_request(scenario.request.headers, host or scenario.request.url, scenario.request.secret_headers)
    return url


class RunPlan:
    """What a process that runs users needs to send and judge every stream, built once.

    ``scenario`` and ``url`` are what a locustfile of one's own reads (``self.ctx`` of an SSEUser)."""

    def __init__(self, scenario: Scenario, host: str | None, insecure: bool = False) -> None:
        self.scenario = scenario
        req = scenario.request
        try:
            url = self._url(scenario, host)
            url, basic = redact.split_userinfo(url)  # userinfo is sent as Basic auth, never kept in the URL
            req.headers = request_headers(req, basic)
            redact.remember_request(req.headers, url, req.secret_headers)
            self.url = url
            self.endpoint = _resolve(url)
            self.auth: Authenticator = from_scenario(scenario.auth, url)
            base_dir = Path(scenario.source).parent if scenario.source else None
            skip_over = scenario.gateway.max_body_bytes if scenario.body.over_limit == "skip" else None
            self.bodies = body_mod.bodies(scenario.body, base_dir, req.method, skip_over)
            self.conversations = body_mod.conversations(scenario.body, base_dir) if scenario.body.multi_turn else []
            self.trace = Trace.load(scenario.load.trace, scenario.body, base_dir) if scenario.load.trace else None
        except ScenarioError as err:
            raise BadInput(str(err)) from None
        for secret in self.auth.secrets():
            redact.remember(secret)
        redact.remember_request({}, scenario.auth.iam_url)
        self.requests = [PreparedRequest.build(req.method, url, req.headers, b"", b) if isinstance(b, int)
                         else PreparedRequest.build(req.method, url, req.headers, b) for b in self.bodies]
        st = scenario.stream
        self.rules = stream_rules(scenario, url, _tokenizer(st.tokenizer, base_dir))
        self.tls = _tls_context(st.tls_verify and not insecure, st.ca_bundle) \
            if self.endpoint.scheme == "https" else None
        self.send_time_ns = SEND_TIME_UNITS_NS[st.send_time_unit]  # the unit of the service's send times
        self._next_body: int | None = None  # set at the first stream (the worker's index is known then)

    @staticmethod
    def _url(scenario: Scenario, host: str | None) -> str:
        req = scenario.request
        if host:
            return request_url(req, host)
        if req.url:
            url = expand_env(req.url, "[request] url")
            check_url(url, "[request] url")  # a ${VAR}'s value, checked once it is known
            if scenario.auth.iam_url:
                scenario.auth.iam_url = expand_env(scenario.auth.iam_url, "[auth] iam_url")
                check_url(scenario.auth.iam_url, "[auth] iam_url")
            return url
        raise BadInput(
            "no target: give -H/--host (e.g. -H https://gateway.example.com) or set [request] url "
            "in the scenario; `sseload run` with no host starts the reference target for you"
        )

    def next_request(self, worker: int = 0) -> PreparedRequest:
        """Bodies are taken in turn (a size sweep spreads evenly over the run, a prompt dataset is
        sent in its order); each worker starts at its own place, so workers do not send the same
        prompts at the same moments."""
        requests = self.requests
        return requests[self._next_index(worker, len(requests))] if len(requests) > 1 else requests[0]

    def next_conversation(self, worker: int = 0) -> body_mod.Conversation:
        """[body] multi_turn: the next conversation, taken in turn as bodies are (next_request)."""
        return self.conversations[self._next_index(worker, len(self.conversations))]

    def _next_index(self, worker: int, n: int) -> int:
        if self._next_body is None:
            self._next_body = worker * WORKER_BODY_STRIDE
        self._next_body += 1
        return self._next_body % n

    def trace_request(self, line: int) -> PreparedRequest:
        """[load] trace: the request of the trace's line ``line`` (in time order), its body built now."""
        return self.request_for(self.trace.body(line))

    def request_for(self, body: bytes) -> PreparedRequest:
        """A request of the scenario's with this body (a conversation's turn, built when it is sent)."""
        req = self.scenario.request
        return PreparedRequest.build(req.method, self.url, req.headers, body)


def _resolve(url: str) -> Endpoint:
    try:
        return Endpoint.resolve(url)
    except (ValueError, ConnectionError) as err:
        raise BadInput(str(err)) from None


def _tls_context(verify: bool, ca_bundle: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if ca_bundle:
        try:
            ctx.load_verify_locations(ca_bundle)
        except (OSError, ssl.SSLError) as err:
            raise BadInput(f"[stream] ca_bundle {ca_bundle!r} cannot be loaded: {err}") from None
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _tokenizer(path: str, base_dir: Path | None):
    if not path:
        return None
    where = Path(path) if Path(path).is_absolute() or base_dir is None else base_dir / path
    try:
        return load_tokenizer(str(where))
    except ValueError as err:
        raise BadInput(str(err)) from None
