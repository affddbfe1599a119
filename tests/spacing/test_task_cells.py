"""Several cells per launcher task (spacing/task_cells.py): the cells of a task run at once, each in a
process of its own; one that dies does not stop its siblings; they share the task's CPUs, its
signals and its one GPU. The launches themselves are in test_task_cells_local_launch.py (local) and
tests/sweeps/test_slurm_cells_per_task.py (SLURM)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import spacing.task_cells as task_cells
from spacing.cli import thread_count
from spacing.compose import register_configs
from spacing.errors import ConfigError
from spacing.task_cells import TASK_CELLS_VARIABLE, check_cells_per_task, run_cells, tasks_of
from tests.helpers import CONF, ROOT, cli_env

BARRIER_S = 60.0


def wait_for_siblings(folder: str, name: str, siblings: int) -> int:
    """A cell that announces itself in `folder` and returns its pid once all `siblings` have: only cells
    that run at the same time get past this."""
    Path(folder, name).touch()
    deadline = time.monotonic() + BARRIER_S
    while len(os.listdir(folder)) < siblings:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} waited {BARRIER_S:.0f} s for its siblings")
        time.sleep(0.05)
    return os.getpid()


def crash() -> None:
    os._exit(3)


def finish_later(path: str) -> str:
    time.sleep(1.0)
    Path(path).write_text("done")
    return "finished"


def lost(index: int, message: str) -> tuple[str, int, str]:
    return "lost", index, message


def task_view() -> tuple[str | None, object]:
    """What a cell sees of its task: the cells-per-task variable and how it handles SIGUSR2."""
    return os.environ.get(TASK_CELLS_VARIABLE), signal.getsignal(signal.SIGUSR2)


def test_tasks_take_cells_in_order_and_the_last_takes_what_is_left() -> None:
    assert tasks_of([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert tasks_of([1, 2, 3], 1) == [[1], [2], [3]]
    assert tasks_of([1, 2], 4) == [[1, 2]]


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2", None])
def test_cells_per_task_must_be_a_whole_number_of_at_least_one(value: object) -> None:
    with pytest.raises(ConfigError, match=r"hydra.launcher.cells_per_task must be a whole number >= 1; got "):
        check_cells_per_task(value)
    assert check_cells_per_task(3) == 3


def test_cells_of_a_task_run_at_the_same_time_in_processes_of_their_own(tmp_path: Path) -> None:
    cells = [lambda name=name: wait_for_siblings(str(tmp_path), name, 3) for name in "abc"]
    pids = run_cells(cells, ["a", "b", "c"], 3, lost)
    assert len(set(pids)) == 3 and os.getpid() not in pids
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "c"]


def test_a_cell_whose_process_dies_is_lost_at_once_and_its_sibling_goes_on(tmp_path: Path) -> None:
    done = tmp_path / "sibling"
    reported: list[bool] = []

    def report(index: int, message: str) -> tuple[str, int, str]:
        reported.append(done.exists())
        return lost(index, message)

    results = run_cells([crash, lambda: finish_later(str(done))], ["seed=0 (crashes)", "seed=1"], 2, report)
    assert results == [("lost", 0, "the process of cell seed=0 (crashes) ended without a result (exit code 3)"),
                       "finished"]
    assert reported == [False]  # reported while the sibling still ran, not after it
    assert done.read_text() == "done"


def test_a_killed_cell_is_lost_with_the_signal_named() -> None:
    (result,) = run_cells([lambda: os.kill(os.getpid(), signal.SIGKILL)], ["seed=0"], 1, lost)
    assert result == ("lost", 0, "the process of cell seed=0 ended without a result (killed by signal SIGKILL)")


def test_cells_start_from_a_joblib_worker() -> None:
    """The local launcher's tasks run in loky workers, whose start method a multiprocessing child would inherit and
    not find (issue 27: every cell lost, and a launch that never ended); two workers, two cells each."""
    from joblib import Parallel, delayed

    tasks = Parallel(n_jobs=2, backend="loky")(
        delayed(run_cells)([lambda i=i: i * i, lambda i=i: -i], [f"{i}a", f"{i}b"], 2, lost) for i in (1, 2)
    )
    assert tasks == [[1, -1], [4, -2]]


def call_with(what: str, task_function):
    """A local launcher's cell: its task function called for it (the real one in the cell's process, or the lost one)."""
    return task_function(what)


def kill_the_worker_or_finish(what: str) -> str:
    """The task function: a ``kill:FILE`` cell kills its task's worker process (its parent), as the OOM killer might,
    the first time (FILE marks it done) or every time (FILE is empty)."""
    if what.startswith("kill:"):
        once = what.removeprefix("kill:")
        if not once or not Path(once).exists():
            if once:
                Path(once).touch()
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(BARRIER_S)  # ends with its task process, within a second (spacing.sweep_callback.end_with_parent)
    return f"done {what}"


def lost_for(message: str, what: str) -> str:
    return f"lost {what}: {message}"


def test_tasks_whose_worker_died_run_again_and_return(tmp_path: Path) -> None:
    """The local launcher's pool (spacing_launchers.run_tasks): a worker that dies breaks joblib's pool and the
    tasks it took with it; the tasks without a return run again, and every task returns, in order."""
    from hydra_plugins.spacing_launchers import run_tasks

    kill = f"kill:{tmp_path / 'killed-once'}"
    tasks = [[partial(call_with, "a"), partial(call_with, "b")], [partial(call_with, kill)], [partial(call_with, "c")]]
    returned = run_tasks({"n_jobs": 2, "backend": "loky"}, tasks, [["a", "b"], ["kill"], ["c"]], 2,
                         kill_the_worker_or_finish, lost_for)
    assert returned == [["done a", "done b"], [f"done {kill}"], ["done c"]]


def test_a_task_whose_worker_dies_again_has_its_cells_lost() -> None:
    """After WORKER_DEATHS_RETRIED runs again, the cells of a task that still has no return are lost cells, named
    with the worker's end (never a wait without end, never joblib's traceback)."""
    from hydra_plugins.spacing_launchers import WORKER_DEATHS_RETRIED, run_tasks

    assert WORKER_DEATHS_RETRIED == 1
    returned = run_tasks({"n_jobs": 2, "backend": "loky"}, [[partial(call_with, "kill:")] * 2], [["k1", "k2"]], 2,
                         kill_the_worker_or_finish, lost_for)
    message = "its worker process died (A worker process managed by the executor was unexpectedly terminated)"
    assert returned == [[f"lost kill:: {message}"] * 2]


def test_results_come_back_in_the_order_of_the_cells() -> None:
    assert run_cells([lambda i=i: i * i for i in range(4)], ["0", "1", "2", "3"], 4, lost) == [0, 1, 4, 9]


def test_a_cell_sees_the_cells_per_task_and_ignores_the_signals_its_task_handles(monkeypatch: pytest.MonkeyPatch) -> None:
    (unhandled,) = run_cells([task_view], ["cell"], 4, lost)  # a task of 1 cell in a launch of 4 per task
    assert unhandled == ("4", signal.SIG_DFL)
    monkeypatch.setattr(signal, "getsignal", lambda number: print if number == signal.SIGUSR2 else signal.SIG_DFL)
    (handled,) = run_cells([task_view], ["cell"], 4, lost)  # as submitit's pre-emption handler in a SLURM task
    assert handled == ("4", signal.SIG_IGN)


def test_a_cell_takes_its_share_of_the_task_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    monkeypatch.setenv(TASK_CELLS_VARIABLE, "2")
    assert thread_count(None, None) == 4  # 8 CPUs of the array task, 2 cells
    monkeypatch.setenv(TASK_CELLS_VARIABLE, "16")
    assert thread_count(None, None) == 1
    assert thread_count(3, None) == 3  # trainer.threads wins
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setenv(TASK_CELLS_VARIABLE, "2")
    assert thread_count(None, 4) == 2  # 16 CPUs, 4 local workers, 2 cells each
    monkeypatch.delenv(TASK_CELLS_VARIABLE)
    assert thread_count(None, 4) == 4  # one cell per task


def test_the_cells_of_a_task_share_the_one_gpu_it_claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated: three GPUs visible as CUDA_VISIBLE_DEVICES=5,6,7, the first held by another run."""
    import torch

    monkeypatch.setattr(task_cells, "_task_gpu", None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr("spacing.device.visible_gpu_uuids", lambda: ["GPU-a", "GPU-b", "GPU-c"])
    monkeypatch.setattr(task_cells.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,6,7")
    with open(tmp_path / "spacing-gpu-GPU-a.lock", "wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert task_cells.task_gpu_environment() == {"CUDA_VISIBLE_DEVICES": "6"}
    assert task_cells.task_gpu_environment() == {"CUDA_VISIBLE_DEVICES": "6"}  # the task keeps its GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert task_cells.task_gpu_environment() == {}  # one GPU (a SLURM task's): the cells use it as it is


def launcher_config(*overrides: str) -> DictConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True).hydra.launcher


def test_both_launchers_default_to_one_cell_per_task() -> None:
    local = launcher_config("hydra/launcher=local")
    slurm = launcher_config("hydra/launcher=slurm")
    assert (local._target_, local.cells_per_task, local.n_jobs) == (
        "hydra_plugins.spacing_launchers.CellsPerTaskJoblibLauncher", 1, 2)
    assert (slurm._target_, slurm.cells_per_task) == ("hydra_plugins.spacing_launchers.CellsPerTaskSlurmLauncher", 1)


def test_a_bad_cells_per_task_is_one_sentence_and_launches_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", "seed=0,1", "hydra/launcher=local", "hydra.launcher.cells_per_task=0"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip() == "error: hydra.launcher.cells_per_task must be a whole number >= 1; got 0."
    assert not (tmp_path / "multirun").exists()
