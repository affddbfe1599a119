"""Every cell of a multirun, composed and checked before anything runs.

``spacing plan ARGS`` (ARGS as for ``python run.py -m``) prints each cell's dir, its state (see
:mod:`spacing.sweep_state`) and the values that make it, and one sentence per bad value. The
same plan guards every launch: a multirun with an invalid cell submits nothing
(:class:`spacing.sweep_callback.SweepCallback`). Composing and checking a cell is what the
launcher does again later; no data, model or torch is touched here.

A valid cell may still be unable to measure what its interval claims; the plan ends with a
warning per such group of cells (:meth:`Plan.warnings`): an EMA shadow that will still hold more
than ``INITIAL_WEIGHT_LIMIT`` of its initial weights (decay ** the refreshes its
:class:`~spacing.schedule.Schedule` makes in the run), an interval at or beyond the run's length,
and intervals whose periods round to the same number of steps. Steps per epoch are predicted from
the data set's size where that is known without reading its files.
"""

from __future__ import annotations

import functools
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.hydra import Hydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from spacing.compose import app_config, cell_dir, compose_cell, explain, grid_plan, is_grid, shown
from spacing.config import Config, EmaConfig, to_config
from spacing.contract import INITIAL_WEIGHT_LIMIT
from spacing.errors import ConfigError
from spacing.schedule import Schedule
from spacing.sweep_state import cell_state
from spacing.sweeper import CONTROL_KEY, Compose, Job, cached


@dataclass(frozen=True)
class PlannedCell:
    """One cell of a grid: its overrides, and either its dir and state or why it is invalid."""

    overrides: tuple[str, ...]
    dir: Path | None = None
    state: str | None = None
    error: str | None = None
    config: DictConfig | None = None
    """The cell's whole config (hydra node included), for ``--cfg``."""


