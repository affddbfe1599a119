"""Two launches of one grid started at once: each summary counts every cell of the grid once, by what
happened to it in that launch, and across both every cell was trained exactly once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import CELL_TINY, cells, launch, launch_in_background, read_record, summary_line

pytestmark = pytest.mark.slow

COUNTS = re.compile(r"^sweep (?P<sweep>\S+): (?P<cells>\d+) cells, (?P<counts>.*)$")


def counts(line: str) -> dict[str, int]:
    match = COUNTS.match(line)
    assert match is not None, line
    found = {name: int(n) for n, name in (part.split(" ", 1) for part in match["counts"].split(", "))}
    assert sum(found.values()) == int(match["cells"]), line
    return found


@pytest.mark.parametrize("launcher", [(), ("hydra/launcher=local", "hydra.launcher.n_jobs=1", "hydra.launcher.cells_per_task=2")],
                         ids=["basic", "local cells_per_task=2"])
def test_two_launches_at_once_each_count_the_whole_grid_once(launcher: tuple[str, ...], tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    grid = ("method=ema", "method.interval=0,0.5", "seed=0,1", "trainer.epochs=2", *CELL_TINY, *launcher,
            f"hydra.sweep.dir={sweep}")
    first = launch_in_background(*grid, cwd=tmp_path)
    try:
        second = launch(*grid, cwd=tmp_path)
        assert first.wait(timeout=600) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        first.kill()
    assert second.returncode == 0, second.stderr[-3000:]
    summaries = [counts(summary_line((tmp_path / "driver.log").read_text())), counts(summary_line(second.stdout))]
    assert [sum(found.values()) for found in summaries] == [4, 4]
    assert sum(found.get("completed", 0) for found in summaries) == 4  # each cell trained by exactly one launch
    assert all(found.get("failed", 0) == 0 and found.get("unfinished", 0) == 0 for found in summaries)
    assert len(cells(sweep)) == 4 and all(read_record(cell)["status"] == "completed" for cell in cells(sweep))
