"""What user code imports is sseload's public face (sseload/__init__.py), which does not move when modules do."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

import sseload
from tests.conftest import ROOT

USER_CODE = sorted([*ROOT.glob("analysis/*.py"), *ROOT.glob("locustfiles/*.py")])


def sseload_imports(path) -> list[str]:
    """Every sseload name a file imports, as ``module:name``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sseload":
            found += [f"{node.module}:{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [f"{alias.name}:" for alias in node.names if alias.name.split(".")[0] == "sseload"]
    return found


@pytest.mark.unit
@pytest.mark.parametrize("path", USER_CODE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_user_code_imports_only_the_public_api(path):
    for item in sseload_imports(path):
        module, name = item.split(":")
        assert module == "sseload", f"{path.name} imports {item}: use `from sseload import ...`"
        assert not name or name in sseload.__all__, f"{path.name} imports {name}, which sseload does not export"


@pytest.mark.unit
def test_user_code_uses_only_public_attributes_of_sseload():
    for path in USER_CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "sseload":
                assert node.attr in sseload.__all__, f"{path.name} uses sseload.{node.attr}"


@pytest.mark.unit
def test_every_public_name_resolves():
    for name in sseload.__all__:
        assert getattr(sseload, name) is not None


def test_importing_sseload_loads_neither_locust_nor_gevent():
    code = "import sys, sseload; sseload.load; print(sorted({'locust', 'gevent'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_cli_supervisor_imports_neither_locust_nor_gevent():
    code = ("import sys, sseload.cli, sseload.run.runinfo; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent', 'httptools')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_reports_thresholds_and_the_console_summary_import_no_client_gevent_or_httptools():
    code = ("import sys, sseload.views.report, sseload.views.console, sseload.views.thresholds, "
            "sseload.record.metrics, sseload.cli; print(sorted({'gevent', 'httptools', 'sseload.transport.client', "
            "'sseload.transport.reactor'} & set(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
