"""The command line: ``python run.py ARGS`` (the same as ``spacing run ARGS``) and ``spacing plan|submit|status``.

    python run.py [OVERRIDES]                 # one run
    python run.py -m [OVERRIDES]              # a multirun (grid checked first; see spacing.plan)
    spacing plan [OVERRIDES]                  # every cell of the grid, checked, with its state
    spacing submit [OVERRIDES]                # submit the grid as a SLURM array and return
    spacing status SWEEP_DIR [--watch]        # per-cell state (and the array's), analysis when done

Exit codes (spacing.errors): 0 done; 1 a bug (its traceback is printed); 2 bad input the user can
fix (one sentence, nothing trained: an override, a value, an output dir that cannot be written,
a full disk, a launcher whose commands are missing); 3 a single run that diverged; 4 a multirun
in which a cell did not complete (after the summary); 130 interrupted (Ctrl-C: the run resumes
when the same command runs again).

Nothing here imports torch before a run starts: composing, ``--help`` and shell completion answer
without it. Hydra's own error printer is not used for what the user can fix: the config is
composed here first, so a bad override gets one sentence, and ``HYDRA_FULL_ERROR`` is left to the
user (bugs keep Hydra's short traceback, or the full one when the user sets it).
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from spacing.claim import RUNNING_ELSEWHERE, RunningElsewhere
from spacing.compose import (
    CONF_DIR,
    CONFIG_NAME,
    GRID_SWEEPERS,
    app_config,
    compose_master,
    explain,
    hydra_session,
    parse_args,
    register_configs,
    shown,
)
from spacing.contract import COMPLETED, FAILED
from spacing.cpus import free_cpus
from spacing.config import to_config
from spacing.help import help_text
from spacing.preflight import check_machine, check_sweep_options
from spacing.errors import EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_USER_ERROR, StorageError, UserError
from spacing.permissions import guard_outputs
from spacing.record import read_result
from spacing.sweep_callback import LOST, SKIPPED, launch_exit_code
from spacing.sweeper import group_cells, is_group
from spacing.task_cells import cells_in_task, check_cells_per_task

log = logging.getLogger("run")

COMPOSE_ERRORS = (HydraException, OmegaConfBaseException, yaml.YAMLError)
"""What composing a config raises for bad input."""
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
SLURM_SUBMIT = "sbatch"
SLURM_PING = ("scontrol", "ping")
SLURM_PING_TIMEOUT_S = 20
"""How long a launch waits for the SLURM controller's answer before it says the controller does not answer."""
USAGE = """\
usage: spacing run [OVERRIDES ...]        one run, or a multirun with -m (same as python run.py)
       spacing plan [OVERRIDES ...]       every cell of a grid, checked, with its dir and state
       spacing submit [OVERRIDES ...]     submit a grid as one SLURM job array and return
       spacing status SWEEP_DIR [--watch] each cell's state, the array's, and the analysis when done
Overrides are Hydra's (python run.py --help lists the config groups)."""


class Outcome(float):
    """What the task function returns: the selected metric, and the run's status alongside.

    A float, so Hydra's optimising sweepers (Optuna, Nevergrad, Ax) can use it; the status tells
    the sweep callback how the cell ended. NaN when the run has no value for the metric, and for a
    fused group's job, whose `cells` give each cell's status by its dir's name (a group has no one
    metric: fusion is for grid sweeps only).
    """

    status: str
    cells: dict[str, str]

    def __new__(cls, value: float, status: str, cells: dict[str, str] | None = None) -> Outcome:
        outcome = super().__new__(cls, value)
        outcome.status = status
        outcome.cells = dict(cells or {})
        return outcome

    def __reduce__(self) -> tuple[Any, ...]:
        return (Outcome, (float(self), self.status, self.cells))


