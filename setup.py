"""The one compiled piece: sseload._reader (Linux). Everything else is in pyproject.toml.

The extension is optional: where it cannot be built, sseload reads streams in Python
(sseload.reactor) and says so in run.json.
"""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform == "linux":
    ext_modules.append(Extension("sseload._reader", ["sseload/_reader.c"], optional=True,
                                 extra_compile_args=["-O2", "-std=gnu11"]))

setup(ext_modules=ext_modules)
