"""The tools bench/peers/run.py holds to the truth: how each is installed, started and read back.

Each peer is installed by pip, at a pinned version, into a virtual environment of its own under
bench/peers/.venvs/<tool> (git-ignored; never a dependency of sseload). For each tool this module
knows the command that streams OpenAI chat completions from a base URL at a fixed concurrency for a
fixed time (or the request count that lasts that long), with a fixed prompt and max_tokens and a
tokenizer on local disk (no hub), and where the tool writes its own percentiles: run.py compares
what the tool says, never what it would say if we computed it from its raw records.

Metric names differ; what is compared is the same quantity:
- TTFT: request sent to the first chunk carrying content.
- TPOT: per request, (end - TTFT) / (output tokens - 1) (aiperf and guidellm call it ITL,
  inference-perf and evalscope TPOT, sseload TPOT).
- ITL: per chunk, the gap between consecutive content chunks (aiperf's inter_chunk_latency,
  inference-perf's inter_token_latency, evalscope's ITL, sseload's itl); guidellm reports none.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"

# HF_HUB_OFFLINE=1 is what a tool should honour; HF_ENDPOINT on a closed loopback port makes any
# hub call that slips through fail at once instead of hanging (this machine reaches no hub)
NO_HUB = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1",
          "TOKENIZERS_PARALLELISM": "false"}


@dataclass
class Run:
    """One point: what a tool's command is built from."""

    url: str  # the truth server's base URL, http://127.0.0.1:PORT
    concurrency: int
    duration_s: float  # how long the tool should load (its own clock, ramp included)
    stream_s: float  # one stream's length at the server's schedule
    tokens: int  # content chunks per stream (= max_tokens asked)
    tokenizer: Path  # a Hugging Face tokenizer directory on local disk
    out: Path  # the tool's output directory (empty, exists)
    prompt: str = "hello there"


@dataclass
class Reported:
    """What a tool reported, in ms; None where it reports no such number."""

    ttft_p50: float | None = None
    ttft_p99: float | None = None
    tpot_p50: float | None = None
    tpot_p99: float | None = None
    itl_p50: float | None = None
    itl_p99: float | None = None
    completed: int | None = None  # requests the tool counted as completed (successful)


@dataclass
class Tool:
    name: str
    pip: list[list[str]]  # pip install steps, in order (a step per list)
    python: tuple[int, int]  # the oldest Python the pinned version installs on
    exe: str  # the console script in the venv's bin/
    command: Callable[[Run], list[str]]
    read: Callable[[Path], Reported]
    env: dict = field(default_factory=dict)
    note: str = ""

    @property
    def venv(self) -> Path:
        return VENVS / self.name

    @property
    def spec(self) -> str:
        return " ; ".join(" ".join(step) for step in self.pip)


def _pct(stats: dict, key50: str = "p50", key99: str = "p99", scale: float = 1.0) -> tuple[float | None, float | None]:
    if not stats:
        return None, None
    v50, v99 = stats.get(key50), stats.get(key99)
    return (None if v50 is None else v50 * scale), (None if v99 is None else v99 * scale)


# --- sseload ------------------------------------------------------------------------------------

def sseload_command(run: Run) -> list[str]:
    scenario = run.out / "scenario.toml"
    scenario.write_text(
        'name = "peers"\n[request]\n'
        f'url = "{run.url}/v1/chat/completions"\nmethod = "POST"\n'
        'headers = { "Content-Type" = "application/json" }\n[body]\n'
        f'json = {{ model = "truth", stream = true, max_tokens = {run.tokens}, '
        f'messages = [{{ role = "user", content = "{run.prompt}" }}] }}\n'
        '[stream]\nformat = "openai"\ncompletion = "done"\n'
    )
    spawn = max(1.0, run.concurrency / 2.0)  # all users within 2 s
    return [sys.executable, "-m", "sseload", "run", str(scenario), "-u", str(run.concurrency), "-r", f"{spawn:g}",
            "-t", f"{math.ceil(run.duration_s)}s", "--results-dir", str(run.out), "--run-id", "run"]


