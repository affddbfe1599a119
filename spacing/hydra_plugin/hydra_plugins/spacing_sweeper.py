"""spacing's grid sweeper, where Hydra accepts it: Hydra instantiates plugins from ``hydra_plugins`` only.

This directory is a portion of the ``hydra_plugins`` namespace package (no ``__init__.py``, on
purpose), installed as ``hydra_plugins`` by ``pip install`` (pyproject.toml), as Hydra's own plugins
are: any Hydra app in the environment finds it. The class lives here, not in :mod:`spacing.sweeper`,
because Hydra's plugin scan re-executes its core plugin modules: a subclass of ``BasicSweeper`` must
be defined after that scan, as the scan defines this module. Its config schema is registered here
(``hydra/sweeper=spacing_grid``), as Hydra's plugins register theirs during that scan.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig

from spacing.sweeper import GridSweeperConf, cached, grid_cells, grid_jobs

ConfigStore.instance().store(group="hydra/sweeper", name="spacing_grid", node=GridSweeperConf, provider="spacing")


class SpacingSweeper(BasicSweeper):
    """Hydra's basic sweeper whose jobs come from :func:`spacing.sweeper.grid_cells` (``controls``: add control
    cells) and :func:`spacing.sweeper.grid_jobs` (``fuse``: one job per group of cells that share a trajectory)."""

    def __init__(
        self, max_batch_size: int | None = None, params: dict[str, str] | None = None, controls: bool = False, fuse: bool = False
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.controls = controls
        self.fuse = fuse

    def split_arguments(self, overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]:  # type: ignore[override]
        """The basic sweeper's batches of jobs (its ``sweep`` calls this on the instance)."""
        compose = cached(self._compose)
        cells = grid_cells(overrides, compose, self.controls)
        jobs = [list(job.overrides) for job in grid_jobs(cells, compose, self.fuse)]
        return list(BasicSweeper.split_overrides_to_chunks(jobs, max_batch_size))

    def _compose(self, overrides: Sequence[str]) -> DictConfig:
        assert self.hydra_context is not None and self.config is not None
        return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
