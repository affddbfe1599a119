"""What a sweep dir's files say: each cell's state, and what each launch submitted.

``spacing plan`` and ``spacing status`` both ask :func:`cell_state`, the one place that decides a
cell's state. A cell dir holds the run record (``result.json``, written by the runner) and
``sweep_cell.json`` (written around each job by :class:`spacing.sweep_callback.SweepCallback`: the
launch, the outcome, the host, pid and SLURM job). ``<sweep dir>/.launches/<launch>.json`` says what
one launch submitted: its cells in launch order and, for a detached SLURM launch, each cell's job;
``<sweep dir>/.launches/<launch>/<cell>.json`` what that launch did with each cell.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from spacing.atomic import atomic_write_text
from spacing.contract import COMPLETED, DIVERGED, FAILED, FINISHED, RUNNING
from spacing.record import read_result

CELL_FILE = "sweep_cell.json"
LAUNCHES_DIR = ".launches"
STATES = ("new", RUNNING, "unfinished", COMPLETED, FAILED, DIVERGED)
"""new: never started; running: a process is training it (or may be, on another host);
unfinished: started and stopped before the end (killed, cancelled, pre-empted): the next launch
resumes it from its checkpoint; completed, failed, diverged: as its run record says."""
SKIPPED = "skipped"
"""A launch's outcome for a cell its job found completed (by an earlier launch, or by one running at once)."""


def launch_outcome_path(cell_dir: Path, launch: str) -> Path:
    """``<sweep dir>/.launches/<launch>/<cell>.json``: what launch `launch` did with the cell, and nothing else.

    Apart from the cell's ``sweep_cell.json`` (the latest launch's word, which a concurrent launch
    overwrites), so each launch counts each of its cells by what happened to it in that launch.
    """
    return cell_dir.parent / LAUNCHES_DIR / launch / f"{cell_dir.name}.json"


def read_launch_outcome(cell_dir: Path, launch: str) -> dict[str, Any] | None:
    """What launch `launch` recorded for the cell (as its marker), or None when its job has not started there."""
    try:
        return json.loads(launch_outcome_path(cell_dir, launch).read_text())
    except (OSError, ValueError):
        return None


def read_marker(cell_dir: Path) -> dict[str, Any] | None:
    """The cell's ``sweep_cell.json``, or None when there is none (or it cannot be read)."""
    try:
        return json.loads((cell_dir / CELL_FILE).read_text())
    except (OSError, ValueError):
        return None


def cell_state(cell_dir: Path) -> str:
    """One of :data:`STATES` for the cell in `cell_dir`."""
    record = read_result(cell_dir)
    marker = read_marker(cell_dir)
    started = marker is not None and marker.get("outcome") == RUNNING
    if record is None:  # nothing trained yet, or a job that failed before the runner wrote a record
        if started and _may_be_alive(marker):
            return RUNNING
        return FAILED if marker is not None and marker.get("outcome") == FAILED else "new"
    status = record.get("status")
    if status in FINISHED:
        return str(status)
    return RUNNING if started and _may_be_alive(marker) else "unfinished"


def _may_be_alive(marker: dict[str, Any] | None) -> bool:
    """False only when the marker's process ran on this host and is gone; another host cannot be asked."""
    if marker is None or marker.get("host") != socket.gethostname() or not isinstance(marker.get("pid"), int):
        return True
    try:
        os.kill(marker["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_launch(
    sweep_dir: Path, launch: str, cells: list[Path], command: list[str], slurm_jobs: list[str] | None = None
) -> None:
    """Record what launch `launch` submits: its cells (in launch order) and, when it submitted them to SLURM
    and returned, the job of each (``123_4``: task 4 of array 123; ``123``: a job of one task)."""
    record = {
        "launch": launch,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "unix_time": time.time(),
        "command": command,
        "cells": [cell.name for cell in cells],
        "slurm_jobs": slurm_jobs,
    }
    atomic_write_text(sweep_dir / LAUNCHES_DIR / f"{launch}.json", json.dumps(record, indent=2) + "\n")


def read_launches(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every launch record of `sweep_dir`, oldest first (unreadable ones are skipped)."""
    launches = []
    for path in (sweep_dir / LAUNCHES_DIR).glob("*.json"):
        try:
            launches.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(launches, key=lambda launch: float(launch.get("unix_time") or 0))


def slurm_task(marker: dict[str, Any]) -> str | None:
    """The SLURM job a cell's marker says ran it: ``<array>_<index>`` for an array task, else the job id."""
    env = marker.get("slurm") or {}
    if "SLURM_ARRAY_JOB_ID" in env and "SLURM_ARRAY_TASK_ID" in env:
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")
