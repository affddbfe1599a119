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
sweepers only from its ``hydra_plugins`` namespace; :func:`register_plugin` makes that directory
visible), the default sweeper of ``conf/config.yaml``. ``hydra.sweeper.controls=true`` adds the
controls to any grid:

    python run.py -m +sweep=ema_grid hydra.sweeper.controls=true

Everything that needs a multirun's cells before it runs (``spacing plan``, the pre-flight check of
every launch, ``spacing submit``) gets them from :func:`spacing.compose.job_overrides`, which calls
:func:`grid_cells` as the sweeper does, so it sees exactly the cells the sweeper launches.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

PLUGIN_PATH = Path(__file__).resolve().parent / "hydra_plugin"
"""Holds ``hydra_plugins/spacing_sweeper.py``: a portion of Hydra's plugin namespace package."""
GRID_SWEEPER = "hydra_plugins.spacing_sweeper.SpacingSweeper"
"""The grid sweeper's ``_target_`` (``conf/hydra/sweeper/spacing.yaml``)."""
CONTROL_KEY = "method.control"
CONTROL = f"{CONTROL_KEY}=matched"

Compose = Callable[[Sequence[str]], DictConfig]
"""The config of one cell from its overrides (as the launcher will compose it)."""


def has_control(cell: DictConfig) -> bool:
    """Whether the composed `cell` is an ordinary spaced cell of a method whose schema declares a control."""
    method = cell.method
    if getattr(OmegaConf.get_type(method), "control_kind", None) is None or method.get("control", "none") != "none":
        return False
    interval = float(method.interval)
    return method.schedule == "random" or 0 < interval < math.inf


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


def register_plugin() -> None:
    """Put :data:`PLUGIN_PATH` on ``sys.path``, so Hydra's plugin scan finds the sweeper; call before Hydra starts."""
    if str(PLUGIN_PATH) not in sys.path:
        sys.path.append(str(PLUGIN_PATH))