class TrialFailed(Exception):
    """A run that did not complete, raised to an optimising sweeper: what they count as a failed trial."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


def main(argv: list[str] | None = None) -> int:
    """The ``spacing`` console script (and ``python -m spacing``)."""
    argv = sys.argv[1:] if argv is None else argv
    commands = {"run": run_command, "plan": plan_command, "submit": submit_command, "status": status_command}
    if not argv or argv[0] not in commands:
        print(USAGE, file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else EXIT_USER_ERROR
    if argv[0] in ("plan", "status"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `spacing plan ... | head` ends quietly, as Unix tools do
    return commands[argv[0]](argv[1:])


def run_main() -> None:
    """``python run.py ARGS``."""
    sys.exit(run_command(sys.argv[1:]))


def run_command(argv: list[str]) -> int:
    """Compose and check what ARGS ask for, then hand them to Hydra, which runs the task function."""
    args = parse_args(argv)
    if args.help and not args.hydra_help:
        sys.argv = [sys.argv[0], *argv]
        print(help_text(CONF_DIR, program()))
        return 0
    answered_by_hydra = args.hydra_help or args.shell_completion or args.info
    if args.multirun and args.cfg:
        return plan_command([a for a in argv if a not in ("-m", "--multirun")])
    if args.run + args.multirun + args.shell_completion + (args.info is not None) + (args.cfg is not None) > 1:
        print("error: give one of --run, --multirun, --cfg, --info, --shell-completion.", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.resolve and not (args.cfg or args.help):
        print("error: --resolve only goes with --cfg or --help.", file=sys.stderr)
        return EXIT_USER_ERROR
    if not answered_by_hydra and args.experimental_rerun is None:
        try:
            _preflight(args)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
    return _hydra(argv)


def _preflight(args: argparse.Namespace) -> None:
    """Raise UserError for what would otherwise end in a traceback inside Hydra."""
    with hydra_session(args) as session:
        configured = session.get_mode(args.config_name or CONFIG_NAME, args.overrides)  # hydra.mode, if a config sets it
        mode = RunMode.MULTIRUN if args.multirun else configured or RunMode.RUN
        try:
            master = compose_master(session, args, mode)
        except COMPOSE_ERRORS as exc:
            raise UserError(explain(exc)) from None
        if args.cfg:
            return
        guard_outputs(master, multirun=mode == RunMode.MULTIRUN)
        if mode == RunMode.MULTIRUN:
            check_launcher(master)
            check_machine(master, runs_here=not _on_slurm(master))
            probe_writable(Path(str(master.hydra.sweep.dir)), "hydra.sweep.dir")
        else:
            to_config(app_config(master))  # every value, checked as the run checks it (a grid's cells: in its plan)
            check_machine(master, runs_here=True)
            probe_writable(Path(str(master.hydra.run.dir)), "hydra.run.dir")


def _on_slurm(master: DictConfig) -> bool:
    return str(OmegaConf.select(master, "hydra.launcher._target_") or "").endswith("SlurmLauncher")


def check_launcher(master: DictConfig) -> None:
    """The sweeper's and launcher's options are valid; a SLURM launcher needs sbatch on this machine;
    cells_per_task, where the launcher has it, is a count."""
    check_sweep_options(master)
    if OmegaConf.select(master, "hydra.launcher.cells_per_task") is not None:
        check_cells_per_task(master.hydra.launcher.cells_per_task)
    if not _on_slurm(master):
        return
    if shutil.which(SLURM_SUBMIT) is None:
        raise UserError(
            f"hydra/launcher=slurm submits with {SLURM_SUBMIT}, which is not on PATH here; launch from a machine "
            "that submits SLURM jobs (a login node), or use hydra/launcher=local to run the cells on this one."
        )
    check_controller()


def check_controller() -> None:
    """Raise UserError when SLURM's controller does not answer ``scontrol ping`` (where scontrol is installed):
    submitit would otherwise fail after writing its job files into the sweep dir."""
    if shutil.which(SLURM_PING[0]) is None:
        return
    try:
        answer = subprocess.run(SLURM_PING, capture_output=True, text=True, timeout=SLURM_PING_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        said = f"no answer in {SLURM_PING_TIMEOUT_S} s"
    else:
        if answer.returncode == 0 and "DOWN" not in answer.stdout:
            return
        said = (answer.stdout + answer.stderr).strip().splitlines()[:1] or [f"exit code {answer.returncode}"]
        said = said[0]
    raise UserError(
        f"the SLURM controller does not answer ({' '.join(SLURM_PING)}: {said}); nothing was submitted. Check the "
        "cluster (sinfo, or SLURM_CONF) and launch again, or use hydra/launcher=local to run the cells on this machine."
    )


PROBE_ATTEMPTS = 5
"""How often :func:`probe_writable` makes its folder again when another process removed it in between."""


def probe_writable(path: Path, key: str) -> None:
    """Create `path` and a file in it (then remove what was created), or raise StorageError naming `key`."""
    created = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        created.append(probe)
        probe = probe.parent
    try:
        for attempt in range(PROBE_ATTEMPTS):
            try:
                path.mkdir(parents=True, exist_ok=True)
                handle, name = tempfile.mkstemp(dir=path, prefix=".spacing-write-check-")
                break
            except FileNotFoundError:  # a launch of the same grid probing at once removed the folder it had made
                if attempt == PROBE_ATTEMPTS - 1:
                    raise
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        raise StorageError(f"{storage_problem(exc, f'{key}={shown(path)}')}; choose another {key}.") from None
    finally:
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break


def storage_problem(exc: OSError, what: str) -> str:
    """What went wrong writing `what`, in words (the caller adds the fix)."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.EROFS:
        return f"{what} is on a read-only file system{where}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{what} cannot be written: permission denied{where}"
    if exc.errno in DISK_FULL:
        return f"the disk holding {what} is full{where}"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"{what} runs through a file, not a folder{where}"
    return f"{what} cannot be written ({exc.strerror}){where}"


