"""``spacing status SWEEP_DIR``: where a sweep stands, from its files and (where reachable) SLURM.

Works from any shell at any time: nothing of the launching process is needed. Each cell's state
comes from :func:`spacing.sweep_state.cell_state`; where SLURM answers (``sacct``, ``squeue``),
the state of each cell's array task is shown beside it, and a cell marked running whose task has
ended is reported unfinished (the next launch resumes it). Once no cell is new, running or
unfinished, the sweep's analysis is written to ``<sweep dir>/analysis/`` (again only when a
record changed since).

``--watch`` follows the sweep until no cell is left to train: the sweep's view
(:mod:`spacing.sweep_view`: cells done, running, failed, time since the last launch, time left),
read again every ``--every`` seconds; then the status and analysis as without it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from spacing.compose import shown
from spacing.contract import COMPLETED, DIVERGED, FAILED, RESULT_FILE, RUNNING
from spacing.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR
from spacing.record import read_result
from spacing.sweep_state import CELL_FILE, LAUNCHES_DIR, cell_state, read_launches, read_marker, slurm_task
from spacing.sweep_view import SweepView, Tally, tally_of

ACTIVE = ("new", RUNNING, "unfinished")
"""States of a cell that is not finished: a sweep with none of these is finished."""
SLURM_LIVE = ("PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "COMPLETING", "CONFIGURING")
SUBMITIT_JOB = re.compile(r"^(\d+)(_\d+)?$")
"""A submitit job folder: ``.submitit/<array>_<index>`` for an array task, ``.submitit/<job>`` for a single job."""
SLURM_TIMEOUT_S = 30
ANALYSIS_DIR = "analysis"
WATCH_EVERY_S = 10.0
"""How often ``--watch`` reads the sweep again (and asks SLURM) by default."""


@dataclass
class CellStatus:
    dir: Path
    state: str
    task: str | None = None
    """The SLURM job that runs (or ran) the cell: ``123_4`` (task 4 of array 123) or ``123``."""
    slurm: str | None = None
    """That job's SLURM state, when SLURM answered."""
    error: str | None = None