def sseload_read(out: Path) -> Reported:
    s = json.loads((out / "run" / "summary.json").read_text())
    r = Reported(completed=s.get("outcomes", {}).get("ok", 0))
    r.ttft_p50, r.ttft_p99 = _pct(s.get("ttft_ms"))
    r.tpot_p50, r.tpot_p99 = _pct(s.get("tpot_ms"))
    r.itl_p50, r.itl_p99 = _pct(s.get("itl_ms"))
    return r


# --- NVIDIA AIPerf ------------------------------------------------------------------------------

def aiperf_command(run: Run) -> list[str]:
    # --use-server-token-count: output tokens from the usage chunk, so TPOT divides by the truth's
    # count; --no-server-metrics: it would scrape base_url/metrics (a stream here)
    return [str(VENVS / "aiperf" / "bin" / "aiperf"), "profile", "--model-names", "truth", "--endpoint-type", "chat",
            "--streaming", "--url", run.url, "--concurrency", str(run.concurrency),
            "--benchmark-duration", f"{run.duration_s:g}", "--benchmark-grace-period", "10",
            "--tokenizer", str(run.tokenizer), "--use-server-token-count",
            "--prompt-input-tokens-mean", "2", "--prompt-input-tokens-stddev", "0",
            "--prompt-output-tokens-mean", str(run.tokens), "--prompt-output-tokens-stddev", "0",
            "--output-artifact-dir", str(run.out), "--ui-type", "none", "--no-server-metrics", "--no-gpu-telemetry"]


def aiperf_read(out: Path) -> Reported:
    d = json.loads((out / "profile_export_aiperf.json").read_text())
    r = Reported(completed=int((d.get("request_count") or {}).get("avg") or 0))
    r.ttft_p50, r.ttft_p99 = _pct(d.get("time_to_first_token"))
    r.tpot_p50, r.tpot_p99 = _pct(d.get("inter_token_latency"))
    r.itl_p50, r.itl_p99 = _pct(d.get("inter_chunk_latency"))
    return r


# --- guidellm -----------------------------------------------------------------------------------

def guidellm_command(run: Run) -> list[str]:
    return [str(VENVS / "guidellm" / "bin" / "guidellm"), "run",
            "--backend", f"kind=openai_http,target={run.url},model=truth",
            "--profile", f"kind=concurrent,streams={run.concurrency}",
            "--constraint", f"kind=max_duration,seconds={run.duration_s:g}",
            "--tokenizer", f"kind=huggingface_auto,model={run.tokenizer}",
            "--data", f"kind=synthetic_text,prompt_tokens=2,output_tokens={run.tokens}",
            "--output", f"kind=json,path={run.out / 'benchmarks.json'}", "--disable-progress"]


def guidellm_read(out: Path) -> Reported:
    b = json.loads((out / "benchmarks.json").read_text())["benchmarks"][0]["metrics"]

    def ok(name: str) -> dict:
        return ((b.get(name) or {}).get("successful") or {}).get("percentiles") or {}

    r = Reported(completed=int((b.get("request_totals") or {}).get("successful") or 0))
    r.ttft_p50, r.ttft_p99 = _pct(ok("time_to_first_token_ms"))
    r.tpot_p50, r.tpot_p99 = _pct(ok("inter_token_latency_ms"))  # (end - TTFT) / (tokens - 1)
    return r


# --- inference-perf -----------------------------------------------------------------------------

def inference_perf_command(run: Run) -> list[str]:
    # no duration for the concurrent load type: the request count that keeps every stream busy as long
    requests = run.concurrency * max(1, round(run.duration_s / run.stream_s))
    config = run.out / "config.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "load": {"type": "concurrent", "num_workers": 1, "worker_max_concurrency": run.concurrency,
                 "stages": [{"num_requests": requests, "concurrency_level": run.concurrency}]},
        "api": {"type": "chat", "streaming": True},
        "server": {"type": "vllm", "model_name": "truth", "base_url": run.url, "ignore_eos": True},
        "tokenizer": {"pretrained_model_name_or_path": str(run.tokenizer)},
        "data": {"type": "mock"},  # a fixed prompt ("mock prompt N"); chat needs mock, shareGPT or shared_prefix
        "report": {"request_lifecycle": {"summary": True, "per_stage": False, "per_request": False}},
        "storage": {"local_storage": {"path": str(run.out / "reports")}},
    }, indent=1))
    return [str(VENVS / "inference-perf" / "bin" / "inference-perf"), "--config_file", str(config)]


