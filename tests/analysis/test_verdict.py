"""The verdict in plain words, derived from which side of zero each 95 % interval lies; and never a winner
from cells that cannot measure their interval (a shadow that did not learn, an interval at or beyond the
run's length, runs identical to a smaller interval's)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from analysis.report import analyze, load
from analysis.summary import verdicts

MASSED = {0: 0.801, 1: 0.812, 2: 0.795, 3: 0.820, 4: 0.808}
NOISE = {0: 0.001, 1: -0.002, 2: 0.0, 3: 0.002, 4: -0.001}
"""Per-seed jitter of a difference, so that every interval has a width."""


def _metrics(test: float, target: str = "ema") -> dict:
    return {target: {"test_acc": test, "best_test_acc": test, "val_acc": test - 0.01, "best_val_acc": test - 0.01,
                     "test_acc_at_best_val": test, "best_val_epoch": 3, "best_test_epoch": 3}}


def _write(root, write_run, make_record, cells, share=0.0, **extra):
    """cells: {interval: {seed: test accuracy}} as completed EMA decay 0.9 records whose shadow holds `share`
    of its initial weights (a number, or {interval: share})."""
    for interval, by_seed in cells.items():
        held = share.get(interval, 0.0) if isinstance(share, dict) else share
        for seed, test in by_seed.items():
            record = make_record("ema", interval, 0.9, seed, {}, metrics=_metrics(test), **extra)
            record["counters"] = {"ema_updates": 9, "ema_initial_weight": held}
            write_run(root / f"s{interval}-{seed}", record)


def _control(root, write_run, make_record, interval, by_seed, share=0.0):
    """The matched-horizon control of the spaced cell at `interval`, its shadow holding `share` of its start."""
    for seed, test in by_seed.items():
        record = make_record("ema", 0.0, 0.99, seed, {}, metrics=_metrics(test),
                             control={"kind": "matched_horizon", "interval": interval, "strength": 0.9})
        record["counters"] = {"ema_updates": 9, "ema_initial_weight": share}
        write_run(root / f"control{interval}-{seed}", record)


def _shifted(points: float) -> dict[int, float]:
    """MASSED plus `points` accuracy points on every seed (with the seed's jitter)."""
    return {seed: value + points / 100 + NOISE[seed] for seed, value in MASSED.items()}


def _verdict(root) -> str:
    analysis = load([root])
    (line,) = verdicts(analysis.gains, analysis.points)
    return line


def _paired(spaced: dict[int, float], reference: dict[int, float]) -> tuple[int, float, float]:
    """n, mean and sd of the per-seed differences in points."""
    diffs = [100 * (spaced[s] - reference[s]) for s in sorted(spaced)]
    n = len(diffs)
    mean = sum(diffs) / n
    return n, mean, math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))


def _ci(spaced: dict[int, float], reference: dict[int, float]) -> tuple[float, float, float]:
    """mean ± t(0.975, n - 1) sd / sqrt(n) of the per-seed differences in points, stated independently."""
    n, mean, sd = _paired(spaced, reference)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def test_beats_massed_and_its_control(tmp_path, write_run, make_record):
    spaced = _shifted(3.0)
    _write(tmp_path, write_run, make_record, {0.0: MASSED, 1.0: spaced})
    control = _shifted(1.0)
    _control(tmp_path, write_run, make_record, 1.0, control)
    mean, low, high = _ci(spaced, MASSED)
    over, over_low, over_high = _ci(spaced, control)
    assert _verdict(tmp_path) == (
        f"Spaced EMA, decay 0.9 (s = 1, chosen on validation) beats massed by {mean:.2f} points (95 % CI "
        f"{low:+.2f} to {high:+.2f}, 5 paired seeds) and its matched-horizon control by {over:.2f} points (95 % CI "
        f"{over_low:+.2f} to {over_high:+.2f}, 5 paired seeds): spacing adds more than the longer averaging horizon. "
        f"The same interval is best on test. {_power(spaced, MASSED)} The comparison cost 0.0028 device-hours.")


def _power(spaced: dict[int, float], reference: dict[int, float]) -> str:
    """The verdict's power sentence, stated independently: the smallest detectable gain (t_.975 + t_.80) sd / sqrt(n)
    and the seeds for a 95 % interval of +-1 point (the least n with t_.975(n - 1) sd / sqrt(n) <= 1)."""
    n, _, sd = _paired(spaced, reference)
    detectable = (stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.80, n - 1)) * sd / math.sqrt(n)
    needed = next(k for k in range(2, 10_000) if stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k) <= 1.0)
    plan = (f"a 95 % CI of ±1 point needs {needed} paired seeds" if needed > n
            else f"{n} seeds already give a 95 % CI within ±1 point")
    return (f"With {n} paired seeds (per-seed sd {sd:.2f} points) this sweep detects gains of {detectable:.2f} points "
            f"or more (95 % confidence, 80 % power); {plan}.")


