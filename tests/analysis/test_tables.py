"""The comparison table: baseline, massed, the interval chosen on validation with its paired gain, in three formats."""

import math

import pandas as pd
import pytest

from analysis import tables
from analysis.gains import gains
from analysis.report import load


@pytest.fixture
def table(sweep):
    analysis = load([sweep.root])
    return tables.comparison(analysis.points, analysis.gains)


def test_numbers_and_the_interval_chosen_on_validation_per_strength(table):
    assert table[["method", "strength", "target"]].values.tolist() == [["ema", 0.9, "ema"], ["ema", 0.99, "ema"]]
    weak, strong = (row for _, row in table.iterrows())
    assert (weak["baseline_mean"], weak["baseline_n"]) == (pytest.approx(78.0), 3)
    assert (weak["massed_mean"], weak["massed_sd"], weak["massed_n"]) == (pytest.approx(80.0), pytest.approx(1.0), 3)
    assert (weak["val_mean"], weak["val_interval"], weak["val_gain"]) == (pytest.approx(82.0), 0.5, pytest.approx(2.0))
    assert (weak["val_low"], weak["val_high"], weak["val_gain_n"], weak["val_paired"]) == \
        (pytest.approx(2.0), pytest.approx(2.0), 3, "yes")
    # at decay 0.99 the chosen s = 1 has a failed seed: n = 2, paired on seeds 0 and 1 (gain 3 points each)
    assert (strong["val_mean"], strong["val_n"], strong["val_interval"], strong["val_gain"]) == \
        (pytest.approx(85.5), 2, 1.0, pytest.approx(3.0))
    assert (strong["test_interval"], strong["test_gain"]) == (1.0, pytest.approx(3.0))
    # cost counts every run of both cells, the failed one too: 6 runs of 1 s each
    assert strong["cost_hours"] == pytest.approx(6 / 3600) and strong["cost"] == "0.0017 device-hours"
    assert set(table["metric"]) == {"final"}


def _runs(rows):
    """One completed run per (schedule, interval, seed, test, val), as tidy.select gives them."""
    return pd.DataFrame([
        {"method": "dropout", "schedule": schedule, "interval": s, "strength_name": "p", "strength": 0.5,
         "dataset": "cifar100", "model": "resnet18", "series": "", "control_kind": None, "control_interval": math.nan,
         "control_strength": math.nan, "control_schedule": None, "target": "model", "seed": seed, "status": "completed",
         "problem": None, "test_acc": test, "val_acc": val, "device_kind": "cpu", "device_count": 1, "threads": 2,
         "hours": 0.5}
        for schedule, s, seed, test, val in rows
    ])


def _table(rows):
    from analysis.tidy import aggregate

    runs = _runs(rows)
    return tables.comparison(aggregate(runs, "final"), gains(runs, "final")[0])


def test_ties_on_validation_go_to_the_smaller_interval_and_random_or_offline_never_win():
    rows = [("periodic", 0.0, seed, 0.70, 0.7) for seed in range(2)]
    rows += [("periodic", s, seed, 0.71, 0.8) for s in (2.0, 1.0) for seed in range(2)]
    rows += [("periodic", math.inf, seed, 0.99, 0.99) for seed in range(2)]
    rows += [("random", 0.0, seed, 0.98, 0.98) for seed in range(2)]
    (row,) = _table(rows).to_dict("records")
    assert (row["val_interval"], row["val_mean"], row["massed_mean"]) == (1.0, pytest.approx(71.0), pytest.approx(70.0))
    assert row["baseline_n"] == 0 and math.isnan(row["baseline_mean"])
    assert row["cost"] == "2.00 CPU-hours"  # two runs of s = 1 and two of massed, half an hour each


def test_a_row_without_massed_has_no_gain():
    (row,) = _table([("periodic", 1.0, 0, 0.71, 0.7)]).to_dict("records")
    assert math.isnan(row["val_gain"]) and math.isnan(row["val_interval"]) and row["massed_n"] == 0


def test_markdown_and_latex_name_the_metric_and_carry_the_numbers(table):
    markdown = tables.to_markdown(table, "best_test")
    assert "best test accuracy (%) over epochs (chosen on test: optimistic" in markdown
    lines = markdown.splitlines()
    assert lines[2].startswith("| method | strength | dataset / model | target | baseline | massed (s = 0) | best s on val |")
    assert lines[5] == ("| EMA | decay 0.99 | digits / small_cnn | EMA weights | 78.00 ± 1.00 (n=3) | 83.00 ± 1.00 (n=3) "
                        "| 1 | 85.50 ± 0.71 (n=2) | +3.00 [+3.00, +3.00] (n=2) | – | – | 1 | +3.00 [+3.00, +3.00] "
                        "| 0.0017 device-hours |")
    latex = tables.to_latex(table, "final")
    assert r"\caption{Baseline, massed and the spacing interval chosen on validation accuracy: test accuracy (\%) at the" in latex
    assert (r"EMA & decay 0.9 & digits / small\_cnn & EMA weights & 78.00 $\pm$ 1.00 (n=3) & 80.00 $\pm$ 1.00 (n=3) & "
            r"0.5 & 82.00 $\pm$ 1.00 (n=3) & +2.00 [+2.00, +2.00] (n=3) & -- & -- & 0.5 & +2.00 [+2.00, +2.00] & "
            r"0.0017 device-hours \\") in latex
    assert latex.count(r"\toprule") == 1 and r"\end{table}" in latex


def test_missing_parts_print_as_dashes():
    markdown = tables.to_markdown(_table([("periodic", 1.0, 0, 0.71, 0.7)]), "final")
    assert markdown.splitlines()[-1] == "| dropout | p 0.5 | cifar100 / resnet18 | model | – | – | – | – | – | – | – | – | – | – |"


def test_written_files_round_trip(table, tmp_path):
    md, tex, csv = tables.write_tables(table, "final", tmp_path / "cmp")
    assert md.read_text() == tables.to_markdown(table, "final") and tex.read_text() == tables.to_latex(table, "final")
    back = pd.read_csv(csv)
    assert back["val_gain"].tolist() == pytest.approx([2.0, 3.0])
    assert back["val_interval"].tolist() == [0.5, 1.0]
