"""Control runs: each control's strength against an independent statement of it, and the record contract.

A control (``method.control=matched``) keeps the spaced cell's keys and trains the massed run that
matches the spaced cell's confound: EMA the averaging horizon, dropout the mean rate.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from spacing.config import DropoutConfig, EmaConfig, to_config
from spacing.errors import ConfigError
from spacing.runner import run
from spacing.schedule import Schedule
from tests.helpers import TINY, build_method_for, compose_config, train_epochs


def test_ema_matched_horizon_averages_over_as_many_steps_as_the_spaced_shadow() -> None:
    # Spaced: decay d every S steps, so the weight of a step k steps back is d^(k/S) and the shadow
    # averages over S / (1 - d) steps; massed with decay d' over 1 / (1 - d'). Equal horizons.
    for decay, interval, steps_per_epoch in [(0.7, 0.5, 40), (0.99, 2.0, 391), (0.9, 0.01, 40)]:
        spaced = EmaConfig(name="ema", interval=interval, decay=decay, control="matched")
        period = max(1, int(interval * steps_per_epoch))
        control = spaced.matched_control(Schedule(interval, "periodic", steps_per_epoch))
        assert period / (1 - decay) == pytest.approx(1 / (1 - control.decay))
        assert (control.interval, control.schedule, control.control) == (0.0, "periodic", "none")


def test_ema_matched_horizon_of_a_random_schedule_uses_its_mean_gap() -> None:
    spaced = EmaConfig(name="ema", interval=1.0, schedule="random", decay=0.8, control="matched")
    schedule = Schedule(1.0, "random", steps_per_epoch=50, seed=4, random_max_gap=0.4)  # gaps 1..20
    refreshes = schedule.refresh_steps(200_000)
    mean_gap = float(np.mean(np.diff([-1, *refreshes])))  # measured, not the formula
    control = spaced.matched_control(Schedule(1.0, "random", steps_per_epoch=50, seed=4, random_max_gap=0.4))
    assert mean_gap / (1 - 0.8) == pytest.approx(1 / (1 - control.decay), rel=0.01)


def test_dropout_matched_rate_is_the_mean_rate_of_the_spaced_schedule() -> None:
    # The statement: 2p/pi for the periodic sine (the mean of |sin| over a period), p/2 for
    # the random schedule (the mean of U(0, 1)). Over S whole steps the sine's mean is within 1 % of 2/pi.
    periodic = DropoutConfig(name="dropout", interval=1.0, p=0.5, control="matched")
    control = periodic.matched_control(Schedule(1.0, "periodic", steps_per_epoch=400))
    assert control.p == pytest.approx(2 * 0.5 / math.pi, rel=1e-5)
    assert periodic.matched_control(Schedule(1.0, "periodic", steps_per_epoch=10)).p == pytest.approx(2 * 0.5 / math.pi, rel=0.01)
    random = DropoutConfig(name="dropout", interval=1.0, schedule="random", p=0.3, control="matched")
    assert random.matched_control(Schedule(1.0, "random", steps_per_epoch=40)).p == pytest.approx(0.15)
    assert (control.interval, control.schedule, control.control) == (0.0, "periodic", "none")


def test_dropout_matched_rate_equals_the_rate_the_spaced_run_actually_trained_with() -> None:
    spaced = to_config(compose_config(["method=dropout", "method.interval=0.4", "method.p=0.5", *TINY]))
    method, data = build_method_for(spaced)  # S = 4 steps, 10 steps per epoch
    steps = train_epochs(method, data, 2)
    assert steps % 4 == 0  # whole periods, so the realised mean is the schedule's mean
    realised = method.counters()["mean_dropout_rate"]
    control = to_config(compose_config(["method=dropout", "method.interval=0.4", "method.p=0.5", "method.control=matched", *TINY]))
    controlled, _ = build_method_for(control)
    assert controlled.cfg.p == pytest.approx(realised)
    assert controlled.schedule.massed


def test_cutout_matched_control_keeps_the_mean_hole_area() -> None:
    # A hole of side L * m removes an area proportional to (L * m)^2: mean sin^2 = 1/2, E[U^2] = 1/3.
    periodic = DropoutConfig(name="dropout", interval=1.0, variant="cutout", cutout_size=16, control="matched")
    assert periodic.matched_control(Schedule(1.0, "periodic", 40)).cutout_size == round(16 / math.sqrt(2)) == 11
    random = DropoutConfig(name="dropout", interval=1.0, schedule="random", variant="cutout", cutout_size=16, control="matched")
    assert random.matched_control(Schedule(1.0, "random", 40)).cutout_size == round(16 / math.sqrt(3)) == 9


def test_a_control_run_records_the_spaced_cell_it_controls(make_config, tmp_path: Path) -> None:
    overrides = ("method=ema", "method.interval=0.5", "method.decay=0.9", *TINY)
    record = run(make_config(*overrides, "method.control=matched"), tmp_path / "control")
    steps_per_epoch = record["steps"] // record["epochs_completed"]
    period = int(0.5 * steps_per_epoch)
    assert record["interval"] == 0.0 and record["schedule"] == "periodic"
    assert record["strength_name"] == "decay" and record["strength"] == pytest.approx(1 - 0.1 / period)
    assert record["control"] == {"kind": "matched_horizon", "interval": 0.5, "strength": 0.9, "schedule": "periodic"}
    assert record["counters"]["ema_updates"] == record["steps"]  # the control is massed: it refreshes every step
    assert record["config"]["method"]["control"] == "matched" and record["config"]["method"]["interval"] == 0.5
    ordinary = run(make_config(*overrides), tmp_path / "spaced")
    assert ordinary["control"] is None and ordinary["interval"] == 0.5 and ordinary["strength"] == 0.9


def test_a_dropout_control_of_a_random_schedule_names_that_schedule(make_config, tmp_path: Path) -> None:
    record = run(make_config("method=dropout", "method.schedule=random", "method.p=0.4", "method.control=matched", *TINY), tmp_path)
    assert record["control"] == {"kind": "matched_rate", "interval": 0.0, "strength": 0.4, "schedule": "random"}
    assert (record["interval"], record["schedule"], record["strength"]) == (0.0, "periodic", pytest.approx(0.2))
    assert record["counters"]["mean_dropout_rate"] == pytest.approx(0.2)


def test_controls_that_cannot_exist_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="a massed cell is its own control, use method.control=none"):
        EmaConfig(name="ema", interval=0.0, control="matched")
    with pytest.raises(ConfigError, match="controls a spaced cell"):
        EmaConfig(name="ema", interval=math.inf, control="matched")
    for method in ("self_kd", "baseline"):
        with pytest.raises(ConfigError, match=f"{method} has no control run"):
            to_config(compose_config([f"method={method}", "method.interval=1", "method.control=matched"]))
    with pytest.raises(ConfigError, match="method.control must be one of none, matched"):
        EmaConfig(name="ema", interval=1.0, control="horizon")


def test_a_control_that_fails_before_training_still_names_its_cell(make_config, tmp_path: Path) -> None:
    from spacing.config import to_dict
    from spacing.record import identity

    config = to_dict(make_config("method=ema", "method.interval=2", "method.decay=0.95", "method.control=matched"))
    fields = identity(config)
    assert (fields["interval"], fields["schedule"]) == (0.0, "periodic")
    assert fields["control"] == {"kind": "matched_horizon", "interval": 2.0, "strength": None, "schedule": "periodic"}