@dataclass(frozen=True)
class Plan:
    """The cells of one multirun command, in launch order."""

    sweep_dir: Path
    cells: tuple[PlannedCell, ...]
    seconds: float
    sweeper: str | None = None
    """The sweeper's class when it is not the basic grid sweeper: its cells are chosen while it runs, so
    only the base config is checked (`cells` then holds it when it is invalid, and nothing else)."""
    jobs: tuple[Job, ...] = ()
    """The jobs the grid sweeper launches, in launch order: one per cell, or one per fused group
    (``hydra.sweeper.fuse``); on SLURM, one array task each."""

    @property
    def fused(self) -> tuple[Job, ...]:
        return tuple(job for job in self.jobs if job.fused)

    def task_of_cells(self, tasks: list[str]) -> list[str]:
        """Each cell's task (`tasks`: one per job, in launch order), in the order of `cells`."""
        of_cell = {cell: task for job, task in zip(self.jobs, tasks, strict=True) for cell in job.cells}
        return [of_cell[index] for index in range(len(self.cells))]

    @property
    def invalid(self) -> tuple[PlannedCell, ...]:
        return tuple(cell for cell in self.cells if cell.error is not None)

    @property
    def valid(self) -> tuple[PlannedCell, ...]:
        return tuple(cell for cell in self.cells if cell.error is None)

    def varying(self) -> list[str]:
        """The keys whose value differs between cells, or that only some cells set (a control cell's
        ``method.control=matched``): what a cell's line shows."""
        values: dict[str, set[str]] = {}
        for cell in self.cells:
            for override in cell.overrides:
                key, _, value = override.partition("=")
                values.setdefault(key, set()).add(value)
        setting = Counter(o.partition("=")[0] for cell in self.cells for o in cell.overrides)
        return [key for key, seen in values.items() if len(seen) > 1 or setting[key] < len(self.cells)]

    def errors(self) -> list[str]:
        """One sentence per bad value, with how many cells it spoils."""
        counts = Counter(cell.error for cell in self.invalid)
        return [(f"{count} cells: " if count > 1 else "") + str(error) for error, count in counts.items()]

    def lines(self, cfg: str | None = None) -> list[str]:
        """The plan as printed: a header with the counts, then one line per cell (and its config with `cfg`)."""
        if self.sweeper is not None:
            return [
                f"sweep {shown(self.sweep_dir)}: the {self.sweeper} sweeper chooses its cells while it runs; "
                f"the base config was checked in {self.seconds:.1f} s."
            ]
        states = Counter(cell.state for cell in self.valid)
        counts = [f"{states[state]} {state}" for state in sorted(states, key=str)]
        if self.invalid:
            counts.append(f"{len(self.invalid)} invalid")
        lines = [
            f"sweep {shown(self.sweep_dir)}: {len(self.cells)} cells ({', '.join(counts)}){self._jobs_text()}, "
            f"composed and checked in {self.seconds:.1f} s"
        ]
        keys = self.varying()
        for cell in self.cells:
            shown_values = " ".join(o for o in cell.overrides if o.partition("=")[0] in keys)
            where = shown(cell.dir) if cell.dir is not None else "-"
            lines.append(f"  {cell.state or 'invalid':<10} {where}  {shown_values}".rstrip())
            if cfg is not None and cell.config is not None:
                lines += ["    " + line for line in _config_yaml(cell.config, cfg).splitlines()]
        return lines + [f"note: {note}" for note in self.notes()] + [f"warning: {warning}" for warning in self.warnings()]

    def notes(self) -> list[str]:
        """In a fused grid, one sentence per method whose control cells train apart from their spaced cells' groups."""
        if not self.fused:
            return []
        apart: dict[str, str] = {}
        for cell in self.valid:
            if cell.config is None or f"{CONTROL_KEY}=matched" not in cell.overrides:
                continue
            method = to_config(app_config(cell.config)).method
            if type(method).control_apart is not None:
                apart[f"the {method.control_kind} controls of {method.name}"] = str(type(method).control_apart)
        return [f"{who} train in fused groups of their own, apart from their spaced cells: {why}." for who, why in apart.items()]

    def warnings(self) -> list[str]:
        """One sentence per group of valid cells (all seeds of a cell together) that cannot measure its interval."""
        keys = [key for key in self.varying() if key != "seed"]
        found: dict[str, list[str]] = {}
        periods: dict[tuple[str, int], set[str]] = {}
        for cell in self.valid:
            if cell.config is None:
                continue
            config = to_config(app_config(cell.config))
            label = " ".join(o for o in cell.overrides if o.partition("=")[0] in keys) or "every cell"
            for reason in unmeasurable(config):
                cells = found.setdefault(reason, [])
                if label not in cells:
                    cells.append(label)
            period = spaced_period(config)
            if period is not None:
                rest = " ".join(o for o in cell.overrides if o.partition("=")[0] in keys and not o.startswith("method.interval="))
                periods.setdefault((rest, period), set()).add(f"{config.method.interval:g}")
        lines = [f"{'; '.join(cells)}: {reason}" for reason, cells in found.items()]
        for (rest, period), intervals in periods.items():
            if len(intervals) > 1:
                where = f" with {rest}" if rest else ""
                lines.append(f"method.interval={' and '.join(sorted(intervals, key=float))}{where} refresh every {period} "
                             "steps alike: identical cells, not different intervals; space the intervals further apart.")
        return lines

    def _jobs_text(self) -> str:
        """How many jobs a fused grid launches (nothing when every cell is its own job)."""
        if not self.fused:
            return ""
        singles = len(self.jobs) - len(self.fused)
        kinds = [counted(len(self.fused), "fused group")] + ([counted(singles, "single cell")] if singles else [])
        return f" in {counted(len(self.jobs), 'job')} ({', '.join(kinds)})"


def make_plan(hydra: Hydra, master: DictConfig) -> Plan:
    """Compose and check every cell of the multirun `master` (composed in MULTIRUN mode)."""
    started = time.perf_counter()
    sweep_dir = Path(str(master.hydra.sweep.dir))
    if not is_grid(master):
        try:
            to_config(app_config(master))
            checked: tuple[PlannedCell, ...] = ()
        except ConfigError as exc:
            checked = (PlannedCell((), error=str(exc)),)
        name = str(OmegaConf.select(master, "hydra.sweeper._target_")).rpartition(".")[2]
        return Plan(sweep_dir, checked, time.perf_counter() - started, sweeper=name)
    compose = cached(lambda overrides: compose_cell(hydra, master, overrides))
    grid, jobs = grid_plan(hydra, master, compose)
    cells = tuple(_plan_cell(compose, tuple(overrides)) for overrides in grid)
    return Plan(sweep_dir, cells, time.perf_counter() - started, jobs=tuple(jobs))