def test_beats_massed_but_not_its_control_says_where_the_gain_comes_from(tmp_path, write_run, make_record):
    spaced = _shifted(3.0)
    _write(tmp_path, write_run, make_record, {0.0: MASSED, 1.0: spaced})
    control = _shifted(4.5)
    _control(tmp_path, write_run, make_record, 1.0, control)
    over, over_low, over_high = _ci(spaced, control)
    assert over_high < 0  # the control is better, beyond seed noise
    line = _verdict(tmp_path)
    assert line.startswith("Spaced EMA, decay 0.9 (s = 1, chosen on validation) beats massed by 3.00 points (95 % CI ")
    assert (f" but not its matched-horizon control ({over:+.2f} points, 95 % CI {over_low:+.2f} to {over_high:+.2f}, "
            "5 paired seeds): here the gain comes from the longer averaging horizon.") in line


def test_spaced_kd_against_its_matched_lead_control_names_the_teachers_lead(tmp_path, write_run, make_record):
    # online KD's control keeps the teacher S steps ahead on its own stream: no better than it means the lead did it
    cells = {(0.0, None): MASSED, (1.0, None): _shifted(3.0), (0.0, 1.0): _shifted(4.5)}
    for (interval, controls), by_seed in cells.items():
        control = None if controls is None else {"kind": "matched_lead", "interval": controls, "strength": 0.3}
        for seed, test in by_seed.items():
            record = make_record("online_kd", interval, 0.3, seed, {}, metrics=_metrics(test, "student"),
                                 strength_name="alpha", main_target="student", control=control)
            record["counters"] = {"teacher_lead_min": 0, "teacher_lead_max": 0 if interval == 0 and control is None else 9}
            write_run(tmp_path / f"{interval}-{controls}-{seed}", record)
    over, over_low, over_high = _ci(cells[(1.0, None)], cells[(0.0, 1.0)])
    line = _verdict(tmp_path)
    assert line.startswith("Spaced online KD, alpha 0.3 (s = 1, chosen on validation) beats massed by 3.00 points (95 % CI ")
    assert (f" but not its matched-lead control ({over:+.2f} points, 95 % CI {over_low:+.2f} to {over_high:+.2f}, "
            "5 paired seeds): here the gain comes from the teacher's lead.") in line
    gains = load([tmp_path]).gains
    assert sorted(gains["comparison"]) == ["control:matched_lead", "massed"]


def test_an_interval_that_holds_zero_is_no_detectable_difference(tmp_path, write_run, make_record):
    spaced = {seed: value + 5 * NOISE[seed] for seed, value in MASSED.items()}
    _write(tmp_path, write_run, make_record, {0.0: MASSED, 0.5: spaced})
    mean, low, high = _ci(spaced, MASSED)
    assert low < 0 < high
    line = _verdict(tmp_path)
    assert line.startswith(f"Spaced EMA, decay 0.9 (s = 0.5, chosen on validation) shows no detectable difference from "
                           f"massed ({mean:+.2f} points, 95 % CI {low:+.2f} to {high:+.2f}, 5 paired seeds).")
    assert "beats" not in line and "worse" not in line


def test_worse_than_massed_is_said_so(tmp_path, write_run, make_record):
    _write(tmp_path, write_run, make_record, {0.0: MASSED, 0.5: _shifted(-2.0)})
    assert " (s = 0.5, chosen on validation) is worse than massed by 2.00 points (95 % CI " in _verdict(tmp_path)


def test_shadows_that_did_not_learn_name_no_winner(tmp_path, write_run, make_record, capsys):
    # the case: massed and spaced shadows still 97 % and 99 % their initial weights; spaced "loses"
    _write(tmp_path, write_run, make_record, {0.0: MASSED, 0.5: _shifted(-2.65)}, share={0.0: 0.9675, 0.5: 0.994})
    analysis = load([tmp_path])
    assert not analysis.gains["best_on_val"].any() and not analysis.gains["best_on_test"].any()
    (row,) = analysis.gains.itertuples()
    assert row.unmeasured == ("massed (s = 0): its EMA weights still hold 97 % of their initial weights (more than "
                              "5 %: too few refreshes); s = 0.5: its EMA weights still hold 99 % of their initial "
                              "weights (more than 5 %: too few refreshes)")
    line = _verdict(tmp_path)
    assert line == f"No verdict for spaced EMA, decay 0.9: no cell here can measure its interval; {row.unmeasured}."
    assert "points" not in line  # no gain is announced
    report = analyze([tmp_path], tmp_path / "analysis")
    assert report.lines()[-1] == f"  {line}"
    assert f"- {line}" in (tmp_path / "analysis" / "summary.md").read_text()
    assert "too few refreshes" in (tmp_path / "analysis" / "gains.csv").read_text()


