"""The Schedule: refresh steps and strength multipliers, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spacing.schedule import Schedule


def test_massed_refreshes_every_step_at_full_strength() -> None:
    schedule = Schedule(0.0, "periodic", steps_per_epoch=10)
    assert schedule.refresh_steps(6) == [0, 1, 2, 3, 4, 5]
    assert [schedule.multiplier(t) for t in range(3)] == [1.0, 1.0, 1.0]
    assert schedule.massed and schedule.period == 0


def test_spaced_refreshes_every_int_interval_times_steps_per_epoch() -> None:
    schedule = Schedule(0.5, "periodic", steps_per_epoch=11)  # S = int(5.5) = 5
    assert schedule.period == 5
    assert schedule.refresh_steps(23) == [4, 9, 14, 19]
    assert Schedule(1.5, "periodic", steps_per_epoch=391).period == 586
    assert Schedule(0.01, "periodic", steps_per_epoch=10).period == 1


def test_offline_never_refreshes() -> None:
    schedule = Schedule(math.inf, "periodic", steps_per_epoch=10)
    assert schedule.offline and schedule.refresh_steps(1000) == []


def test_dropout_multiplier_over_two_periods() -> None:
    schedule = Schedule(0.4, "periodic", steps_per_epoch=10)  # S = 4
    half = math.sqrt(0.5)
    expected = [0.0, half, 1.0, half, 0.0, half, 1.0, half]
    assert [schedule.multiplier(t) for t in range(8)] == pytest.approx(expected, abs=1e-12)


def test_random_refreshes_follow_seeded_uniform_gaps() -> None:
    schedule = Schedule(1.0, "random", steps_per_epoch=10, seed=3, random_max_gap=0.4)  # gaps in 1..4
    rng = np.random.default_rng([3, 0x5EED])
    expected, step = [], -1
    while True:
        step += int(rng.integers(1, 5))
        if step >= 200:
            break
        expected.append(step)
    assert schedule.refresh_steps(200) == expected
    gaps = np.diff([-1, *expected])
    assert gaps.min() >= 1 and gaps.max() <= 4 and len(set(gaps)) == 4
    again = Schedule(1.0, "random", steps_per_epoch=10, seed=3, random_max_gap=0.4)
    assert [again.is_refresh(t) for t in reversed(range(200))][::-1] == [t in expected for t in range(200)]


def test_random_multiplier_is_uniform_and_reproducible() -> None:
    schedule = Schedule(1.0, "random", steps_per_epoch=10, seed=1)
    values = [schedule.multiplier(t) for t in range(2000)]
    assert values == [Schedule(1.0, "random", 10, seed=1).multiplier(t) for t in range(2000)]
    assert values[:3] == [float(np.random.default_rng([1, 0xD209, t, 0]).random()) for t in range(3)]
    assert schedule.multiplier(5, draw=2) == float(np.random.default_rng([1, 0xD209, 5, 2]).random())
    assert 0.45 < float(np.mean(values)) < 0.55 and min(values) >= 0 and max(values) < 1
