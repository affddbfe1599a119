"""Several cells in one launcher task: ``hydra.launcher.cells_per_task=k`` (slurm and local launchers).

A small model leaves most of a GPU idle. With k > 1 the launcher gives each of its tasks (one SLURM
array task, or one local worker) k cells instead of one, and the task runs them at the same time on
its GPU. Each cell runs in a child process of the task, and the child runs exactly what the
ordinary launcher runs for that cell (Hydra's ``run_job``, with the sweep callback around it), into
the cell's own dir with its own checkpoint and run record: skipping a completed cell, resuming from
a checkpoint and recording a failure stay per cell, and a cell that fails does not stop the others.

Processes, not threads: ``run_job`` uses process-global state (the HydraConfig singleton, the
working dir, logging handlers), so two cells cannot share a process.

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

import multiprocessing
import os
import signal
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from multiprocessing.connection import Connection
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


class CellsLost(RuntimeError):
    """A cell's process ended without handing back its result (killed, or it exited); its siblings ran to their end."""


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


def run_cells(cells: Sequence[Callable[[], T]], names: Sequence[str], cells_per_task: int) -> list[T]:
    """Call each of `cells` (a task of a launch with `cells_per_task`) in a child process of its own, all at
    once, and return what each returned, in order.

    Every child runs to its end whatever its siblings do; then :class:`CellsLost` names the cells
    (by `names`) whose process ended without a result. Children still running when this process
    stops waiting (an exception, submitit's requeue exit) are killed; their cells resume from
    their checkpoints.
    """
    import cloudpickle  # what submitit and joblib pickle a cell's Hydra context with

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA or Hydra state inherited
    environment = {TASK_CELLS_VARIABLE: str(cells_per_task), **task_gpu_environment()}
    ignored = tuple(s for s in FORWARDED_SIGNALS if callable(signal.getsignal(s)))
    children: list[tuple[Any, Connection]] = []
    try:
        for cell in cells:
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(target=_run_cell, args=(cloudpickle.dumps(cell), environment, ignored, sender))
            child.start()
            sender.close()  # the child holds the only sending end: the pipe closes when it ends
            children.append((child, receiver))
        results = [_result(child, receiver) for child, receiver in children]
    finally:
        for child, _ in children:
            if child.is_alive():
                child.kill()
            child.join()
    lost = [f"{name} (exit code {child.exitcode})" for name, (child, _), result in zip(names, children, results, strict=True)
            if result is None]
    if lost:
        raise CellsLost(f"{len(lost)} of the task's {len(cells)} cells ended without a result: {'; '.join(lost)}; "
                        "launching the sweep again resumes them from their checkpoints.")
    return [result[0] for result in results if result is not None]


def _result(child: Any, receiver: Connection) -> tuple[Any] | None:
    """What the child sent, as a 1-tuple, or None when it ended without sending; waits for the child to end."""
    import cloudpickle

    try:
        result = (cloudpickle.loads(receiver.recv_bytes()),)
    except EOFError:
        result = None
    child.join()
    return result


def _run_cell(cell: bytes, environment: dict[str, str], ignored: tuple[int, ...], sender: Connection) -> None:
    """A child process: set the task's environment, ignore the task's signals, run the cell, send back its result."""
    import cloudpickle

    from spacing.sweep_callback import end_with_parent

    os.environ.update(environment)  # before the cell imports torch: CUDA reads CUDA_VISIBLE_DEVICES once
    for number in ignored:
        signal.signal(number, signal.SIG_IGN)
    end_with_parent(os.getppid())
    sender.send_bytes(cloudpickle.dumps(cloudpickle.loads(cell)()))
    sender.close()


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


def run_local_task(launcher_pid: int, cells: Sequence[Callable[[], T]], names: Sequence[str], cells_per_task: int) -> list[T]:
    """One task of the local launcher, in a joblib worker: its cells at once (:func:`run_cells`).

    The worker ends with the launching process, as a worker running one cell does; its cells then
    end with it.
    """
    from spacing.sweep_callback import end_with_parent

    if os.getppid() == launcher_pid:
        end_with_parent(launcher_pid)
    return run_cells(cells, names, cells_per_task)


class SlurmTask:
    """One array task of the SLURM launcher: its cells at once, each as hydra-submitit-launcher runs one.

    `slurm` is the upstream launcher object, whose call runs one cell (what a task runs with one
    cell per task). Submitit calls :meth:`checkpoint` on pre-emption or time-out: the task is
    requeued with the same cells, and each resumes (or is skipped) on its own.
    """

    def __init__(self, slurm: Any, cells_per_task: int) -> None:
        self.slurm = slurm
        self.cells_per_task = cells_per_task

    def __call__(self, cells: list[tuple[Any, ...]]) -> list[Any]:
        calls = [partial(self.slurm, *cell) for cell in cells]
        return run_cells(calls, [" ".join(cell[0]) for cell in cells], self.cells_per_task)

    def checkpoint(self, cells: list[tuple[Any, ...]]) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, cells)
