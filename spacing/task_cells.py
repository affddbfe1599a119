"""Several cells in one launcher task: ``hydra.launcher.cells_per_task=k`` (slurm and local launchers).

A small model leaves most of a GPU idle. With k > 1 the launcher gives each of its tasks (one SLURM
array task, or one local worker) k cells instead of one, and the task runs them at the same time on
its GPU. Each cell runs in a child process of the task, and the child runs exactly what the
ordinary launcher runs for that cell (Hydra's ``run_job``, with the sweep callback around it), into
the cell's own dir with its own checkpoint and run record: skipping a completed cell, resuming from
a checkpoint and recording a failure stay per cell, and a cell that fails does not stop the others.
A cell whose process ends without a result (killed, out of memory, or it could not start) is lost:
within a second its task runs the cell again in its own process with a task function that only
reports the loss (the sweep's summary lists it, and the launch exits 4), and the other cells go on.

Processes, not threads: ``run_job`` uses process-global state (the HydraConfig singleton, the
working dir, logging handlers), so two cells cannot share a process. Each is a fresh interpreter
started with ``subprocess``, not ``multiprocessing``: a local task runs in a joblib (loky) worker,
whose start method a multiprocessing child would inherit and fail to find.

What the k cells of a task share:

- the GPU. In a SLURM task the task sees its one GPU and every cell's ``trainer.device=auto``
  picks it. On a machine with several GPUs (the local launcher), the task claims one GPU as
  ``trainer.device=auto`` claims one for a run (spacing.device.claim_gpu: one no other spacing run
  here holds) and makes it the only GPU its cells see (``CUDA_VISIBLE_DEVICES``), so the k cells
  share it instead of each claiming its own;
- the CPUs: a cell's default thread count (spacing.cli.thread_count) is its task's share divided
  by ``cells_per_task``, which a cell reads from :data:`TASK_CELLS_VARIABLE` (divided by k, not by
  the cells a task happens to hold: the last task of a sweep may hold fewer, and one thread count
  for every cell keeps a seed's numbers comparable across the sweep);
- signals and pre-emption: a child ignores the signals its task process handles itself (in a
  SLURM task, submitit's: the pre-emption / time-limit signal, on which submitit checkpoints and
  requeues the whole task, and SIGTERM, which it lets pass until SLURM kills the job), so no cell
  stops before its task decides. The requeued task runs its k cells again: completed ones are
  skipped, the others resume from their own checkpoints. A child ends within a second of its task
  process ending (spacing.sweep_callback.end_with_parent), however the task ended.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

from spacing.errors import ConfigError

SLURM_LAUNCHER = "hydra_plugins.spacing_launchers.CellsPerTaskSlurmLauncher"
"""The ``_target_`` of conf/hydra/launcher/slurm.yaml (spacing/hydra_plugin/hydra_plugins/spacing_launchers.py)."""
TASK_CELLS_VARIABLE = "SPACING_CELLS_PER_TASK"
"""Environment of a cell's process: the launch's cells per task (unset: one)."""
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGCONT, signal.SIGUSR1, signal.SIGUSR2)
"""Signals a cell ignores when its task process handles them (submitit handles SIGTERM, SIGCONT and its
pre-emption signal, SIGUSR2 unless the cluster's setup chose SIGUSR1)."""

T = TypeVar("T")
TaskFunction = Callable[[Any], Any]
"""A Hydra task function: called with a cell's config (hydra.types.TaskFunction)."""
LostTask = Callable[[str, Any], Any]
"""The task function of a lost cell, run in its task process: called with the loss's message, then the cell's config."""


def check_cells_per_task(value: Any) -> int:
    """`value` as the number of cells per task, or ConfigError naming the key."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"hydra.launcher.cells_per_task must be a whole number >= 1; got {value!r}.")
    return value


def tasks_of(cells: Sequence[T], cells_per_task: int) -> list[list[T]]:
    """`cells` in order, cut into tasks of `cells_per_task` (the last task takes what is left)."""
    return [list(cells[start : start + cells_per_task]) for start in range(0, len(cells), cells_per_task)]


def cells_in_task() -> int:
    """The cells per task of the launch this process runs a cell of (:data:`TASK_CELLS_VARIABLE`; 1 when unset)."""
    value = os.environ.get(TASK_CELLS_VARIABLE, "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def run_cells(cells: Sequence[Callable[[], T]], names: Sequence[str], cells_per_task: int,
              lost: Callable[[int, str], T], pid_dir: Path | None = None) -> list[T]:
    """Call each of `cells` (a task of a launch with `cells_per_task`) in a child process of its own, all at
    once, and return what each returned, in order.

    Every child runs to its end whatever its siblings do. A child that ends without handing back a
    result (killed, or it could not start) is a lost cell: within :data:`POLL_S` of its end this
    process calls ``lost(index, message)`` for it (`message` names the cell by `names` and says how its
    process ended) and returns what that returns in its place. Children still running when this
    process stops waiting (an exception, submitit's requeue exit) are killed; their cells resume from
    their checkpoints. With `pid_dir`, each child's pid is a file there while it runs, so the launch can
    end the children of a task process that died (:func:`end_orphans`).
    """
    import cloudpickle  # what submitit and joblib pickle a cell's Hydra context with

    environment = {**os.environ, TASK_CELLS_VARIABLE: str(cells_per_task), **task_gpu_environment()}
    ignored = tuple(s for s in FORWARDED_SIGNALS if callable(signal.getsignal(s)))
    results: dict[int, T] = {}
    children: dict[int, subprocess.Popen[bytes]] = {}
    with tempfile.TemporaryDirectory(prefix="spacing-task-") as folder:
        try:
            for index, cell in enumerate(cells):
                Path(folder, f"{index}.cell").write_bytes(cloudpickle.dumps(cell))
                command = [sys.executable, "-c", CELL_PROCESS, json.dumps(sys.path), folder, str(index), *map(str, ignored)]
                children[index] = subprocess.Popen(command, env=environment)
                if pid_dir is not None:
                    (pid_dir / str(children[index].pid)).touch()
            while children:
                for index, child in list(children.items()):
                    if child.poll() is None:
                        continue
                    del children[index]
                    if pid_dir is not None:
                        (pid_dir / str(child.pid)).unlink(missing_ok=True)
                    result = Path(folder, f"{index}.result")
                    if result.exists():
                        results[index] = cloudpickle.loads(result.read_bytes())
                    else:
                        results[index] = lost(index, f"the process of cell {names[index]} ended without a result "
                                                     f"({_ending(child.returncode)})")
                time.sleep(POLL_S if children else 0)
        finally:
            for child in children.values():
                child.kill()
                child.wait()
                if pid_dir is not None:
                    (pid_dir / str(child.pid)).unlink(missing_ok=True)
    return [results[index] for index in range(len(cells))]


ORPHAN_WAIT_S = 10.0
"""How long :func:`end_orphans` waits for a dead task's cell processes to end on their own (each checks its
parent every :data:`spacing.sweep_callback.PARENT_POLL_S`) before it kills them."""


def end_orphans(pid_dir: Path, wait_s: float = ORPHAN_WAIT_S) -> None:
    """End the cell processes whose pids `run_cells` left in `pid_dir` (their task process died): wait up to
    `wait_s` for them to end on their own, kill those still alive, and return once all are gone.

    Until then each still holds its cell's claim, and a cell run again at once would find it running elsewhere.
    """
    deadline = time.monotonic() + wait_s
    for path in sorted(pid_dir.iterdir()):
        pid = int(path.name)
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(POLL_S)
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (an orphan that ended is reaped by init at once; a zombie counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


CELL_PROCESS = "import sys, json; sys.path[:] = json.loads(sys.argv[1]); from spacing.task_cells import run_cell; run_cell(*sys.argv[2:])"
"""A cell's process, a fresh interpreter (no CUDA, Hydra or start-method state inherited): the task process's
``sys.path``, as multiprocessing's spawn would give it, then :func:`run_cell`."""
POLL_S = 0.2
"""How often a task process looks for a cell process that has ended."""


def _ending(returncode: int) -> str:
    """How a process with `returncode` ended, in words."""
    if returncode < 0:
        return f"killed by signal {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


def run_cell(folder: str, index: str, *ignored: str) -> None:
    """A cell's process: ignore the task's signals (`ignored`, by number), end with the task, run the cell,
    leave its result in `folder`."""
    for number in ignored:
        signal.signal(int(number), signal.SIG_IGN)
    import cloudpickle

    from spacing.sweep_callback import end_with_parent

    end_with_parent(os.getppid())
    cell = cloudpickle.loads(Path(folder, f"{index}.cell").read_bytes())
    result = Path(folder, f"{index}.result")
    partial_result = result.with_suffix(".part")
    partial_result.write_bytes(cloudpickle.dumps(cell()))
    os.replace(partial_result, result)  # whole or absent: a process killed while writing is a lost cell


_task_gpu: tuple[str, IO[bytes] | None] | None = None
"""The GPU this task process claimed for its cells (its CUDA_VISIBLE_DEVICES entry) and the lock file holding it."""


def task_gpu_environment() -> dict[str, str]:
    """``CUDA_VISIBLE_DEVICES`` for this task's cells: the one GPU they share; empty with at most one GPU visible.

    The claim (and its lock) lasts as long as this process, so a local worker that runs several
    tasks keeps its GPU, as a worker running one cell per task does.
    """
    global _task_gpu
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and len(visible.split(",")) <= 1:
        return {}  # a SLURM GPU task's one device (or none): known without importing torch in the task process
    import torch

    from spacing.device import claim_gpu, visible_gpu_uuids

    count = torch.cuda.device_count()
    if count <= 1:
        return {}
    if _task_gpu is None:
        index, lock = claim_gpu(visible_gpu_uuids(), Path(tempfile.gettempdir()))
        entries = visible.split(",") if visible else [str(i) for i in range(count)]
        _task_gpu = (entries[index].strip(), lock)
    return {"CUDA_VISIBLE_DEVICES": _task_gpu[0]}


def run_local_task(launcher_pid: int, cells: Sequence[Callable[[TaskFunction], T]], names: Sequence[str],
                   cells_per_task: int, task_function: TaskFunction, lost_task: LostTask, pid_dir: Path) -> list[T]:
    """One task of the local launcher, in a joblib worker: its cells at once (:func:`run_cells`).

    A cell is called with the task function it runs: the app's in its own process, or, for a lost
    cell, `lost_task` with the loss's message, in this one. The worker ends with the launching
    process, as a worker running one cell does; its cells then end with it. `pid_dir`: where the
    cells' pids are kept while they run (:func:`run_cells`).
    """
    from spacing.sweep_callback import end_with_parent

    if os.getppid() == launcher_pid:
        end_with_parent(launcher_pid)
    calls = [partial(cell, task_function) for cell in cells]
    return run_cells(calls, names, cells_per_task, lambda index, message: cells[index](partial(lost_task, message)),
                     pid_dir)


class SlurmTask:
    """One array task of the SLURM launcher: its cells at once, each as hydra-submitit-launcher runs one.

    `slurm` is the upstream launcher object, whose call runs one cell (what a task runs with one
    cell per task); a lost cell is run by a copy of it whose task function is `lost_task`. Submitit
    calls :meth:`checkpoint` on pre-emption or time-out: the task is requeued with the same cells,
    and each resumes (or is skipped) on its own.
    """

    def __init__(self, slurm: Any, cells_per_task: int, lost_task: LostTask) -> None:
        self.slurm = slurm
        self.cells_per_task = cells_per_task
        self.lost_task = lost_task

    def __call__(self, cells: list[tuple[Any, ...]]) -> list[Any]:
        calls = [partial(self.slurm, *cell) for cell in cells]
        return run_cells(calls, [" ".join(cell[0]) for cell in cells], self.cells_per_task, partial(self._lost, cells))

    def _lost(self, cells: list[tuple[Any, ...]], index: int, message: str) -> Any:
        launcher = copy.copy(self.slurm)
        launcher.task_function = partial(self.lost_task, message)
        return launcher(*cells[index])

    def checkpoint(self, cells: list[tuple[Any, ...]]) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, cells)
