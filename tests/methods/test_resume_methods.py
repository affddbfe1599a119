"""A run interrupted mid-epoch and resumed ends exactly where an uninterrupted run ends, for every method.

Offline KD is interrupted in its student phase (epoch 5 of 2 x 3) and the paper's self KD and
dropout settings (faithful=paper) carry state of their own: rounds of a late counter, a dropout
clock moved by test forwards.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from spacing.methods import METHODS
from spacing.runner import run

CASES = {
    "dropout": (["method=dropout", "method.interval=0.5"], 2),
    "ema": (["method=ema", "method.schedule=random", "method.decay=0.9"], 2),
    "online_kd": (["method=online_kd", "method.interval=0.7"], 2),
    "self_kd": (["method=self_kd", "method.interval=0.7", "method.replay=rounds"], 2),
    "online_kd_offline": (["method=online_kd", "method.interval=inf", "trainer.lr_schedule=cosine"], 4),
    "self_kd_paper": (["method=self_kd", "method.interval=0.7", "faithful=paper", "dataset.val_fraction=0.2"], 2),
    "dropout_paper": (["method=dropout", "method.interval=0.5", "faithful=paper", "dataset.val_fraction=0.2"], 2),
}


def history(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


@pytest.mark.parametrize("name", list(CASES))
def test_interrupted_run_resumes_to_the_same_result(name: str, make_config, tmp_path: Path, monkeypatch) -> None:
    extra, interrupted_epoch = CASES[name]
    overrides = [*extra, "trainer.epochs=3", "dataset.train_size=160", "trainer.batch_size=32"]
    full = run(make_config(*overrides), tmp_path / "full")

    method_class = METHODS[name.split("_paper")[0].removesuffix("_offline")]
    original = method_class.train_step

    def interrupt(self, batch, step):
        if step == interrupted_epoch * self.ctx.steps_per_epoch + 2:
            raise KeyboardInterrupt
        return original(self, batch, step)

    monkeypatch.setattr(method_class, "train_step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(make_config(*overrides), tmp_path / "resumed")
    monkeypatch.setattr(method_class, "train_step", original)
    resumed = run(make_config(*overrides), tmp_path / "resumed")

    assert resumed["metrics"] == full["metrics"]
    assert resumed["counters"] == full["counters"]
    assert history(tmp_path / "resumed") == history(tmp_path / "full")
    assert json.loads((tmp_path / "resumed" / "result.json").read_text())["status"] == "completed"
