"""The tidy table's rows, the analysed target, and mean / sd / n per point."""

import math

import pandas as pd
import pytest

from analysis.integrity import vet
from analysis.labels import metric_words
from analysis.records import load_records
from analysis.tidy import aggregate, select, tidy_frame


@pytest.fixture
def tidy(sweep):
    records = load_records([sweep.root]).records
    vet(records)
    return tidy_frame(records)


def _point(points, **cell):
    rows = points
    for key, value in cell.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1, cell
    return rows.iloc[0]


def test_one_row_per_run_and_target(sweep, tidy):
    # 16 completed EMA runs x (ema, model) + the failed run once + random 3 x 2 + baseline 3 x 1
    assert len(tidy) == 16 * 2 + 1 + 6 + 3
    row = tidy[(tidy["strength"] == 0.9) & (tidy["interval"] == 0.5) & (tidy["seed"] == 0)
               & (tidy["schedule"] == "periodic")].set_index("target")
    assert row.loc["ema", ["test_acc", "best_test_acc", "val_acc", "test_acc_at_best_val"]].tolist() == \
        pytest.approx([0.81, 0.83, 0.80, 0.82])
    assert row.loc["model", "test_acc"] == pytest.approx(0.76)
    assert row["main"].to_dict() == {"ema": True, "model": False}
    assert set(row["path"]) == {row["path"].iloc[0]} and row["dataset"].iloc[0] == "digits"


def test_a_failed_run_keeps_one_row_without_metrics(sweep, tidy):
    failed = tidy[tidy["status"] == "failed"]
    assert failed[["target", "strength", "interval", "seed"]].values.tolist() == [["ema", 0.99, 1.0, 2]]
    assert math.isnan(failed["test_acc"].iloc[0])
    assert failed["error"].iloc[0] == "ValueError: loss is NaN at step 12"
    assert failed["path"].iloc[0] == str(sweep.failed)


def test_select_keeps_the_main_target_or_the_requested_one(tidy):
    runs = select(tidy)
    assert len(runs) == 23
    assert runs.groupby("method")["target"].unique().map(list).to_dict() == {"baseline": ["model"], "ema": ["ema"]}
    model = select(tidy, "model")
    assert len(model) == 23
    # the failed EMA run has no 'model' row, so it keeps its main one and stays listed
    assert sorted(model["target"].unique()) == ["ema", "model"]
    assert (model[model["status"] == "completed"]["target"] == "model").all()


def test_mean_sd_n_per_point_count_completed_seeds_only(sweep, tidy):
    points = aggregate(select(tidy), "final")
    full = _point(points, method="ema", strength=0.99, interval=0.5, schedule="periodic")
    assert (full["mean"], full["sd"], full["n"], full["seeds"]) == (pytest.approx(84.0), pytest.approx(1.0), 3, "0,1,2")
    failed_cell = _point(points, method="ema", strength=0.99, interval=1.0)  # seed 2 failed
    assert (failed_cell["mean"], failed_cell["sd"], failed_cell["n"]) == (pytest.approx(85.5), pytest.approx(math.sqrt(0.5)), 2)
    missing_cell = _point(points, method="ema", strength=0.9, interval=1.0)  # seed 1 has no record
    assert (missing_cell["mean"], missing_cell["sd"], missing_cell["seeds"]) == (pytest.approx(81.0), pytest.approx(math.sqrt(2)), "0,2")
    assert _point(points, schedule="random")["mean"] == pytest.approx(85.0)
    baseline = _point(points, method="baseline")
    assert (baseline["mean"], baseline["n"], baseline["target"]) == (pytest.approx(78.0), 3, "model")
    assert len(points) == 6 + 1 + 1


@pytest.mark.parametrize(("metric", "shift"), [("final", 0.0), ("best_val", 1.0), ("best_test", 2.0)])
def test_metric_picks_its_result_key(tidy, metric, shift):
    points = aggregate(select(tidy), metric)
    assert _point(points, method="ema", strength=0.9, interval=0.0)["mean"] == pytest.approx(80.0 + shift)
    assert set(points["metric"]) == {metric}


def test_metric_is_named_in_reader_words():
    assert metric_words("final") == "test accuracy (%) at the final epoch"
    assert metric_words("best_test").startswith("best test accuracy (%) over epochs (chosen on test: optimistic")
    assert "best-validation" in metric_words("best_val")


def test_the_analysed_target_is_the_one_the_record_names(tmp_path, make_record, write_run):
    from analysis.report import load

    write_run(tmp_path / "a", make_record("ema", 0.5, 0.9, 0, {"ema": 0.8, "model": 0.7}, main_target="model"))
    write_run(tmp_path / "b", make_record("ema", 0.5, 0.9, 1, {"ema": 0.8, "model": 0.6}, main_target="ema"))
    runs = load([tmp_path]).runs.set_index("seed")
    assert runs.loc[0, "target"] == "model" and runs.loc[1, "target"] == "ema"


def test_a_record_that_names_no_main_target_is_listed_not_guessed(tmp_path, make_record, write_run):
    from analysis.report import load

    write_run(tmp_path / "old", make_record("ema", 0.5, 0.9, 0, {"ema": 0.8, "model": 0.7}, main_target=None))
    write_run(tmp_path / "early", make_record("ema", 0.5, 0.9, 1, {}, status="failed", main_target=None))
    runs = load([tmp_path]).runs.set_index("seed")
    assert runs.loc[0, "problem"] == "impossible" and "main_target" in runs.loc[0, "problem_detail"]
    assert runs.loc[1, "status"] == "failed" and pd.isna(runs.loc[1, "target"])  # still listed, as failed
