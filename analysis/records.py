"""Find, load and check the run records (``result.json``) under sweep directories.

These files are the only interface between training and analysis, and a sweep on a cluster leaves
them in every state: half written, failed, pre-empted. So everything here is defensive: a record
that cannot be parsed or lacks a key the analysis needs is reported by path and skipped, never
guessed at, and a Hydra job directory that has no record yet is reported too.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.cost import cost_share
from analysis.errors import AnalysisError
from analysis.neutral import numbers_config
from spacing.contract import HISTORY_FILE, RESULT_FILE

MULTIRUN_FILE = "multirun.yaml"
HYDRA_DIR = ".hydra"

#: Keys without which a record cannot be placed in a cell; anything else may be absent.
REQUIRED_KEYS = ("status", "method", "interval", "seed", "dataset", "model")


@dataclass(frozen=True)
class Problem:
    """A file or directory the analysis could not use, and why (shown to the user by path)."""

    path: str
    reason: str


@dataclass(frozen=True)
class SweepInfo:
    """What a Hydra multirun said it would run: read from ``multirun.yaml`` when there is one.

    ``seeds`` is None when the file is absent or does not sweep ``seed``; the completeness check
    then falls back to the seeds actually seen.
    """

    root: str
    name: str | None
    seeds: tuple[int, ...] | None


@dataclass
class RecordSet:
    """Everything found under the sweep directories.

    ``records`` are normalised ``result.json`` dicts with ``path`` (the run directory) and
    ``sweep_root`` (the nearest ancestor holding ``multirun.yaml``, else the directory given)
    added; ``problems`` are unreadable or invalid result files; ``orphans`` are Hydra job
    directories that have no result file at all.
    """

    records: list[dict[str, Any]]
    problems: list[Problem]
    orphans: list[Problem]
    sweeps: dict[str, SweepInfo]


def load_records(roots: list[Path]) -> RecordSet:
    """Read every run record under ``roots``; raise AnalysisError if a root does not exist."""
    for root in roots:
        if root.is_file():
            raise AnalysisError(
                f"'{root}' is a file, not a sweep directory; pass the directory that holds it "
                f"(python -m analysis {root.parent}) or the directory Hydra printed for the multirun"
            )
        if not root.is_dir():
            raise AnalysisError(
                f"sweep directory '{root}' does not exist; pass the directory Hydra printed for the "
                "multirun (e.g. multirun/demo) or a run's output directory"
            )
    records: list[dict[str, Any]] = []
    problems: list[Problem] = []
    orphans: list[Problem] = []
    sweeps: dict[str, SweepInfo] = {}
    for root in roots:
        for result_path, sweep_root in _walk(root, orphans, sweeps):
            record = _read(result_path, problems)
            if record is not None:
                record["path"] = str(result_path.parent)
                record["sweep_root"] = sweep_root
                record["sweep"] = record.get("sweep") or sweeps[sweep_root].name
                records.append(record)
    return RecordSet(records, problems, orphans, sweeps)


def _walk(root: Path, orphans: list[Problem], sweeps: dict[str, SweepInfo]) -> list[tuple[Path, str]]:
    """List (result.json path, sweep root) pairs under ``root`` in a stable order.

    A directory holding ``.hydra/`` but no result file is a job Hydra started that never wrote a
    record (crashed at start-up, killed, still queued): it goes to ``orphans``.
    """
    found: list[tuple[Path, str]] = []
    sweep_root_of: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        is_job_dir = HYDRA_DIR in dirnames
        dirnames[:] = sorted(d for d in dirnames if d != HYDRA_DIR)
        parent_root = sweep_root_of.get(os.path.dirname(dirpath), str(root))
        sweep_root = dirpath if MULTIRUN_FILE in filenames else parent_root
        sweep_root_of[dirpath] = sweep_root
        if sweep_root not in sweeps:
            sweeps[sweep_root] = read_sweep_info(Path(sweep_root))
        if RESULT_FILE in filenames:
            found.append((Path(dirpath) / RESULT_FILE, sweep_root))
        elif is_job_dir:
            orphans.append(Problem(dirpath, f"Hydra job directory without {RESULT_FILE}"))
    return found


def _read(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    """Parse and normalise one result file, or note why it cannot be used and return None."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        problems.append(Problem(str(path), f"unreadable: {exc}"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(str(path), "not a JSON object"))
        return None
    if data.get("method") == "baseline" and data.get("interval") is None:
        data["interval"] = 0.0  # a baseline has no ensemble to space: it is its own massed point
    missing = [key for key in REQUIRED_KEYS if data.get(key) is None]
    if missing:
        problems.append(Problem(str(path), f"missing key(s): {', '.join(missing)}"))
        return None
    try:
        data["interval"] = float(data["interval"])  # also accepts "inf" / "Infinity" strings
        data["seed"] = int(data["seed"])
        strength = data.get("strength")
        data["strength"] = None if strength is None else float(strength)
    except (TypeError, ValueError) as exc:
        problems.append(Problem(str(path), f"bad value: {exc}"))
        return None
    if not isinstance(data.get("metrics") or {}, dict):
        problems.append(Problem(str(path), "'metrics' is not an object"))
        return None
    try:
        data.update(_control(data.get("control")))
    except (KeyError, TypeError, ValueError):
        problems.append(Problem(str(path), "bad value: 'control' must be null or an object with 'kind', "
                                           "'interval' and 'strength' (the spaced cell it controls)"))
        return None
    data["schedule"] = data.get("schedule") or "periodic"
    main = data.get("main_target")
    data["main_target"] = main if isinstance(main, str) and main else None
    data["device_kind"], data["device_count"] = _device(data.get("device"))
    data["cost_share"] = cost_share(data.get("fused"))
    threads = data.get("threads")
    data["threads"] = threads if isinstance(threads, int) and not isinstance(threads, bool) else None
    config = data.pop("config", None)  # large: only what decides "same config" is kept
    data["numbers_config"] = numbers_config(config) if isinstance(config, dict) else None
    return data