def _hydra(argv: list[str]) -> int:
    """Run Hydra's command line on `argv` with :func:`train` as the task."""
    register_configs()
    sys.argv = [sys.argv[0], *argv]
    try:
        hydra.main(config_path=str(CONF_DIR), config_name=CONFIG_NAME, version_base="1.3")(train)()
    except KeyboardInterrupt:
        print(f"error: interrupted; {to_resume(*_LAUNCHED.get('sweep', ('', None)))}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return launch_exit_code()


_LAUNCHED: dict[str, tuple[str, Path]] = {}
"""The sweep dir of this process's multirun, as given and as resolved (what :func:`to_resume` needs)."""


def to_resume(given: str, resolved: Path | None, key: str = "hydra.sweep.dir") -> str:
    """The sentence that tells how to resume what ran in `resolved` (the dir `key` gave as `given`).

    A dir that follows from the config (the default) is found again by the same command; a
    timestamped one (``${now:...}``) is not, so the command to type then pins the dir.
    """
    if resolved is None or "${now:" not in given:
        return "run the same command again to resume."
    return f"to resume, run: {invocation(without=key)} {shlex.quote(f'{key}={shown(resolved)}')}"


def invocation(without: str) -> str:
    """The command line this process was started with (:func:`_hydra` sets ``sys.argv``), less any override of `without`."""
    args = [arg for arg in sys.argv[1:] if arg.partition("=")[0] != without]
    return " ".join([program(), *map(shlex.quote, args)])


def program() -> str:
    """How the user started this command: ``python run.py``, ``spacing run`` or ``python -m spacing run``."""
    started = sys.argv[0]
    if Path(started).name == "__main__.py":
        return "python -m spacing run"
    if started.endswith(".py"):
        return f"python {shlex.quote(started)}"
    return f"{Path(started).name} run"


def train(cfg: DictConfig) -> Outcome:
    """The task function: train one run into Hydra's output dir and return its selected metric.

    A single run ends with exit code 2 on a user error and 3 when it diverged. In a multirun a
    failing cell is recorded and logged and the sweep goes on; an optimising sweeper gets
    :class:`TrialFailed` for it instead, which is how it counts a failed trial.
    """
    from spacing.runner import run_cell  # torch: only once a run starts

    settings = HydraConfig.get()
    out_dir = Path(settings.runtime.output_dir)
    single = settings.mode == RunMode.RUN
    sweep_dir = None if single else Path(str(settings.sweep.dir))
    dir_key = "run" if single else "sweep"
    given_dir = str(OmegaConf.to_container(settings[dir_key], resolve=False)["dir"])  # type: ignore[index]
    _LAUNCHED[dir_key] = (given_dir, out_dir if single else sweep_dir)  # type: ignore[assignment]
    log.info("torch CPU threads: %d", set_thread_count(cfg.trainer.threads, OmegaConf.select(settings, "launcher.n_jobs")))
    if sweep_dir is not None and is_group(cfg):
        return _train_group(cfg, sweep_dir)
    try:
        ran = run_cell(cfg, out_dir, sweep_dir)
    except KeyboardInterrupt:
        print(f"error: interrupted at epoch {_epochs_done(out_dir)} ({shown(out_dir)}); "
              f"{to_resume(*_LAUNCHED[dir_key], key=f'hydra.{dir_key}.dir')}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except RunningElsewhere as exc:
        if single:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        log.warning("%s", exc)  # another process trains this cell: not a failure of this launch
        return _failed(settings, str(exc), RUNNING_ELSEWHERE)
    except Exception as exc:
        message = _user_message(exc, out_dir)
        if single:
            if message is None:
                raise
            print(f"error: {message}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        if message is None:
            log.exception("failed: %s", out_dir)
            message = f"{type(exc).__name__}: {exc}"
        else:
            log.error("failed: %s (%s)", message, out_dir)
        return _failed(settings, message, FAILED)
    record = ran.record
    _report(record, out_dir, single)
    if record["status"] != COMPLETED:
        if single:
            print(f"error: {record['error']}", file=sys.stderr)
            sys.exit(EXIT_DIVERGED)
        return _failed(settings, str(record["error"]), str(record["status"]))
    value = objective(record, cfg.objective.metric, cfg.objective.target)
    if value is None and not _grid(settings):
        raise TrialFailed(
            f"{out_dir} has no {cfg.objective.metric} to return to the sweeper; it needs a validation split "
            "(dataset.val_fraction > 0) and an evaluated objective.target.", FAILED
        )
    return Outcome(math.nan if value is None else value, SKIPPED if ran.skipped else COMPLETED)


def _train_group(cfg: DictConfig, sweep_dir: Path) -> Outcome:
    """A fused group's job (grid sweeps only): train its cells in one process, each into its own cell dir,
    and return each cell's status. As for one cell, a failure is recorded and the sweep goes on."""
    from spacing.fused import run_group_cells  # torch: only once a run starts

    cells = group_cells(cfg, sweep_dir)
    dirs = [cell_dir for _, cell_dir in cells]
    try:
        ran = run_group_cells(cells, sweep_dir)
    except KeyboardInterrupt:
        print(f"error: interrupted while training the fused group of {len(cells)} cells of {shown(dirs[0])}; "
              f"{to_resume(*_LAUNCHED['sweep'])}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except RunningElsewhere as exc:
        log.warning("%s", exc)  # another process trains a cell of this group: not a failure of this launch
        return _stopped_group(dirs, RUNNING_ELSEWHERE)
    except Exception as exc:
        message = _user_message(exc, dirs[0])
        if message is None:
            log.exception("failed: the fused group of %s", shown(dirs[0]))
        else:
            log.error("failed: %s (the fused group of %s)", message, shown(dirs[0]))
        return _stopped_group(dirs, FAILED)
    for cell, cell_dir in zip(ran, dirs, strict=True):
        _report(cell.record, cell_dir, single=False)
    statuses = {cell_dir.name: SKIPPED if cell.skipped else str(cell.record["status"]) for cell, cell_dir in zip(ran, dirs, strict=True)}
    overall = COMPLETED if all(status in (COMPLETED, SKIPPED) for status in statuses.values()) else FAILED
    return Outcome(math.nan, overall, statuses)


def _stopped_group(dirs: list[Path], status: str) -> Outcome:
    """A group that raised: its cells whose records are completed keep that status, the others get `status`."""
    statuses = {d.name: COMPLETED if (read_result(d) or {}).get("status") == COMPLETED else status for d in dirs}
    return Outcome(math.nan, status, statuses)


def _report(record: dict[str, Any], out_dir: Path, single: bool) -> None:
    """The run's final line: printed after a single run; in a sweep, logged (its run.log), the sweep's view counts it."""
    summary = ", ".join(f"{target} {m['test_acc']:.4f}" for target, m in record["metrics"].items())
    line = f"{record['status']}: test accuracy {summary or 'n/a'} -> {out_dir}"
    if single:
        print(line)
    else:
        log.info("%s", line)


def _user_message(exc: BaseException, out_dir: Path) -> str | None:
    """The sentence for a user error or a storage error while the run wrote `out_dir`; None for a bug."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in (*DISK_FULL, errno.EROFS, errno.EACCES, errno.EPERM):
        fix = "free space" if exc.errno in DISK_FULL else "make it writable"
        return f"{storage_problem(exc, shown(out_dir))}; {fix} and run the same command again to resume from epoch {_epochs_done(out_dir)}."
    return None


def lost_cell(message: str, cfg: DictConfig) -> Outcome:
    """The task function of a cell whose own process ended without a result, run in its task process
    (spacing.task_cells): the cell's log says how it was lost, and the sweep goes on."""
    settings = HydraConfig.get()
    log.error("lost: %s (%s)", message, settings.runtime.output_dir)
    return _failed(settings, message, LOST)


def _failed(settings: DictConfig, message: str, status: str) -> Outcome:
    """A cell that did not complete: NaN for the grid sweeper, which goes on; a raise for an optimiser."""
    if _grid(settings):
        return Outcome(math.nan, status)
    raise TrialFailed(message, status)


def _grid(settings: DictConfig) -> bool:
    """Whether the multirun's sweeper is a grid sweeper (Hydra's basic one or spacing's, which stop at a job that raised)."""
    return str(OmegaConf.select(settings, "sweeper._target_")) in GRID_SWEEPERS


def objective(record: dict[str, Any], metric: str, target: str | None) -> float | None:
    """`metric` of `target` (default: the record's main target) in a run record, or None when it has none."""
    metrics = record.get("metrics") or {}
    target = target or record.get("main_target")
    value = (metrics.get(target) or {}).get(metric)
    return float(value) if value is not None else None


def _epochs_done(out_dir: Path) -> int:
    record = read_result(out_dir) or {}
    return int(record.get("epochs_completed") or 0)


def thread_count(requested: int | None, n_jobs: int | None) -> int | None:
    """The CPU thread count a run uses: `requested` (trainer.threads) when set; else the share of the
    CPUs a launcher gives one task: $SLURM_CPUS_PER_TASK in a SLURM task, CPUs / n_jobs in a local
    launcher worker, divided among the cells that share the task (hydra.launcher.cells_per_task,
    spacing.task_cells); else None where $OMP_NUM_THREADS is set (torch's default follows it); else
    the CPUs free when the run starts (:func:`spacing.cpus.free_cpus`), never more threads than the
    machine has idle cores for."""
    if requested is not None:
        return requested
    if os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return max(1, int(os.environ["SLURM_CPUS_PER_TASK"]) // cells_in_task())
    if n_jobs is not None:
        cpus = len(os.sched_getaffinity(0))
        workers = n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)  # joblib: -1 = all CPUs, -2 = all but one
        return max(1, cpus // min(workers, cpus) // cells_in_task())
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return free_cpus()


def set_thread_count(requested: int | None, n_jobs: int | None) -> int:
    """Set torch's thread count (see :func:`thread_count`) and return the count the run uses."""
    import torch

    count = thread_count(requested, n_jobs)
    if count is not None:
        torch.set_num_threads(count)
    return torch.get_num_threads()


def plan_command(argv: list[str]) -> int:
    from spacing.plan import make_plan

    args = parse_args(argv)
    with hydra_session(args) as session:
        try:
            master = compose_master(session, args, RunMode.MULTIRUN)
            plan = make_plan(session, master)
        except COMPOSE_ERRORS as exc:
            print(f"error: {explain(exc)}", file=sys.stderr)
            return EXIT_USER_ERROR
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
    print("\n".join(plan.lines(args.cfg)))
    for sentence in plan.errors():
        print(f"error: {sentence}", file=sys.stderr)
    return EXIT_USER_ERROR if plan.invalid else 0


def submit_command(argv: list[str]) -> int:
    from spacing.submit import submit

    try:
        return submit(parse_args(argv))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


def status_command(argv: list[str]) -> int:
    from spacing.status import status_main

    return status_main(argv)
