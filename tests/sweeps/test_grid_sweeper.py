"""The grid sweeper: Hydra's cross product, plus a control cell beside each spaced cell when asked."""

from __future__ import annotations

import json
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

from spacing.sweeper import grid_cells
from tests.helpers import compose_config, run_cli


def cells_of(*overrides: str, controls: bool = True) -> list[list[str]]:
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return grid_cells(parsed, lambda cell: compose_config(list(cell)), controls)


def test_each_spaced_cell_gets_its_control_right_after_it_and_massed_cells_none() -> None:
    cells = cells_of("method=ema", "method.interval=0,0.5,2", "seed=0,1")
    assert cells == [
        ["method=ema", "method.interval=0", "seed=0"],
        ["method=ema", "method.interval=0", "seed=1"],
        ["method=ema", "method.interval=0.5", "seed=0"],
        ["method=ema", "method.interval=0.5", "seed=0", "method.control=matched"],
        ["method=ema", "method.interval=0.5", "seed=1"],
        ["method=ema", "method.interval=0.5", "seed=1", "method.control=matched"],
        ["method=ema", "method.interval=2", "seed=0"],
        ["method=ema", "method.interval=2", "seed=0", "method.control=matched"],
        ["method=ema", "method.interval=2", "seed=1"],
        ["method=ema", "method.interval=2", "seed=1", "method.control=matched"],
    ]


def test_without_the_option_the_grid_is_the_basic_sweepers_cross_product() -> None:
    assert cells_of("method=ema", "method.interval=0,0.5", controls=False) == [
        ["method=ema", "method.interval=0"],
        ["method=ema", "method.interval=0.5"],
    ]


def test_the_interval_may_come_from_a_preset_and_a_random_schedule_has_a_control() -> None:
    assert cells_of("method=spaced_ema") == [["method=spaced_ema"], ["method=spaced_ema", "method.control=matched"]]
    assert cells_of("method=dropout", "method.schedule=random") == [
        ["method=dropout", "method.schedule=random"],
        ["method=dropout", "method.schedule=random", "method.control=matched"],
    ]


def test_methods_without_a_control_offline_cells_and_explicit_controls_get_none() -> None:
    assert cells_of("method=online_kd", "method.interval=0,1.5,inf") == [
        ["method=online_kd", "method.interval=0"],
        ["method=online_kd", "method.interval=1.5"],
        ["method=online_kd", "method.interval=1.5", "method.control=matched"],  # its matched-lead control (issue 25)
        ["method=online_kd", "method.interval=inf"],  # offline: no control
    ]
    assert cells_of("method=self_kd", "method.interval=4") == [["method=self_kd", "method.interval=4"]]
    assert cells_of("method=baseline") == [["method=baseline"]]
    given = ["method=ema", "method.interval=1", "method.control=matched"]
    assert cells_of(*given) == [given]


def test_a_cell_that_does_not_compose_gets_no_control_and_is_left_for_the_plan_to_report() -> None:
    assert cells_of("method=ema", "method.interval=0.5,abc") == [
        ["method=ema", "method.interval=0.5"],
        ["method=ema", "method.interval=0.5", "method.control=matched"],
        ["method=ema", "method.interval=abc"],
    ]


def test_a_multirun_with_controls_trains_them_and_the_verdict_reports_the_gain_over_them(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = run_cli(
        # decay 0.3 over 2 epochs of 4 steps: every shadow (spaced 0.3 ** 4, its control 0.65 ** 8) forgets its start
        "-m", "method=ema", "method.decay=0.3", "method.interval=0,0.5", "seed=0,1", "dataset=synthetic", "model.width=8",
        "trainer.epochs=2", "trainer.device=cpu", "hydra.sweeper.controls=true", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(path.read_text()) for path in sorted(sweep.glob("*/result.json"))]
    assert len(records) == 6  # massed, spaced and its control, for 2 seeds
    controls = [r for r in records if r["control"] is not None]
    assert len(controls) == 2 and all(r["interval"] == 0.0 and r["config"]["method"]["interval"] == 0.5 for r in controls)
    assert all(r["control"] == {"kind": "matched_horizon", "interval": 0.5, "strength": 0.3, "schedule": "periodic"} for r in controls)
    verdict = done.stdout.rstrip().splitlines()[-1]
    assert verdict.startswith("  Spaced EMA, decay 0.3 (s = 0.5, chosen on validation) ") and " massed " in verdict
    assert " its matched-horizon control " in verdict and "2 paired seeds" in verdict.split("matched-horizon control")[1]
