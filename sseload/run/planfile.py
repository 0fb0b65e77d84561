"""The run-plan file: what ``sseload run`` tells each Locust process it starts, in one JSON file.

``sseload run`` decides things about a run that Locust's own options cannot carry: that it made
the run's folder (the child adopts it, never makes another), that the host is the reference
target it started, how long the run lasts for workers (which get no ``-t``), that a progress line
is wanted, and how long a child whose ``sseload`` died may take to stop. It writes them here,
into its own temporary folder, and passes the path with ``--sseload-plan``. Plain ``locust -f``
has no plan file: each process then decides for itself. The fields are documented in
docs/workers.md ("The run-plan file"), held to this dataclass by tests/test_run_lifecycle.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

#: The Locust option that names the file.
OPTION = "--sseload-plan"
FILE_NAME = "run-plan.json"
VERSION = 1


class PlanFileError(ValueError):
    """A run-plan file that cannot be read; the message names it."""


@dataclass(frozen=True)
class PlanFile:
    """One run's plan, the same for its master, its workers or its one standalone process."""

    results_dir: str  # where the run's folder is
    run_id: str  # the run's folder, which `sseload run` has made: the child adopts it
    embedded_target: bool  # the host is the reference target `sseload run` started
    run_s: float  # the run time in seconds: no arrival of the open model is scheduled after it
    progress: bool  # show the progress line while the load runs (the process that aggregates)
    orphan_grace_s: float  # once `sseload` is gone, the child stops in order within this, or is killed
    # [load] values over the scenario's: a point of `sseload search` (its arrival and rate; sseload.run.search)
    load: dict[str, Any] = field(default_factory=dict)
    version: int = VERSION

    @property
    def run_dir(self) -> Path:
        return Path(self.results_dir) / self.run_id

    def write(self, folder: Path) -> Path:
        """The file in ``folder``, written whole; its path, for ``--sseload-plan``."""
        path = Path(folder) / FILE_NAME
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)
        return path

    def apply(self, scenario) -> None:
        """The plan's [load] values over the scenario's, in the child as in `sseload run` itself."""
        override_load(scenario, self.load)

    @classmethod
    def read(cls, path: str | Path) -> PlanFile:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise PlanFileError(f"{OPTION} {path}: cannot read the run-plan file ({err}); it is written by "
                                "`sseload run` for the Locust processes it starts: leave the option out") from None
        names = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or raw.get("version") != VERSION or set(raw) != names:
            raise PlanFileError(f"{OPTION} {path}: not a run-plan file of this sseload (version {VERSION}, fields "
                                f"{', '.join(sorted(names))}); start the run with `sseload run`")
        return cls(**raw)


def override_load(scenario, values: Mapping[str, Any]) -> None:
    """Set [load] ``values`` (already checked by whoever decided them) on ``scenario``."""
    for key, value in values.items():
        if not hasattr(scenario.load, key):
            raise PlanFileError(f"{OPTION}: [load] has no {key!r}; the run-plan file is not this sseload's")
        setattr(scenario.load, key, value)
