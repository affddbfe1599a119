"""`spacing plan` warns, before anything runs, about cells that cannot measure what their interval claims:
an EMA shadow that will still hold more than 5 % of its initial weights, an interval at or beyond the
run's length, intervals whose periods round to the same number of steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spacing.config import to_config
from spacing.data import build_data
from spacing.plan import steps_per_epoch, unmeasurable
from tests.helpers import compose_config, spacing


def _config(*overrides: str):
    return to_config(compose_config(overrides))


@pytest.mark.parametrize("overrides", [
    ("dataset=digits",),
    ("dataset=digits", "dataset.val_fraction=0.2", "trainer.batch_size=32"),
    ("dataset=synthetic", "trainer.batch_size=16"),
    ("dataset=synthetic", "dataset.train_size=200", "dataset.val_fraction=0", "trainer.batch_size=64"),
])
def test_predicted_steps_per_epoch_are_those_the_data_gives(overrides):
    config = _config(*overrides)
    data = build_data(config.dataset, config.trainer.batch_size, 256, 0, torch.device("cpu"))
    assert steps_per_epoch(config) == data.train.steps_per_epoch


def test_the_issues_grid_warns_of_both_shadows(tmp_path: Path):
    done = spacing("plan", "method=ema", "method.interval=0,0.5", "seed=0,1", "trainer.epochs=3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stdout.splitlines() if line.startswith("warning: ")]
    # digits: 1,438 training images, 10 % held out -> 1,294 at batch 128 = 11 steps; 3 epochs = 33 steps.
    # massed refreshes every step (33); s = 0.5 every int(0.5 * 11) = 5 steps: steps 4, 9, ..., 29 (6).
    assert warnings == [
        f"warning: method.interval=0: the EMA shadow will still hold {100 * 0.999 ** 33:.0f} % of its initial weights "
        "after its 33 refreshes (decay 0.999 ** 33; more than 5 %), so it measures too few refreshes, not spacing; "
        "train longer (trainer.epochs) or lower method.decay.",
        f"warning: method.interval=0.5: the EMA shadow will still hold {100 * 0.999 ** 6:.0f} % of its initial weights "
        "after its 6 refreshes (decay 0.999 ** 6; more than 5 %), so it measures too few refreshes, not spacing; "
        "train longer (trainer.epochs), lower method.decay or shorten method.interval.",
    ]
    assert not (tmp_path / "multirun").exists()  # still a plan: nothing written


def test_a_control_is_judged_by_its_own_massed_shadow():
    # the demo's s = 1 at 10 epochs: S = 36 steps (1,150 images at batch 32), the control's decay 1 - 0.3 / 36
    # refreshed on all 360 steps keeps (1 - 0.3 / 36) ** 360 = 4.9 %: under the limit; at 4 epochs 30 %
    demo = ("dataset=digits", "dataset.val_fraction=0.2", "trainer.batch_size=32", "method=ema", "method.decay=0.7",
            "method.interval=1", "method.control=matched")
    assert (1 - 0.3 / 36) ** 360 < 0.05 < (1 - 0.3 / 36) ** 144
    assert unmeasurable(_config(*demo, "trainer.epochs=10")) == []
    (reason,) = unmeasurable(_config(*demo, "trainer.epochs=4"))
    assert reason.startswith(f"the EMA shadow will still hold {100 * (1 - 0.3 / 36) ** 144:.0f} % of its initial "
                             "weights after its 144 refreshes")


def test_an_interval_at_or_beyond_the_run_is_named_for_every_method():
    for method in ("online_kd", "dropout", "ema"):
        reasons = unmeasurable(_config(f"method={method}", "method.interval=2", "trainer.epochs=2"))
        assert "the interval is at or beyond the run's length (trainer.epochs=2): the ensemble is refreshed at most " \
               "once, at the very end; use intervals shorter than the run." in reasons, method
        assert not any("beyond" in r for r in unmeasurable(_config(f"method={method}", "method.interval=1.5",
                                                                  "trainer.epochs=2")))


def test_intervals_with_one_period_in_steps_are_identical_cells(tmp_path: Path):
    # synthetic: 512 images, 20 % held out -> 410 at batch 128 = 4 steps: s = 0.5 and 0.6 both refresh every 2 steps
    done = spacing("plan", "dataset=synthetic", "method=dropout", "method.interval=0,0.5,0.6", "trainer.epochs=4",
                   "trainer.batch_size=128", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert ("warning: method.interval=0.5 and 0.6 refresh every 2 steps alike: identical cells, not different "
            "intervals; space the intervals further apart.") in done.stdout.splitlines()
