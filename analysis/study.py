"""The end of a study: the best trial and its parameters, not verdicts about intervals it never varied.

An optimising sweeper (Optuna, via ``+tune=lr``; Nevergrad and Ax write the same file) chooses its
trials while it runs and writes what it found to ``<sweep dir>/optimization_results.yaml``. Its
trials are cells like any other, but they vary a learning rate, not an interval: gains over massed
and interval figures would answer a question nobody asked. So a study ends with what the sweeper
concluded, the trials' outcomes counted from their records, and the best trial's dir.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from analysis.records import load_records

RESULTS_FILE = "optimization_results.yaml"


def read_results(sweep_dir: Path) -> dict[str, Any] | None:
    """What the sweeper concluded, or None when this sweep was no study (or it wrote nothing readable)."""
    path = sweep_dir / RESULTS_FILE
    if not path.is_file():
        return None
    import yaml  # comes with Hydra, which ran the study

    try:
        results = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return results if isinstance(results, dict) else None


def lines(sweep_dir: Path, results: dict[str, Any], objective: str) -> list[str]:
    """The study's report: its trials' outcomes, then its best trial and parameters (last)."""
    name = results.get("name") or "optimising"
    params = results.get("best_params") or results.get("best_evaluated_params") or {}
    value = results.get("best_value", results.get("best_evaluated_result"))
    records = load_records([sweep_dir]).records
    statuses = Counter(str(record.get("status")) for record in records)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    head = f"study of {sweep_dir} ({name} sweeper, {len(records)} trials: {counts or 'none recorded'}):"
    if not params:
        return [head, f"no best trial to report: {sweep_dir / RESULTS_FILE} names none (several objectives, or "
                      "no trial completed)"]
    settings = " ".join(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"
                        for key, value in params.items())
    best = next((record["path"] for record in records if _matches(record, params)), None)
    found = f"{objective} {value:.4f}" if isinstance(value, (int, float)) else f"{objective} {value}"
    where = f" in {best}" if best else ""
    return [head, f"best trial: {settings} ({found}){where}",
            f"to use it, add {settings} to the command line of the grid it was tuned for"]


def _matches(record: dict[str, Any], params: dict[str, Any]) -> bool:
    """Whether a trial's record ran with every one of ``params`` (floats as Hydra parsed them back)."""
    config = record.get("numbers_config") or {}
    for key, wanted in params.items():
        value = config.get(key)
        if isinstance(wanted, float) and isinstance(value, (int, float)):
            if not math.isclose(value, wanted, rel_tol=1e-9):
                return False
        elif value != wanted:
            return False
    return True