def inference_perf_read(out: Path) -> Reported:
    d = json.loads((out / "reports" / "summary_lifecycle_metrics.json").read_text())
    ok = d.get("successes") or {}
    lat = ok.get("latency") or {}
    r = Reported(completed=int(ok.get("count") or 0))
    r.ttft_p50, r.ttft_p99 = _pct(lat.get("time_to_first_token"), "median", "p99", 1e3)  # seconds
    r.tpot_p50, r.tpot_p99 = _pct(lat.get("time_per_output_token"), "median", "p99", 1e3)
    r.itl_p50, r.itl_p99 = _pct(lat.get("inter_token_latency"), "median", "p99", 1e3)
    return r


# --- evalscope ----------------------------------------------------------------------------------

def evalscope_command(run: Run) -> list[str]:
    # --number caps the count, --duration the time: the count is set past what the time allows
    number = run.concurrency * (2 + math.ceil(run.duration_s / run.stream_s))
    return [str(VENVS / "evalscope" / "bin" / "evalscope"), "perf", "--model", "truth", "--api", "openai",
            "--url", f"{run.url}/v1/chat/completions", "--parallel", str(run.concurrency), "--number", str(number),
            "--duration", f"{run.duration_s:g}", "--prompt", run.prompt, "--max-tokens", str(run.tokens), "--stream",
            "--tokenizer-path", str(run.tokenizer), "--outputs-dir", str(run.out), "--no-timestamp",
            "--no-test-connection"]


def evalscope_read(out: Path) -> Reported:
    run_dir = next(p.parent for p in out.rglob("benchmark_percentile.json"))
    rows = {row["Percentiles"]: row for row in json.loads((run_dir / "benchmark_percentile.json").read_text())}
    summary = json.loads((run_dir / "benchmark_summary.json").read_text())
    p50, p99 = rows.get("50%", {}), rows.get("99%", {})
    return Reported(ttft_p50=p50.get("TTFT (ms)"), ttft_p99=p99.get("TTFT (ms)"),
                    tpot_p50=p50.get("TPOT (ms)"), tpot_p99=p99.get("TPOT (ms)"),
                    itl_p50=p50.get("ITL (ms)"), itl_p99=p99.get("ITL (ms)"),
                    completed=int(summary.get("Success Requests") or 0))


TOOLS: dict[str, Tool] = {t.name: t for t in [
    Tool("sseload", [], sys.version_info[:2], "", sseload_command, sseload_read,
         note="this checkout, in the Python that runs the bench"),
    # aiperf refuses a local tokenizer path under HF_HUB_OFFLINE (it then looks only in the hub cache)
    Tool("aiperf", [["aiperf==0.13.0"]], (3, 10), "aiperf", aiperf_command, aiperf_read),
    # guidellm asks for torch unpinned: the CPU build on local disk first, else pip fetches CUDA's
    Tool("guidellm", [["torch==2.13.0"], ["guidellm==0.8.1"]], (3, 10), "guidellm", guidellm_command, guidellm_read,
         env={"HF_HUB_OFFLINE": "1"}),
    Tool("inference-perf", [["inference-perf==0.7.0"]], (3, 12), "inference-perf", inference_perf_command,
         inference_perf_read, env={"HF_HUB_OFFLINE": "1"}),
    Tool("evalscope", [["evalscope[perf]==1.14.1"]], (3, 10), "evalscope", evalscope_command, evalscope_read,
         env={"HF_HUB_OFFLINE": "1"}),
]}


def tokenizer_dir(path: Path, tokens_word: str = "tok") -> Path:
    """A tiny Hugging Face tokenizer (WordLevel, split on whitespace) written to disk.

    The truth server's content chunks are "tok", " tok", ...: one token each under this tokenizer,
    so a tool that counts tokens itself counts what the server's usage says. No hub is reached."""
    path.mkdir(parents=True, exist_ok=True)
    words = ["[UNK]", "[EOS]", tokens_word, "hello", "there", "the", "of", "and", "to", "a", "in", "is", "it"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    special = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True} for t in ("[UNK]", "[EOS]")]
    (path / "tokenizer.json").write_text(json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": special, "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}}))
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "eos_token": "[EOS]",
        "model_max_length": 1000000}))
    return path
