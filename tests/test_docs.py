"""The docs that name what the code declares are held to it: the outcome table."""

from __future__ import annotations

import pytest

from sseload.protocol.outcomes import Outcome
from tests.conftest import ROOT

pytestmark = pytest.mark.unit


def test_the_outcome_table_lists_exactly_the_outcomes_with_their_error_flag():
    page = (ROOT / "docs" / "outcomes.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert [row.split("|")[1].strip().strip("`") for row in rows] == [o.value for o in Outcome]
    for row in rows:
        name = row.split("|")[1].strip().strip("`")
        assert row.rstrip("| ").endswith("yes") == Outcome(name).error, name


def test_the_readme_is_a_front_door_of_at_most_100_lines():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 100
    for page in ("docs/outcomes.md", "docs/security.md", "docs/scenarios.md", "docs/measurement.md"):
        assert page in readme, page