def _control(control: Any) -> dict[str, Any]:
    """The ``control`` object as flat columns; all None for an ordinary run.

    A control run names the spaced cell it controls: ``kind`` (e.g. ``matched_horizon``), that
    cell's ``interval`` and ``strength``, and optionally its ``schedule`` (default ``periodic``).
    """
    if control is None:
        return {"control_kind": None, "control_interval": None, "control_strength": None, "control_schedule": None}
    if not isinstance(control, dict) or not isinstance(control.get("kind"), str):
        raise ValueError(control)
    strength = control.get("strength")
    return {"control_kind": control["kind"], "control_interval": float(control["interval"]),
            "control_strength": None if strength is None else float(strength),
            "control_schedule": str(control.get("schedule") or "periodic")}


def _device(device: Any) -> tuple[str | None, int]:
    """(kind, count) of the record's ``device`` ({"kind": "cpu", "count": 1}); (None, 1) if absent."""
    if isinstance(device, dict) and isinstance(device.get("kind"), str):
        count = device.get("count")
        return device["kind"], count if isinstance(count, int) and count > 0 else 1
    return None, 1


def read_history(run_dir: str) -> pd.DataFrame:
    """Load one run's per-epoch ``history.csv``; raise OSError/ValueError if it is unusable."""
    frame = pd.read_csv(Path(run_dir) / HISTORY_FILE)
    needed = {"epoch", "target", "test_acc"}  # of spacing.contract.HISTORY_COLUMNS, what the figures draw
    if not needed <= set(frame.columns):
        raise ValueError(f"{HISTORY_FILE} lacks column(s) {sorted(needed - set(frame.columns))}")
    return frame


def read_sweep_info(root: Path) -> SweepInfo:
    """Read the sweep's name and seed list from Hydra's ``multirun.yaml``, if present.

    Hydra records the command-line sweep in ``hydra.overrides.task`` (``seed=0,1,2``,
    ``+sweep=demo``) and a sweep file's grid in ``hydra.sweeper.params``; the command line wins.
    """
    path = root / MULTIRUN_FILE
    if not path.is_file():
        return SweepInfo(str(root), None, None)
    try:
        import yaml  # PyYAML comes with Hydra; without it the sweep's own grid is just not read
    except ImportError:
        return SweepInfo(str(root), None, None)
    try:
        hydra = yaml.safe_load(path.read_text())["hydra"]
        task = [str(item) for item in hydra["overrides"]["task"] or []]
        params = {str(k): str(v) for k, v in ((hydra.get("sweeper") or {}).get("params") or {}).items()}
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return SweepInfo(str(root), None, None)
    for item in task:
        key, _, value = item.partition("=")
        params[key.lstrip("+~")] = value
    seeds = _parse_sweep_values(params["seed"]) if "seed" in params else None
    return SweepInfo(str(root), params.get("sweep"), seeds)


def _parse_sweep_values(text: str) -> tuple[int, ...] | None:
    """Integers of a Hydra sweep value: ``0,1,2``, ``range(3)``, ``range(0,6,2)`` or one int."""
    text = text.strip()
    ranged = re.fullmatch(r"range\(([^)]*)\)", text)
    try:
        if ranged:
            return tuple(range(*(int(part) for part in ranged.group(1).split(","))))
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        return None

