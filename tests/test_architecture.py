"""The layout holds what CONTRIBUTING.md says of it: no import cycle, modules of one concept each
(about 400 lines at most, the exceptions named there), tests that do not import each other."""

from __future__ import annotations

import ast
import re

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

PACKAGE = ROOT / "sseload"
MAX_LINES = 400


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path) -> set[str]:
    """Every sseload module ``path`` imports, function-local imports included, TYPE_CHECKING ones not."""
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("sseload"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sseload"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists()
                          else node.module)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_module_imports_itself_back_through_others():
    edges = graph()
    # a package's __init__ importing its own module is how a package is made, not a cycle
    edges["sseload"] = set()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*path, node]):
                return True
        state[node] = 2
        return False

    for start in sorted(edges):
        if state.get(start) is None and visit(start, []):
            break
    assert not cycle, " -> ".join(cycle)


def exceptions_named_in_contributing() -> set[str]:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    section = text.split("## The layout", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^- `(sseload/[\w/]+\.py)`:", section, re.M))


def test_every_module_stays_under_400_lines_but_the_named_exceptions():
    allowed = exceptions_named_in_contributing()
    long = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    over = {path: n for path, n in long.items() if n > MAX_LINES and path not in allowed}
    assert not over, f"over {MAX_LINES} lines and not named in CONTRIBUTING.md's layout section: {over}"
    stale = {path for path in allowed if long.get(path, 0) <= MAX_LINES}
    assert not stale, f"named as exceptions but no longer long (take them out of CONTRIBUTING.md): {stale}"


def test_no_test_module_imports_another():
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("tests.test_"), f"{path.name} imports {node.module}"


def test_the_folders_name_the_stages_of_the_flow_in_the_readmes_order():
    stages = ["scenario", "run", "transport", "protocol", "record", "views"]
    readme = (ROOT / "README.md").read_text().split("**The code**", 1)[1]
    positions = [readme.index(f"`{stage}/`" if stage != "scenario" else "`sseload/scenario/`") for stage in stages]
    assert positions == sorted(positions)
    layout = (ROOT / "CONTRIBUTING.md").read_text().split("## The layout", 1)[1]
    positions = [layout.index(f"`sseload/{stage}/`") for stage in stages]
    assert positions == sorted(positions)
    for stage in stages:
        assert (PACKAGE / stage / "__init__.py").exists(), stage
