"""The compiled pieces: sseload._reader (Linux) and sseload._sse. Everything else is in pyproject.toml.

Both are optional: where they cannot be built, sseload reads streams in Python
(sseload.transport.reactor) and parses them in Python (sseload.protocol.sse.PyEventLog), and says so in run.json.
"""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform == "linux":
    ext_modules.append(Extension("sseload._reader", ["sseload/_reader.c"], depends=["sseload/_sse_api.h"],
                                 optional=True, extra_compile_args=["-O2", "-std=gnu11"]))

# The compiled event log: one C source beside each Python module it twins (sseload/protocol/_sse.h).
SSE_SOURCES = [f"sseload/protocol/{name}.c" for name in ("framing", "scan", "sse", "_sse_module")]
ext_modules.append(Extension("sseload._sse", SSE_SOURCES, depends=["sseload/_sse_api.h", "sseload/protocol/_sse.h"],
                             optional=True, extra_compile_args=["-O2", "-std=gnu11", "-fvisibility=hidden"]))

setup(ext_modules=ext_modules)