def _plan_cell(compose: Compose, overrides: tuple[str, ...]) -> PlannedCell:
    try:
        cell = compose(overrides)
        to_config(app_config(cell))
        where = cell_dir(cell)
    except ConfigError as exc:
        return PlannedCell(overrides, error=str(exc))
    except (HydraException, OmegaConfBaseException) as exc:
        return PlannedCell(overrides, error=explain(exc))
    return PlannedCell(overrides, where, cell_state(where), config=cell)


SOURCE_TRAIN_IMAGES = {"digits": 1797 - round(0.2 * 1797), "cifar10": 50_000, "cifar100": 50_000, "svhn": 73_257,
                       "tiny_imagenet": 100_000}
"""Training images of each data set before the validation holdout, where known without reading its files
(digits: 1,797 less its fixed 20 % test split); the synthetic set says its own (``dataset.train_size``)."""


def steps_per_epoch(config: Config) -> int | None:
    """The training steps of one epoch the run will make (None for a data set of unknown size).

    Exact but for ``dataset.train_fraction`` < 1, whose stratified subset rounds per class (a few images).
    """
    dataset = config.dataset
    source = getattr(dataset, "train_size", None) or SOURCE_TRAIN_IMAGES.get(dataset.name)
    if source is None:
        return None
    train = source - round(dataset.val_fraction * source)
    if dataset.train_fraction < 1.0:
        train = round(dataset.train_fraction * train)
    return math.ceil(train / config.trainer.batch_size)


@functools.lru_cache(maxsize=None)
def refreshes(interval: float, kind: str, steps: int, epochs: int, seed: int, random_max_gap: float) -> int:
    """How many times the schedule refreshes the ensemble in a run of `epochs` epochs of `steps` steps."""
    return len(Schedule(interval, kind, steps, seed, random_max_gap).refresh_steps(epochs * steps))


def unmeasurable(config: Config) -> list[str]:
    """Why a cell's config cannot measure its interval (predicted before it runs), as sentences; [] when it can."""
    method, epochs = config.method, config.trainer.epochs
    found = []
    if method.control == "none" and method.schedule == "periodic" and 0 < method.interval < math.inf \
            and method.interval >= epochs:
        found.append(f"the interval is at or beyond the run's length (trainer.epochs={epochs}): the ensemble is "
                     "refreshed at most once, at the very end; use intervals shorter than the run.")
    steps = steps_per_epoch(config)
    if isinstance(method, EmaConfig) and steps is not None:
        schedule = Schedule(method.interval, method.schedule, steps, config.seed, method.random_max_gap)
        shadow = method.matched_control(schedule) if method.control == "matched" else method
        seed = config.seed if shadow.schedule == "random" else 0  # only random gaps depend on the seed
        count = refreshes(shadow.interval, shadow.schedule, steps, epochs, seed, shadow.random_max_gap)
        share = shadow.decay ** count
        if share > INITIAL_WEIGHT_LIMIT:
            found.append(f"the EMA shadow will still hold {100 * share:.0f} % of its initial weights after its "
                         f"{count} refreshes (decay {shadow.decay:.4g} ** {count}; more than {100 * INITIAL_WEIGHT_LIMIT:g} %), "
                         "so it measures too few refreshes, not spacing; train longer (trainer.epochs)"
                         + (", lower method.decay or shorten method.interval." if method.interval > 0
                            else " or lower method.decay."))
    return found


def spaced_period(config: Config) -> int | None:
    """The period in steps of a periodic spaced cell (not a control), as its Schedule has it; None otherwise."""
    method, steps = config.method, steps_per_epoch(config)
    if steps is None or method.control != "none" or method.schedule != "periodic" or not 0 < method.interval < math.inf:
        return None
    return int(Schedule(method.interval, method.schedule, steps).period)


def counted(n: int, what: str) -> str:
    """``1 job``, ``3 jobs``."""
    return f"{n} {what}" + ("" if n == 1 else "s")


def _config_yaml(cell: DictConfig, cfg: str) -> str:
    """What ``--cfg job|hydra|all`` prints for one run, for one cell."""
    if cfg == "hydra":
        return OmegaConf.to_yaml(cell.hydra)
    return OmegaConf.to_yaml(cell if cfg == "all" else app_config(cell))
