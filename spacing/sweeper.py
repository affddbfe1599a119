"""The one place a multirun's grid becomes cells: Hydra's cross product, plus the control cells.

A control run (``method.control=matched``, see :class:`spacing.config.MethodConfig`) belongs to a
spaced cell: the massed run that matches what that cell changes besides the spacing. A massed
cell (interval 0), an offline one (interval inf) and a method without a control have none, so
crossing a grid with ``method.control=none,matched`` would make cells that are duplicates or
errors. Instead :func:`grid_cells` adds, right after each spaced cell (0 < interval < inf, or the
random schedule) of a method whose schema declares a control, that cell with
``method.control=matched``; nothing else changes, so the control's dir and record name the cell it
controls.

The sweeper that launches these cells is Hydra's basic sweeper with this expansion,
``hydra_plugins.spacing_sweeper.SpacingSweeper`` in ``spacing/hydra_plugin/`` (Hydra instantiates
sweepers only from its ``hydra_plugins`` namespace, where ``pip install`` puts that directory's
modules), the default sweeper of ``conf/config.yaml``. With ``controls`` and ``fuse`` off it is
Hydra's basic sweeper (tests/sweeps/test_hydra_plugin_suites.py runs Hydra's sweeper suite on it). ``hydra.sweeper.controls=true`` adds the
controls to any grid:

    python run.py -m +sweep=ema_grid hydra.sweeper.controls=true

``hydra.sweeper.fuse=true`` launches the cells that can share one training trajectory as one job
(:func:`grid_jobs`): cells whose method fuses (:meth:`spacing.config.MethodConfig.fusable`) and whose
overrides are equal except for the method's fusable keys (EMA: interval, decay, schedule, control;
online KD: interval, schedule) form a group, in the order of their first cell. A group's job is its
first cell's overrides plus ``fused_cells=[{...}, ...]``: each cell as the values of the fusable keys
in which the group's cells differ. Every config a cell's overrides compose differs from the
first cell's only in those plain values under ``method.``, so the task rebuilds each cell's config
from the job's by setting them (:func:`group_cells`), and ``fused_cells`` is neutral
(:mod:`spacing.neutral`): the job's Hydra dir is its first cell's dir, and every cell's dir and
record are those of the unfused cell. A group of one, and a cell whose config does not fuse, stay
ordinary jobs. Hydra's launchers see jobs as they always do: submitit makes one array task per job.

Everything that needs a multirun's cells before it runs (``spacing plan``, the pre-flight check of
every launch, ``spacing submit``) gets them from :func:`spacing.compose.grid_plan`, which calls
:func:`grid_cells` and :func:`grid_jobs` as the sweeper does, so it sees exactly the cells and jobs
the sweeper launches.
"""

from __future__ import annotations

import copy
import importlib.util
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from spacing.config import MethodConfig, to_dict
from spacing.errors import ConfigError, UserError
from spacing.neutral import cell_dir_name

GRID_SWEEPER = "hydra_plugins.spacing_sweeper.SpacingSweeper"
"""The grid sweeper's ``_target_`` (:class:`GridSweeperConf`)."""
PLUGIN_MODULES = ("hydra_plugins.spacing_sweeper", "hydra_plugins.spacing_launchers")
"""spacing's portion of Hydra's ``hydra_plugins`` namespace package (spacing/hydra_plugin/hydra_plugins/),
installed by ``pip install``."""
CONTROL_KEY = "method.control"
CONTROL = f"{CONTROL_KEY}=matched"
FUSE_OPTION = "hydra.sweeper.fuse"
FUSED_CELLS = "fused_cells"
"""The top-level key of a fused group's job that lists its cells (:attr:`spacing.config.Config.fused_cells`)."""



@dataclass
class GridSweeperConf(BasicSweeperConf):
    """hydra/sweeper=spacing: Hydra's basic sweeper's settings, plus ``controls`` and ``fuse``.

    Registered in Hydra's ConfigStore as ``hydra/sweeper=spacing_grid`` by the sweeper's plugin module, as
    Hydra's plugins register theirs. ``controls`` and ``fuse`` are untyped here: a bool node would take
    ``7`` as true, where :func:`spacing.preflight.check_sweep_options` refuses anything but true or false.
    """

    _target_: str = GRID_SWEEPER
    controls: Any = False
    fuse: Any = False


Compose = Callable[[Sequence[str]], DictConfig]
"""The config of one cell from its overrides (as the launcher will compose it)."""


def cached(compose: Compose) -> Compose:
    """`compose`, composing each cell once: the controls and the fused groups both ask for a cell's config."""
    seen: dict[tuple[str, ...], DictConfig] = {}

    def compose_once(cell: Sequence[str]) -> DictConfig:
        key = tuple(cell)
        if key not in seen:
            seen[key] = compose(cell)
        return seen[key]

    return compose_once


def has_control(cell: DictConfig) -> bool:
    """Whether the composed `cell` is an ordinary spaced cell of a method whose schema declares a control, and
    whose keys allow one (:meth:`spacing.config.MethodConfig.control_refused`)."""
    method = cell.method
    if getattr(OmegaConf.get_type(method), "control_kind", None) is None or method.get("control", "none") != "none":
        return False
    interval = float(method.interval)
    if not (method.schedule == "random" or 0 < interval < math.inf):
        return False
    try:
        return OmegaConf.to_object(method).control_refused() is None  # e.g. online KD's rounds: no constant lead
    except (OmegaConfBaseException, ConfigError):
        return False


