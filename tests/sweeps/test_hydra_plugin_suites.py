"""Hydra's own plugin contract: the suites Hydra's launchers and sweepers are tested with
(hydra.test_utils.launcher_common_tests), run against spacing's plugins as pip installs them.

- the local launcher (``hydra/launcher=joblib_cells``, what conf/hydra/launcher/local.yaml extends) with
  ``n_jobs`` 1 and 2 and ``cells_per_task`` 1 and 2 (the integration suite with ``n_jobs=2``);
- the SLURM launcher (``submitit_slurm_cells``) with ``cells_per_task`` 1 and 2 on the test cluster
  (tests/slurm/start_slurm.sh; skipped without one, as tests/sweeps/test_slurm.py is; the integration
  suite with 2);
- the grid sweeper (``hydra/sweeper=spacing_grid``) with controls and fuse off, which must behave
  exactly as Hydra's basic sweeper: the launcher suites (they sweep through it) and the batched one.

The integration suite starts a separate Hydra app per test, which finds these plugins only where
``pip install`` put them. The fixtures (hydra_sweep_runner, hydra_restore_singletons) come from
Hydra's pytest plugin, which hydra-core registers with pytest.
"""

from __future__ import annotations

from typing import Any

import pytest
from hydra import version
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite

from tests.helpers import SLURM_CPU

LOCAL = [
    pytest.param(n_jobs, cells_per_task, id=f"n_jobs={n_jobs},cells_per_task={cells_per_task}",
                 marks=[pytest.mark.slow] if cells_per_task > 1 else [])  # a fresh interpreter per cell: seconds a test
    for n_jobs in (1, 2) for cells_per_task in (1, 2)
]
SLURM = [pytest.param(cells_per_task, id=f"cells_per_task={cells_per_task}") for cells_per_task in (1, 2)]
SLURM_TEST_CLUSTER = [o for o in SLURM_CPU if not o.startswith("hydra/launcher=")]
"""The SLURM launcher's settings for the test cluster, as spacing's own SLURM tests use them (the suites choose the launcher)."""

QUIET = ["hydra/hydra_logging=disabled", "hydra/job_logging=disabled"]
"""As Hydra's plugins run their integration suites: the apps print only what the tests read."""


@pytest.fixture(autouse=True)
def _no_version_base_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suites expect Hydra as a fresh process has it, with no version_base chosen (Hydra 1.1's defaults: a job
    runs in its output dir); an earlier test of this process may have chosen 1.3, as run.py's hydra.main does."""
    monkeypatch.setattr(version.VersionBase.instance(), "version_base", version._UNSPECIFIED_)


def local_flags(n_jobs: int, cells_per_task: int) -> list[str]:
    return [f"hydra.launcher.n_jobs={n_jobs}", f"hydra.launcher.cells_per_task={cells_per_task}"]


@pytest.mark.parametrize(
    "kind, name",
    [(Launcher, "CellsPerTaskJoblibLauncher"), (Launcher, "CellsPerTaskSlurmLauncher"), (Sweeper, "SpacingSweeper")],
)
def test_hydra_discovers_the_plugins_as_it_discovers_its_own(kind: type, name: str) -> None:
    assert name in [plugin.__name__ for plugin in Plugins.instance().discover(kind)]


@pytest.mark.parametrize(
    "launcher_name, overrides", [pytest.param("joblib_cells", local_flags(*p.values), id=p.id) for p in LOCAL]
)
class TestLocalLauncher(LauncherTestSuite):
    """Hydra's launcher suite on the local launcher, in this process."""


@pytest.mark.slow
@pytest.mark.parametrize("n_jobs, cells_per_task", [p for p in LOCAL if p.values[0] == 2])
class TestLocalLauncherIntegration(IntegrationTestSuite):
    """Hydra's integration suite on the local launcher: each test a separate Hydra app. With n_jobs=2 (the
    default) only: the suite checks what an app sees (job names, dirs, cwd), which the number of workers does not
    change, and each cell process costs seconds; the in-process suite above runs every combination."""

    @pytest.fixture
    def task_launcher_cfg(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def extra_flags(self, n_jobs: int, cells_per_task: int) -> list[str]:
        return ["-m", *QUIET, "hydra/launcher=joblib_cells", *local_flags(n_jobs, cells_per_task)]


@pytest.mark.slow
@pytest.mark.usefixtures("slurm")
@pytest.mark.parametrize("launcher_name", ["submitit_slurm_cells"])
@pytest.mark.parametrize("cells_per_task", SLURM)
class TestSlurmLauncher(LauncherTestSuite):
    """Hydra's launcher suite on the SLURM launcher, submitting to the test cluster."""

    @pytest.fixture
    def overrides(self, cells_per_task: int) -> list[str]:
        return [*SLURM_TEST_CLUSTER, f"hydra.launcher.cells_per_task={cells_per_task}"]


@pytest.mark.slow
@pytest.mark.usefixtures("slurm")
@pytest.mark.parametrize("cells_per_task", [2])
class TestSlurmLauncherIntegration(IntegrationTestSuite):
    """Hydra's integration suite on the SLURM launcher: each test a separate Hydra app submitting to the test cluster.

    With cells_per_task=2 only: at 1 the launcher runs hydra-submitit-launcher's own ``launch``, which Hydra tests
    with this suite, and each test here waits on SLURM for seconds (both values: 22 tests, 6 minutes on 2 cores)."""

    @pytest.fixture
    def task_launcher_cfg(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def extra_flags(self, cells_per_task: int) -> list[str]:
        return ["-m", *QUIET, "hydra/launcher=submitit_slurm_cells", *SLURM_TEST_CLUSTER,
                f"hydra.launcher.cells_per_task={cells_per_task}"]


GRID_SWEEPER = ["hydra/sweeper=spacing_grid", "hydra.sweeper.controls=false", "hydra.sweeper.fuse=false"]


@pytest.mark.parametrize("launcher_name, overrides", [("basic", GRID_SWEEPER)])
class TestGridSweeper(LauncherTestSuite):
    """Hydra's launcher suite, swept by the grid sweeper: every grid, override and dir as the basic sweeper gives them."""


@pytest.mark.parametrize("launcher_name, overrides", [("basic", [*GRID_SWEEPER, "hydra.sweeper.max_batch_size=2"])])
class TestGridSweeperBatches(BatchedSweeperTestSuite):
    """Hydra's batched sweeper suite: the grid sweeper cuts a grid into batches as the basic sweeper does."""


@pytest.mark.slow
@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({}, ["-m", *QUIET, *GRID_SWEEPER])],
)
class TestGridSweeperIntegration(IntegrationTestSuite):
    """Hydra's integration suite with the grid sweeper: each test a separate Hydra app."""
