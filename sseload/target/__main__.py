"""``sseload serve`` / ``python -m sseload.target``: run the reference target."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tomllib
from pathlib import Path

from sseload.scenario.load import check_flag
from sseload.target.config import FAULTS, ConfigError, Dist, TargetConfig

#: Credentials come from the environment, never from flags (which `ps` shows to everyone).
CREDENTIAL_ENV = {
    "tokens": "SSELOAD_TARGET_TOKENS",  # tok1,tok2
    "aksk": "SSELOAD_TARGET_AKSK",  # AK:SK,AK2:SK2
    "app_keys": "SSELOAD_TARGET_APP_KEYS",  # KEY:SECRET
    "app_codes": "SSELOAD_TARGET_APP_CODES",  # code1,code2
    "iam_users": "SSELOAD_TARGET_IAM_USERS",  # name:password
}


def credentials_from_env(environ=os.environ) -> dict:
    out: dict = {}
    for name, var in CREDENTIAL_ENV.items():
        raw = environ.get(var, "")
        items = [item for item in raw.split(",") if item]
        if not items:
            continue
        if name in ("tokens", "app_codes"):
            out[name] = items
        else:
            pairs = [item.partition(":") for item in items]
            if any(not sep for _, sep, _ in pairs):
                raise ConfigError(f"{var} must hold NAME:SECRET pairs separated by commas")
            out[name] = {k: v for k, _, v in pairs}
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sseload serve",
        description="Run the reference target: an SSE service behind an emulated API gateway.",
        epilog="Credentials come from the environment: "
        + ", ".join(f"{v} ({k})" for k, v in CREDENTIAL_ENV.items())
        + ". With none set, no authentication is required.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port (default 8080)")
    p.add_argument("--config", type=Path, help="TOML or JSON file with target settings")
    p.add_argument("--ttfe-ms", help="time to first event: 200, uniform:100:300, lognormal:200:0.5")
    p.add_argument("--gap-ms", help="gap between events, same forms as --ttfe-ms")
    p.add_argument("--events", type=int)
    p.add_argument("--tokens-per-chunk", help="OpenAI-style streams: tokens per content chunk, same forms")
    p.add_argument("--prefill-ms-per-word", type=float,
                   help="OpenAI-style streams: time to first token grows by this per prompt word")
    p.add_argument("--payload-bytes", type=int)
    p.add_argument("--limit-s", type=float, help="gateway limit per request (default 40)")
    p.add_argument("--max-body-bytes", type=int, help="largest request body (default 12 MiB)")
    p.add_argument("--cutoff", choices=["cut", "close"], help="what a stream past the limit gets")
    p.add_argument("--fault", action="append", default=[], metavar="NAME=RATE",
                   help=f"inject a fault at a rate; names: {', '.join(FAULTS)}")
    p.add_argument("--stall-s", type=float)
    p.add_argument("--slow-headers-s", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    p.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate chain (PEM)")
    p.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    return p


#: The flags that set a key of the target's settings (``--stall-s`` sets ``stall_s``); a number takes
#: its key's range (sseload.target.config), checked here so the message names the flag.
KEY_FLAGS = ("host", "port", "ttfe_ms", "gap_ms", "events", "tokens_per_chunk", "prefill_ms_per_word",
             "payload_bytes", "limit_s", "max_body_bytes", "cutoff", "stall_s", "slow_headers_s", "seed")


def flag_of(key: str) -> str:
    return "--" + key.replace("_", "-")


def example_of(key: str) -> str:
    """The flag given its default, as the example of a message: ``--limit-s 40``."""
    default = TargetConfig.__dataclass_fields__[key].default
    return f"{flag_of(key)} {1 if default is None else f'{default:g}' if isinstance(default, float) else default}"


def config_from_args(args: argparse.Namespace) -> TargetConfig:
    raw: dict = {}
    if args.config:
        text = args.config.read_text()
        raw = json.loads(text) if args.config.suffix == ".json" else tomllib.loads(text)
    for name in KEY_FLAGS:
        value = getattr(args, name)
        if value is None:
            continue
        meta = TargetConfig.__dataclass_fields__[name].metadata
        if "range" in meta:
            check_flag(value, meta, flag_of(name), example_of(name))
        raw[name] = Dist.parse(value, flag_of(name)) if meta.get("form") == "dist" else value
    faults = dict(raw.get("faults", {}))
    for item in args.fault:
        name, sep, rate = item.partition("=")
        try:
            faults[name] = float(rate) if sep else 1.0
        except ValueError:
            raise ConfigError(f"--fault {item!r}: write NAME=RATE, e.g. reset=0.1") from None
        check_flag(faults[name], TargetConfig.__dataclass_fields__["faults"].metadata, f"--fault {name}",
                   "--fault reset=0.1")
    if faults:
        raw["faults"] = faults
    raw.update(credentials_from_env())
    return TargetConfig.from_dict(raw, str(args.config or "target settings"))


def _raise_fd_limit() -> None:
    """Thousands of concurrent streams need more descriptors than the usual soft limit of 1024."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 65536:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(65536, hard), hard))
    except (ImportError, ValueError, OSError):
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except (ConfigError, OSError, ValueError) as err:
        print(f"sseload serve: {err}", file=sys.stderr)
        return 2
    _raise_fd_limit()
    tls = None
    if args.tls_cert:
        import ssl

        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as err:
            print(f"sseload serve: cannot load --tls-cert/--tls-key: {err}", file=sys.stderr)
            return 2
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    def ready(host: str, port: int) -> None:
        if args.port_file:
            tmp = args.port_file.with_suffix(".tmp")
            tmp.write_text(str(port))
            tmp.replace(args.port_file)
        print(f"sseload target listening on {'https' if tls else 'http'}://{host}:{port}", flush=True)

    async def run() -> None:
        from sseload.target.server import serve

        task = asyncio.ensure_future(serve(cfg, ready, tls))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(run())
    except OSError as err:
        print(f"sseload serve: cannot listen on {cfg.host}:{cfg.port}: {err.strerror}; "
              "pick another --port (0 for any free one)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