def grid_cells(overrides: list[Override], compose: Compose, controls: bool = False) -> list[list[str]]:
    """Every cell of the grid `overrides` spans, in launch order; with `controls`, each spaced cell's control after it."""
    cells = BasicSweeper.split_arguments(overrides, None)[0]
    if not controls:
        return cells
    expanded = []
    for cell in cells:
        expanded.append(cell)
        if _spaced_with_control(cell, compose):
            expanded.append([o for o in cell if o.partition("=")[0] != CONTROL_KEY] + [CONTROL])
    return expanded


def _spaced_with_control(cell: list[str], compose: Compose) -> bool:
    """:func:`has_control` of the cell's config; a cell that does not compose has none (the plan reports it)."""
    try:
        return has_control(compose(cell))
    except (HydraException, OmegaConfBaseException):
        return False


@dataclass(frozen=True)
class Job:
    """One job the sweeper launches: one cell, or a fused group of cells."""

    overrides: tuple[str, ...]
    cells: tuple[int, ...]
    """The positions of its cells in the grid's cells (:func:`grid_cells`), in the order it trains them."""

    @property
    def fused(self) -> bool:
        return any(o.partition("=")[0] == FUSED_CELLS for o in self.overrides)


def grid_jobs(cells: Sequence[Sequence[str]], compose: Compose, fuse: bool = False) -> list[Job]:
    """The jobs that train `cells`: one per cell, or with `fuse` one per group of cells that share a trajectory."""
    if not fuse:
        return [Job(tuple(cell), (index,)) for index, cell in enumerate(cells)]
    groups: dict[object, list[tuple[dict[str, Any], list[int]]]] = {}
    for index, cell in enumerate(cells):
        values = _fusable_values(cell, compose)
        if values is None:
            groups[index] = [({}, [index])]
            continue
        fusable = {f"method.{key}" for key in values}
        shared = tuple(sorted(o for o in cell if o.partition("=")[0] not in fusable))
        members = groups.setdefault(shared, [])
        same = next((positions for seen, positions in members if seen == values), None)
        if same is None:
            members.append((values, [index]))
        else:
            same.append(index)  # a repeated cell: the same cell dir, trained once
    return [_job(cells, members) for members in groups.values()]


def _job(cells: Sequence[Sequence[str]], members: list[tuple[dict[str, Any], list[int]]]) -> Job:
    """The job of one group: its first cell's overrides, plus the values in which its cells differ from each other."""
    first = tuple(cells[members[0][1][0]])
    positions = tuple(index for _, indices in members for index in indices)
    if len(members) == 1:
        return Job(first, positions)
    varying = [key for key in members[0][0] if len({repr(values[key]) for values, _ in members}) > 1]
    listed = [{key: values[key] for key in varying} for values, _ in members]
    return Job((*first, f"{FUSED_CELLS}={Override._get_value_element_as_str(listed)}"), positions)


def _fusable_values(cell: Sequence[str], compose: Compose) -> dict[str, Any] | None:
    """The cell's values of its method's fusable keys, or None when its config cannot fuse (or does not compose)."""
    if any(o.partition("=")[0].lstrip("+~") == FUSED_CELLS for o in cell):
        return None
    try:
        method = OmegaConf.to_object(compose(cell).method)
    except (HydraException, OmegaConfBaseException, ConfigError):
        return None
    if not isinstance(method, MethodConfig) or not method.fusable():
        return None
    return {key: getattr(method, key) for key in method.fusable_keys}


def group_cells(job: DictConfig, sweep_dir: Path) -> list[tuple[DictConfig, Path]]:
    """The config and dir of each cell of a fused group's job (`job`: its run config, without the hydra node), in order.

    A cell's config is the job's with the cell's values set under ``method.`` and no ``fused_cells``:
    the config its overrides compose alone (tests/sweeps/test_fused_grid.py checks this), so its dir
    in `sweep_dir` is the unfused cell's.
    """
    cells = []
    for values in job[FUSED_CELLS]:
        cell = copy.deepcopy(job)
        with read_write(cell), open_dict(cell):
            cell[FUSED_CELLS] = []
            for key, value in values.items():
                cell.method[key] = value
        cells.append((cell, sweep_dir / cell_dir_name(to_dict(cell))))
    return cells


def is_group(job: DictConfig) -> bool:
    """Whether the run config `job` is a fused group's job."""
    return bool(OmegaConf.select(job, FUSED_CELLS))


def refuse_hand_set_group(master: DictConfig) -> None:
    """Raise UserError when the command's own config lists fused cells: only the grid sweeper writes them, per job."""
    if is_group(master):
        raise UserError(
            f"{FUSED_CELLS} is written by the grid sweeper into each fused group's job, not given on the command line "
            f"or in a config; remove it (and ask for fusion with {FUSE_OPTION}=true in a grid sweep)."
        )


def fusion_refused(sweeper: str) -> str:
    """The sentence for ``hydra.sweeper.fuse`` given to a sweeper that is not spacing's grid sweeper."""
    if sweeper == "BasicSweeper":
        return (f"{FUSE_OPTION} is an option of spacing's grid sweeper (the default one), not of Hydra's BasicSweeper; "
                f"drop hydra/sweeper=basic (or {FUSE_OPTION}).")
    return (
        f"{FUSE_OPTION} is an option of spacing's grid sweeper, not of the {sweeper}: fusion is for grid sweeps "
        "only, and a fused job trains several cells, so it has no one objective to return to an optimising sweeper; "
        f"drop {FUSE_OPTION} (a sweep file that sets it is a grid: do not combine it with another sweeper)."
    )


def require_plugins() -> None:
    """Raise UserError when spacing's launchers and grid sweeper are not installed where Hydra looks for plugins."""
    if all(importlib.util.find_spec(name) is not None for name in PLUGIN_MODULES):
        return
    raise UserError(
        "spacing's grid sweeper and launchers are Hydra plugins that are not installed in this Python environment; "
        "install the project with pip install -e . in its checkout."
    )
