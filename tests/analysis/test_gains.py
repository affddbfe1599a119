"""Gains over massed and over controls: scipy's intervals, pairing by seed, selection on validation only."""

import math

import numpy as np
import pytest
from scipy import stats

from analysis.gains import difference
from analysis.report import load

MASSED = {0: 0.801, 1: 0.812, 2: 0.795, 3: 0.820, 4: 0.808}
SPACED = {0: 0.815, 1: 0.818, 2: 0.809, 3: 0.829, 4: 0.826}


DEFAULT = "test - 0.01"


def _metrics(test, val=DEFAULT, target="ema"):
    """One target's metrics; val None: no validation split."""
    val = test - 0.01 if val == DEFAULT else val
    return {target: {"test_acc": test, "best_test_acc": test, "val_acc": val, "best_val_acc": val,
                     "test_acc_at_best_val": test, "best_val_epoch": 3, "best_test_epoch": 3}}


def _write_cells(root, write_run, make_record, cells, **extra):
    """cells: {(interval, schedule): {seed: test or (test, val)}} as completed EMA decay 0.9 records."""
    for (interval, schedule), by_seed in cells.items():
        for seed, value in by_seed.items():
            test, val = value if isinstance(value, tuple) else (value, DEFAULT)
            name = f"{schedule}-{interval}-{seed}"
            write_run(root / name, make_record("ema", interval, 0.9, seed, {}, schedule=schedule,
                                               metrics=_metrics(test, val), **extra))


def _row(gains, **keys):
    rows = gains
    for key, value in keys.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1, keys
    return rows.iloc[0]


def test_paired_interval_equals_scipy_and_the_t_formula(tmp_path, write_run, make_record):
    _write_cells(tmp_path, write_run, make_record, {(0.0, "periodic"): MASSED, (0.5, "periodic"): SPACED})
    row = _row(load([tmp_path]).gains, interval=0.5, comparison="massed")
    diffs = 100 * (np.array(list(SPACED.values())) - np.array(list(MASSED.values())))
    expected = stats.ttest_rel(100 * np.array(list(SPACED.values())),
                               100 * np.array(list(MASSED.values()))).confidence_interval(0.95)
    half = stats.t.ppf(0.975, df=4) * diffs.std(ddof=1) / math.sqrt(5)  # mean ± t(0.975, n-1) sd / sqrt(n)
    assert (row["mean"], row["low"], row["high"]) == pytest.approx((diffs.mean(), expected.low, expected.high))
    assert (row["low"], row["high"]) == pytest.approx((diffs.mean() - half, diffs.mean() + half))
    assert row["sd"] == pytest.approx(diffs.std(ddof=1))
    assert (row["n"], row["paired"], row["test"], row["seeds"]) == (5, "yes", "paired t", "0,1,2,3,4")


def test_seeds_that_do_not_pair_get_a_welch_interval_marked_unpaired(tmp_path, write_run, make_record):
    spaced = {seed + 10: value for seed, value in SPACED.items() if seed < 3}
    _write_cells(tmp_path, write_run, make_record, {(0.0, "periodic"): MASSED, (0.5, "periodic"): spaced})
    row = _row(load([tmp_path]).gains, interval=0.5)
    a, b = 100 * np.array(list(spaced.values())), 100 * np.array(list(MASSED.values()))
    expected = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))  # Welch-Satterthwaite
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert (row["low"], row["high"]) == pytest.approx((expected.low, expected.high))
    assert (row["low"], row["high"]) == pytest.approx((a.mean() - b.mean() - half, a.mean() - b.mean() + half))
    assert (row["paired"], row["test"], row["n"], row["n_reference"]) == ("no", "Welch t", 3, 5)
    assert math.isnan(row["sd"]) and row["seeds"] == ""


def test_partly_overlapping_seeds_pair_on_the_common_ones():
    result = difference({0: 1.0, 1: 2.0, 2: 4.0}, {1: 1.0, 2: 1.0, 3: 9.0})
    assert (result.paired, result.n, result.seeds, result.diffs) == (True, 2, (1, 2), {1: 1.0, 2: 3.0})
    assert result.mean == 2.0


def test_one_paired_seed_has_a_gain_and_no_interval():
    result = difference({0: 3.0}, {0: 1.0, 1: 5.0})
    assert (result.mean, result.n, result.paired) == (2.0, 1, True)
    assert math.isnan(result.low) and math.isnan(result.high)


def test_the_interval_is_chosen_on_validation_not_on_test(tmp_path, write_run, make_record, capsys):
    # s = 0.5 wins on validation, s = 1 wins on test: the honest choice is 0.5
    cells = {(0.0, "periodic"): {s: (0.80, 0.80) for s in range(3)},
             (0.5, "periodic"): {0: (0.81, 0.90), 1: (0.82, 0.91), 2: (0.81, 0.92)},
             (1.0, "periodic"): {0: (0.85, 0.82), 1: (0.86, 0.83), 2: (0.87, 0.81)}}
    _write_cells(tmp_path, write_run, make_record, cells)
    gains = load([tmp_path]).gains
    assert gains.loc[gains["best_on_val"], "interval"].tolist() == [0.5]
    assert gains.loc[gains["best_on_test"], "interval"].tolist() == [1.0]
    assert _row(gains, interval=0.5)["val_mean"] == pytest.approx(91.0)
    from analysis.__main__ import main

    assert main([str(tmp_path)]) == 0
    verdict = capsys.readouterr().out.strip().splitlines()[-1]
    assert verdict.startswith("  Spaced EMA, decay 0.9 (s = 0.5, chosen on validation) shows no detectable difference "
                              "from massed (+1.33 points, 95 % CI ")
    assert " On test alone s = 1 would look best (+6.00 points over massed, 95 % CI " in verdict
    table = (tmp_path / "analysis" / "comparison.csv").read_text()
    assert ",0.5," in table  # val_interval