def test_a_shadow_that_did_not_learn_is_left_out_of_the_choice_even_when_it_looks_best(tmp_path, write_run,
                                                                                      make_record):
    _write(tmp_path, write_run, make_record, {0.0: MASSED, 0.5: _shifted(1.0), 2.0: _shifted(6.0)},
           share={0.0: 0.0, 0.5: 0.01, 2.0: 0.17})
    gains = load([tmp_path]).gains
    assert gains.loc[gains["best_on_val"], "interval"].tolist() == [0.5]
    line = _verdict(tmp_path)
    assert line.startswith("Spaced EMA, decay 0.9 (s = 0.5, chosen on validation) beats massed by 1.00 points")
    assert (" Left out of the choice: s = 2: its EMA weights still hold 17 % of their initial weights (more than 5 %: "
            "too few refreshes).") in line
    assert "s = 2 would look best" not in line  # not even as the optimistic choice


def test_an_interval_at_or_beyond_the_runs_length_is_named(tmp_path, write_run, make_record):
    epochs = 3  # tests.helpers.RECORD_EPOCHS: the configured length of these records
    _write(tmp_path, write_run, make_record, {0.0: MASSED, 1.0: _shifted(1.0), float(epochs): _shifted(5.0)})
    gains = load([tmp_path]).gains
    beyond = gains[gains["interval"] == epochs].iloc[0]
    assert beyond["unmeasured"] == ("s = 3: the interval is at or beyond the run's length, so the ensemble is "
                                    "refreshed at most once")
    assert gains.loc[gains["best_on_val"], "interval"].tolist() == [1.0]


def test_cells_identical_to_a_smaller_interval_are_named_and_never_chosen(tmp_path, write_run, make_record):
    # online KD at 2 epochs: s = 2 gave records identical to s = 1, seed by seed
    spaced = _shifted(2.0)
    _write(tmp_path, write_run, make_record, {0.0: MASSED, 0.5: _shifted(1.0), 1.0: spaced, 2.0: spaced})
    gains = load([tmp_path]).gains
    assert gains.set_index("interval")["unmeasured"].to_dict() == {
        0.5: "", 1.0: "", 2.0: "s = 2: its runs are identical to those of s = 1"}
    assert gains.loc[gains["best_on_test"], "interval"].tolist() == [1.0]


def test_equal_metrics_with_different_histories_are_not_identical(tmp_path, write_run, make_record):
    spaced = _shifted(2.0)
    _write(tmp_path, write_run, make_record, {0.0: MASSED, 1.0: spaced, 2.0: spaced})
    history = tmp_path / "s2.0-0" / "history.csv"
    lines = history.read_text().splitlines()
    first = lines[1].split(",")
    first[lines[0].split(",").index("test_acc")] = "0.1234"  # epoch 1 differs; the final metrics do not
    lines[1] = ",".join(first)
    history.write_text("\n".join(lines) + "\n")
    gains = load([tmp_path]).gains
    assert set(gains["unmeasured"]) == {""}


@pytest.mark.parametrize("share, flagged", [(0.05, False), (0.0501, True)])
def test_the_share_limit_is_five_percent(tmp_path, write_run, make_record, share, flagged):
    _write(tmp_path, write_run, make_record, {0.0: MASSED, 0.5: _shifted(1.0)}, share={0.0: 0.0, 0.5: share})
    assert bool(load([tmp_path]).gains["unmeasured"].iloc[0]) is flagged


def test_a_control_that_did_not_learn_is_not_compared(tmp_path, write_run, make_record):
    _write(tmp_path, write_run, make_record, {0.0: MASSED, 1.0: _shifted(3.0)})
    _control(tmp_path, write_run, make_record, 1.0, _shifted(4.5), share=0.3)
    line = _verdict(tmp_path)
    assert line.startswith("Spaced EMA, decay 0.9 (s = 1, chosen on validation) beats massed by 3.00 points (95 % CI ")
    assert ("; its matched-horizon control cannot be compared with it (the control of s = 1: its EMA weights still "
            "hold 30 % of their initial weights (more than 5 %: too few refreshes)).") in line
    assert "here the gain comes from" not in line
