"""The run record: ``result.json`` and ``history.csv`` in a run's output dir.

These two files are the only interface between training and analysis (their names, statuses,
columns and metric keys: :mod:`spacing.contract`). Both are rewritten
atomically after every epoch, so a reader sees either the previous or the new version, and a
run killed at any point leaves ``status: running`` (never ``completed``).
"""

from __future__ import annotations

import csv
import io
import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spacing.atomic import atomic_write_text
from spacing.config import SCHEMAS
from spacing.contract import HISTORY_COLUMNS, HISTORY_FILE, RESULT_FILE, RUNNING, STATUSES, summarize

if TYPE_CHECKING:
    import torch

_PACKAGES = ("torch", "torchvision", "numpy", "omegaconf", "hydra-core", "submitit")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The commit of the code that ran (with ``+dirty`` if it had local changes), or None outside git."""
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def hardware(device: torch.device) -> dict[str, Any]:
    """What a run trains on, for the record: ``device`` and ``threads``.

    ``device`` is ``{"kind": "cpu", "count": 1}`` or ``{"kind": "NVIDIA H200", "count": 1}`` (the
    GPU's name; ``count`` is how many devices the run holds, one today); ``threads`` is torch's intra-op
    thread count. Both decide whether two runs of one seed can give identical numbers (CPU results
    change with the thread count; GPU kernels differ between GPU models), and the device prices the
    run's wall time. torch is imported here, not at module level, so that readers of records need
    no torch.
    """
    import torch

    if device.type == "cuda":
        kind = torch.cuda.get_device_name(device)
    else:
        kind = device.type
    return {"device": {"kind": kind, "count": 1}, "threads": torch.get_num_threads()}


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """The fields that place a run in a sweep, read leniently so a bad config still gets a record.

    A control run (``method.control=matched``) is massed (interval 0, periodic) and names the spaced
    cell it controls in ``control``; the trainer fills in the strengths once the method is built.
    """
    method = config.get("method") or {}
    interval, schedule, control = method.get("interval"), method.get("schedule"), None
    if method.get("control") == "matched":
        schema = SCHEMAS["method"].get(str(method.get("name")))
        kind = getattr(schema, "control_kind", None) or "matched"
        control = {"kind": kind, "interval": interval, "strength": None, "schedule": schedule}
        interval, schedule = 0.0, "periodic"
    return {
        "method": method.get("name"),
        "interval": interval,
        "schedule": schedule,
        "strength_name": None,
        "strength": None,
        "main_target": None,
        "control": control,
        "seed": config.get("seed"),
        "dataset": (config.get("dataset") or {}).get("name"),
        "model": (config.get("model") or {}).get("name"),
        "epochs": (config.get("trainer") or {}).get("epochs"),
    }


def read_result(out_dir: Path) -> dict[str, Any] | None:
    """The run record in `out_dir` as a JSON object, or None when there is none (or it is not one)."""
    try:
        record = json.loads((out_dir / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def read_record(out_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The run record in `out_dir` and, when result.json is there but is not a usable record, why not.

    Usable: a JSON object with a ``status`` and the resolved ``config`` (an object): what the runner
    needs before it skips, resumes or refuses a cell. A file killed mid-write never stays behind
    (writes are atomic); what is damaged was damaged by something else, and is said.
    """
    path = out_dir / RESULT_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path} cannot be read ({exc.strerror})"
    try:
        record = json.loads(text)
    except ValueError:
        return None, f"{path} is not valid JSON ({'empty' if not text.strip() else 'truncated or garbage'})"
    if not isinstance(record, dict) or record.get("status") not in STATUSES or not isinstance(record.get("config"), dict):
        return None, f"{path} is not a run record (no status and config)"
    return record, None




class RunRecord:
    """Builds and saves the run record of one output dir."""

    def __init__(self, out_dir: Path, config: dict[str, Any]) -> None:
        self.out_dir = out_dir
        self.history: list[dict[str, Any]] = []
        self.data: dict[str, Any] = {
            "status": RUNNING,
            **identity(config),
            "epochs_completed": 0,
            "steps": 0,
            "wall_time_s": 0.0,
            "images_per_s": None,
            "device": None,
            "threads": None,
            "metrics": {},
            "counters": {},
            "fused": None,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "finished_at": None,
            "config": config,
            "versions": package_versions(),
            "git_commit": git_commit(),
            "error": None,
        }

    def update(self, **fields: Any) -> None:
        self.data.update(fields)

    def add_epoch(self, rows: list[dict[str, Any]]) -> None:
        """Append one epoch's history rows (one per target) and refresh the metrics."""
        self.history.extend(rows)
        self.data["epochs_completed"] = max(r["epoch"] for r in self.history)
        self.data["metrics"] = summarize(self.history)

    def restore_history(self, rows: list[dict[str, Any]]) -> None:
        self.history = []
        if rows:
            self.add_epoch(rows)

    def save(self, status: str = RUNNING, error: str | None = None) -> None:
        assert status in STATUSES, status
        self.data["status"] = status
        self.data["error"] = error
        if status != RUNNING:
            self.data["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(self.out_dir / HISTORY_FILE, buffer.getvalue())
        atomic_write_text(self.out_dir / RESULT_FILE, json.dumps(self.data, indent=2) + "\n")