def test_without_validation_nothing_is_chosen_and_test_choice_is_labelled_optimistic(tmp_path, write_run,
                                                                                     make_record, capsys):
    _write_cells(tmp_path, write_run, make_record, {(0.0, "periodic"): {s: (0.80, None) for s in range(2)},
                                                     (0.5, "periodic"): {s: (0.82, None) for s in range(2)}})
    gains = load([tmp_path]).gains
    assert not gains["best_on_val"].any() and gains["best_on_test"].tolist() == [True]
    from analysis.summary import verdicts

    (line,) = verdicts(gains, load([tmp_path]).points)
    assert line.startswith("Spaced EMA, decay 0.9 (s = 0.5, best on test) ")
    assert " There is no validation accuracy to choose on (dataset.val_fraction=0), so this choice on test is optimistic." in line


def test_random_and_offline_cells_are_compared_with_massed_and_never_chosen(tmp_path, write_run, make_record):
    _write_cells(tmp_path, write_run, make_record, {(0.0, "periodic"): MASSED, (0.5, "periodic"): SPACED,
                                                     (0.0, "random"): {s: v + 0.05 for s, v in MASSED.items()},
                                                     (math.inf, "periodic"): {s: v + 0.09 for s, v in MASSED.items()}})
    gains = load([tmp_path]).gains
    assert _row(gains, schedule="random")["mean"] == pytest.approx(5.0)
    assert _row(gains, interval=math.inf)["mean"] == pytest.approx(9.0)
    assert gains.loc[gains["best_on_test"], "interval"].tolist() == [0.5]


def test_a_control_is_paired_with_the_spaced_cell_it_controls(tmp_path, write_run, make_record, capsys):
    _write_cells(tmp_path, write_run, make_record, {(0.0, "periodic"): MASSED, (0.5, "periodic"): SPACED})
    control = {seed: value + 0.004 for seed, value in MASSED.items()}
    for seed, value in control.items():  # matched horizon: massed with the effective decay, naming its cell
        write_run(tmp_path / f"control-{seed}", make_record(
            "ema", 0.0, 0.99, seed, {}, metrics=_metrics(value),
            control={"kind": "matched_horizon", "interval": 0.5, "strength": 0.9}))
    analysis = load([tmp_path])
    gains = analysis.gains
    assert sorted(gains["comparison"]) == ["control:matched_horizon", "massed"]
    over_control = _row(gains, comparison="control:matched_horizon")
    assert (over_control["interval"], over_control["strength"], over_control["control_kind"]) == (0.5, 0.9, None)
    expected = 100 * np.mean([SPACED[s] - control[s] for s in SPACED])
    assert (over_control["mean"], over_control["n"], over_control["paired"]) == (pytest.approx(expected), 5, "yes")
    # the control is neither a massed reference nor a spaced cell of its own
    assert len(gains) == 2
    from analysis.__main__ import main

    assert main([str(tmp_path)]) == 0
    verdict = capsys.readouterr().out.strip().splitlines()[-1]
    assert f" and its matched-horizon control by {expected:.2f} points (95 % CI " in verdict


def test_pairs_hold_the_per_seed_differences(tmp_path, write_run, make_record):
    _write_cells(tmp_path, write_run, make_record, {(0.0, "periodic"): MASSED, (0.5, "periodic"): SPACED})
    pairs = load([tmp_path]).pairs
    assert pairs["seed"].tolist() == [0, 1, 2, 3, 4]
    assert pairs["diff"].tolist() == pytest.approx([100 * (SPACED[s] - MASSED[s]) for s in range(5)])


def test_pairing_runs_of_different_threads_or_devices_warns(tmp_path, write_run, make_record, capsys):
    cpu = {"kind": "cpu", "count": 1}
    for seed in range(2):
        write_run(tmp_path / f"m{seed}", make_record("ema", 0.0, 0.9, seed, {"ema": 0.8}, device=cpu, threads=1))
        write_run(tmp_path / f"s{seed}", make_record("ema", 0.5, 0.9, seed, {"ema": 0.8}, device=cpu, threads=2))
        write_run(tmp_path / f"t{seed}", make_record("ema", 1.0, 0.9, seed, {"ema": 0.8}, device=cpu, threads=1))
    analysis = load([tmp_path])
    (warning,) = analysis.warnings()
    assert warning.startswith("warning: EMA, decay 0.9, s = 0.5 vs massed: the runs ran on different hardware "
                              "(cpu x1, 1 thread; cpu x1, 2 threads)")
    assert "one device kind at one torch thread count" in warning
    from analysis.__main__ import main

    assert main([str(tmp_path)]) == 0
    assert warning in capsys.readouterr().out
    assert "different hardware" in (tmp_path / "analysis" / "summary.md").read_text()
