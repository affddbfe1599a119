"""Cost: device-hours per cell, per comparison and per sweep add up to what the records say; the verdict says it."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import cost
from analysis.__main__ import main
from analysis.report import load

H200 = {"kind": "NVIDIA H200", "count": 1}
TWO_GPUS = {"kind": "NVIDIA H200", "count": 2}
CPU = {"kind": "cpu", "count": 1}
#: (interval, seed) -> (wall_time_s, device, status)
RUNS = {
    (0.0, 0): (1800.0, H200, "completed"), (0.0, 1): (1620.0, H200, "completed"), (0.0, 2): (900.0, TWO_GPUS, "completed"),
    (0.5, 0): (2160.0, H200, "completed"), (0.5, 1): (1980.0, H200, "completed"), (0.5, 2): (720.0, H200, "failed"),
}
ACC = {(0.0, 0): 0.80, (0.0, 1): 0.81, (0.0, 2): 0.79, (0.5, 0): 0.815, (0.5, 1): 0.826, (0.5, 2): 0.5}


@pytest.fixture
def priced(tmp_path, write_run, make_record):
    for (interval, seed), (wall, device, status) in RUNS.items():
        write_run(tmp_path / f"{interval}-{seed}", make_record("ema", interval, 0.99, seed, {"ema": ACC[interval, seed]},
                                                               status=status, wall_time_s=wall, device=device))
    write_run(tmp_path / "cpu-baseline", make_record("baseline", 0.0, None, 0, {"model": 0.7}, wall_time_s=7200.0,
                                                     device=CPU))
    return tmp_path


def _hours(interval):
    """Hand sum of one cell: wall time x device count over every record of it, failed ones too."""
    return sum(wall * device["count"] for (s, _), (wall, device, _) in RUNS.items() if s == interval) / 3600


def test_cell_comparison_and_sweep_hours_are_the_sums_of_the_records(priced):
    analysis = load([priced])
    assert _hours(0.0) == pytest.approx(1800 / 3600 + 1620 / 3600 + 2 * 900 / 3600)
    points = analysis.points.set_index("interval")
    ema = points[points["method"] == "ema"]
    assert ema.loc[0.0, "hours"] == pytest.approx(_hours(0.0))
    assert ema.loc[0.5, "hours"] == pytest.approx(_hours(0.5))
    (row,) = analysis.gains.to_dict("records")
    assert (row["cell_hours"], row["reference_hours"]) == (pytest.approx(_hours(0.5)), pytest.approx(_hours(0.0)))
    assert row["cost_hours"] == pytest.approx(_hours(0.0) + _hours(0.5))
    assert row["cost"] == f"{_hours(0.0) + _hours(0.5):.2f} GPU-hours"
    lines = cost.sweep_lines(analysis.runs)
    assert lines == [f"cost of {priced}: 7 runs, 2.00 CPU-hours + {_hours(0.0) + _hours(0.5):.2f} GPU-hours"]


def test_gpu_and_cpu_hours_are_never_added_together():
    runs = pd.DataFrame({"device_kind": ["cpu", "NVIDIA H200", None], "hours": [1.0, 2.0, 4.0]})
    assert cost.by_unit(runs) == {"CPU-hours": 1.0, "GPU-hours": 2.0, "device-hours": 4.0}
    assert cost.text(cost.by_unit(runs)) == "1.00 CPU-hours + 2.00 GPU-hours + 4.00 device-hours"


def test_run_hours_is_wall_time_times_devices():
    assert cost.run_hours(5400.0, 2) == pytest.approx(3.0)
    assert cost.run_hours(None, 1) == 0.0 and cost.run_hours(3600.0, None) == 1.0


def test_the_verdict_names_gain_interval_n_and_cost(priced, capsys):
    assert main([str(priced)]) == 0
    out = capsys.readouterr().out
    diffs = [100 * (ACC[0.5, s] - ACC[0.0, s]) for s in (0, 1)]
    gain = sum(diffs) / 2
    expected_start = (f"  Spaced EMA, decay 0.99 (s = 0.5, chosen on validation) beats massed by {gain:.2f} points (95 % CI ")
    verdict = out.rstrip().splitlines()[-1]
    assert verdict.startswith(expected_start)
    # the power of the comparison (issue 25): the smallest detectable gain, (t_.975 + t_.80) sd / sqrt(n) at n - 1 df
    sd = float(np.std(diffs, ddof=1))
    detectable = (stats.t.ppf(0.975, 1) + stats.t.ppf(0.80, 1)) * sd / math.sqrt(2)
    power = (f"With 2 paired seeds (per-seed sd {sd:.2f} points) this sweep detects gains of {detectable:.2f} points "
             "or more (95 % confidence, 80 % power); ")
    assert verdict.endswith(f", 2 paired seeds). The same interval is best on test. {power}"
                            f"{verdict.split(power)[1].split('. ')[0]}. The comparison cost "
                            f"{_hours(0.0) + _hours(0.5):.2f} GPU-hours.")
    assert verdict in (priced / "analysis" / "summary.md").read_text().replace("- Spaced", "  Spaced")
    assert f"cost of {priced}: 7 runs, 2.00 CPU-hours + " in (priced / "analysis" / "summary.md").read_text()


def test_a_fused_cell_costs_its_share_of_its_groups_wall_time():
    assert cost.run_hours(7200.0, 1, 0.25) == pytest.approx(0.5)  # 2 h x 1 device x 1/4
    assert cost.run_hours(7200.0, 2, 0.5) == pytest.approx(2.0)
    assert cost.run_hours(7200.0, 1, None) == pytest.approx(2.0)  # unfused: the whole wall time
    assert cost.cost_share({"group": "0123456789ab", "cells": 4, "cost_share": 0.25}) == 0.25
    assert cost.cost_share(None) is None and cost.cost_share({"cells": 4}) is None


def test_a_fused_group_of_four_cells_costs_one_wall_time_in_the_sweep_total(tmp_path, write_run, make_record):
    """Four cells fused in one 3600 s group, each recording the group's wall time, cost 1 GPU-hour together, not 4."""
    fused = {"group": "0123456789ab", "cells": 4, "cost_share": 0.25}
    for interval in (0.0, 0.25, 0.5, 1.0):
        write_run(tmp_path / f"{interval}", make_record("ema", interval, 0.99, 0, {"ema": 0.8}, wall_time_s=3600.0,
                                                        device=H200, fused=fused))
    analysis = load([tmp_path])
    assert sorted(analysis.runs["cost_share"]) == [0.25] * 4
    assert analysis.runs["hours"].sum() == pytest.approx(1.0)
    assert cost.sweep_lines(analysis.runs) == [f"cost of {tmp_path}: 4 runs, 1.00 GPU-hours"]
