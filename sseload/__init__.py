"""sseload: load and latency benchmarking for Server-Sent Events services.

What user code imports lives here, and stays here when modules move::

    from sseload import SSEUser, PreparedRequest    # a locustfile of your own (locustfiles/custom_user.py)
    from sseload import load, summarise             # a run's files as pandas frames (analysis/)

Each name is imported when first used, so ``import sseload`` (an analysis script) loads neither
Locust nor gevent. The package's folders follow the data's way through a run: ``scenario``,
``run``, ``transport``, ``protocol``, ``record``, ``views`` (CONTRIBUTING.md says what each holds).
"""

from importlib import import_module

__version__ = "0.1.0"
SCHEMA_VERSION = 1

#: The public names and the module each comes from.
_PUBLIC = {
    "SSEUser": "sseload.run.user",  # the Locust user: subclass it, call self.stream(request)
    "PreparedRequest": "sseload.transport.request",  # a request built once: PreparedRequest.build(method, url, ...)
    "StreamRecord": "sseload.record.records",  # what self.stream returns: one stream's raw facts
    "Outcome": "sseload.protocol.outcomes",  # how a stream ended
    "load": "sseload.views.results",  # results.load(run_dir): the run's frames (streams, events, health, info)
    "summarise": "sseload.views.results",  # the numbers every output shows, as a dict
    "stream_gaps": "sseload.views.results",  # each stream's gaps between events
    "active_streams_at": "sseload.views.results",  # how many streams were open at given times
}

__all__ = ["SCHEMA_VERSION", "__version__", *_PUBLIC]


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'sseload' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