@dataclass
class SweepStatus:
    sweep_dir: Path
    cells: list[CellStatus]
    jobs: dict[str, Counter[str]] = field(default_factory=dict)
    """SLURM state counts of the tasks of each (array) job, when SLURM answered."""
    slurm_error: str | None = None

    @property
    def finished(self) -> bool:
        return bool(self.cells) and not any(cell.state in ACTIVE for cell in self.cells)

    def tally(self) -> Tally:
        """The cells counted by state, with the training they have done (for the sweep's view)."""
        return tally_of((cell.dir, cell.state) for cell in self.cells)

    def lines(self) -> list[str]:
        counts = Counter(cell.state for cell in self.cells)
        order = [COMPLETED, RUNNING, "new", "unfinished", FAILED, DIVERGED]
        summary = ", ".join(f"{counts[s]} {s}" for s in order if counts[s])
        lines = [f"sweep {shown(self.sweep_dir)}: {len(self.cells)} cells: {summary or 'none yet'}"]
        for job, states in sorted(self.jobs.items(), key=lambda item: int(item[0])):
            lines.append(f"SLURM job {job}: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
        if self.slurm_error:
            lines.append(f"SLURM not asked: {self.slurm_error}")
        for cell in self.cells:
            task = f"  {cell.task} {cell.slurm or ''}".rstrip() if cell.task else ""
            error = f"  ({cell.error})" if cell.error else ""
            lines.append(f"  {cell.state:<10} {shown(cell.dir)}{task}{error}")
        if self.finished:
            lines.append("every cell has finished" + ("" if counts[COMPLETED] == len(self.cells) else
                         "; re-launching the same command retries the failed ones"))
        else:
            left = sum(counts[s] for s in ACTIVE)
            lines.append(f"{left} cells not finished; run spacing status again later, "
                         "or re-launch the same command for unfinished ones")
        return lines


def sweep_status(sweep_dir: Path, ask_slurm: bool = True) -> SweepStatus:
    """The state of every cell of `sweep_dir` (launched or found on disk), with SLURM's view where it answers."""
    cells: dict[str, CellStatus] = {}
    for launch in read_launches(sweep_dir):  # oldest first: a later submission of a cell wins
        jobs = launch.get("slurm_jobs") or []
        for index, name in enumerate(launch.get("cells") or []):
            cell = cells.setdefault(name, CellStatus(sweep_dir / name, "new"))
            cell.task = jobs[index] if index < len(jobs) else None
    for path in sorted([*sweep_dir.glob(f"*/{CELL_FILE}"), *sweep_dir.glob(f"*/{RESULT_FILE}")]):
        cells.setdefault(path.parent.name, CellStatus(path.parent, "new"))
    for cell in cells.values():
        cell.state = cell_state(cell.dir)
        marker = read_marker(cell.dir) or {}
        cell.task = cell.task or slurm_task(marker)
        record = read_result(cell.dir) or {}
        if cell.state in (FAILED, DIVERGED):
            cell.error = record.get("error") or marker.get("error")
    status = SweepStatus(sweep_dir, sorted(cells.values(), key=lambda c: c.dir.name))
    jobs = {cell.task.split("_")[0] for cell in status.cells if cell.task}
    jobs |= {m[1] for p in (sweep_dir / ".submitit").glob("*") if (m := SUBMITIT_JOB.match(p.name))}
    if ask_slurm and jobs:
        _add_slurm(status, sorted(jobs, key=int))
    return status


def _add_slurm(status: SweepStatus, jobs: list[str]) -> None:
    """Each task's state from sacct (finished ones) and squeue (live ones, which win)."""
    if shutil.which("squeue") is None:
        status.slurm_error = "squeue is not on PATH on this machine"
        return
    tasks: dict[str, str] = {}
    try:
        if shutil.which("sacct") is not None:
            tasks.update(_parse(_slurm(["sacct", "-n", "-X", "-P", "-j", ",".join(jobs), "-o", "JobID,State"])))
        tasks.update(_parse(_slurm(["squeue", "-h", "-r", "-j", ",".join(jobs), "-o", "%i|%T"])))
    except (OSError, subprocess.SubprocessError) as exc:
        status.slurm_error = f"{type(exc).__name__}: {exc}"
        return
    for job in jobs:
        status.jobs[job] = Counter(state for task, state in tasks.items() if task.split("_")[0] == job)
    for cell in status.cells:
        cell.slurm = tasks.get(cell.task or "")
        if cell.state == RUNNING and cell.slurm is not None and cell.slurm not in SLURM_LIVE:
            cell.state = "unfinished"  # its task ended without the cell finishing (cancelled, timed out, node lost)


def _slurm(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=SLURM_TIMEOUT_S)
    if done.returncode != 0:
        raise subprocess.SubprocessError(done.stderr.strip() or f"{command[0]} exited with {done.returncode}")
    return done.stdout


def _parse(output: str) -> dict[str, str]:
    """``JobID|State`` lines -> {task: state} (tasks as ``123_4`` or ``123``); pending ranges ``123_[4-6]`` expanded."""
    tasks = {}
    for line in output.splitlines():
        job, _, state = line.strip().partition("|")
        state = state.split(" ")[0]  # "CANCELLED by 0"
        array, _, index = job.partition("_")
        if not index:
            if array.isdigit():
                tasks[array] = state
            continue
        if index.startswith("["):
            for part in index.strip("[]").split("%")[0].split(","):
                first, _, last = part.partition("-")
                for i in range(int(first), int(last or first) + 1):
                    tasks[f"{array}_{i}"] = state
        elif index.isdigit():
            tasks[job] = state
    return tasks


def analyse(sweep_dir: Path) -> list[str]:
    """The sweep's analysis into ``<sweep dir>/analysis`` unless it is newer than every record; its lines."""
    out = sweep_dir / ANALYSIS_DIR
    records = [p.stat().st_mtime for p in sweep_dir.glob(f"*/{RESULT_FILE}")]
    written = [p.stat().st_mtime for p in out.glob("*") if p.is_file()]
    if written and records and min(written) > max(records):
        return [f"analysis is up to date in {shown(out)}"]
    try:
        from analysis.report import analyze

        result = analyze([sweep_dir], out, "final", None)
    except Exception as exc:  # noqa: BLE001 - the status itself is fine; say how to retry
        return [f"warning: the analysis failed ({type(exc).__name__}: {exc}); retry with python -m analysis {shown(sweep_dir)}"]
    return [f"analysis of {shown(sweep_dir)}:", *result.lines()]


def watch(sweep_dir: Path, every: float) -> SweepStatus:
    """Show the sweep's view of `sweep_dir`, read again every `every` seconds, until no cell is left to train;
    returns the last status."""
    status = sweep_status(sweep_dir)
    launches = read_launches(sweep_dir)
    since = float(launches[-1]["unix_time"]) if launches and launches[-1].get("unix_time") else None
    view = SweepView(lambda: status.tally(), always=(COMPLETED, FAILED), since=since, line_every_s=0)
    try:  # the view reads `status`, which each round replaces
        view.update()
        while not status.finished:
            time.sleep(every)
            status = sweep_status(sweep_dir)
            view.update()
    finally:
        view.stop()
    return status


def status_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="spacing status", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="the sweep dir a launch printed (hydra.sweep.dir)")
    parser.add_argument("--no-analysis", action="store_true", help="do not analyse a finished sweep")
    parser.add_argument("--watch", action="store_true",
                        help="follow the sweep (cells done, running, failed, time left) until no cell is left to train")
    parser.add_argument("--every", type=float, default=WATCH_EVERY_S, metavar="SECONDS",
                        help=f"with --watch: read the sweep (and ask SLURM) again every SECONDS (default {WATCH_EVERY_S:g})")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory; give the sweep dir a launch printed.", file=sys.stderr)
        return EXIT_USER_ERROR
    if not any(args.sweep_dir.glob(f"*/{CELL_FILE}")) and not (args.sweep_dir / LAUNCHES_DIR).is_dir():
        print(f"error: {args.sweep_dir} holds no sweep cells; give the sweep dir a launch printed.", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.every <= 0:
        print(f"error: --every must be a number of seconds above 0; got {args.every:g}.", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        status = watch(args.sweep_dir, args.every) if args.watch else sweep_status(args.sweep_dir)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    lines = status.lines()
    if status.finished and not args.no_analysis:
        lines += analyse(args.sweep_dir)
    print("\n".join(lines))
    return 0
